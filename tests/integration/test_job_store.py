"""The JobStore contract, run against real SQLite and real Postgres."""

from __future__ import annotations

import threading
import time

import pytest

from reelgen.domain import Artifact, Conflict, JobError, JobStatus, NotFound, StaleAttempt
from reelgen.jobs import JobStore, NewJob
from tests.conftest import make_params


def artifact(key: str = "videos/x/1/video.mp4") -> Artifact:
    return Artifact(
        video_key=key,
        thumbnail_key=None,
        spritesheet_key=None,
        bytes=10,
        num_frames=9,
        width=64,
        height=64,
        fps=16,
        sha256="0" * 64,
    )


def test_create_get_round_trip(store: JobStore, params) -> None:
    job, created = store.create("alice", params)
    assert created and job.status is JobStatus.QUEUED and job.attempt == 0
    got = store.get(job.id)
    assert got is not None and got.params == params and got.owner == "alice"
    assert store.get("video_missing") is None


def test_idempotency_key_returns_the_same_job_per_owner(store: JobStore, params) -> None:
    a, created_a = store.create("alice", params, idempotency_key="k1")
    b, created_b = store.create("alice", make_params("other prompt"), idempotency_key="k1")
    c, _ = store.create("bob", params, idempotency_key="k1")
    assert created_a and not created_b and a.id == b.id and b.params == params
    assert c.id != a.id
    assert len(store.list("alice").jobs) == 1


def test_idempotency_under_concurrent_creates(store_factory, params) -> None:
    stores = [store_factory() for _ in range(4)]
    ids: list[str] = []
    barrier = threading.Barrier(len(stores))

    def create(s: JobStore) -> None:
        barrier.wait()
        ids.append(s.create("alice", params, idempotency_key="same")[0].id)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == len(stores) and len(set(ids)) == 1 and len(stores[0].list("alice").jobs) == 1


def test_claim_is_fifo_and_bumps_attempt(store: JobStore, params) -> None:
    first, _ = store.create("a", params)
    second, _ = store.create("a", params)
    c1 = store.claim("w1")
    c2 = store.claim("w2")
    assert c1 is not None and c2 is not None
    assert (c1.job_id, c2.job_id) == (first.id, second.id)
    assert c1.attempt == 1 and c1.job.status is JobStatus.IN_PROGRESS and c1.job.worker_id == "w1"
    assert store.claim("w3") is None


def test_claim_respects_model_filter(store: JobStore) -> None:
    store.create("a", make_params(model="big-model"))
    small, _ = store.create("a", make_params(model="tiny-random-wan"))
    claim = store.claim("w", models=("tiny-random-wan",))
    assert claim is not None and claim.job_id == small.id
    assert store.claim("w", models=("tiny-random-wan",)) is None


def test_progress_completion_and_events(store: JobStore, params) -> None:
    job, _ = store.create("a", params)
    claim = store.claim("w")
    assert claim is not None
    assert store.report_progress(claim, 1, 2, preview="data:image/jpeg;base64,xx").cancel_requested is False
    mid = store.get(job.id)
    assert mid is not None and (mid.step, mid.total_steps) == (1, 2) and 0 < mid.progress < 100
    done = store.complete(claim, artifact())
    assert done.status is JobStatus.COMPLETED and done.progress == 100 and done.artifact == artifact()
    assert done.finished_at is not None
    events = store.events(job.id)
    assert [e.kind for e in events] == ["status", "status", "progress", "status"]
    assert [e.data.get("status") for e in events if e.kind == "status"] == [
        "queued",
        "in_progress",
        "completed",
    ]
    assert events[2].data["preview"].startswith("data:image/jpeg")
    assert [e.seq for e in store.events(job.id, after_seq=events[1].seq)] == [e.seq for e in events[2:]]
    with pytest.raises(StaleAttempt):
        store.complete(claim, artifact())  # exactly once


