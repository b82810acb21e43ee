"""Authentication and isolation over the real app, a real SQLite store and artifact folder: 401 on every /v1
route without a key, 403 on every /v1/admin route for an ordinary key, another user's videos answered exactly
like missing ones on every video endpoint, moderators seeing everyone's, CSRF for cookie sessions, studio login.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelgen.api.app import create_app
from reelgen.domain.accounts import Role
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.engines.registry import Registry
from reelgen.jobs import JobStore, open_job_store
from reelgen.settings import Settings
from reelgen.storage.local import LocalArtifactStore
from tests.integration.test_api_http import TINY, complete_next

MISSING_ID = "video_0000000000000000000000000000000000000000"
CORE_VIDEO_ROUTES = [
    "GET /v1/videos/x",
    "DELETE /v1/videos/x",
    "GET /v1/videos/x/content",
    "GET /v1/videos/x/events",
    "POST /v1/videos/x/remix",
    "POST /v1/videos/x/cancel",
]


@dataclass
class People:
    alice: str
    bob: str
    mod: str
    admin: str
    alice_id: str
    bob_id: str


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    s = open_job_store(f"sqlite:///{tmp_path / 'reelgen.db'}")
    yield s
    s.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "videos")


def make_client(tmp_path: Path, store: JobStore, artifacts: LocalArtifactStore, **settings: Any) -> TestClient:
    registry = Registry()
    registry.register(TINY_RANDOM_WAN, "reelgen.engines.tiny_wan:create_engine")
    app = create_app(Settings(home=tmp_path, **settings), store=store, artifacts=artifacts, registry=registry)
    return TestClient(app)


@pytest.fixture
def people(store: JobStore) -> People:
    alice, alice_key = store.accounts.add_user("alice", password="alice-password")
    bob, bob_key = store.accounts.add_user("bob")
    _, mod_key = store.accounts.add_user("mod", Role.MODERATOR)
    _, admin_key = store.accounts.add_user("root", Role.ADMIN)
    return People(alice_key, bob_key, mod_key, admin_key, alice.id, bob.id)


@pytest.fixture
def client(tmp_path: Path, store: JobStore, artifacts: LocalArtifactStore, people: People) -> Iterator[TestClient]:
    with make_client(tmp_path, store, artifacts) as c:  # auth=auto: on, since users exist
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def v1_routes(client: TestClient, prefix: str = "/v1") -> list[tuple[str, str]]:
    """(method, path with every {param} filled in) for every API route of the app under `prefix`, from the
    app's own OpenAPI document (every API route is in it; routes added later are covered automatically)."""
    found = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        if path.startswith(prefix):
            for method in operations:
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "x", path)))
    assert found
    return sorted(found)


