"""`reelgen users …` as an operator runs it (real subprocesses), checked against the real API on the same
database: the key `users add` prints works, `revoke` and `disable` make it 401, `passwd` enables studio login."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reelgen.api.app import create_app
from reelgen.settings import Settings


def run_users(*args: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGEN_")}
    env["REELGEN_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "reelgen.cli", "users", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def status_with(home: Path, key: str) -> int:
    """GET /v1/videos with `key` on a fresh server process-equivalent (no remembered keys)."""
    with TestClient(create_app(Settings(home=home))) as client:
        return client.get("/v1/videos", headers={"Authorization": f"Bearer {key}"}).status_code


def test_add_prints_a_working_key_last_and_revoke_and_disable_stop_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    added = run_users("add", "alice", "--role", "moderator", home=home)
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip().splitlines()[-1]
    assert key.startswith("rg-")
    assert status_with(home, key) == 200
    assert status_with(home, "rg-nope-nope") == 401

    listed = run_users("list", home=home)
    assert listed.returncode == 0 and "alice" in listed.stdout and "moderator" in listed.stdout

    second = run_users("new-key", "alice", home=home).stdout.strip().splitlines()[-1]
    keys = run_users("keys", "alice", home=home)
    key_id = key.split("-")[1]
    assert keys.returncode == 0 and key_id in keys.stdout and second.split("-")[1] in keys.stdout
    revoked = run_users("revoke", key_id, home=home)
    assert revoked.returncode == 0, revoked.stderr
    assert status_with(home, key) == 401
    assert status_with(home, second) == 200
    assert "revoked" in run_users("keys", "alice", home=home).stdout

    disabled = run_users("disable", "alice", home=home)
    assert disabled.returncode == 0, disabled.stderr
    assert status_with(home, second) == 401
    assert "disabled" in run_users("list", home=home).stdout

    third = run_users("add", "bob", home=home).stdout.strip().splitlines()[-1]
    assert status_with(home, third) == 200
    assert "revoked 1 key" in run_users("revoke-all", "bob", home=home).stdout
    assert status_with(home, third) == 401


def test_errors_and_passwords(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_users("add", "carol", "--password-stdin", home=home, stdin="a good password\n").returncode == 0
    duplicate = run_users("add", "carol", home=home)
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    assert run_users("revoke", "nosuchkey", home=home).returncode == 2
    assert run_users("disable", "nobody", home=home).returncode == 2
    short = run_users("passwd", "carol", "--password-stdin", home=home, stdin="short\n")
    assert short.returncode == 2 and "at least" in short.stderr
    assert run_users("passwd", "carol", "--password-stdin", home=home, stdin="another password\n").returncode == 0
    with TestClient(create_app(Settings(home=home))) as client:
        r = client.post("/login", data={"name": "carol", "password": "another password"}, follow_redirects=False)
        assert r.status_code == 303


def test_add_with_a_gpu_second_budget(tmp_path: Path) -> None:
    home = tmp_path / "home"
    added = run_users("add", "dave", "--gpu-seconds", "120", home=home)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip().splitlines()[-1].startswith("rg-")
    from reelgen.runtime import open_job_store_from

    store = open_job_store_from(Settings(home=home))
    try:
        user = store.accounts.get_user_by_name("dave")
        assert user is not None
        assert store.user_limits(user.id).gpu_seconds == 120  # type: ignore[attr-defined]
    finally:
        store.close()


def test_serve_refuses_a_public_address_without_authentication(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGEN_")}
    env["REELGEN_HOME"] = str(tmp_path / "home")
    refused = subprocess.run(
        [sys.executable, "-m", "reelgen.cli", "serve", "--host", "0.0.0.0", "--port", "9", "--no-worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "refusing to serve on 0.0.0.0 without authentication" in refused.stderr
    assert "--allow-unauthenticated" in refused.stderr


def test_public_bind_rules(tmp_path: Path) -> None:
    from reelgen.runtime import open_job_store_from
    from reelgen.server import UnauthenticatedBind, check_bind

    settings = Settings(home=tmp_path)
    assert check_bind(settings, "127.0.0.1", allow_unauthenticated=False) is settings
    with pytest.raises(UnauthenticatedBind):
        check_bind(settings, "0.0.0.0", allow_unauthenticated=False)
    assert check_bind(settings, "0.0.0.0", allow_unauthenticated=True).auth == "auto"
    with pytest.raises(UnauthenticatedBind):
        check_bind(settings.model_copy(update={"auth": "off"}), "::", allow_unauthenticated=False)
    assert check_bind(settings.model_copy(update={"auth": "on"}), "0.0.0.0", allow_unauthenticated=False).auth == "on"
    store = open_job_store_from(settings)
    try:
        store.accounts.add_user("root", "admin")
    finally:
        store.close()
    # With a user, a public bind is fine, and this process keeps authentication on whatever happens to users.
    assert check_bind(settings, "0.0.0.0", allow_unauthenticated=False).auth == "on"