def test_fencing_a_stale_worker_cannot_write_the_newer_attempt(store_factory, params) -> None:
    store = store_factory(lease_seconds=0.3, retry_backoff_seconds=0.0)
    job, _ = store.create("a", params)
    stale = store.claim("slow-worker")
    assert stale is not None
    time.sleep(0.45)  # the slow worker misses its heartbeat; its lease expires
    fresh = store.claim("fast-worker")
    assert fresh is not None and fresh.job_id == job.id and fresh.attempt == 2
    for write in (
        lambda: store.heartbeat(stale),
        lambda: store.report_progress(stale, 1, 2),
        lambda: store.complete(stale, artifact("videos/stale")),
        lambda: store.fail(stale, JobError("boom", "boom"), retryable=True),
        lambda: store.mark_cancelled(stale),
    ):
        with pytest.raises(StaleAttempt):
            write()
    store.heartbeat(fresh)
    done = store.complete(fresh, artifact("videos/fresh"))
    assert done.attempt == 2 and done.artifact is not None and done.artifact.video_key == "videos/fresh"


def test_heartbeat_keeps_the_lease(store_factory, params) -> None:
    store = store_factory(lease_seconds=0.4)
    store.create("a", params)
    claim = store.claim("w")
    assert claim is not None
    for _ in range(4):
        time.sleep(0.15)
        store.heartbeat(claim)
    assert store.recover_expired() == 0
    assert store.claim("other") is None


