"""Publishing with approval and moderation holds in the JobStore, on real SQLite and real Postgres: every
transition of reelgen/domain/review.py, no way into the gallery but a moderator's approval, and the audit log
written in the same transaction as each decision."""

from __future__ import annotations

import pytest

from reelgen.domain import Conflict, JobStatus, NotFound
from reelgen.domain.review import ACTORS, TRANSITIONS, Actor, ReviewState
from reelgen.jobs import JobStore
from reelgen.jobs.store import NewJob
from tests.conftest import make_params
from tests.integration.test_job_store import artifact

S = ReviewState
MOD = "user_mod"


def completed(store: JobStore, owner: str = "alice", *, hold: str | None = None, prompt: str = "a fox") -> str:
    job, _ = store.create(owner, make_params(prompt))
    claim = store.claim("w1")
    assert claim is not None and claim.job_id == job.id
    store.complete(claim, artifact(f"videos/{job.id}/1/video.mp4"), hold_reason=hold)
    return job.id


def in_state(store: JobStore, state: ReviewState) -> str:
    """A completed job brought to `state` through the allowed transitions."""
    if state is S.HELD or state is S.BLOCKED:
        job_id = completed(store, hold="flagged frames")
        if state is S.BLOCKED:
            store.set_review(job_id, S.BLOCKED, actor=MOD, reason="not allowed")
        return job_id
    job_id = completed(store)
    if state is not S.NONE:
        store.set_review(job_id, S.PENDING, actor="alice")
    if state is S.APPROVED:
        store.set_review(job_id, S.APPROVED, actor=MOD)
    elif state is S.REJECTED:
        store.set_review(job_id, S.REJECTED, actor=MOD, reason="blurry")
    return job_id


def gallery_ids(store: JobStore) -> list[str]:
    return [j.id for j in store.list_published(limit=100).jobs]


def test_submit_approve_publishes_and_audits_each_decision(store: JobStore) -> None:
    job_id = completed(store)
    assert store.get(job_id).review.state is S.NONE  # type: ignore[union-attr]
    pending = store.set_review(job_id, S.PENDING, actor="alice")
    assert pending.review.state is S.PENDING and pending.review.submitted_at is not None
    assert pending.published_at is None and gallery_ids(store) == []
    assert [j.id for j in store.list_reviews(S.PENDING).jobs] == [job_id]

    approved = store.set_review(job_id, S.APPROVED, actor=MOD)
    assert approved.review.state is S.APPROVED and approved.review.reviewed_by == MOD
    assert approved.published_at is not None and gallery_ids(store) == [job_id]
    assert store.list_reviews(S.PENDING).jobs == []

    log = store.audit_log(target=job_id)
    assert [(e.actor, e.action) for e in log] == [(MOD, "review.approve"), ("alice", "review.submit")]
    assert log[0].data == {"owner": "alice", "from": "pending", "to": "approved", "review_state": "approved"}
    assert log[0].seq > log[1].seq and log[0].created_at >= log[1].created_at


def test_only_completed_videos_can_be_submitted(store: JobStore) -> None:
    job, _ = store.create("alice", make_params())
    with pytest.raises(Conflict, match="only completed videos"):
        store.set_review(job.id, S.PENDING, actor="alice")
    with pytest.raises(NotFound):
        store.set_review("video_missing", S.PENDING, actor="alice")
    assert store.audit_log(target=job.id) == []


def test_reject_with_reason_then_resubmit_and_take_down(store: JobStore) -> None:
    job_id = in_state(store, S.REJECTED)
    job = store.get(job_id)
    assert job is not None and job.review.reason == "blurry" and job.published_at is None
    store.set_review(job_id, S.PENDING, actor="alice")
    assert store.get(job_id).review.reason is None  # type: ignore[union-attr]
    store.set_review(job_id, S.APPROVED, actor=MOD)
    down = store.set_review(job_id, S.REJECTED, actor=MOD, reason="reported")
    assert down.review.state is S.REJECTED and down.published_at is None and gallery_ids(store) == []
    actions = [e.action for e in reversed(store.audit_log(target=job_id))]
    assert actions == [
        "review.submit",
        "review.reject",
        "review.resubmit",
        "review.approve",
        "review.take_down",
    ]


