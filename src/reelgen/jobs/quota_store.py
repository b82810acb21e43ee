"""Quotas, fair-share claims and operator controls for the SQL job stores (mixed into SqlJobStore).

Charging is atomic with the enqueue: inside the create transaction the owner's fair_share row is locked
(Postgres: SELECT ... FOR UPDATE; SQLite: the transaction is BEGIN IMMEDIATE), the caps and the budget are
checked against what the same transaction sees, and the estimate is written to the ledger with the job. So N
parallel creates with budget left for one admit exactly one, whichever store.

The claim follows reelgen.jobs.scheduling: it lists the owners in line (an index skip scan), reads their
fair-share rows and the head of each owner's line (one index seek each, never the whole queue), ranks them in
Python (decay needs pow(), which SQLite lacks), then claims the chosen head with the usual compare-and-set.
Usage is stored as (value, as of) per owner and decayed when read, so nothing needs rewriting as time passes.
"""

from __future__ import annotations

import builtins
import heapq
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from reelgen.domain.errors import InvalidParams, NotFound, QuotaExceeded, ReelgenError
from reelgen.domain.jobs import Artifact
from reelgen.domain.quotas import (
    KEEP,
    PERIODS,
    LedgerEntry,
    OwnerLine,
    Period,
    QueueStatus,
    UserLimits,
    UserUsage,
    WorkerInfo,
    period_bounds,
)
from reelgen.jobs import queries as q
from reelgen.jobs import quota_queries as qq
from reelgen.jobs.scheduling import FairPolicy, Owner, decayed

if TYPE_CHECKING:
    from reelgen.jobs.sql_store import Tx
    from reelgen.jobs.store import NewJob, QueuePolicy


class WorkerDrained(ReelgenError):
    """Raised by `claim` to a worker an operator asked to drain: it has finished its job and must exit."""

    code = "worker_drained"


@dataclass(frozen=True, slots=True)
class Admission:
    priority: int
    period_start: float
    estimate: float


def actual_gpu_seconds(artifact: Artifact | None, n: int, started_at: float | None, now: float) -> float:
    """Measured GPU time of a finished job: denoise + decode seconds the engine timed, per variation times the
    number of variations; without those stats, the wall time since the claim."""
    stats = (artifact.extra.get("stats") or {}) if artifact is not None else {}
    denoise, decode = stats.get("denoise_seconds"), stats.get("decode_seconds")
    if isinstance(denoise, int | float):
        per = float(denoise) + (float(decode) if isinstance(decode, int | float) else 0.0)
        return max(per * max(n, 1), 0.0)
    return max(now - started_at, 0.0) if started_at is not None else 0.0


def _limits(row: dict[str, Any] | None, user_id: str) -> UserLimits:
    if row is None:
        return UserLimits(user_id=user_id)
    return UserLimits(
        user_id=user_id,
        gpu_seconds=None if row["gpu_seconds"] is None else float(row["gpu_seconds"]),
        period=row["period"],
        max_concurrent=row["max_concurrent"],
        max_queued=row["max_queued"],
        priority=int(row["priority"]),
    )


def _fmt(seconds: float) -> str:
    return f"{seconds:,.1f}"


