"""Shared logic of the SQLite and Postgres job stores; dialects differ only in connections, claiming and wake-up."""

from __future__ import annotations

import builtins
import json
import secrets
import time
from abc import abstractmethod
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal, Protocol

from reelgen.domain.errors import Conflict, NotFound, QuotaExceeded, StaleAttempt
from reelgen.domain.jobs import Artifact, Claim, Job, JobError, JobEvent, JobStatus
from reelgen.domain.params import GenerationParams
from reelgen.domain.review import AUDIT_ACTIONS, AuditEntry, Review, ReviewState
from reelgen.domain.review import TRANSITIONS as REVIEW_TRANSITIONS
from reelgen.jobs import queries as q
from reelgen.jobs import quota_queries as qq
from reelgen.jobs.quota_store import QuotaStoreMixin, WorkerDrained, actual_gpu_seconds
from reelgen.jobs.store import JobStore, NewJob, Page, Progress, QueuePolicy

if TYPE_CHECKING:
    from reelgen.jobs.accounts import AccountStore

# Share of the progress bar given to denoising; the rest is decoding, encoding and storing.
DENOISE_SHARE = 95


class Tx(Protocol):
    """One open transaction. Rows come back as dicts keyed by column name."""

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None: ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> int: ...


def new_job_id() -> str:
    # Time-ordered prefix keeps ids roughly sortable like OpenAI's; the random tail makes them unguessable.
    return f"video_{int(time.time() * 1000):012x}{secrets.token_hex(10)}"