def test_owner_withdraws_or_unpublishes(store: JobStore) -> None:
    a, b = in_state(store, S.PENDING), in_state(store, S.APPROVED)
    assert gallery_ids(store) == [b]
    for job_id in (a, b):
        job = store.set_review(job_id, S.NONE, actor="alice")
        assert job.review.state is S.NONE and job.published_at is None
    assert gallery_ids(store) == []


def test_expect_guards_against_a_state_the_caller_did_not_check(store: JobStore) -> None:
    job_id = in_state(store, S.APPROVED)
    # A moderator asked to reject a *pending* video; it was approved meanwhile: refused, nothing changes.
    with pytest.raises(Conflict):
        store.set_review(job_id, S.REJECTED, actor=MOD, reason="x", expect={S.PENDING})
    assert store.get(job_id).review.state is S.APPROVED  # type: ignore[union-attr]


def test_every_transition_is_enforced_and_only_approval_publishes(store: JobStore) -> None:
    """From every state try every target: allowed moves succeed, others are a Conflict that changes nothing;
    published_at is set exactly when the state is approved."""
    for old in S:
        for new in S:
            job_id = in_state(store, old)
            before = len(store.audit_log(target=job_id))
            if new in TRANSITIONS[old]:
                job = store.set_review(job_id, new, actor=MOD, reason="because")
                assert job.review.state is new
                assert len(store.audit_log(target=job_id)) == before + 1
            else:
                with pytest.raises(Conflict):
                    store.set_review(job_id, new, actor=MOD, reason="because")
                job = store.get(job_id)  # type: ignore[assignment]
                assert job is not None and job.review.state is old
                assert len(store.audit_log(target=job_id)) == before
            assert (job.published_at is not None) == (job.review.state is S.APPROVED), (old, new)
            assert (job_id in gallery_ids(store)) == (job.review.state is S.APPROVED), (old, new)


