"""JobStore: the durable queue. Two implementations (SQLite, Postgres) share `sql_store.SqlJobStore`.

Every write a worker makes is fenced on (job id, attempt, status in_progress): a worker whose lease expired and
whose job was handed to someone else gets StaleAttempt and must throw its work away.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from reelgen.domain.errors import QuotaExceeded
from reelgen.domain.jobs import Artifact, Claim, Job, JobError, JobEvent
from reelgen.domain.params import GenerationParams
from reelgen.domain.quotas import KEEP, LedgerEntry, Period, QueueStatus, UserLimits, UserUsage, WorkerInfo
from reelgen.domain.review import AuditEntry, ReviewState
from reelgen.jobs.scheduling import FairPolicy

if TYPE_CHECKING:
    from reelgen.jobs.accounts import AccountStore


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
    # The prompt check flagged it: enqueue it held for review (not claimable until a moderator releases it).
    hold_reason: str | None = None
    # Estimated GPU-seconds (the API computes it from the model's measured step time): charged against the
    # owner's budget atomically with the enqueue, and the scheduler's fair-share charge when claimed.
    gpu_seconds: float | None = None


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
    # Who runs next (tiers, fair share, affinity): reelgen.jobs.scheduling; runtime sets it from Settings.
    fair: FairPolicy = FairPolicy()

    @property
    def accounts(self) -> AccountStore:
        """Users, API keys and studio sessions, in the same database (reelgen.jobs.accounts)."""
        raise NotImplementedError

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
        self,
        owner: str | None,
        *,
        limit: int = 20,
        after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> Page:
        """One page of `owner`'s jobs by creation time (owner None: every owner's, for moderators)."""

    @abstractmethod
    def cancel(self, job_id: str) -> Job:
        """Queued -> cancelled at once; in_progress -> cancel_requested (the worker stops at its next step).
        Terminal jobs are returned unchanged. Raises NotFound."""

    @abstractmethod
    def delete(self, job_id: str) -> Job | None:
        """Remove a terminal job's row and events; returns what was deleted (None if missing).
        Raises Conflict for a job that is not terminal (cancel it first)."""

    # --- publishing and moderation (states and transitions: reelgen/domain/review.py) --------------------
    def set_review(
        self,
        job_id: str,
        new: ReviewState,
        *,
        actor: str,
        expect: Collection[ReviewState] | None = None,
        reason: str | None = None,
    ) -> Job:
        """Move a job's review state to `new` (a compare-and-set on the state it is in) and write the audit log
        in the same transaction. `expect`: the states the caller checked its permission against; any other
        current state is a Conflict, as is a transition the state machine does not allow. Approving sets
        published_at (the only way into the gallery); rejecting a held job that never ran cancels it.
        Raises NotFound, Conflict."""
        raise NotImplementedError

    def list_reviews(self, state: ReviewState, *, limit: int = 20, after: str | None = None) -> Page:
        """Jobs waiting for a moderator (`pending`: the review queue; `held`: flagged by a moderation hook),
        oldest submission first; `after` is the last job id of the previous page."""
        raise NotImplementedError

    def list_published(self, *, limit: int = 20, after: str | None = None) -> Page:
        """The gallery: approved jobs of every owner, most recently published first; `after` is the last job
        id of the previous page."""
        raise NotImplementedError

    def audit_log(
        self, *, limit: int = 50, before: int | None = None, target: str | None = None, actor: str | None = None
    ) -> builtins.list[AuditEntry]:
        """The audit log newest first (entries with seq < `before`), optionally for one target or actor."""
        raise NotImplementedError

    @abstractmethod
    def events(self, job_id: str, after_seq: int = 0, limit: int = 1000) -> builtins.list[JobEvent]: ...

    @abstractmethod
    def queue_position(self, job_id: str) -> int | None:
        """1-based position among queued jobs (None unless queued)."""

    def queue_positions(self, job_ids: Sequence[str]) -> dict[str, int]:
        """Positions of jobs that joined the line together, in creation order (the API's group commit)."""
        found = {job_id: self.queue_position(job_id) for job_id in job_ids}
        return {job_id: p for job_id, p in found.items() if p is not None}

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
    def claim(
        self, worker_id: str, models: tuple[str, ...] | None = None, *, loaded_model: str | None = None
    ) -> Claim | None:
        """Take the next runnable job (attempt+1, lease), after requeueing jobs whose lease expired, in the order
        of reelgen.jobs.scheduling (tiers, fair share, then affinity for `loaded_model`, the model the worker
        has resident). None while the queue is paused. Raises WorkerDrained when an operator drained the worker."""

    @abstractmethod
    def heartbeat(self, claim: Claim) -> Progress:
        """Extend the lease. Raises StaleAttempt if the claim is no longer current."""

    @abstractmethod
    def report_progress(self, claim: Claim, step: int, total: int, *, preview: str | None = None) -> Progress:
        """Record step i of n (fenced; also extends the lease). `preview` is a small data URL for event streams."""

    @abstractmethod
    def complete(self, claim: Claim, artifact: Artifact, *, hold_reason: str | None = None) -> Job:
        """in_progress -> completed with the committed artifact. Raises StaleAttempt (fencing).
        `hold_reason`: the frame check flagged it; it completes held for review in the same transaction."""

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

    # --- quotas and operator controls (SQL stores: reelgen/jobs/quota_store.py) ------------------------
    def create_each(self, new_jobs: Sequence[NewJob]) -> builtins.list[tuple[Job, bool] | QuotaExceeded]:
        """`create_many`, except that a job over its owner's quota gets its QuotaExceeded in its place while the
        others are created (the API's group commit: one user's 429 must not fail the others' creates)."""
        out: builtins.list[tuple[Job, bool] | QuotaExceeded] = []
        for new in new_jobs:
            try:
                out.extend(self.create_many([new]))
            except QuotaExceeded as e:
                out.append(e)
        return out

    def user_limits(self, user_id: str) -> UserLimits:
        raise NotImplementedError

    def set_user_limits(
        self,
        user_id: str,
        *,
        gpu_seconds: float | None = KEEP,
        period: Period = KEEP,
        max_concurrent: int | None = KEEP,
        max_queued: int | None = KEEP,
        priority: int = KEEP,
        actor: str = "system",
    ) -> UserLimits:
        """Change some of a user's limits (arguments left out keep their value; None removes a limit)."""
        raise NotImplementedError

    def user_usage(self, user_id: str) -> UserUsage:
        raise NotImplementedError

    def ledger(self, user_id: str, limit: int = 100) -> builtins.list[LedgerEntry]:
        raise NotImplementedError

    def pause_queue(self, actor: str = "system") -> None:
        raise NotImplementedError

    def resume_queue(self, actor: str = "system") -> None:
        raise NotImplementedError

    def set_maintenance(self, on: bool, actor: str = "system") -> None:
        raise NotImplementedError

    def maintenance(self) -> bool:
        return False

    def queue_status(self) -> QueueStatus:
        raise NotImplementedError

    def workers(self) -> builtins.list[WorkerInfo]:
        raise NotImplementedError

    def drain_worker(self, worker_id: str, actor: str = "system") -> WorkerInfo:
        raise NotImplementedError

    # --- wake-up -------------------------------------------------------------------------------------
    @abstractmethod
    def wait_for_work(self, timeout: float) -> None:
        """Block until a job may have become claimable (a create anywhere) or `timeout` seconds pass."""

    def prepare_wait(self) -> None:  # noqa: B027 - optional
        """Start listening for wake-ups now, so a create between a failed claim and wait_for_work is not missed."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections and wake-up resources."""
