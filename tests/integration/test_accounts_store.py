"""The account store (users, API keys, studio sessions, audit records) on real SQLite and Postgres."""

from __future__ import annotations

import json
import time

import pytest

from reelgen.domain.accounts import Role
from reelgen.domain.errors import Conflict, InvalidParams, NotFound
from reelgen.jobs import JobStore
from reelgen.jobs.accounts import TOUCH_INTERVAL_SECONDS, hash_secret, parse_key
from tests.conftest import make_params


def audit(store: JobStore) -> list[dict]:
    with store._tx(write=False) as tx:  # type: ignore[attr-defined]
        return tx.all("SELECT actor, action, target, data FROM audit_log ORDER BY seq")


def test_add_user_returns_a_working_key_stored_only_as_a_hash(store: JobStore) -> None:
    accounts = store.accounts
    assert not accounts.has_users()
    user, key = accounts.add_user("alice", Role.USER)
    assert user.name == "alice" and user.role is Role.USER and not user.disabled
    assert accounts.has_users()
    parsed = parse_key(key)
    assert parsed is not None
    key_id, secret = parsed
    assert len(secret) >= 43  # 256 bits, url-safe base64
    with store._tx(write=False) as tx:  # type: ignore[attr-defined]
        row = tx.one("SELECT secret_hash FROM api_keys WHERE id = ?", (key_id,))
    assert row is not None and row["secret_hash"] == hash_secret(secret) and secret not in row["secret_hash"]
    principal = accounts.authenticate_key(key)
    assert principal is not None
    assert (principal.user_id, principal.name, principal.role, principal.key_id) == (
        user.id,
        "alice",
        Role.USER,
        key_id,
    )
    # Wrong secret, unknown id, malformed keys.
    assert accounts.authenticate_key(f"rg-{key_id}-{secret[:-1]}x") is None
    assert accounts.authenticate_key(f"rg-000000000000-{secret}") is None
    assert accounts.authenticate_key("local") is None
    assert accounts.authenticate_key("") is None


def test_names_are_unique_and_validated(store: JobStore) -> None:
    store.accounts.add_user("bob")
    with pytest.raises(Conflict):
        store.accounts.add_user("bob", Role.ADMIN)
    with pytest.raises(InvalidParams):
        store.accounts.add_user("no spaces")
    with pytest.raises(InvalidParams):
        store.accounts.add_user("carol", "superuser")
    with pytest.raises(InvalidParams):
        store.accounts.add_user("carol", password="short")
    assert [u.name for u in store.accounts.list_users()] == ["bob"]


def test_revoke_one_key_and_all_keys(store: JobStore) -> None:
    accounts = store.accounts
    user, first = accounts.add_user("alice")
    second = accounts.create_key(user.id)
    third = accounts.create_key(user.id)
    keys = accounts.list_keys(user.id)
    assert len(keys) == 3 and all(k.revoked_at is None for k in keys)
    first_id = parse_key(first)[0]  # type: ignore[index]
    revoked = accounts.revoke_key(first_id)
    assert revoked.revoked_at is not None
    assert accounts.revoke_key(first_id).revoked_at == revoked.revoked_at  # twice: the first time stays
    assert accounts.authenticate_key(first) is None
    assert accounts.authenticate_key(second) is not None
    assert accounts.revoke_all_keys(user.id) == 2
    assert accounts.authenticate_key(second) is None and accounts.authenticate_key(third) is None
    assert accounts.revoke_all_keys(user.id) == 0
    with pytest.raises(NotFound):
        accounts.revoke_key("nosuchkey")


def test_disable_stops_keys_and_sessions_at_once(store: JobStore) -> None:
    accounts = store.accounts
    user, key = accounts.add_user("alice", password="correct horse")
    token, csrf = accounts.create_session(user.id, 3600)
    found = accounts.session_principal(token)
    assert found is not None and found[0].user_id == user.id and found[1] == csrf
    assert accounts.disable_user("alice").disabled
    assert accounts.authenticate_key(key) is None
    assert accounts.session_principal(token) is None
    assert accounts.login("alice", "correct horse") is None
    assert accounts.has_users()  # disabled users still turn authentication on
    accounts.enable_user("alice")
    assert accounts.authenticate_key(key) is not None
    assert accounts.session_principal(token) is None  # sessions were ended, not suspended
    with pytest.raises(NotFound):
        accounts.disable_user("nobody")