def test_no_path_to_public_without_a_moderator() -> None:
    """Walk the state machine with every transition but the moderators': approved is unreachable."""
    assert set(ACTORS) == {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    [(into_public, actor)] = [((a, b), who) for (a, b), who in ACTORS.items() if b is S.APPROVED]
    assert into_public == (S.PENDING, S.APPROVED) and actor is Actor.MODERATOR
    reachable, frontier = {S.NONE}, [S.NONE]
    while frontier:
        state = frontier.pop()
        for nxt in TRANSITIONS[state]:
            if ACTORS[(state, nxt)] is not Actor.MODERATOR and nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert S.APPROVED not in reachable
    assert reachable == {S.NONE, S.PENDING, S.HELD}


def test_deleting_an_approved_video_takes_it_out_of_the_gallery(store: JobStore) -> None:
    job_id = in_state(store, S.APPROVED)
    assert gallery_ids(store) == [job_id]
    store.delete(job_id)
    assert gallery_ids(store) == []
    # The audit log outlives the video.
    assert [e.action for e in store.audit_log(target=job_id)] == ["review.approve", "review.submit"]


def test_a_held_job_waits_unclaimed_until_released(store: JobStore) -> None:
    [(held, _), (free, _)] = store.create_many(
        [
            NewJob("alice", make_params("held prompt"), hold_reason="blocklist: 'fox'"),
            NewJob("bob", make_params("free prompt")),
        ]
    )
    assert held.review.state is S.HELD and held.review.reason == "blocklist: 'fox'"
    assert held.review.reviewed_by == "hook:prompt" and held.status is JobStatus.QUEUED
    assert store.queue_position(held.id) is None and store.queue_position(free.id) == 1
    assert store.queued_ids() == [free.id]
    claim = store.claim("w1")
    assert claim is not None and claim.job_id == free.id
    assert store.claim("w1") is None
    assert [j.id for j in store.list_reviews(S.HELD).jobs] == [held.id]

    released = store.set_review(held.id, S.NONE, actor=MOD, expect={S.HELD})
    assert released.review.state is S.NONE and released.review.reason is None
    claim = store.claim("w1")
    assert claim is not None and claim.job_id == held.id
    actions = [(e.actor, e.action) for e in reversed(store.audit_log(target=held.id))]
    assert actions == [("hook:prompt", "moderation.hold"), (MOD, "moderation.release")]


def test_rejecting_a_held_job_that_never_ran_cancels_it(store: JobStore) -> None:
    job, _ = store.create_many([NewJob("alice", make_params(), hold_reason="flagged")])[0]
    blocked = store.set_review(job.id, S.BLOCKED, actor=MOD, reason="violent")
    assert blocked.review.state is S.BLOCKED and blocked.status is JobStatus.CANCELLED
    assert blocked.error is not None and blocked.error.code == "moderation_blocked"
    assert blocked.error.message == "violent"
    assert store.claim("w1") is None
    kinds = [(e.kind, e.data.get("status") or e.data.get("review_state")) for e in store.events(job.id)]
    assert kinds == [("status", "queued"), ("review", "held"), ("status", "cancelled"), ("review", "blocked")]


def test_a_held_job_its_owner_cancels_leaves_the_held_list(store: JobStore) -> None:
    job, _ = store.create_many([NewJob("alice", make_params(), hold_reason="flagged")])[0]
    assert [j.id for j in store.list_reviews(S.HELD).jobs] == [job.id]
    assert store.cancel(job.id).status is JobStatus.CANCELLED
    assert store.list_reviews(S.HELD).jobs == []


def test_the_frame_check_completes_a_video_held(store: JobStore) -> None:
    job_id = completed(store, hold="frame check: too red")
    job = store.get(job_id)
    assert job is not None and job.status is JobStatus.COMPLETED and job.review.state is S.HELD
    assert job.review.reason == "frame check: too red" and job.review.reviewed_by == "hook:frames"
    with pytest.raises(Conflict):  # a held video cannot be submitted for publication
        store.set_review(job_id, S.PENDING, actor="alice")
    store.set_review(job_id, S.NONE, actor=MOD)
    assert store.set_review(job_id, S.PENDING, actor="alice").review.state is S.PENDING


def test_review_queue_is_oldest_first_and_paged(store: JobStore) -> None:
    ids = [completed(store, prompt=f"fox {i}") for i in range(3)]
    for job_id in ids:
        store.set_review(job_id, S.PENDING, actor="alice")
    first = store.list_reviews(S.PENDING, limit=2)
    assert [j.id for j in first.jobs] == ids[:2] and first.has_more
    rest = store.list_reviews(S.PENDING, limit=2, after=ids[1])
    assert [j.id for j in rest.jobs] == ids[2:] and not rest.has_more


def test_audit_log_pages_newest_first_and_filters(store: JobStore) -> None:
    a, b = completed(store), completed(store, "bob")
    store.set_review(a, S.PENDING, actor="alice")
    store.set_review(b, S.PENDING, actor="bob")
    store.set_review(a, S.APPROVED, actor=MOD)
    page = store.audit_log(limit=2)
    assert [(e.actor, e.target) for e in page] == [(MOD, a), ("bob", b)]
    older = store.audit_log(limit=2, before=page[-1].seq)
    assert [(e.actor, e.target) for e in older] == [("alice", a)]
    assert [e.target for e in store.audit_log(actor="bob")] == [b]


def test_videos_published_before_the_review_flow_stay_published(tmp_path) -> None:
    """A database from before migration 0007 (owners published alone): its gallery survives the upgrade,
    recorded as approved by the migration; unpublished videos start with no review."""
    import json
    import sqlite3
    import time

    from reelgen.jobs import open_job_store
    from reelgen.jobs.migrate import CREATE_TABLE, migration_files, split_statements

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(CREATE_TABLE)
    for version, name, sql in migration_files("sqlite"):
        if version > 3:
            break
        for statement in split_statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time()))
    params = json.dumps(make_params().to_dict())
    for job_id, published_at in (("video_old_public", 1000.0), ("video_old_private", None)):
        conn.execute(
            "INSERT INTO jobs (id, owner, status, model, params, max_attempts, created_at, finished_at, "
            "artifact, published_at) VALUES (?, 'local', 'completed', 'tiny-random-wan', ?, 3, 1.0, 2.0, ?, ?)",
            (job_id, params, json.dumps(artifact().to_dict()), published_at),
        )
    conn.close()

    store = open_job_store(f"sqlite:///{path}")
    try:
        public, private = store.get("video_old_public"), store.get("video_old_private")
        assert public is not None and private is not None
        assert public.review.state is S.APPROVED and public.review.reviewed_by == "migration:0007"
        assert public.published_at == 1000.0 and gallery_ids(store) == ["video_old_public"]
        assert private.review.state is S.NONE and private.published_at is None
    finally:
        store.close()
