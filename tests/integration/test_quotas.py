"""Quotas on real SQLite and Postgres: per-user limits, charging atomic with the enqueue (the 50-create race),
reconciliation with the measured time, refunds, caps, and the ledger."""

from __future__ import annotations

import threading
import time

import pytest

from reelgen.domain import Artifact, JobError, JobStatus
from reelgen.domain.errors import InvalidParams, QuotaExceeded
from reelgen.domain.quotas import period_bounds
from reelgen.jobs import JobStore, NewJob
from tests.conftest import make_params


def artifact(denoise: float, decode: float) -> Artifact:
    return Artifact(
        video_key="videos/x/1/video.mp4",
        thumbnail_key=None,
        spritesheet_key=None,
        bytes=10,
        num_frames=9,
        width=64,
        height=64,
        fps=16,
        sha256="0" * 64,
        extra={"stats": {"denoise_seconds": denoise, "decode_seconds": decode}},
    )


def enqueue(store: JobStore, owner: str, seconds: float, **kw: object):
    result = store.create_each([NewJob(owner, make_params(), gpu_seconds=seconds, **kw)])[0]  # type: ignore[arg-type]
    if isinstance(result, Exception):
        raise result
    return result[0]


def test_owner_without_limits_is_unlimited_and_tier_zero(store: JobStore) -> None:
    limits = store.user_limits("local")
    assert limits.gpu_seconds is None and limits.max_queued is None and limits.priority == 0
    for _ in range(5):
        enqueue(store, "local", 10_000.0)
    usage = store.user_usage("local")
    assert usage.queued == 5 and usage.charged_seconds == 50_000.0 and usage.remaining_seconds is None


def test_set_limits_partially_and_report_usage(store: JobStore) -> None:
    store.set_user_limits("u1", gpu_seconds=100, period="month", actor="admin1")
    limits = store.set_user_limits("u1", max_queued=3, priority=2)
    assert (limits.gpu_seconds, limits.period, limits.max_queued, limits.priority) == (100, "month", 3, 2)
    assert store.user_limits("u1") == limits
    enqueue(store, "u1", 30)
    usage = store.user_usage("u1")
    assert usage.charged_seconds == 30 and usage.reserved_seconds == 30 and usage.remaining_seconds == 70
    start, end = period_bounds("month", time.time())
    assert usage.period_start == start and usage.period_end == end
    store.set_user_limits("u1", gpu_seconds=None)
    assert store.user_limits("u1").gpu_seconds is None
    with pytest.raises(InvalidParams):
        store.set_user_limits("u1", period="week")  # type: ignore[arg-type]


def test_over_budget_is_refused_with_retry_after_until_the_period_resets(store: JobStore) -> None:
    store.set_user_limits("u1", gpu_seconds=50, period="day")
    enqueue(store, "u1", 40)
    with pytest.raises(QuotaExceeded) as caught:
        enqueue(store, "u1", 20)
    _, end = period_bounds("day", time.time())
    assert caught.value.retry_after is not None and abs(caught.value.retry_after - (end - time.time())) < 5
    assert "40.0 of 50.0 GPU-seconds today" in caught.value.message and "20.0" in caught.value.message
    enqueue(store, "u1", 10)  # exactly what is left still fits
    assert store.user_usage("u1").charged_seconds == 50


@pytest.mark.parametrize("workers", [50])
def test_fifty_parallel_creates_with_budget_for_one_admit_exactly_one(store: JobStore, workers: int) -> None:
    store.set_user_limits("racer", gpu_seconds=15)
    barrier = threading.Barrier(workers)
    accepted: list[str] = []
    refused: list[QuotaExceeded] = []
    lock = threading.Lock()

    def create(i: int) -> None:
        barrier.wait()
        result = store.create_each([NewJob("racer", make_params(f"p{i}"), gpu_seconds=10)])[0]
        with lock:
            if isinstance(result, QuotaExceeded):
                refused.append(result)
            else:
                accepted.append(result[0].id)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 1 and len(refused) == workers - 1
    assert all(e.retry_after and e.retry_after > 0 for e in refused)
    assert store.user_usage("racer").charged_seconds == 10
    assert [e.job_id for e in store.ledger("racer")] == accepted


