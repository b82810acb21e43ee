"""JobStore: the durable queue. Two implementations (SQLite, Postgres) share `sql_store.SqlJobStore`.

Every write a worker makes is fenced on (job id, attempt, status in_progress): a worker whose lease expired and
whose job was handed to someone else gets StaleAttempt and must throw its work away.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from reelgen.domain.jobs import Artifact, Claim, Job, JobError, JobEvent
from reelgen.domain.params import GenerationParams


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """How the store retries: taken from Settings by the caller."""

    lease_seconds: float = 60.0
    max_attempts: int = 3
    retry_backoff_seconds: float = 2.0
    max_backoff_seconds: float = 300.0

    def backoff(self, attempt: int) -> float:
        """Delay before the attempt after `attempt` may start (exponential, capped)."""
        return min(self.retry_backoff_seconds * 2 ** max(attempt - 1, 0), self.max_backoff_seconds)


@dataclass(frozen=True, slots=True)
class NewJob:
    """One job to enqueue with `create_many` (the arguments of `create`, as a record)."""

    owner: str
    params: GenerationParams
    idempotency_key: str | None = None
    remixed_from: str | None = None
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Page:
    jobs: list[Job]
    has_more: bool


@dataclass(frozen=True, slots=True)
class Progress:
    """What a running worker learns back from the store when it reports progress or heartbeats."""

    cancel_requested: bool


class JobStore(ABC):
    policy: QueuePolicy

    # --- clients -------------------------------------------------------------------------------------
    @abstractmethod
    def create(
        self,
        owner: str,
        params: GenerationParams,
        *,
        idempotency_key: str | None = None,
        remixed_from: str | None = None,
        priority: int = 0,
    ) -> tuple[Job, bool]:
        """Enqueue a job. With an idempotency key already used by this owner, return that job instead.
        Returns (job, created)."""

    def create_many(self, new_jobs: Sequence[NewJob]) -> list[tuple[Job, bool]]:
        """Enqueue several jobs, each exactly as `create` would (idempotency per owner and key included).

        The SQL stores do it in one transaction, so a burst of API creates costs one durable commit (group
        commit) instead of one fsync each. All or nothing: if it raises, none of the jobs exist."""
        return [
            self.create(
                n.owner,
                n.params,
                idempotency_key=n.idempotency_key,
                remixed_from=n.remixed_from,
                priority=n.priority,
            )
            for n in new_jobs
        ]

    @abstractmethod
    def get(self, job_id: str) -> Job | None: ...

    @abstractmethod
    def list(
        self, owner: str, *, limit: int = 20, after: str | None = None, order: Literal["asc", "desc"] = "desc"
    ) -> Page: ...

    @abstractmethod
    def cancel(self, job_id: str) -> Job:
        """Queued -> cancelled at once; in_progress -> cancel_requested (the worker stops at its next step).
        Terminal jobs are returned unchanged. Raises NotFound."""

    @abstractmethod
    def delete(self, job_id: str) -> Job | None:
        """Remove a terminal job's row and events; returns what was deleted (None if missing).
        Raises Conflict for a job that is not terminal (cancel it first)."""

    def set_published(self, job_id: str, published: bool) -> Job:
        """Show a completed job in the gallery (published_at = now; publishing twice keeps the first time), or
        take it out. Raises NotFound, and Conflict when publishing a job that is not completed."""
        raise NotImplementedError

    def list_published(self, *, limit: int = 20, after: str | None = None) -> Page:
        """The gallery: published jobs of every owner, most recently published first; `after` is the last job
        id of the previous page."""
        raise NotImplementedError

    @abstractmethod
    def events(self, job_id: str, after_seq: int = 0, limit: int = 1000) -> builtins.list[JobEvent]: ...

    @abstractmethod
    def queue_position(self, job_id: str) -> int | None:
        """1-based position among queued jobs (None unless queued)."""

    def queued_ids(self, limit: int = 10_000) -> builtins.list[str]:
        """Ids of queued jobs in claim order (the order of `queue_position`), at most `limit`: one query
        from which the API answers the queue position of many polled jobs at once."""
        raise NotImplementedError

    def recent_completed(self, model: str, limit: int = 20) -> builtins.list[Job]:
        """The most recently completed jobs of `model`, newest first: their artifacts carry measured step
        times, from which the API estimates how long queued and running jobs will take. A store that cannot
        tell returns [] (the API then reports no estimate rather than a made-up one)."""
        return []

    # --- workers -------------------------------------------------------------------------------------
    @abstractmethod
    def claim(self, worker_id: str, models: tuple[str, ...] | None = None) -> Claim | None:
        """Take the next runnable job (attempt+1, lease), after requeueing jobs whose lease expired."""

    @abstractmethod
    def heartbeat(self, claim: Claim) -> Progress:
        """Extend the lease. Raises StaleAttempt if the claim is no longer current."""

    @abstractmethod
    def report_progress(self, claim: Claim, step: int, total: int, *, preview: str | None = None) -> Progress:
        """Record step i of n (fenced; also extends the lease). `preview` is a small data URL for event streams."""

    @abstractmethod
    def complete(self, claim: Claim, artifact: Artifact) -> Job:
        """in_progress -> completed with the committed artifact. Raises StaleAttempt (fencing)."""

    @abstractmethod
    def fail(self, claim: Claim, error: JobError, *, retryable: bool) -> Job:
        """Record a failed attempt: requeue with backoff while attempts remain and `retryable`, else failed."""

    @abstractmethod
    def mark_cancelled(self, claim: Claim) -> Job:
        """in_progress -> cancelled after the worker stopped for a cancel request (fenced)."""

    @abstractmethod
    def recover_expired(self) -> int:
        """Requeue (attempt+1 on next claim) or fail in_progress jobs whose lease expired; returns how many."""

    @abstractmethod
    def next_wakeup(self) -> float | None:
        """Seconds until the earliest backoff or lease expiry that could make a job claimable (None if none)."""

    # --- wake-up -------------------------------------------------------------------------------------
    @abstractmethod
    def wait_for_work(self, timeout: float) -> None:
        """Block until a job may have become claimable (a create anywhere) or `timeout` seconds pass."""

    def prepare_wait(self) -> None:  # noqa: B027 - optional
        """Start listening for wake-ups now, so a create between a failed claim and wait_for_work is not missed."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections and wake-up resources."""
