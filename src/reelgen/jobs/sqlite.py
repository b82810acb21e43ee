"""SQLite job store: the default. WAL for concurrent readers, BEGIN IMMEDIATE for every write (so a claim's
read-then-update is atomic across worker processes on this host), synchronous=FULL for durable commits."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reelgen.jobs.migrate import CREATE_TABLE, migration_files, split_statements
from reelgen.jobs.sql_store import SqlJobStore
from reelgen.jobs.store import QueuePolicy
from reelgen.jobs.wakeup import SocketWakeup


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.notify = False

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, tuple(params))
        cols = [c[0] for c in cur.description] if cur.description else []
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, tuple(params)).rowcount


class SqliteJobStore(SqlJobStore):
    def __init__(self, path: Path, policy: QueuePolicy | None = None) -> None:
        super().__init__(policy or QueuePolicy())
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._wakeup = SocketWakeup(self.path.parent / f"{self.path.name}.wake")
        self._migrate()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN ourselves, so the module never opens hidden transactions.
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[_SqliteTx]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        tx = _SqliteTx(conn)
        try:
            yield tx
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if tx.notify:
            self._wakeup.notify()

    def _migrate(self) -> None:
        conn = self._conn()
        conn.execute(CREATE_TABLE)
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in migration_files("sqlite"):
                if version in done:
                    continue
                for statement in split_statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _notify(self, tx: _SqliteTx) -> None:  # type: ignore[override]
        tx.notify = True

    def wait_for_work(self, timeout: float) -> None:
        self._wakeup.wait(timeout)

    def prepare_wait(self) -> None:
        self._wakeup.prepare()

    def close(self) -> None:
        self._wakeup.close()
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.ProgrammingError):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()
