"""Publishing with approval over HTTP, with real users and keys: owners submit and withdraw, moderators approve
or reject (with a reason) and release or reject held jobs, only approved videos reach the gallery and its
content route, every /v1/admin route refuses an ordinary key, and admins read the audit log."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reelgen.api.app import create_app
from reelgen.domain import Artifact, JobStatus
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.engines.registry import Registry
from reelgen.jobs import JobStore, open_job_store
from reelgen.settings import Settings
from reelgen.storage.local import LocalArtifactStore

TINY = {"prompt": "a red fox", "size": "64x64", "seconds": "0.5", "steps": 2}
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42 not really an mp4"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    s = open_job_store(f"sqlite:///{tmp_path / 'reelgen.db'}")
    yield s
    s.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "videos")


@pytest.fixture
def keys(store: JobStore) -> dict[str, dict[str, str]]:
    """Bearer headers per user: two ordinary users, a moderator and an admin."""
    out = {}
    for name, role in (("alice", "user"), ("bob", "user"), ("mod", "moderator"), ("root", "admin")):
        _, key = store.accounts.add_user(name, role)  # type: ignore[attr-defined]
        out[name] = {"Authorization": f"Bearer {key}"}
    return out


@pytest.fixture
def client(tmp_path: Path, store: JobStore, artifacts: LocalArtifactStore, keys) -> Iterator[TestClient]:
    registry = Registry()
    registry.register(TINY_RANDOM_WAN, "reelgen.engines.tiny_wan:create_engine")
    settings = Settings(home=tmp_path, auth="on", moderation_blocklist="forbidden words, hold:dragon")
    app = create_app(settings, store=store, artifacts=artifacts, registry=registry)
    with TestClient(app) as c:
        yield c


def completed(
    client: TestClient, store: JobStore, artifacts: LocalArtifactStore, headers: dict[str, str], prompt: str = "fox"
) -> str:
    r = client.post("/v1/videos", json={**TINY, "prompt": prompt}, headers=headers)
    assert r.status_code == 200, r.text
    video_id = r.json()["id"]
    claim = store.claim("test-worker")
    assert claim is not None and claim.job_id == video_id
    key = f"videos/{video_id}/1/video.mp4"
    artifacts.put_bytes(key, VIDEO_BYTES)
    artifacts.put_bytes(f"videos/{video_id}/1/thumbnail.webp", b"RIFF....WEBP")
    store.complete(
        claim,
        Artifact(
            video_key=key,
            thumbnail_key=f"videos/{video_id}/1/thumbnail.webp",
            spritesheet_key=None,
            bytes=len(VIDEO_BYTES),
            num_frames=9,
            width=64,
            height=64,
            fps=16,
            sha256="ab" * 32,
        ),
    )
    return video_id


def gallery(client: TestClient, headers: dict[str, str]) -> list[str]:
    r = client.get("/v1/gallery", headers=headers)
    assert r.status_code == 200, r.text
    return [v["id"] for v in r.json()["data"]]


def test_submit_then_a_moderator_approves_into_the_gallery(client, store, artifacts, keys) -> None:
    alice, bob, mod, root = keys["alice"], keys["bob"], keys["mod"], keys["root"]
    video_id = completed(client, store, artifacts, alice)
    assert client.get(f"/v1/videos/{video_id}", headers=alice).json()["review"] == {
        "state": "none",
        "reason": None,
        "submitted_at": None,
        "reviewed_at": None,
    }
    r = client.post(f"/v1/videos/{video_id}/publish", headers=alice)
    assert r.status_code == 200 and r.json()["review"]["state"] == "pending" and r.json()["published_at"] is None
    assert r.json()["review"]["submitted_at"] is not None
    # Submitted is not public: not in the gallery, not downloadable through it.
    assert gallery(client, bob) == []
    assert client.get(f"/v1/gallery/{video_id}/content", headers=bob).status_code == 404

    queue = client.get("/v1/admin/reviews", headers=mod).json()
    [item] = queue["data"]
    alice_id = store.accounts.get_user_by_name("alice").id  # type: ignore[attr-defined]
    assert item["owner"] == alice_id and item["video"]["id"] == video_id and item["video"]["prompt"] == "fox"
    # A moderator may watch what they review.
    watched = client.get(f"/v1/videos/{video_id}/content", headers=mod)
    assert watched.status_code == 200 and watched.content == VIDEO_BYTES

    r = client.post(f"/v1/admin/reviews/{video_id}/approve", headers=mod)
    assert r.status_code == 200 and r.json()["review"]["state"] == "approved" and r.json()["published_at"]
    assert gallery(client, bob) == [video_id] and client.get("/v1/admin/reviews", headers=mod).json()["data"] == []
    got = client.get(f"/v1/gallery/{video_id}/content", headers=bob)
    assert got.status_code == 200 and got.content == VIDEO_BYTES and got.headers["content-type"] == "video/mp4"
    thumb = client.get(f"/v1/gallery/{video_id}/content", params={"variant": "thumbnail"}, headers=bob)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    # The gallery shares the video, not the owner's controls over it.
    assert client.get(f"/v1/videos/{video_id}/content", headers=bob).status_code == 404
    assert client.post(f"/v1/videos/{video_id}/unpublish", headers=bob).status_code == 404

    log = client.get("/v1/admin/audit", params={"target": video_id}, headers=root).json()
    mod_id = store.accounts.get_user_by_name("mod").id  # type: ignore[attr-defined]
    assert [(e["actor"], e["action"]) for e in log["data"]] == [
        (mod_id, "review.approve"),
        (alice_id, "review.submit"),
    ]
    assert log["has_more"] is False and log["last_seq"] == log["data"][-1]["seq"]

    # The owner takes it out again.
    r = client.post(f"/v1/videos/{video_id}/unpublish", headers=alice)
    assert r.status_code == 200 and r.json()["review"]["state"] == "none" and r.json()["published_at"] is None
    assert gallery(client, bob) == []
    assert client.get(f"/v1/gallery/{video_id}/content", headers=bob).status_code == 404


def test_reject_needs_a_reason_and_the_owner_may_resubmit(client, store, artifacts, keys) -> None:
    alice, mod = keys["alice"], keys["mod"]
    video_id = completed(client, store, artifacts, alice)
    client.post(f"/v1/videos/{video_id}/publish", headers=alice)
    for body in ({}, {"reason": ""}, {"reason": "x" * 501}, {"reason": "ok", "extra": 1}):
        r = client.post(f"/v1/admin/reviews/{video_id}/reject", json=body, headers=mod)
        assert r.status_code == 400, body
        assert r.json()["error"]["param"] in ("reason", "extra"), r.json()
    r = client.post(f"/v1/admin/reviews/{video_id}/reject", json={"reason": "  too blurry  "}, headers=mod)
    assert r.status_code == 200 and r.json()["review"]["state"] == "rejected"
    owner_view = client.get(f"/v1/videos/{video_id}", headers=alice).json()["review"]
    assert owner_view["state"] == "rejected" and owner_view["reason"] == "too blurry"
    assert client.get(f"/v1/videos/{video_id}/content", headers=alice).status_code == 200  # still theirs
    r = client.post(f"/v1/videos/{video_id}/publish", headers=alice)
    assert r.json()["review"] == {**r.json()["review"], "state": "pending", "reason": None}


def test_approving_anything_but_a_pending_video_is_a_conflict(client, store, artifacts, keys) -> None:
    alice, mod = keys["alice"], keys["mod"]
    video_id = completed(client, store, artifacts, alice)
    r = client.post(f"/v1/admin/reviews/{video_id}/approve", headers=mod)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    queued = client.post("/v1/videos", json=TINY, headers=alice).json()["id"]
    r = client.post(f"/v1/videos/{queued}/publish", headers=alice)
    assert r.status_code == 409 and "only completed videos" in r.json()["error"]["message"]
    assert client.post(f"/v1/admin/reviews/{queued}/approve", headers=mod).status_code == 409
    assert client.post("/v1/admin/reviews/video_missing/approve", headers=mod).status_code == 404
    client.post(f"/v1/videos/{video_id}/publish", headers=alice)
    assert client.post(f"/v1/admin/reviews/{video_id}/approve", headers=mod).status_code == 200
    assert client.post(f"/v1/admin/reviews/{video_id}/approve", headers=mod).status_code == 409
    # A moderator takes a published video down with a reason.
    r = client.post(f"/v1/admin/reviews/{video_id}/reject", json={"reason": "reported"}, headers=mod)
    assert r.status_code == 200 and r.json()["review"]["state"] == "rejected" and r.json()["published_at"] is None
    assert gallery(client, alice) == []


def test_owners_act_on_their_own_videos_only(client, store, artifacts, keys) -> None:
    alice, bob, mod = keys["alice"], keys["bob"], keys["mod"]
    video_id = completed(client, store, artifacts, alice)
    for path in ("publish", "unpublish"):
        r = client.post(f"/v1/videos/{video_id}/{path}", headers=bob)
        assert r.status_code == 404 and r.json()["error"]["param"] == "video_id"
        # A moderator sees the video but decides through /v1/admin, not as its owner.
        assert client.post(f"/v1/videos/{video_id}/{path}", headers=mod).status_code == 403
    assert client.get(f"/v1/videos/{video_id}", headers=alice).json()["review"]["state"] == "none"


def test_deleting_an_approved_video_takes_it_out_of_the_gallery(client, store, artifacts, keys) -> None:
    alice, mod = keys["alice"], keys["mod"]
    video_id = completed(client, store, artifacts, alice)
    client.post(f"/v1/videos/{video_id}/publish", headers=alice)
    client.post(f"/v1/admin/reviews/{video_id}/approve", headers=mod)
    assert gallery(client, alice) == [video_id]
    assert client.delete(f"/v1/videos/{video_id}", headers=alice).status_code == 200
    assert gallery(client, alice) == []
    assert client.get(f"/v1/gallery/{video_id}/content", headers=alice).status_code == 404


def test_every_admin_route_refuses_an_ordinary_key(client, keys) -> None:
    """Every /v1/admin route (reviews, held, audit, and any other helper's) answers 403 to a user's key and
    401 without one; the audit log is for admins only."""
    paths = {p: ops for p, ops in client.get("/openapi.json").json()["paths"].items() if p.startswith("/v1/admin")}
    assert {"/v1/admin/reviews", "/v1/admin/held", "/v1/admin/audit"} <= set(paths)
    for template, operations in paths.items():
        path = re.sub(r"\{[^}]+\}", "video_x", template)
        for method in operations:
            r = client.request(method.upper(), path, json={"reason": "x"}, headers=keys["alice"])
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "insufficient_permissions"
            assert client.request(method.upper(), path, json={"reason": "x"}).status_code == 401, (method, path)
    assert client.get("/v1/admin/audit", headers=keys["mod"]).status_code == 403
    assert client.get("/v1/admin/audit", headers=keys["root"]).status_code == 200
    assert client.get("/v1/admin/reviews", headers=keys["root"]).status_code == 200  # admins moderate too


def test_the_blocklist_blocks_or_holds_at_enqueue(client, store, keys) -> None:
    alice, bob, mod = keys["alice"], keys["bob"], keys["mod"]
    r = client.post("/v1/videos", json={**TINY, "prompt": "some FORBIDDEN   words here"}, headers=alice)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "prompt" and err["code"] == "moderation_blocked" and '"forbidden words"' in err["message"]
    # Whole words only: "dragonfly" is not "dragon".
    assert (
        client.post("/v1/videos", json={**TINY, "prompt": "a dragonfly"}, headers=alice).json()["review"]["state"]
        == "none"
    )
    store.claim("w")  # take that one out of the way

    r = client.post("/v1/videos", json={**TINY, "prompt": "a Dragon at dawn"}, headers=alice)
    assert r.status_code == 200
    held = r.json()
    assert held["status"] == "queued" and held["queue_position"] is None
    assert (
        held["review"]["state"] == "held"
        and held["review"]["reason"] == 'the prompt matches the blocklist entry "dragon"'
    )
    assert store.claim("w") is None  # held: no worker takes it
    listed = client.get("/v1/admin/held", headers=mod).json()["data"]
    assert [i["video"]["id"] for i in listed] == [held["id"]]
    assert client.get("/v1/admin/held", headers=bob).status_code == 403

    r = client.post(f"/v1/admin/held/{held['id']}/release", headers=mod)
    assert r.status_code == 200 and r.json()["review"]["state"] == "none" and r.json()["queue_position"] == 1
    claim = store.claim("w")
    assert claim is not None and claim.job_id == held["id"]
    assert client.post(f"/v1/admin/held/{held['id']}/release", headers=mod).status_code == 409


def test_rejecting_a_held_job_cancels_it_with_the_reason(client, store, keys) -> None:
    alice, mod = keys["alice"], keys["mod"]
    held = client.post("/v1/videos", json={**TINY, "prompt": "dragon"}, headers=alice).json()
    assert client.post(f"/v1/admin/held/{held['id']}/reject", json={}, headers=mod).status_code == 400
    r = client.post(f"/v1/admin/held/{held['id']}/reject", json={"reason": "no dragons"}, headers=mod)
    assert r.status_code == 200
    video = client.get(f"/v1/videos/{held['id']}", headers=alice).json()
    assert video["status"] == "cancelled" and video["review"] == {**video["review"], "state": "blocked"}
    assert video["error"] == {"code": "moderation_blocked", "message": "no dragons"}
    assert store.get(held["id"]).status is JobStatus.CANCELLED  # type: ignore[union-attr]


def test_a_video_held_by_the_frame_check_is_withheld_from_its_owner(client, store, artifacts, keys) -> None:
    alice, mod = keys["alice"], keys["mod"]
    r = client.post("/v1/videos", json=TINY, headers=alice)
    video_id = r.json()["id"]
    claim = store.claim("w")
    assert claim is not None
    artifacts.put_bytes(f"videos/{video_id}/1/video.mp4", VIDEO_BYTES)
    art = Artifact(f"videos/{video_id}/1/video.mp4", None, None, len(VIDEO_BYTES), 9, 64, 64, 16, "cd" * 32)
    store.complete(claim, art, hold_reason="mean brightness 200 is above 100")
    video = client.get(f"/v1/videos/{video_id}", headers=alice).json()
    assert video["status"] == "completed" and video["review"]["state"] == "held"
    assert video["review"]["reason"] == "mean brightness 200 is above 100"
    r = client.get(f"/v1/videos/{video_id}/content", headers=alice)
    assert r.status_code == 409 and r.json()["error"]["code"] == "video_held"
    assert client.post(f"/v1/videos/{video_id}/publish", headers=alice).status_code == 409
    assert client.get(f"/v1/videos/{video_id}/content", headers=mod).status_code == 200
    client.post(f"/v1/admin/held/{video_id}/release", headers=mod)
    assert client.get(f"/v1/videos/{video_id}/content", headers=alice).content == VIDEO_BYTES
