"""The gallery extension over HTTP in single-owner mode (authentication off: the local owner is also the
moderator): POST /v1/videos/{id}/publish submits, POST /v1/admin/reviews/{id}/approve publishes, GET /v1/gallery
(paged), the Video object's `published_at` and `review`, and the studio's pages mounted next to the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reelgen.api.app import create_app
from reelgen.domain import Artifact
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.engines.registry import Registry
from reelgen.jobs import JobStore, open_job_store
from reelgen.settings import Settings
from reelgen.storage.local import LocalArtifactStore

TINY = {"prompt": "a red fox", "size": "64x64", "seconds": "0.5", "steps": 2}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    s = open_job_store(f"sqlite:///{tmp_path / 'reelgen.db'}")
    yield s
    s.close()


@pytest.fixture
def client(tmp_path: Path, store: JobStore) -> Iterator[TestClient]:
    registry = Registry()
    registry.register(TINY_RANDOM_WAN, "reelgen.engines.tiny_wan:create_engine")
    app = create_app(
        Settings(home=tmp_path), store=store, artifacts=LocalArtifactStore(tmp_path / "videos"), registry=registry
    )
    with TestClient(app) as c:
        yield c


def completed(client: TestClient, store: JobStore, prompt: str) -> str:
    video_id = client.post("/v1/videos", json={**TINY, "prompt": prompt}).json()["id"]
    claim = store.claim("test-worker")
    assert claim is not None and claim.job_id == video_id
    store.complete(
        claim,
        Artifact(
            video_key=f"videos/{video_id}/1/video.mp4",
            thumbnail_key=None,
            spritesheet_key=None,
            bytes=1,
            num_frames=9,
            width=64,
            height=64,
            fps=16,
            sha256="ab" * 32,
        ),
    )
    return video_id


def test_publish_lists_in_the_gallery_newest_publication_first(client: TestClient, store: JobStore) -> None:
    a, b, c = (completed(client, store, f"fox {i}") for i in range(3))
    assert client.get("/v1/gallery").json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    assert client.get(f"/v1/videos/{a}").json()["published_at"] is None
    for video_id in (b, a, c):
        r = client.post(f"/v1/videos/{video_id}/publish")
        assert r.status_code == 200 and r.json()["id"] == video_id and r.json()["published_at"] is None
        assert r.json()["review"]["state"] == "pending"
        r = client.post(f"/v1/admin/reviews/{video_id}/approve")
        assert r.status_code == 200 and r.json()["published_at"] is not None
    page = client.get("/v1/gallery", params={"limit": 2}).json()
    assert [v["id"] for v in page["data"]] == [c, a] and page["has_more"] and page["last_id"] == a
    rest = client.get("/v1/gallery", params={"limit": 2, "after": page["last_id"]}).json()
    assert [v["id"] for v in rest["data"]] == [b] and not rest["has_more"]
    assert rest["data"][0]["params"]["prompt"] == "fox 1" and rest["data"][0]["status"] == "completed"

    r = client.post(f"/v1/videos/{a}/unpublish")
    assert r.status_code == 200 and r.json()["published_at"] is None
    assert [v["id"] for v in client.get("/v1/gallery").json()["data"]] == [c, b]
    # The owner's own list shows the flag too.
    flags = {v["id"]: v["published_at"] is not None for v in client.get("/v1/videos").json()["data"]}
    assert flags == {a: False, b: True, c: True}


def test_only_completed_videos_can_be_published(client: TestClient) -> None:
    queued = client.post("/v1/videos", json=TINY).json()["id"]
    r = client.post(f"/v1/videos/{queued}/publish")
    assert r.status_code == 409 and "only completed videos can be submitted" in r.json()["error"]["message"]
    assert r.headers["x-should-retry"] == "false"
    missing = client.post("/v1/videos/video_missing/publish")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "video_id"


def test_gallery_rejects_bad_paging(client: TestClient, store: JobStore) -> None:
    unpublished = completed(client, store, "fox")
    r = client.get("/v1/gallery", params={"after": unpublished})
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"
    r = client.get("/v1/gallery", params={"limit": 0})
    assert r.status_code == 400 and r.json()["error"]["param"] == "limit"


def test_deleting_a_published_video_takes_it_out_of_the_gallery(client: TestClient, store: JobStore) -> None:
    video_id = completed(client, store, "fox")
    client.post(f"/v1/videos/{video_id}/publish")
    client.post(f"/v1/admin/reviews/{video_id}/approve")
    assert client.get("/v1/gallery").json()["data"] != []
    assert client.delete(f"/v1/videos/{video_id}").status_code == 200
    assert client.get("/v1/gallery").json()["data"] == []


def test_the_studio_is_served_next_to_the_api(client: TestClient) -> None:
    for path in ("/", "/library", "/library/video_x", "/gallery"):
        r = client.get(path)
        assert r.status_code == 200 and "reelgen studio" in r.text, path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    js = client.get("/static/api.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.headers["cache-control"] == "no-cache" and js.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/missing.js").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/gallery" in paths and "/v1/videos/{video_id}/publish" in paths and "/" not in paths