def test_login_with_password_and_sessions(store: JobStore) -> None:
    accounts = store.accounts
    user, _ = accounts.add_user("alice", Role.MODERATOR, password="correct horse")
    accounts.add_user("keyonly")
    assert accounts.login("alice", "wrong horse") is None
    assert accounts.login("nobody", "correct horse") is None
    assert accounts.login("keyonly", "") is None  # no password set: key login only
    principal = accounts.login("alice", "correct horse")
    assert principal is not None and principal.user_id == user.id and principal.role is Role.MODERATOR
    with store._tx(write=False) as tx:  # type: ignore[attr-defined]
        stored = tx.one("SELECT password_hash FROM users WHERE id = ?", (user.id,))
    assert (
        stored is not None and stored["password_hash"].startswith("scrypt$") and "horse" not in stored["password_hash"]
    )
    accounts.set_password("alice", "battery staple")
    assert accounts.login("alice", "correct horse") is None
    assert accounts.login("alice", "battery staple") is not None

    token, _ = accounts.create_session(user.id, 3600)
    assert accounts.session_principal(token) is not None
    accounts.delete_session(token)
    assert accounts.session_principal(token) is None
    expired, _ = accounts.create_session(user.id, -1)
    assert accounts.session_principal(expired) is None
    assert accounts.session_principal("not-a-token") is None


def test_last_used_is_written_at_most_once_a_minute(store: JobStore) -> None:
    accounts = store.accounts
    user, key = accounts.add_user("alice")
    assert accounts.list_keys(user.id)[0].last_used_at is None
    before = time.time()
    accounts.authenticate_key(key)
    first = accounts.list_keys(user.id)[0].last_used_at
    assert first is not None and first >= before - 5
    accounts.authenticate_key(key)
    assert accounts.list_keys(user.id)[0].last_used_at == first  # within the minute: no write
    key_id = parse_key(key)[0]  # type: ignore[index]
    with store._tx() as tx:  # type: ignore[attr-defined]
        tx.run("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (first - TOUCH_INTERVAL_SECONDS - 1, key_id))
    accounts.authenticate_key(key)
    assert accounts.list_keys(user.id)[0].last_used_at >= first  # type: ignore[operator]


def test_roles_and_changes_are_audited(store: JobStore) -> None:
    accounts = store.accounts
    user, key = accounts.add_user("alice", actor="root")
    assert accounts.set_role("alice", Role.ADMIN, actor="root").role is Role.ADMIN
    principal = accounts.authenticate_key(key)
    assert principal is not None and principal.role is Role.ADMIN and principal.sees_all
    accounts.revoke_key(parse_key(key)[0], actor="root")  # type: ignore[index]
    accounts.disable_user("alice", actor="root")
    actions = [(r["actor"], r["action"], r["target"]) for r in audit(store)]
    assert actions == [
        ("root", "user.add", user.id),
        ("root", "key.create", user.id),
        ("root", "user.role", user.id),
        ("root", "key.revoke", user.id),
        ("root", "user.disable", user.id),
    ]
    role_change = json.loads(audit(store)[2]["data"])
    assert role_change == {"name": "alice", "from": "user", "to": "admin"}


def test_listing_every_owners_jobs_for_moderators(store: JobStore) -> None:
    a1, _ = store.create("user_a", make_params("one"))
    b1, _ = store.create("user_b", make_params("two"))
    a2, _ = store.create("user_a", make_params("three"))
    assert [j.id for j in store.list("user_a").jobs] == [a2.id, a1.id]
    everyone = store.list(None, limit=2)
    assert [j.id for j in everyone.jobs] == [a2.id, b1.id] and everyone.has_more
    assert [j.id for j in store.list(None, after=b1.id).jobs] == [a1.id]
    assert [j.id for j in store.list(None, order="asc").jobs] == [a1.id, b1.id, a2.id]