class QuotaStoreMixin:
    fair: FairPolicy = FairPolicy()
    # Appended to the fair_share lock (Postgres: " FOR UPDATE").
    _for_update: str = ""

    if TYPE_CHECKING:
        policy: QueuePolicy

        def _tx(self, *, write: bool = True) -> AbstractContextManager[Tx]: ...

        def _now(self, tx: Tx) -> float: ...

        def _notify(self, tx: Tx) -> None: ...

        def _audit(
            self, tx: Tx, actor: str, action: str, target: str | None, data: dict[str, Any], now: float
        ) -> None: ...

    def _lock_scheduler(self, tx: Tx) -> None:
        """Serialise claims (SQLite's BEGIN IMMEDIATE already does)."""

    # --- enqueue: admission and charge -------------------------------------------------------------------
    def _lock_owner(self, tx: Tx, owner: str, now: float) -> dict[str, Any]:
        tx.run(qq.ENSURE_FAIR_SHARE, (owner, now))
        row = tx.one(qq.LOCK_FAIR_SHARE.format(for_update=self._for_update), (owner,))
        assert row is not None
        return row

    def _admit(self, tx: Tx, new: NewJob, now: float, share: dict[str, Any]) -> Admission:
        """Check the owner's caps and budget for one more job (raises QuotaExceeded); rejoin above the floor."""
        estimate = float(new.gpu_seconds) if new.gpu_seconds is not None else self.fair.default_job_seconds
        limits = _limits(tx.one(qq.SELECT_LIMITS, (new.owner,)), new.owner)
        start, end = period_bounds(limits.period, now)
        if limits.max_queued is not None:
            # Counted up to the cap only: a create stays cheap however long the owner's line is.
            row = tx.one(qq.COUNT_QUEUED_UP_TO, (new.owner, limits.max_queued))
            queued = int(row["n"]) if row else 0
            if queued >= limits.max_queued:
                raise QuotaExceeded(
                    f"queue-depth cap reached: user {new.owner} already has {queued} videos waiting "
                    f"(the cap is {limits.max_queued}); retry when one of them has started",
                    retry_after=max(estimate, 1.0),
                )
        if limits.gpu_seconds is not None:
            row = tx.one(qq.SUM_CHARGED, (new.owner, start))
            charged = float(row["charged"]) if row else 0.0
            if charged + estimate > limits.gpu_seconds + 1e-9:
                period = "today (UTC)" if limits.period == "day" else "this month (UTC)"
                raise QuotaExceeded(
                    f"GPU-time budget exceeded: user {new.owner} has used {_fmt(charged)} of "
                    f"{_fmt(limits.gpu_seconds)} GPU-seconds {period} and this video needs about "
                    f"{_fmt(estimate)}; the budget resets in {int(end - now)} s",
                    retry_after=max(end - now, 1.0),
                )
        if tx.one(qq.HAS_UNFINISHED, (new.owner,)) is None:
            # Rejoining after an empty line: no less than the scheduler's floor (scheduling rule 3).
            own = decayed(float(share["usage"]), float(share["usage_at"]), now, self.fair.half_life_seconds)
            clock = tx.one(qq.SELECT_FAIR_CLOCK)
            floor = (
                decayed(float(clock["floor"]), float(clock["floor_at"]), now, self.fair.half_life_seconds)
                if clock
                else 0.0
            )
            if floor > own:
                tx.run(qq.SET_USAGE, (floor, now, new.owner))
        return Admission(priority=max(new.priority, limits.priority), period_start=start, estimate=estimate)

    def _charge(self, tx: Tx, job_id: str, owner: str, admission: Admission, now: float) -> None:
        tx.run(
            qq.INSERT_LEDGER,
            (job_id, owner, admission.period_start, admission.estimate, admission.estimate, now),
        )

    # --- settlement ------------------------------------------------------------------------------------
    def _settle(
        self,
        tx: Tx,
        job_id: str,
        outcome: Literal["completed", "failed", "cancelled_queued", "cancelled_running", "retry"],
        *,
        actual: float,
        ran: bool,
        now: float,
    ) -> None:
        """Reconcile a job's charge (see the policy in reelgen.domain.quotas) and correct its owner's
        fair-share usage from the estimate added at claim to the time it really used."""
        row = tx.one(qq.SELECT_LEDGER, (job_id,))
        if row is None:
            return
        estimate = float(row["estimated"])
        if outcome != "retry" and row["state"] == "reserved":
            if outcome in ("completed", "cancelled_running"):
                tx.run(qq.SETTLE_LEDGER, (actual, actual, "settled", now, job_id))
            else:
                tx.run(qq.SETTLE_LEDGER, (actual if ran else 0.0, 0.0, "refunded", now, job_id))
        if ran:
            self._add_usage(tx, row["user_id"], actual - estimate, now)

    def _add_usage(self, tx: Tx, owner: str, delta: float, now: float, *, claimed: bool = False) -> float:
        share = tx.one(qq.LOCK_FAIR_SHARE.format(for_update=""), (owner,))
        if share is None:
            tx.run(qq.ENSURE_FAIR_SHARE, (owner, now))
            before = 0.0
        else:
            before = decayed(float(share["usage"]), float(share["usage_at"]), now, self.fair.half_life_seconds)
        after = max(before + delta, 0.0)
        if claimed:
            tx.run(qq.SET_USAGE_CLAIMED, (after, now, now, owner))
        else:
            tx.run(qq.SET_USAGE, (after, now, owner))
        return before

    # --- claim ---------------------------------------------------------------------------------------------
    def _controls(self, tx: Tx) -> dict[str, str]:
        return {r["name"]: r["value"] for r in tx.all(qq.SELECT_CONTROLS)}

    def _check_in(self, tx: Tx, worker_id: str, loaded_model: str | None, now: float) -> bool:
        """Register the worker's visit; True (and the worker is now 'drained') if an operator asked it to drain."""
        tx.run(qq.WORKER_CHECK_IN, (worker_id, loaded_model, now, now))
        if tx.run(qq.WORKER_DRAINED, (worker_id,)):
            self._audit(tx, "system", "worker.drained", worker_id, {}, now)
            return True
        return False

    def _waiting_owners(self, tx: Tx, now: float) -> builtins.list[Owner]:
        """Owners with queued jobs and their fair-share standing, without those at their concurrency cap."""
        names = [r["owner"] for r in tx.all(qq.QUEUED_OWNERS)]
        if not names:
            return []
        return self._owners(tx, names, now, skip_capped=True)

    def _owners(
        self, tx: Tx, names: builtins.list[str], now: float, *, skip_capped: bool = False
    ) -> builtins.list[Owner]:
        shares: dict[str, dict[str, Any]] = {}
        limits: dict[str, dict[str, Any]] = {}
        for i in range(0, len(names), 500):
            chunk = names[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            shares.update((r["user_id"], r) for r in tx.all(qq.SELECT_FAIR_SHARES.format(owners=marks), chunk))
            limits.update((r["user_id"], r) for r in tx.all(qq.SELECT_LIMITS_OF.format(owners=marks), chunk))
        caps = {o: int(r["max_concurrent"]) for o, r in limits.items() if r["max_concurrent"] is not None}
        if not skip_capped:
            caps = {}
        running = {r["owner"]: int(r["n"]) for r in tx.all(qq.RUNNING_PER_OWNER)} if caps else {}
        owners = []
        for name in names:
            if name in caps and running.get(name, 0) >= caps[name]:
                continue
            share = shares.get(name)
            usage = (
                decayed(float(share["usage"]), float(share["usage_at"]), now, self.fair.half_life_seconds)
                if share
                else 0.0
            )
            tier = int(limits[name]["priority"]) if name in limits else 0
            owners.append(Owner(name, tier, usage, share["last_claim_at"] if share else None))
        return owners

    def _fair_claim(
        self,
        tx: Tx,
        worker_id: str,
        models_sql: str,
        model_params: Sequence[str],
        loaded_model: str | None,
        now: float,
    ) -> dict[str, Any] | None:
        """Choose the next job by the scheduling policy and claim it (compare-and-set on status queued)."""
        if self._controls(tx).get("paused") == "1":
            return None
        self._lock_scheduler(tx)
        head_sql = qq.OWNER_HEAD.format(models=models_sql)
        candidates: builtins.list[tuple[Owner, dict[str, Any]]] = []
        for owner in self._waiting_owners(tx, now):  # each owner's next claimable job (one index seek each)
            head = tx.one(head_sql, (owner.name, now, *model_params))
            if head is not None:
                # The owner's tier is the priority of their next job (their tier at enqueue, kept in step).
                candidates.append((replace(owner, tier=int(head["priority"])), head))
        if not candidates:
            return None
        candidates.sort(key=lambda c: c[0].rank())
        pick = candidates[0]
        fairest = pick[0]
        if loaded_model is not None and pick[1]["model"] != loaded_model:
            # Affinity: the loaded model's job of the fairest owner within the slack (same tier), if any.
            affinity_sql = qq.OWNER_HEAD.format(models=f"{models_sql} AND model = ? AND priority = ?")
            for owner, _ in candidates:
                if owner.tier != fairest.tier or owner.usage > fairest.usage + self.fair.affinity_slack_seconds:
                    break
                head = tx.one(affinity_sql, (owner.name, now, *model_params, loaded_model, owner.tier))
                if head is not None:
                    pick = (owner, head)
                    break
        owner, head = pick
        row = tx.one(q.CLAIM_JOB, (worker_id, now + self.policy.lease_seconds, now, head["id"]))
        if row is None:
            return None
        ledger = tx.one(qq.SELECT_LEDGER, (head["id"],))
        estimate = float(ledger["estimated"]) if ledger else self.fair.default_job_seconds
        before = self._add_usage(tx, owner.name, estimate, now, claimed=True)
        tx.run(qq.SET_FAIR_CLOCK, (before, now))
        return row

    # --- queue order (positions and ETAs follow the claim order) ------------------------------------------
    def _claim_order(self, tx: Tx, now: float, limit: int, *, until: str | None = None) -> builtins.list[str]:
        """Queued job ids in the order the scheduler would claim them if no job finished meanwhile: repeatedly
        take the best-ranked owner's next job and charge its estimate to that owner (affinity and concurrency
        caps left out: they depend on which worker asks, and when). Stops after job `until`, if given."""
        rows = tx.all(qq.QUEUED_FOR_ORDER)
        if not rows:
            return []
        lines: dict[str, builtins.list[dict[str, Any]]] = {}
        for r in rows:  # already in line order within each owner (ORDER BY, jobs_queued_owner index)
            lines.setdefault(r["owner"], []).append(r)
        names = sorted(lines)
        ranked = {o.name: o for o in self._owners(tx, names, now)}
        heads = dict.fromkeys(names, 0)
        heap = [(replace(ranked[name], tier=int(lines[name][0]["priority"])).rank(), name) for name in names]
        heapq.heapify(heap)
        order: builtins.list[str] = []
        tick = now
        while heap and len(order) < limit:
            _, name = heapq.heappop(heap)
            job = lines[name][heads[name]]
            order.append(job["id"])
            if job["id"] == until:
                break
            owner = ranked[name]
            estimate = float(job["estimated"]) if job["estimated"] is not None else self.fair.default_job_seconds
            tick += 1e-6
            ranked[name] = owner = Owner(name, owner.tier, owner.usage + estimate, tick)
            heads[name] += 1
            if heads[name] < len(lines[name]):
                tier = int(lines[name][heads[name]]["priority"])
                heapq.heappush(heap, (replace(owner, tier=tier).rank(), name))
        return order

    # --- limits and usage (admins) -------------------------------------------------------------------------
    def user_limits(self, user_id: str) -> UserLimits:
        """The user's limits (unlimited, tier 0 when none were set)."""
        with self._tx(write=False) as tx:
            return _limits(tx.one(qq.SELECT_LIMITS, (user_id,)), user_id)

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
        """Change some of a user's limits (arguments left out keep their value; None removes a limit). A new
        priority tier also applies to the user's jobs already waiting. Audited."""
        if period is not KEEP and period not in PERIODS:
            raise InvalidParams(f"period must be one of {', '.join(PERIODS)}", param="period")
        for name, value in (
            ("gpu_seconds", gpu_seconds),
            ("max_concurrent", max_concurrent),
            ("max_queued", max_queued),
        ):
            if value is not KEEP and value is not None and value < 0:
                raise InvalidParams(f"{name} must be >= 0", param=name)
        with self._tx() as tx:
            now = self._now(tx)
            old = _limits(tx.one(qq.SELECT_LIMITS, (user_id,)), user_id)
            new = UserLimits(
                user_id=user_id,
                gpu_seconds=old.gpu_seconds if gpu_seconds is KEEP else gpu_seconds,
                period=old.period if period is KEEP else period,
                max_concurrent=old.max_concurrent if max_concurrent is KEEP else max_concurrent,
                max_queued=old.max_queued if max_queued is KEEP else max_queued,
                priority=old.priority if priority is KEEP else int(priority),
            )
            tx.run(
                qq.UPSERT_LIMITS,
                (user_id, new.gpu_seconds, new.period, new.max_concurrent, new.max_queued, new.priority, now),
            )
            if new.priority != old.priority:
                tx.run(qq.SET_QUEUED_PRIORITY, (new.priority, user_id))
            self._audit(
                tx,
                actor,
                "user.limits",
                user_id,
                {
                    "gpu_seconds": new.gpu_seconds,
                    "period": new.period,
                    "max_concurrent": new.max_concurrent,
                    "max_queued": new.max_queued,
                    "priority": new.priority,
                },
                now,
            )
        return new

    def user_usage(self, user_id: str) -> UserUsage:
        """Budget use this period, unfinished jobs and fair-share usage of one user."""
        with self._tx(write=False) as tx:
            now = self._now(tx)
            limits = _limits(tx.one(qq.SELECT_LIMITS, (user_id,)), user_id)
            start, end = period_bounds(limits.period, now)
            sums = tx.one(qq.SUM_CHARGED, (user_id, start))
            counts = {r["status"]: int(r["n"]) for r in tx.all(qq.COUNT_UNFINISHED, (user_id,))}
            share = tx.one(qq.LOCK_FAIR_SHARE.format(for_update=""), (user_id,))
        usage = (
            decayed(float(share["usage"]), float(share["usage_at"]), now, self.fair.half_life_seconds) if share else 0.0
        )
        return UserUsage(
            user_id=user_id,
            limits=limits,
            period_start=start,
            period_end=end,
            charged_seconds=float(sums["charged"]) if sums else 0.0,
            reserved_seconds=float(sums["reserved"]) if sums else 0.0,
            queued=counts.get("queued", 0),
            running=counts.get("in_progress", 0),
            fair_share_usage=usage,
        )

    def ledger(self, user_id: str, limit: int = 100) -> builtins.list[LedgerEntry]:
        """The user's charges, newest first: estimate, measured time, what counts now, and its state."""
        with self._tx(write=False) as tx:
            rows = tx.all(qq.SELECT_LEDGER_OF, (user_id, limit))
        return [LedgerEntry(**r) for r in rows]

    def ledger_entry(self, job_id: str) -> LedgerEntry | None:
        with self._tx(write=False) as tx:
            row = tx.one(qq.SELECT_LEDGER, (job_id,))
        return LedgerEntry(**row) if row else None

    # --- operator controls -----------------------------------------------------------------------------------
    def _set_control(self, name: str, on: bool, actor: str, action: str) -> None:
        with self._tx() as tx:
            now = self._now(tx)
            tx.run(qq.UPSERT_CONTROL, (name, "1" if on else "0", now, actor))
            self._audit(tx, actor, action, None, {name: on}, now)
            if name == "paused" and not on:
                self._notify(tx)  # idle workers claim at once

    def pause_queue(self, actor: str = "system") -> None:
        """Claims return nothing until resumed; running jobs finish, creates are still queued. Audited."""
        self._set_control("paused", True, actor, "queue.pause")

    def resume_queue(self, actor: str = "system") -> None:
        self._set_control("paused", False, actor, "queue.resume")

    def set_maintenance(self, on: bool, actor: str = "system") -> None:
        """Maintenance mode: the API answers writes with 503 (reads and running jobs go on). Audited."""
        self._set_control("maintenance", on, actor, "maintenance.on" if on else "maintenance.off")

    def maintenance(self) -> bool:
        with self._tx(write=False) as tx:
            return self._controls(tx).get("maintenance") == "1"

    def queue_status(self) -> QueueStatus:
        with self._tx(write=False) as tx:
            controls = self._controls(tx)
            queued = {r["owner"]: int(r["n"]) for r in tx.all(qq.QUEUED_PER_OWNER)}
            running = {r["owner"]: int(r["n"]) for r in tx.all(qq.RUNNING_PER_OWNER)}
        owners = tuple(
            OwnerLine(owner=o, queued=queued.get(o, 0), running=running.get(o, 0))
            for o in sorted(set(queued) | set(running))
        )
        return QueueStatus(
            paused=controls.get("paused") == "1",
            maintenance=controls.get("maintenance") == "1",
            queued=sum(queued.values()),
            running=sum(running.values()),
            owners=owners,
        )

    def workers(self) -> builtins.list[WorkerInfo]:
        """Workers that have claimed (or tried to) from this database, most recently seen first."""
        with self._tx(write=False) as tx:
            rows = tx.all(qq.SELECT_WORKERS)
        return [WorkerInfo(**r) for r in rows]

    def drain_worker(self, worker_id: str, actor: str = "system") -> WorkerInfo:
        """Ask a worker to finish its current job and exit (it sees it at its next claim). Audited.
        Raises NotFound for a worker never seen."""
        with self._tx() as tx:
            now = self._now(tx)
            if tx.one(qq.SELECT_WORKER, (worker_id,)) is None:
                raise NotFound(f"no worker with id {worker_id!r}", param="worker_id")
            if tx.run(qq.WORKER_DRAIN, (worker_id,)):
                self._audit(tx, actor, "worker.drain", worker_id, {}, now)
            self._notify(tx)  # an idle worker wakes, claims and learns it must stop
        found = [w for w in self.workers() if w.id == worker_id]
        return found[0]