def assert_envelope(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code
    return error


# --- authentication ----------------------------------------------------------------------------------------
def test_every_v1_route_answers_401_without_a_valid_key(client: TestClient, people: People) -> None:
    routes = v1_routes(client)
    paths = {p for _, p in routes}
    assert {"/v1/videos", "/v1/models", "/v1/gallery", "/v1/videos/x/events", "/v1/admin/users"} <= paths
    for method, path in [*routes, ("GET", "/v1/no-such-route")]:
        for headers in ({}, bearer("rg-000000000000-" + "a" * 43), bearer("local"), {"Authorization": "Basic eDp5"}):
            r = client.request(method, path, headers=headers)
            error = assert_envelope(r, 401, "invalid_api_key")
            assert error["type"] == "authentication_error"
            assert r.headers["www-authenticate"] == "Bearer"
    # The studio's health check and docs stay reachable.
    assert client.get("/healthz").status_code == 200


def test_auth_on_without_users_and_off_with_users(
    tmp_path: Path, store: JobStore, artifacts: LocalArtifactStore
) -> None:
    with make_client(tmp_path, store, artifacts, auth="on") as c:
        assert_envelope(c.get("/v1/models"), 401)
    with make_client(tmp_path, store, artifacts) as c:  # auto, no users: single-owner mode, any token
        assert c.get("/v1/models", headers=bearer("anything")).status_code == 200
        created = c.post("/v1/videos", json=TINY)
        assert created.status_code == 200
        assert store.get(created.json()["id"]).owner == "local"  # type: ignore[union-attr]
    store.accounts.add_user("alice")
    with make_client(tmp_path, store, artifacts, auth="off") as c:
        assert c.get("/v1/videos").status_code == 200


def test_a_key_works_until_revoked_or_disabled_through_the_admin_api(client: TestClient, people: People) -> None:
    assert client.get("/v1/models", headers=bearer(people.bob)).status_code == 200
    admin = bearer(people.admin)
    keys = client.get("/v1/admin/users/bob/keys", headers=admin).json()["data"]
    assert len(keys) == 1 and keys[0]["last_used_at"] is not None and keys[0]["revoked_at"] is None
    assert client.post(f"/v1/admin/keys/{keys[0]['id']}/revoke", headers=admin).json()["revoked_at"] is not None
    assert_envelope(client.get("/v1/models", headers=bearer(people.bob)), 401)  # at once (cache dropped)

    created = client.post("/v1/admin/users", headers=admin, json={"name": "carol", "role": "user"})
    assert created.status_code == 200, created.text
    carol_key = created.json()["api_key"]
    assert client.get("/v1/videos", headers=bearer(carol_key)).json()["data"] == []
    assert client.post("/v1/admin/users/carol/disable", headers=admin).json()["disabled"] is True
    assert_envelope(client.get("/v1/videos", headers=bearer(carol_key)), 401)

    other = client.post("/v1/admin/users", headers=admin, json={"name": "dave"}).json()["api_key"]
    assert client.post("/v1/admin/users/dave/revoke-keys", headers=admin).json()["revoked"] == 1
    assert_envelope(client.get("/v1/videos", headers=bearer(other)), 401)

    names = {u["name"]: u for u in client.get("/v1/admin/users", headers=admin).json()["data"]}
    assert set(names) == {"alice", "bob", "mod", "root", "carol", "dave"} and names["carol"]["disabled"]
    assert_envelope(client.post("/v1/admin/users", headers=admin, json={"name": "carol"}), 409)
    assert_envelope(client.post("/v1/admin/users", headers=admin, json={"name": "x", "role": "boss"}), 400)
    assert_envelope(client.get("/v1/admin/users/nobody/keys", headers=admin), 404)


def test_every_admin_route_answers_403_to_an_ordinary_key(client: TestClient, people: People) -> None:
    routes = v1_routes(client, "/v1/admin")
    for method, path in routes:
        r = client.request(method, path, headers=bearer(people.alice))
        error = assert_envelope(r, 403, "insufficient_permissions")
        assert error["type"] == "permission_error"
    # Admin-only routes of this module also refuse a moderator; an admin passes the role check.
    for method, path in [("GET", "/v1/admin/users"), ("POST", "/v1/admin/keys/x/revoke")]:
        assert_envelope(client.request(method, path, headers=bearer(people.mod)), 403)
    for method, path in routes:
        r = client.request(method, path, headers=bearer(people.admin))
        assert r.status_code not in (401, 403), (method, path, r.text)


# --- isolation ---------------------------------------------------------------------------------------------
def video_routes(client: TestClient) -> list[tuple[str, str]]:
    return [(m, p) for m, p in v1_routes(client, "/v1/videos/") if p.startswith("/v1/videos/x")]


def test_another_users_video_is_answered_exactly_like_a_missing_one(
    client: TestClient, store: JobStore, artifacts: LocalArtifactStore, people: People
) -> None:
    alice, bob = bearer(people.alice), bearer(people.bob)
    video_id = client.post("/v1/videos", headers=alice, json=TINY).json()["id"]
    assert complete_next(store, artifacts) == video_id
    assert client.get(f"/v1/videos/{video_id}/content", headers=alice).status_code == 200

    requests: list[tuple[str, str, dict[str, Any]]] = []
    for method, path in video_routes(client):
        kwargs: dict[str, Any] = {"json": {"prompt": "mine now"}} if method == "POST" else {}
        requests.append((method, path, kwargs))
    for variant in ("thumbnail", "spritesheet"):
        requests.append(("GET", f"/v1/videos/x/content?variant={variant}", {}))
    requests.append(("GET", "/v1/videos/x/content?variation=1", {}))
    covered = {(m, p.split("?")[0]) for m, p, _ in requests}
    for expected in CORE_VIDEO_ROUTES:
        method, path = expected.split(" ")
        assert (method, path) in covered

    statuses = {}
    for method, path, kwargs in requests:
        foreign = client.request(method, path.replace("/x", f"/{video_id}", 1), headers=bob, **kwargs)
        missing = client.request(method, path.replace("/x", f"/{MISSING_ID}", 1), headers=bob, **kwargs)
        assert foreign.status_code == missing.status_code, (method, path, foreign.text, missing.text)
        assert foreign.json() == {
            "error": {
                **missing.json()["error"],
                "message": missing.json()["error"]["message"].replace(MISSING_ID, video_id),
            }
        }, (method, path)
        statuses[(method, path)] = foreign.status_code
    for expected in CORE_VIDEO_ROUTES:
        method, path = expected.split(" ")
        assert statuses[(method, path)] == 404, expected

    # Edits and extensions naming someone else's video learn nothing about it either.
    for path in ("/v1/videos/edits", "/v1/videos/extensions"):
        body = {"prompt": "x", "video": {"id": video_id}}
        foreign = client.post(path, headers=bob, json=body)
        missing = client.post(path, headers=bob, json={**body, "video": {"id": MISSING_ID}})
        assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json())

    # Lists: bob sees nothing of alice's, and cannot page from her id or ask for her list.
    assert client.get("/v1/videos", headers=bob).json()["data"] == []
    assert_envelope(client.get(f"/v1/videos?after={video_id}", headers=bob), 400)
    assert_envelope(client.get(f"/v1/videos?owner={people.alice_id}", headers=bob), 400)
    assert_envelope(client.get("/v1/videos?owner=all", headers=bob), 400)
    # Alice's video is untouched by all of that.
    assert client.get(f"/v1/videos/{video_id}", headers=alice).json()["status"] == "completed"