def test_idempotent_repeat_is_not_charged_twice(store: JobStore) -> None:
    store.set_user_limits("u1", gpu_seconds=10)
    first = enqueue(store, "u1", 10, idempotency_key="k")
    again = enqueue(store, "u1", 10, idempotency_key="k")  # over budget if it were charged
    assert again.id == first.id and store.user_usage("u1").charged_seconds == 10


def test_one_users_refusal_does_not_fail_others_in_the_same_batch(store: JobStore) -> None:
    store.set_user_limits("poor", gpu_seconds=1)
    results = store.create_each(
        [NewJob("rich", make_params(), gpu_seconds=5), NewJob("poor", make_params(), gpu_seconds=5)]
    )
    assert not isinstance(results[0], Exception) and isinstance(results[1], QuotaExceeded)
    assert store.get(results[0][0].id) is not None and store.user_usage("poor").queued == 0
    with pytest.raises(QuotaExceeded):  # create_many stays all-or-nothing
        store.create_many([NewJob("rich", make_params(), gpu_seconds=5), NewJob("poor", make_params(), gpu_seconds=5)])
    assert store.user_usage("rich").queued == 1


def test_queue_depth_cap(store: JobStore) -> None:
    store.set_user_limits("u1", max_queued=2)
    enqueue(store, "u1", 1)
    enqueue(store, "u1", 1)
    with pytest.raises(QuotaExceeded) as caught:
        enqueue(store, "u1", 1)
    assert "queue-depth cap" in caught.value.message and "2 videos waiting" in caught.value.message
    assert caught.value.retry_after
    assert store.claim("w") is not None  # one starts: room for one more
    enqueue(store, "u1", 1)


def test_concurrency_cap_holds_the_users_other_jobs_in_the_queue(store: JobStore) -> None:
    store.set_user_limits("capped", max_concurrent=1)
    a = enqueue(store, "capped", 1)
    enqueue(store, "capped", 1)
    other = enqueue(store, "free", 1)
    first = store.claim("w1")
    second = store.claim("w2")
    assert first is not None and second is not None
    assert {first.job_id, second.job_id} == {a.id, other.id}
    assert store.claim("w3") is None  # the capped user's second job waits
    store.complete(first if first.job_id == a.id else second, artifact(1, 0))
    third = store.claim("w3")
    assert third is not None and third.job.owner == "capped"


def test_reconcile_refund_and_charge_time_used(store_factory) -> None:
    store = store_factory(lease_seconds=30, max_attempts=1, retry_backoff_seconds=0.0)
    store.set_user_limits("u1", gpu_seconds=1000)
    done = enqueue(store, "u1", 20)
    failed = enqueue(store, "u1", 20)
    cancelled_queued = enqueue(store, "u1", 20)
    cancelled_running = enqueue(store, "u1", 20)
    store.cancel(cancelled_queued.id)
    claims = {}
    for _ in range(3):
        c = store.claim("w")
        claims[c.job_id] = c
    store.complete(claims[done.id], artifact(denoise=3.0, decode=1.5))
    store.fail(claims[failed.id], JobError("engine_error", "boom"), retryable=True)
    store.cancel(cancelled_running.id)
    assert store.mark_cancelled(claims[cancelled_running.id]).status is JobStatus.CANCELLED
    ledger = {e.job_id: e for e in store.ledger("u1")}
    assert (ledger[done.id].state, ledger[done.id].actual, ledger[done.id].charged) == ("settled", 4.5, 4.5)
    assert (ledger[failed.id].state, ledger[failed.id].charged) == ("refunded", 0.0)
    assert (ledger[cancelled_queued.id].state, ledger[cancelled_queued.id].charged) == ("refunded", 0.0)
    running = ledger[cancelled_running.id]
    assert running.state == "settled" and running.charged == running.actual and 0 <= running.charged < 5
    usage = store.user_usage("u1")
    assert usage.reserved_seconds == 0 and usage.charged_seconds == pytest.approx(4.5 + running.charged)
