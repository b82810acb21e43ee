"""The durable job queue: JobStore interface, SQLite and Postgres implementations, migrations."""

from __future__ import annotations

from pathlib import Path

from reelgen.jobs.store import JobStore, NewJob, Page, Progress, QueuePolicy

__all__ = ["JobStore", "NewJob", "Page", "Progress", "QueuePolicy", "open_job_store"]


def open_job_store(url: str, policy: QueuePolicy | None = None) -> JobStore:
    """`sqlite:///path/to.db` or `postgresql://…` (REELGEN_DATABASE_URL)."""
    if url.startswith("sqlite:///"):
        from reelgen.jobs.sqlite import SqliteJobStore

        return SqliteJobStore(Path(url.removeprefix("sqlite:///")), policy)
    if url.startswith(("postgresql://", "postgres://")):
        from reelgen.jobs.postgres import PostgresJobStore

        return PostgresJobStore(url, policy)
    raise ValueError(f"REELGEN_DATABASE_URL must start with sqlite:/// or postgresql://, got {url!r}")