def test_moderators_and_admins_see_everyones_videos(client: TestClient, people: People) -> None:
    a = client.post("/v1/videos", headers=bearer(people.alice), json=TINY).json()["id"]
    b = client.post("/v1/videos", headers=bearer(people.bob), json=TINY).json()["id"]
    for key in (people.mod, people.admin):
        staff = bearer(key)
        assert client.get(f"/v1/videos/{a}", headers=staff).status_code == 200
        assert client.get(f"/v1/videos/{b}", headers=staff).status_code == 200
        assert client.get("/v1/videos", headers=staff).json()["data"] == []  # their own by default
        everyone = [v["id"] for v in client.get("/v1/videos?owner=all", headers=staff).json()["data"]]
        assert everyone == [b, a]
        assert [v["id"] for v in client.get(f"/v1/videos?owner={people.bob_id}", headers=staff).json()["data"]] == [b]
    # A remix by a moderator is the moderator's own video.
    remix = client.post(f"/v1/videos/{a}/remix", headers=bearer(people.mod), json={"prompt": "again"}).json()["id"]
    assert_envelope(client.get(f"/v1/videos/{remix}", headers=bearer(people.alice)), 404)
    # Idempotency keys are per owner: the same key by two users makes two videos.
    key = {"Idempotency-Key": "same-key"}
    x = client.post("/v1/videos", headers={**bearer(people.alice), **key}, json=TINY).json()["id"]
    y = client.post("/v1/videos", headers={**bearer(people.bob), **key}, json=TINY).json()["id"]
    assert x != y


# --- cookie sessions ---------------------------------------------------------------------------------------
def test_cookie_session_needs_the_csrf_token_on_unsafe_requests(
    client: TestClient, store: JobStore, people: People
) -> None:
    token, csrf = store.accounts.create_session(people.alice_id, 3600)
    client.cookies.set("reelgen_session", token)
    assert client.get("/v1/videos").status_code == 200
    assert_envelope(client.post("/v1/videos", json=TINY), 403, "insufficient_permissions")
    assert_envelope(client.post("/v1/videos", json=TINY, headers={"X-CSRF-Token": "wrong"}), 403)
    created = client.post("/v1/videos", json=TINY, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 200
    assert_envelope(client.delete(f"/v1/videos/{created.json()['id']}"), 403)
    # A Bearer key needs no CSRF token, even with a cookie present.
    assert client.post("/v1/videos", json=TINY, headers=bearer(people.bob)).status_code == 200
    client.cookies.set("reelgen_session", "forged")
    assert_envelope(client.get("/v1/videos"), 401)


def test_studio_login_pages_and_logout(client: TestClient, people: People) -> None:
    r = client.get("/library", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/library"
    page = client.get("/login?next=/library")
    assert page.status_code == 200 and 'name="password"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    bad = client.post("/login", data={"name": "alice", "password": "nope", "next": "/library"}, follow_redirects=False)
    assert bad.status_code == 401 and "Wrong name or password" in bad.text
    ok = client.post(
        "/login", data={"name": "alice", "password": "alice-password", "next": "/library"}, follow_redirects=False
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/library"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    library = client.get("/library")
    assert library.status_code == 200 and 'id="account-name"' in library.text and ">alice<" in library.text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', library.text)
    assert csrf is not None
    assert client.get("/v1/videos").status_code == 200
    # An open redirect is not possible.
    assert client.get("/login?next=//evil.example", follow_redirects=False).headers["location"] == "/"
    # Logout needs the CSRF field; then the session is gone.
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    out = client.post("/logout", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/library", follow_redirects=False).status_code == 303
    assert_envelope(client.get("/v1/videos"), 401)
    # Signing in with an API key works too.
    by_key = client.post("/login", data={"api_key": people.bob, "next": "/"}, follow_redirects=False)
    assert by_key.status_code == 303
    assert ">bob<" in client.get("/").text


def test_studio_pages_need_no_login_with_auth_off(
    tmp_path: Path, store: JobStore, artifacts: LocalArtifactStore
) -> None:
    with make_client(tmp_path, store, artifacts) as c:
        page = c.get("/library")
        assert page.status_code == 200 and "csrf-token" not in page.text and "account-name" not in page.text
        assert c.get("/login", follow_redirects=False).status_code == 303
