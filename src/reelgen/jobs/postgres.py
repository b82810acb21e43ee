"""Postgres job store: workers on several machines. Claims use FOR UPDATE SKIP LOCKED, wake-ups LISTEN/NOTIFY,
and lease times come from the database clock so machines with skewed clocks agree on who is late."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from reelgen.jobs.migrate import CREATE_TABLE, migration_files, split_statements
from reelgen.jobs.sql_store import SqlJobStore
from reelgen.jobs.store import QueuePolicy

CHANNEL = "reelgen_jobs"
# Serialises concurrent migrators (several workers starting at once).
MIGRATION_LOCK_KEY = 0x7265656C67656E
# Serialises claims (the scheduler's choice and its usage update).
SCHEDULER_LOCK_KEY = 0x7265656C67656F


class _PgTx:
    def __init__(self, cur: psycopg.Cursor[dict[str, Any]]) -> None:
        self.cur = cur

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self.cur.execute(_pg(sql), tuple(params))  # type: ignore[arg-type]
        return list(self.cur.fetchall()) if self.cur.description else []

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.cur.execute(_pg(sql), tuple(params))  # type: ignore[arg-type]
        return self.cur.rowcount


def _pg(sql: str) -> str:
    # Queries are written with `?`; the PG-only claim already uses %s. No query has a literal ? or %.
    return sql.replace("?", "%s")


class PostgresJobStore(SqlJobStore):
    # A create locks its owner's fair_share row: one owner's concurrent creates serialise (the quota race).
    _for_update = " FOR UPDATE"

    def __init__(self, url: str, policy: QueuePolicy | None = None) -> None:
        super().__init__(policy or QueuePolicy())
        self.url = url
        self._local = threading.local()
        self._conns: list[psycopg.Connection[dict[str, Any]]] = []
        self._conns_lock = threading.Lock()
        self._listen_conn: psycopg.Connection[Any] | None = None
        self._migrate()

    def _conn(self) -> psycopg.Connection[dict[str, Any]]:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.url, row_factory=dict_row, autocommit=False)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[_PgTx]:
        conn = self._conn()
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield _PgTx(cur)
        except psycopg.OperationalError:
            # A dropped connection must not poison this thread forever: reconnect on next use.
            conn.close()
            raise

    def _now(self, tx: _PgTx) -> float:  # type: ignore[override]
        row = tx.one("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now")
        assert row is not None
        return float(row["now"])

    def _migrate(self) -> None:
        with self._tx() as tx:
            tx.run(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            tx.run(CREATE_TABLE)
            done = {r["version"] for r in tx.all("SELECT version FROM schema_migrations")}
            for version, name, sql in migration_files("postgres"):
                if version in done:
                    continue
                for statement in split_statements(sql):
                    tx.run(statement)
                tx.run(
                    "INSERT INTO schema_migrations (version, name, applied_at) "
                    "VALUES (?, ?, EXTRACT(EPOCH FROM now()))",
                    (version, name),
                )

    def _lock_scheduler(self, tx: _PgTx) -> None:  # type: ignore[override]
        # One claim at a time: the fair-share choice reads every owner's usage and writes the winner's, so
        # concurrent claims must not both choose from the same snapshot.
        tx.run(f"SELECT pg_advisory_xact_lock({SCHEDULER_LOCK_KEY})")

    def _notify(self, tx: _PgTx) -> None:  # type: ignore[override]
        tx.run(f"NOTIFY {CHANNEL}")

    def _listener(self) -> psycopg.Connection[Any]:
        if self._listen_conn is None or self._listen_conn.closed:
            self._listen_conn = psycopg.connect(self.url, autocommit=True)
            self._listen_conn.execute(f"LISTEN {CHANNEL}")
        return self._listen_conn

    def prepare_wait(self) -> None:
        self._listener()

    def wait_for_work(self, timeout: float) -> None:
        conn = self._listener()
        for _ in conn.notifies(timeout=max(timeout, 0.0), stop_after=1):
            pass

    def close(self) -> None:
        if self._listen_conn is not None:
            self._listen_conn.close()
            self._listen_conn = None
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()