def test_expired_leases_requeue_then_fail_after_max_attempts(store_factory, params) -> None:
    store = store_factory(lease_seconds=0.1, max_attempts=2, retry_backoff_seconds=0.0)
    job, _ = store.create("a", params)
    for attempt in (1, 2):
        claim = store.claim("w")
        assert claim is not None and claim.attempt == attempt
        time.sleep(0.15)
    assert store.recover_expired() == 1
    failed = store.get(job.id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code == "worker_lost" and "2 times" in failed.error.message
    assert store.claim("w") is None


def test_retryable_failure_backs_off_then_fails_after_max_attempts(store_factory, params) -> None:
    store = store_factory(max_attempts=2, retry_backoff_seconds=0.3)
    store.create("a", params)
    claim = store.claim("w")
    assert claim is not None
    requeued = store.fail(claim, JobError("engine_error", "CUDA exploded"), retryable=True)
    assert requeued.status is JobStatus.QUEUED and requeued.error is not None
    assert store.claim("w") is None  # still backing off
    wait = store.next_wakeup()
    assert wait is not None and 0 < wait <= 0.3
    time.sleep(0.35)
    claim2 = store.claim("w")
    assert claim2 is not None and claim2.attempt == 2
    final = store.fail(claim2, JobError("engine_error", "CUDA exploded"), retryable=True)
    assert final.status is JobStatus.FAILED and final.error is not None
    assert final.error.message == "failed after 2 attempts: CUDA exploded"


def test_non_retryable_failure_is_final(store: JobStore, params) -> None:
    store.create("a", params)
    claim = store.claim("w")
    assert claim is not None
    final = store.fail(claim, JobError("invalid_input", "image too large"), retryable=False)
    assert final.status is JobStatus.FAILED and final.error == JobError("invalid_input", "image too large")


def test_cancel_queued_is_immediate_and_running_is_cooperative(store: JobStore, params) -> None:
    queued, _ = store.create("a", params)
    running, _ = store.create("a", params)
    assert store.cancel(queued.id).status is JobStatus.CANCELLED
    claim = store.claim("w")
    assert claim is not None and claim.job_id == running.id  # the cancelled one is never claimed
    flagged = store.cancel(running.id)
    assert flagged.status is JobStatus.IN_PROGRESS and flagged.cancel_requested
    assert store.heartbeat(claim).cancel_requested
    assert store.report_progress(claim, 1, 2).cancel_requested
    assert store.mark_cancelled(claim).status is JobStatus.CANCELLED
    assert store.cancel(running.id).status is JobStatus.CANCELLED  # terminal: unchanged
    with pytest.raises(NotFound):
        store.cancel("video_missing")


def test_delete_only_terminal_jobs(store: JobStore, params) -> None:
    job, _ = store.create("a", params)
    with pytest.raises(Conflict):
        store.delete(job.id)
    store.cancel(job.id)
    deleted = store.delete(job.id)
    assert deleted is not None and deleted.id == job.id
    assert store.get(job.id) is None and store.events(job.id) == []
    assert store.delete(job.id) is None


def test_list_paginates_per_owner(store: JobStore, params) -> None:
    ids = [store.create("a", params)[0].id for _ in range(5)]
    store.create("b", params)
    page = store.list("a", limit=2)
    assert [j.id for j in page.jobs] == ids[::-1][:2] and page.has_more
    page2 = store.list("a", limit=2, after=page.jobs[-1].id)
    assert [j.id for j in page2.jobs] == ids[::-1][2:4]
    asc = store.list("a", limit=10, order="asc")
    assert [j.id for j in asc.jobs] == ids and not asc.has_more


def test_queue_position(store: JobStore, params) -> None:
    a, _ = store.create("a", params)
    b, _ = store.create("b", params)
    assert (store.queue_position(a.id), store.queue_position(b.id)) == (1, 2)
    store.claim("w")
    assert store.queue_position(a.id) is None and store.queue_position(b.id) == 1


def test_queued_ids_follow_queue_position_order(store: JobStore, params) -> None:
    low = [store.create("a", params)[0].id for _ in range(3)]
    high, _ = store.create("b", params, priority=5)
    assert store.queued_ids() == [high.id, *low]
    assert [store.queue_position(i) for i in store.queued_ids()] == [1, 2, 3, 4]
    assert store.queued_ids(limit=2) == [high.id, low[0]]
    store.claim("w")
    store.cancel(low[1])
    assert store.queued_ids() == [low[0], low[2]]


def test_queue_positions_of_a_batch_match_one_by_one_positions(store: JobStore, params) -> None:
    store.create("a", params)
    one_owner = [job.id for job, _ in store.create_many([NewJob("a", params) for _ in range(3)])]
    assert (
        store.queue_positions(one_owner)
        == {i: store.queue_position(i) for i in one_owner}
        == {
            one_owner[0]: 2,
            one_owner[1]: 3,
            one_owner[2]: 4,
        }
    )
    # Several owners in line: fair share interleaves them, so the batch is not simply appended.
    mixed = [job.id for job, _ in store.create_many([NewJob(o, params) for o in ("b", "b", "c")])]
    expected = {i: store.queue_position(i) for i in mixed}
    assert store.queue_positions(mixed) == expected
    assert sorted(p for p in expected.values() if p is not None) != [5, 6, 7]
    assert store.queue_positions([]) == {}


def test_concurrent_claims_never_hand_out_a_job_twice(store_factory, params) -> None:
    seed = store_factory()
    ids = {seed.create("a", params)[0].id for _ in range(30)}
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        s = store_factory()
        while (c := s.claim(name)) is not None:
            with lock:
                claimed.append(c.job_id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


def test_idle_worker_wakes_within_100ms_of_a_create(store_factory, params) -> None:
    worker_store, client_store = store_factory(), store_factory()
    worker_store.prepare_wait()
    worker_store.wait_for_work(0.01)  # drain anything pending from setup
    latencies = []
    for _ in range(5):
        woke = threading.Event()
        started: list[float] = []

        def wait(done: threading.Event = woke) -> None:
            worker_store.wait_for_work(5.0)
            done.set()

        t = threading.Thread(target=wait)
        t.start()
        time.sleep(0.05)
        started.append(time.perf_counter())
        client_store.create("a", params)
        assert woke.wait(2.0)
        latencies.append(time.perf_counter() - started[0])
        t.join()
    assert max(latencies) < 0.1, latencies


def test_jobs_survive_reopening_the_store(database_url: str, params) -> None:
    from reelgen.jobs import open_job_store

    first = open_job_store(database_url)
    ids = {first.create("a", params)[0].id for _ in range(3)}
    first.close()
    again = open_job_store(database_url)  # migrations run again: must be a no-op
    try:
        assert {j.id for j in again.list("a").jobs} == ids
        assert all(j.status is JobStatus.QUEUED for j in again.list("a").jobs)
    finally:
        again.close()


def test_create_many_keeps_order_and_idempotency_within_one_batch(store: JobStore, params) -> None:
    from reelgen.jobs import NewJob

    results = store.create_many(
        [
            NewJob("a", params, idempotency_key="k"),
            NewJob("a", make_params("second")),
            NewJob("a", make_params("same key again"), idempotency_key="k"),
            NewJob("b", params, idempotency_key="k"),
        ]
    )
    (first, c1), (second, c2), (again, c3), (other, c4) = results
    assert (c1, c2, c3, c4) == (True, True, False, True)
    assert again.id == first.id and again.params == params and other.id != first.id
    assert [j.id for j in store.list("a", order="asc").jobs] == [first.id, second.id]
    claims = [store.claim("w"), store.claim("w"), store.claim("w")]
    # FIFO within one owner's part of the batch (between owners the fair-share scheduler alternates).
    assert [c.job_id for c in claims if c and c.job.owner == "a"] == [first.id, second.id]
    assert store.create_many([]) == []
    assert store.create_many([NewJob("a", params, idempotency_key="k")]) == [(store.get(first.id), False)]


def test_recent_completed_is_per_model_newest_first(store: JobStore, params) -> None:
    done = []
    for model in ("tiny-random-wan", "other-model", "tiny-random-wan"):
        store.create("a", make_params(model=model))
        claim = store.claim("w")
        assert claim is not None
        done.append(store.complete(claim, artifact()).id)
    store.create("a", params)  # queued: not a completion
    recent = store.recent_completed("tiny-random-wan")
    assert [j.id for j in recent] == [done[2], done[0]]
    assert recent[0].artifact == artifact() and recent[0].finished_at is not None
    assert [j.id for j in store.recent_completed("tiny-random-wan", limit=1)] == [done[2]]
    assert store.recent_completed("unknown") == []


def test_publish_lists_completed_jobs_of_every_owner_newest_publication_first(store: JobStore, params) -> None:
    """The gallery listing; the review steps that lead into it are tested in test_review_store.py."""
    from reelgen.domain.review import ReviewState

    def publish(job_id: str):  # the owner submits, a moderator approves
        store.set_review(job_id, ReviewState.PENDING, actor="owner")
        return store.set_review(job_id, ReviewState.APPROVED, actor="mod")

    done = {}
    for owner in ("a", "b", "a"):
        store.create(owner, params)
        claim = store.claim("w")
        assert claim is not None
        job = store.complete(claim, artifact())
        done[job.id] = job
    first, second, third = done
    queued, _ = store.create("a", params)
    assert store.list_published().jobs == [] and not store.list_published().has_more

    published = publish(second)
    assert published.published_at is not None and store.get(second) == published
    publish(first)
    publish(third)
    with pytest.raises(Conflict):  # approved once: approving again is refused, the time is kept
        store.set_review(second, ReviewState.APPROVED, actor="mod")
    assert store.get(second).published_at == published.published_at  # type: ignore[union-attr]
    assert [j.id for j in store.list_published().jobs] == [third, first, second]

    page = store.list_published(limit=2)
    assert [j.id for j in page.jobs] == [third, first] and page.has_more
    rest = store.list_published(limit=2, after=page.jobs[-1].id)
    assert [j.id for j in rest.jobs] == [second] and not rest.has_more

    unpublished = store.set_review(first, ReviewState.NONE, actor="a")
    assert unpublished.published_at is None and unpublished.status is JobStatus.COMPLETED
    assert [j.id for j in store.list_published().jobs] == [third, second]

    with pytest.raises(Conflict):
        store.set_review(queued.id, ReviewState.PENDING, actor="a")  # nothing to show yet
    with pytest.raises(NotFound):
        store.set_review("video_missing", ReviewState.PENDING, actor="a")
    store.delete(third)
    assert [j.id for j in store.list_published().jobs] == [second]
