"""Quotas and operator controls over HTTP, on SQLite and Postgres: the 50-create race through the API (group
commit included), 429 with Retry-After, admin limits, pause/resume, workers and drain, maintenance mode, and
the audit trail of every control."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelgen.api.app import create_app
from reelgen.domain import JobStatus
from reelgen.domain.accounts import Role
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.engines.registry import Registry
from reelgen.jobs import JobStore, open_job_store
from reelgen.jobs.quota_store import WorkerDrained
from reelgen.settings import Settings
from reelgen.storage.local import LocalArtifactStore

TINY = {"prompt": "a red fox", "size": "64x64", "seconds": "0.5", "steps": "2", "model": "tiny-random-wan"}


@dataclass
class Keys:
    alice: str
    alice_id: str
    admin: str


@pytest.fixture
def store(database_url: str) -> Iterator[JobStore]:
    s = open_job_store(database_url)
    yield s
    s.close()


@pytest.fixture
def keys(store: JobStore) -> Keys:
    alice, alice_key = store.accounts.add_user("alice")
    _, admin_key = store.accounts.add_user("root", Role.ADMIN)
    return Keys(alice_key, alice.id, admin_key)


@pytest.fixture
def client(tmp_path: Path, store: JobStore, keys: Keys) -> Iterator[TestClient]:
    registry = Registry()
    registry.register(TINY_RANDOM_WAN, "reelgen.engines.tiny_wan:create_engine")
    app = create_app(
        Settings(home=tmp_path, maintenance_retry_after_seconds=120),
        store=store,
        artifacts=LocalArtifactStore(tmp_path / "videos"),
        registry=registry,
    )
    with TestClient(app) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def limits(client: TestClient, keys: Keys, user: str, **body: Any) -> dict[str, Any]:
    r = client.post(f"/v1/admin/users/{user}/limits", json=body, headers=auth(keys.admin))
    assert r.status_code == 200, r.text
    return r.json()


def test_fifty_parallel_creates_through_the_api_with_budget_for_one(client: TestClient, keys: Keys) -> None:
    # Learn what one tiny job is charged (nothing measured yet: the model family's stated default), then refund it.
    r = client.post("/v1/videos", json=TINY, headers=auth(keys.alice))
    assert r.status_code == 200, r.text
    one = client.get("/v1/admin/users/alice/limits", headers=auth(keys.admin)).json()["usage"]["charged_seconds"]
    assert one > 0
    assert client.post(f"/v1/videos/{r.json()['id']}/cancel", headers=auth(keys.alice)).status_code == 200
    body = limits(client, keys, "alice", gpu_seconds=one * 1.5, period="day")
    assert body["usage"]["charged_seconds"] == 0 and body["gpu_seconds"] == pytest.approx(one * 1.5)

    barrier = threading.Barrier(50)
    answers: list[Any] = []
    lock = threading.Lock()

    def create(i: int) -> None:
        barrier.wait()
        response = client.post("/v1/videos", json={**TINY, "prompt": f"fox {i}"}, headers=auth(keys.alice))
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) == 1 and statuses.count(429) == 49, statuses
    refused = next(a for a in answers if a.status_code == 429)
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded" and error["type"] == "rate_limit_error"
    assert "GPU-time budget exceeded" in error["message"] and "today (UTC)" in error["message"]
    assert int(refused.headers["retry-after"]) > 0
    usage = client.get(f"/v1/admin/users/{keys.alice_id}/limits", headers=auth(keys.admin)).json()["usage"]
    assert usage["charged_seconds"] == pytest.approx(one) and usage["queued"] == 1


def test_queue_depth_cap_answers_429_and_other_users_are_unaffected(client: TestClient, keys: Keys) -> None:
    limits(client, keys, "alice", max_queued=1)
    assert client.post("/v1/videos", json=TINY, headers=auth(keys.alice)).status_code == 200
    r = client.post("/v1/videos", json=TINY, headers=auth(keys.alice))
    assert r.status_code == 429 and "queue-depth cap" in r.json()["error"]["message"] and r.headers["retry-after"]
    assert client.post("/v1/videos", json=TINY, headers=auth(keys.admin)).status_code == 200
    body = client.get("/v1/admin/users/alice/limits", headers=auth(keys.admin)).json()
    assert body["max_queued"] == 1 and body["usage"]["queued"] == 1
    assert limits(client, keys, "alice", max_queued=None)["max_queued"] is None


def test_limits_of_an_unknown_user_are_404_and_bad_fields_400(client: TestClient, keys: Keys) -> None:
    assert client.get("/v1/admin/users/nobody/limits", headers=auth(keys.admin)).status_code == 404
    r = client.post("/v1/admin/users/alice/limits", json={"period": "week"}, headers=auth(keys.admin))
    assert r.status_code == 400 and r.json()["error"]["param"] == "period"
    r = client.post("/v1/admin/users/alice/limits", json={"gpu": 1}, headers=auth(keys.admin))
    assert r.status_code == 400


def test_pause_and_resume_the_queue(client: TestClient, store: JobStore, keys: Keys) -> None:
    r = client.post("/v1/admin/queue/pause", headers=auth(keys.admin))
    assert r.status_code == 200 and r.json()["paused"] is True
    # Creates are still accepted and queued; workers claim nothing.
    job_id = client.post("/v1/videos", json=TINY, headers=auth(keys.alice)).json()["id"]
    assert store.claim("w1") is None
    status = client.get("/v1/admin/queue", headers=auth(keys.admin)).json()
    assert status["queued"] == 1 and status["users"] == [{"user_id": keys.alice_id, "queued": 1, "running": 0}]
    assert client.post("/v1/admin/queue/resume", headers=auth(keys.admin)).json()["paused"] is False
    claim = store.claim("w1")
    assert claim is not None and claim.job_id == job_id
    actions = [e.action for e in store.audit_log(limit=10)]
    assert "queue.pause" in actions and "queue.resume" in actions


def test_workers_list_and_drain(client: TestClient, store: JobStore, keys: Keys) -> None:
    assert client.post("/v1/admin/workers/ghost/drain", headers=auth(keys.admin)).status_code == 404
    assert store.claim("gpu-box:1", loaded_model="tiny-random-wan") is None  # checks in
    listed = client.get("/v1/admin/workers", headers=auth(keys.admin)).json()["data"]
    assert [(w["id"], w["state"], w["model"]) for w in listed] == [("gpu-box:1", "active", "tiny-random-wan")]
    r = client.post("/v1/admin/workers/gpu-box:1/drain", headers=auth(keys.admin))
    assert r.status_code == 200 and r.json()["state"] == "draining"
    client.post("/v1/videos", json=TINY, headers=auth(keys.alice))
    with pytest.raises(WorkerDrained):
        store.claim("gpu-box:1")
    assert client.get("/v1/admin/workers", headers=auth(keys.admin)).json()["data"][0]["state"] == "drained"
    assert store.claim("gpu-box:2") is not None  # other workers go on
    assert any(e.action == "worker.drain" and e.target == "gpu-box:1" for e in store.audit_log(limit=10))


def test_maintenance_mode_refuses_writes_and_keeps_reads(client: TestClient, store: JobStore, keys: Keys) -> None:
    job_id = client.post("/v1/videos", json=TINY, headers=auth(keys.alice)).json()["id"]
    r = client.post("/v1/admin/maintenance", json={"on": True}, headers=auth(keys.admin))
    assert r.status_code == 200 and r.json()["maintenance"] is True
    refused = client.post("/v1/videos", json=TINY, headers=auth(keys.alice))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "120"
    assert refused.json()["error"]["code"] == "maintenance" and "maintenance mode" in refused.json()["error"]["message"]
    assert client.post(f"/v1/videos/{job_id}/cancel", headers=auth(keys.alice)).status_code == 503
    assert client.delete(f"/v1/videos/{job_id}", headers=auth(keys.alice)).status_code == 503
    assert client.get(f"/v1/videos/{job_id}", headers=auth(keys.alice)).status_code == 200
    assert client.get("/v1/videos", headers=auth(keys.alice)).status_code == 200
    # Workers keep working: a running job still completes.
    claim = store.claim("w1")
    assert claim is not None and claim.job.status is JobStatus.IN_PROGRESS
    r = client.post("/v1/admin/maintenance", json={"on": False}, headers=auth(keys.admin))
    assert r.json()["maintenance"] is False
    assert client.post("/v1/videos", json=TINY, headers=auth(keys.alice)).status_code == 200
    actions = [e.action for e in store.audit_log(limit=10)]
    assert "maintenance.on" in actions and "maintenance.off" in actions