def row_to_job(row: dict[str, Any]) -> Job:
    error = JobError(row["error_code"], row["error_message"] or "") if row["error_code"] else None
    artifact = Artifact.from_dict(json.loads(row["artifact"])) if row["artifact"] else None
    return Job(
        id=row["id"],
        owner=row["owner"],
        status=JobStatus(row["status"]),
        params=GenerationParams.from_dict(json.loads(row["params"])),
        created_at=row["created_at"],
        progress=row["progress"],
        step=row["step"],
        total_steps=row["total_steps"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        lease_expires_at=row["lease_expires_at"],
        not_before=row["not_before"],
        worker_id=row["worker_id"],
        cancel_requested=bool(row["cancel_requested"]),
        error=error,
        artifact=artifact,
        idempotency_key=row["idempotency_key"],
        remixed_from=row["remixed_from"],
        published_at=row["published_at"],
        review=Review(
            state=ReviewState(row["review_state"]),
            reason=row["review_reason"],
            reviewed_by=row["reviewed_by"],
            reviewed_at=row["reviewed_at"],
            submitted_at=row["submitted_at"],
        ),
    )


class SqlJobStore(QuotaStoreMixin, JobStore):
    def __init__(self, policy: QueuePolicy) -> None:
        self.policy = policy
        self._accounts: AccountStore | None = None

    @property
    def accounts(self) -> AccountStore:
        if self._accounts is None:
            from reelgen.jobs.accounts import AccountStore

            self._accounts = AccountStore(self)
        return self._accounts

    # --- dialect hooks -------------------------------------------------------------------------------
    @abstractmethod
    def _tx(self, *, write: bool = True) -> AbstractContextManager[Tx]:
        """A transaction; `write` ones take the write lock up front (SQLite BEGIN IMMEDIATE)."""

    @abstractmethod
    def _notify(self, tx: Tx) -> None:
        """Wake idle workers (called inside the create transaction, delivered on commit where possible)."""

    def _now(self, tx: Tx) -> float:
        """Current time for leases and timestamps (Postgres overrides it with the database clock)."""
        return time.time()

    # --- clients -------------------------------------------------------------------------------------
    def create(
        self,
        owner: str,
        params: GenerationParams,
        *,
        idempotency_key: str | None = None,
        remixed_from: str | None = None,
        priority: int = 0,
    ) -> tuple[Job, bool]:
        return self.create_many([NewJob(owner, params, idempotency_key, remixed_from, priority)])[0]

    def create_many(self, new_jobs: Sequence[NewJob]) -> list[tuple[Job, bool]]:
        if not new_jobs:
            return []
        results: list[tuple[Job, bool]] = []
        with self._tx() as tx:
            created_any = False
            for new in new_jobs:
                # A fresh timestamp per job keeps FIFO claim order and listing order within one batch.
                row, created = self._insert_job(tx, new, self._now(tx))
                results.append((row_to_job(row), created))
                created_any = created_any or created
            if created_any:
                self._notify(tx)
        return results

    def create_each(self, new_jobs: Sequence[NewJob]) -> list[tuple[Job, bool] | QuotaExceeded]:
        """`create_many` where a job over its owner's quota gets its QuotaExceeded in its place instead of
        failing the whole transaction (the API's group commit: one user's 429 must not fail the others)."""
        if not new_jobs:
            return []
        results: list[tuple[Job, bool] | QuotaExceeded] = []
        with self._tx() as tx:
            created_any = False
            for new in new_jobs:
                try:
                    # Quota checks write nothing before they pass, so a refusal leaves the transaction clean.
                    row, created = self._insert_job(tx, new, self._now(tx))
                except QuotaExceeded as e:
                    results.append(e)
                    continue
                results.append((row_to_job(row), created))
                created_any = created_any or created
            if created_any:
                self._notify(tx)
        return results

    def _insert_job(self, tx: Tx, new: NewJob, now: float) -> tuple[dict[str, Any], bool]:
        """One create inside `tx`: (row, created). An existing (owner, idempotency key) returns that job.
        Raises QuotaExceeded (before writing anything but the owner's fair-share row) over a cap or budget."""
        share = self._lock_owner(tx, new.owner, now)  # serialises this owner's creates (quota race)
        if new.idempotency_key is not None:
            existing = tx.one(q.SELECT_BY_IDEMPOTENCY, (new.owner, new.idempotency_key))
            if existing:
                return existing, False  # a replay is not charged again
        admission = self._admit(tx, new, now, share)
        job_id = new_job_id()
        inserted = tx.run(
            q.INSERT_JOB,
            (
                job_id,
                new.owner,
                new.params.model,
                json.dumps(new.params.to_dict()),
                self.policy.max_attempts,
                admission.priority,
                now,
                new.idempotency_key,
                new.remixed_from,
            ),
        )
        if not inserted:  # lost a race with a concurrent create using the same key
            existing = tx.one(q.SELECT_BY_IDEMPOTENCY, (new.owner, new.idempotency_key))
            assert existing is not None
            return existing, False
        self._charge(tx, job_id, new.owner, admission, now)
        self._event(tx, job_id, "status", {"status": "queued"}, now)
        if new.hold_reason is not None:  # the prompt check flagged it: queued, but not claimable while held
            self._apply_review(
                tx, job_id, new.owner, ReviewState.NONE, ReviewState.HELD, "hook:prompt", new.hold_reason, now
            )
        row = tx.one(q.SELECT_JOB, (job_id,))
        assert row is not None
        return row, True

    def get(self, job_id: str) -> Job | None:
        with self._tx(write=False) as tx:
            row = tx.one(q.SELECT_JOB, (job_id,))
        return row_to_job(row) if row else None

    def list(
        self,
        owner: str | None,
        *,
        limit: int = 20,
        after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> Page:
        with self._tx(write=False) as tx:
            if owner is None:
                sql = q.LIST_ALL_ASC if order == "asc" else q.LIST_ALL_DESC
                rows = tx.all(sql, (after, after, limit + 1))
            else:
                sql = q.LIST_ASC if order == "asc" else q.LIST_DESC
                rows = tx.all(sql, (owner, after, after, limit + 1))
        jobs = [row_to_job(r) for r in rows[:limit]]
        return Page(jobs=jobs, has_more=len(rows) > limit)

    def set_review(
        self,
        job_id: str,
        new: ReviewState,
        *,
        actor: str,
        expect: Collection[ReviewState] | None = None,
        reason: str | None = None,
    ) -> Job:
        with self._tx() as tx:
            row = tx.one(q.SELECT_JOB, (job_id,))
            if row is None:
                raise NotFound(f"no video with id {job_id!r}", param="video_id")
            old = ReviewState(row["review_state"])
            if (expect is not None and old not in expect) or new not in REVIEW_TRANSITIONS[old]:
                raise Conflict(f"video {job_id} is {old.value} (review); it cannot become {new.value}")
            if new is ReviewState.PENDING and row["status"] != JobStatus.COMPLETED.value:
                raise Conflict(
                    f"video {job_id} is {row['status']}; only completed videos can be submitted for publication"
                )
            if not self._apply_review(tx, job_id, row["owner"], old, new, actor, reason, self._now(tx)):
                raise Conflict(f"video {job_id} changed meanwhile; it cannot become {new.value}")
            row = tx.one(q.SELECT_JOB, (job_id,))
        assert row is not None
        return row_to_job(row)

    def list_reviews(self, state: ReviewState, *, limit: int = 20, after: str | None = None) -> Page:
        with self._tx(write=False) as tx:
            rows = tx.all(q.LIST_REVIEWS, (state.value, after, after, limit + 1))
        return Page(jobs=[row_to_job(r) for r in rows[:limit]], has_more=len(rows) > limit)

    def audit_log(
        self, *, limit: int = 50, before: int | None = None, target: str | None = None, actor: str | None = None
    ) -> builtins.list[AuditEntry]:
        with self._tx(write=False) as tx:
            rows = tx.all(
                q.SELECT_AUDIT, (before if before is not None else 2**62, target, target, actor, actor, limit)
            )
        return [
            AuditEntry(
                seq=r["seq"],
                actor=r["actor"],
                action=r["action"],
                target=r["target"],
                data=json.loads(r["data"]),
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def list_published(self, *, limit: int = 20, after: str | None = None) -> Page:
        with self._tx(write=False) as tx:
            rows = tx.all(q.LIST_PUBLISHED, (after, after, limit + 1))
        return Page(jobs=[row_to_job(r) for r in rows[:limit]], has_more=len(rows) > limit)

    def cancel(self, job_id: str) -> Job:
        with self._tx() as tx:
            now = self._now(tx)
            if tx.run(q.CANCEL_QUEUED, (now, job_id)):
                self._settle(tx, job_id, "cancelled_queued", actual=0.0, ran=False, now=now)
                self._event(tx, job_id, "status", {"status": "cancelled"}, now)
            elif tx.run(q.REQUEST_CANCEL, (job_id,)):
                self._event(tx, job_id, "cancel_requested", {}, now)
            row = tx.one(q.SELECT_JOB, (job_id,))
        if row is None:
            raise NotFound(f"no video with id {job_id!r}", param="video_id")
        return row_to_job(row)

    def delete(self, job_id: str) -> Job | None:
        with self._tx() as tx:
            row = tx.one(q.SELECT_JOB, (job_id,))
            if row is None:
                return None
            if not JobStatus(row["status"]).terminal:
                raise Conflict(f"video {job_id} is {row['status']}; cancel it before deleting")
            tx.run(q.DELETE_JOB, (job_id,))
            tx.run(q.DELETE_EVENTS, (job_id,))
        return row_to_job(row)

    def events(self, job_id: str, after_seq: int = 0, limit: int = 1000) -> builtins.list[JobEvent]:
        with self._tx(write=False) as tx:
            rows = tx.all(q.SELECT_EVENTS, (job_id, after_seq, limit))
        return [
            JobEvent(
                seq=r["seq"],
                job_id=r["job_id"],
                kind=r["kind"],
                data=json.loads(r["data"]),
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def queue_position(self, job_id: str) -> int | None:
        with self._tx(write=False) as tx:
            if self._several_owners_queued(tx):  # fair-share order (reelgen.jobs.scheduling)
                order = self._claim_order(tx, self._now(tx), 1_000_000, until=job_id)
                return len(order) if order and order[-1] == job_id else None
            row = tx.one(q.QUEUE_POSITION, (job_id,))
        ahead = int(row["ahead"]) if row else 0
        return ahead or None

    def queue_positions(self, job_ids: Sequence[str]) -> dict[str, int]:
        if not job_ids:
            return {}
        with self._tx(write=False) as tx:
            if self._several_owners_queued(tx):  # fair share interleaves owners: one pass over the claim order
                wanted = set(job_ids)
                order = self._claim_order(tx, self._now(tx), 1_000_000)
                return {job_id: n for n, job_id in enumerate(order, start=1) if job_id in wanted}
            row = tx.one(q.QUEUE_POSITION, (job_ids[0],))
        # One owner in line: plain priority-then-FIFO, and a batch joins its end together and in order, so one
        # indexed count places them all.
        first = int(row["ahead"]) if row else 0
        return {job_id: first + k for k, job_id in enumerate(job_ids)} if first else {}

    def queued_ids(self, limit: int = 10_000) -> builtins.list[str]:
        with self._tx(write=False) as tx:
            if self._several_owners_queued(tx):
                return self._claim_order(tx, self._now(tx), limit)
            rows = tx.all(q.QUEUED_IDS, (limit,))
        return [r["id"] for r in rows]

    def _several_owners_queued(self, tx: Tx) -> bool:
        """With one owner in line the fair order is plain priority-then-FIFO: answered by the indexed SQL."""
        row = tx.one(qq.QUEUED_OWNER_RANGE)
        return bool(row and row["lo"] is not None and row["lo"] != row["hi"])

    def recent_completed(self, model: str, limit: int = 20) -> builtins.list[Job]:
        with self._tx(write=False) as tx:
            rows = tx.all(q.RECENT_COMPLETED, (model, limit))
        return [row_to_job(r) for r in rows]

    # --- workers -------------------------------------------------------------------------------------
    def claim(
        self, worker_id: str, models: tuple[str, ...] | None = None, *, loaded_model: str | None = None
    ) -> Claim | None:
        with self._tx() as tx:
            now = self._now(tx)
            if self._check_in(tx, worker_id, loaded_model, now):
                drained = True  # committed as drained below; the worker is told after the commit
            else:
                drained = False
                self._recover_expired(tx, now)
                fragment, model_params = models_filter(models, "?")
                row = self._fair_claim(tx, worker_id, fragment, model_params, loaded_model, now)
                if row is not None:
                    job = row_to_job(row)
                    self._event(tx, job.id, "status", {"status": "in_progress", "attempt": job.attempt}, now)
        if drained:
            raise WorkerDrained(f"worker {worker_id} was asked to drain")
        if row is None:
            return None
        assert job.lease_expires_at is not None
        return Claim(job=job, attempt=job.attempt, worker_id=worker_id, lease_expires_at=job.lease_expires_at)

    def heartbeat(self, claim: Claim) -> Progress:
        with self._tx() as tx:
            row = tx.one(q.HEARTBEAT, (self._now(tx) + self.policy.lease_seconds, claim.job_id, claim.attempt))
        if row is None:
            raise StaleAttempt(f"attempt {claim.attempt} of {claim.job_id} is no longer current")
        return Progress(cancel_requested=bool(row["cancel_requested"]))

    def report_progress(self, claim: Claim, step: int, total: int, *, preview: str | None = None) -> Progress:
        percent = min(DENOISE_SHARE, int(DENOISE_SHARE * step / total)) if total else 0
        with self._tx() as tx:
            now = self._now(tx)
            row = tx.one(
                q.PROGRESS,
                (percent, step, total, now + self.policy.lease_seconds, claim.job_id, claim.attempt),
            )
            if row is None:
                raise StaleAttempt(f"attempt {claim.attempt} of {claim.job_id} is no longer current")
            data: dict[str, Any] = {"progress": percent, "step": step, "total_steps": total}
            if preview:
                data["preview"] = preview
            self._event(tx, claim.job_id, "progress", data, now)
        return Progress(cancel_requested=bool(row["cancel_requested"]))

    def complete(self, claim: Claim, artifact: Artifact, *, hold_reason: str | None = None) -> Job:
        with self._tx() as tx:
            now = self._now(tx)
            row = tx.one(q.COMPLETE, (now, json.dumps(artifact.to_dict()), claim.job_id, claim.attempt))
            if row is None:
                raise StaleAttempt(f"attempt {claim.attempt} of {claim.job_id} is no longer current")
            used = actual_gpu_seconds(artifact, claim.job.params.n, row["started_at"], now)
            self._settle(tx, claim.job_id, "completed", actual=used, ran=True, now=now)
            if hold_reason is not None and row["review_state"] == ReviewState.NONE.value:
                # The frame check flagged it: it completes held (its content withheld from the owner).
                self._apply_review(
                    tx, claim.job_id, row["owner"], ReviewState.NONE, ReviewState.HELD, "hook:frames", hold_reason, now
                )
                row = tx.one(q.SELECT_JOB, (claim.job_id,))
                assert row is not None
            self._event(tx, claim.job_id, "status", {"status": "completed", "attempt": claim.attempt}, now)
        return row_to_job(row)

    def fail(self, claim: Claim, error: JobError, *, retryable: bool) -> Job:
        with self._tx() as tx:
            now = self._now(tx)
            if retryable and claim.attempt < claim.job.max_attempts:
                not_before = now + self.policy.backoff(claim.attempt)
                row = tx.one(q.RETRY, (not_before, error.code, error.message, claim.job_id, claim.attempt))
                data = {
                    "status": "queued",
                    "attempt": claim.attempt,
                    "retry_at": not_before,
                    "error": error.message,
                }
            else:
                message = error.message
                if retryable:
                    message = f"failed after {claim.attempt} attempts: {error.message}"
                row = tx.one(q.FAIL, (now, error.code, message, claim.job_id, claim.attempt))
                data = {"status": "failed", "attempt": claim.attempt, "error": message}
            if row is None:
                raise StaleAttempt(f"attempt {claim.attempt} of {claim.job_id} is no longer current")
            used = actual_gpu_seconds(None, 1, claim.job.started_at, now)
            self._settle(
                tx, claim.job_id, "retry" if data["status"] == "queued" else "failed", actual=used, ran=True, now=now
            )
            self._event(tx, claim.job_id, "status", data, now)
            if data["status"] == "queued":
                self._notify(tx)
        return row_to_job(row)

    def mark_cancelled(self, claim: Claim) -> Job:
        with self._tx() as tx:
            now = self._now(tx)
            row = tx.one(q.MARK_CANCELLED, (now, claim.job_id, claim.attempt))
            if row is None:
                raise StaleAttempt(f"attempt {claim.attempt} of {claim.job_id} is no longer current")
            used = actual_gpu_seconds(None, 1, row["started_at"], now)
            self._settle(tx, claim.job_id, "cancelled_running", actual=used, ran=True, now=now)
            self._event(tx, claim.job_id, "status", {"status": "cancelled"}, now)
        return row_to_job(row)

    def recover_expired(self) -> int:
        with self._tx() as tx:
            return self._recover_expired(tx, self._now(tx))

    def next_wakeup(self) -> float | None:
        with self._tx(write=False) as tx:
            row = tx.one(q.NEXT_WAKEUP)
            now = self._now(tx)
        if not row or row["t"] is None:
            return None
        return max(0.0, float(row["t"]) - now)

    # --- internals -----------------------------------------------------------------------------------
    def _recover_expired(self, tx: Tx, now: float) -> int:
        count = 0
        for r in tx.all(q.SELECT_EXPIRED, (now,)):
            job_id, attempt = r["id"], r["attempt"]
            if attempt < r["max_attempts"]:
                retry_at = now + self.policy.backoff(attempt)
                if tx.run(q.REQUEUE_EXPIRED, (retry_at, job_id, attempt)):
                    self._event(
                        tx,
                        job_id,
                        "status",
                        {
                            "status": "queued",
                            "attempt": attempt,
                            "reason": "worker_lost",
                            "retry_at": retry_at,
                        },
                        now,
                    )
                    count += 1
            else:
                message = (
                    f"the worker running this job stopped responding {attempt} times "
                    f"(lease {self.policy.lease_seconds:g}s); giving up"
                )
                if tx.run(q.FAIL_EXPIRED, (now, message, job_id, attempt)):
                    self._settle(tx, job_id, "failed", actual=0.0, ran=False, now=now)
                    self._event(tx, job_id, "status", {"status": "failed", "error": message}, now)
                    count += 1
        return count

    def _apply_review(
        self,
        tx: Tx,
        job_id: str,
        owner: str,
        old: ReviewState,
        new: ReviewState,
        actor: str,
        reason: str | None,
        now: float,
    ) -> bool:
        """Run the compare-and-set for old -> new (queries.py names the state each one expects), log a `review`
        event for the owner's stream and an audit record; False when the row was not in `old` any more."""
        S = ReviewState
        if new is S.PENDING:
            changed = tx.run(q.SUBMIT, (now, job_id))
        elif new is S.APPROVED:
            changed = tx.run(q.APPROVE, (now, actor, now, job_id))
        elif new is S.REJECTED:
            changed = tx.run(q.TAKE_DOWN if old is S.APPROVED else q.REJECT, (reason, actor, now, job_id))
        elif new is S.NONE and old is S.HELD:
            changed = tx.run(q.RELEASE, (actor, now, job_id))
            if changed:
                self._notify(tx)  # a held job that never ran becomes claimable
        elif new is S.NONE:
            changed = tx.run(q.WITHDRAW, (job_id,))
        elif new is S.HELD:
            changed = tx.run(q.HOLD, (reason, actor, now, now, job_id))
        else:
            changed = tx.run(q.BLOCK, (reason, actor, now, job_id))
            if changed and tx.run(q.CANCEL_BLOCKED, (now, reason, job_id)):
                # It never ran: refunded like any job cancelled while queued.
                self._settle(tx, job_id, "cancelled_queued", actual=0.0, ran=False, now=now)
                self._event(tx, job_id, "status", {"status": "cancelled", "reason": reason}, now)
        if not changed:
            return False
        data: dict[str, Any] = {"review_state": new.value}
        if reason is not None:
            data["reason"] = reason
        self._event(tx, job_id, "review", data, now)
        self._audit(
            tx,
            actor,
            AUDIT_ACTIONS[(old, new)],
            job_id,
            {"owner": owner, "from": old.value, "to": new.value, **data},
            now,
        )
        return True

    def _event(self, tx: Tx, job_id: str, kind: str, data: dict[str, Any], now: float) -> None:
        tx.run(q.INSERT_EVENT, (job_id, kind, json.dumps(data), now))

    def _audit(self, tx: Tx, actor: str, action: str, target: str | None, data: dict[str, Any], now: float) -> None:
        """Record a decision (review, role or key change, operator control) inside the transaction making it."""
        tx.run(q.INSERT_AUDIT, (actor, action, target, json.dumps(data), now))


def models_filter(models: tuple[str, ...] | None, placeholder: str) -> tuple[str, list[str]]:
    """SQL fragment and parameters restricting a claim to some models."""
    if not models:
        return "", []
    return f"AND model IN ({', '.join(placeholder for _ in models)})", list(models)
