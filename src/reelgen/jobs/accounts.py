"""Accounts: users, API keys and studio sessions, in the job store's database (`store.accounts`).

- API keys look like `rg-<key id>-<secret>`: the key id is public (shown by `reelgen users keys`), the secret
  carries 256 random bits and is stored only as its sha256, compared in constant time. A fast hash is right
  for a secret that long (nothing to brute-force); passwords, chosen by people, use scrypt with a random salt.
- A key authenticates while it is not revoked and its user is not disabled (one query checks both), so revoking
  or disabling takes effect on the next lookup. `last_used_at` is written at most once a minute per key.
- Studio sessions: a random token in the cookie, its sha256 in `web_sessions`, with a CSRF token per session.
- Every change to users, roles and keys is written to the audit log in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reelgen.domain.accounts import ApiKey, Principal, Role, User
from reelgen.domain.errors import Conflict, InvalidParams, NotFound
from reelgen.jobs import account_queries as q

if TYPE_CHECKING:
    from reelgen.jobs.sql_store import SqlJobStore, Tx

KEY_PREFIX = "rg"
# A key's last_used_at is refreshed at most this often, so a busy client does not write on every request.
TOUCH_INTERVAL_SECONDS = 60.0
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD_CHARS = 8
# scrypt cost: 16 MiB and ~50 ms per hash; stored with the hash so it can be raised later.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


@dataclass(frozen=True)
class Session:
    """A studio session as the API sees it: who, and the CSRF token its unsafe requests must carry."""

    principal: Principal
    csrf_token: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        # Spend the same time as a real check, so a login does not tell which names exist.
        hash_password(password)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(got.hex(), digest)


def parse_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of `rg-<key id>-<secret>`, or None when it is not shaped like a reelgen key."""
    parts = key.strip().split("-", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def _user(row: dict[str, Any]) -> User:
    return User(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
    )


def _key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=row["id"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def _principal(row: dict[str, Any], key_id: str | None = None) -> Principal:
    return Principal(user_id=row["user_id"], name=row["name"], role=Role(row["role"]), key_id=key_id)


class AccountStore:
    """Users, keys and sessions over a SqlJobStore's connections and transactions (SQLite and Postgres).

    `actor` arguments name who made a change, for the audit log: a user name, or "cli" for the command line."""

    def __init__(self, store: SqlJobStore) -> None:
        self._store = store

    def _tx(self, *, write: bool = True) -> Any:
        return self._store._tx(write=write)

    def _audit(self, tx: Tx, actor: str, action: str, target: str | None, data: dict[str, Any]) -> None:
        self._store._audit(tx, actor, action, target, data, self._store._now(tx))

    # --- users -------------------------------------------------------------------------------------------
    def add_user(
        self, name: str, role: Role | str = Role.USER, password: str | None = None, *, actor: str = "cli"
    ) -> tuple[User, str]:
        """Create a user with a first API key; returns (user, the key, shown once)."""
        if not NAME_PATTERN.match(name):
            raise InvalidParams(
                "a user name is 1-64 letters, digits and _ . @ - (starting with a letter or digit)", param="name"
            )
        role = _role(role)
        password_hash = hash_password(_check_password(password)) if password is not None else None
        user_id = f"user_{secrets.token_hex(8)}"
        with self._tx() as tx:
            now = self._store._now(tx)
            if not tx.run(q.INSERT_USER, (user_id, name, role.value, password_hash, now)):
                raise Conflict(f"a user named {name!r} already exists", param="name")
            self._audit(tx, actor, "user.add", user_id, {"name": name, "role": role.value})
            key = self._insert_key(tx, user_id, actor, now)
            row = tx.one(q.SELECT_USER, (user_id,))
        assert row is not None
        return _user(row), key

    def list_users(self) -> list[User]:
        with self._tx(write=False) as tx:
            return [_user(r) for r in tx.all(q.LIST_USERS)]

    def get_user_by_name(self, name: str) -> User | None:
        with self._tx(write=False) as tx:
            row = tx.one(q.SELECT_USER_BY_NAME, (name,))
        return _user(row) if row else None

    def get_user(self, user_id: str) -> User | None:
        with self._tx(write=False) as tx:
            row = tx.one(q.SELECT_USER, (user_id,))
        return _user(row) if row else None

    def require_user(self, name: str) -> User:
        user = self.get_user_by_name(name)
        if user is None:
            raise NotFound(f"no user named {name!r}", param="name")
        return user

    def has_users(self) -> bool:
        """Whether `auth=auto` turns authentication on: once any user exists. Disabled users count, so
        disabling every user locks everyone out instead of opening the service to all."""
        with self._tx(write=False) as tx:
            return tx.one(q.ANY_USER) is not None

    def disable_user(self, name: str, *, actor: str = "cli") -> User:
        """Disable a user: every key and session of theirs stops working at once (sessions are deleted)."""
        return self._set_disabled(name, True, actor)

    def enable_user(self, name: str, *, actor: str = "cli") -> User:
        return self._set_disabled(name, False, actor)

    def _set_disabled(self, name: str, disabled: bool, actor: str) -> User:
        with self._tx() as tx:
            row = tx.one(q.SELECT_USER_BY_NAME, (name,))
            if row is None:
                raise NotFound(f"no user named {name!r}", param="name")
            if tx.run(q.SET_DISABLED, (disabled, row["id"], not disabled)):
                self._audit(tx, actor, "user.disable" if disabled else "user.enable", row["id"], {"name": name})
            if disabled:
                tx.run(q.DELETE_USER_SESSIONS, (row["id"],))
            row = tx.one(q.SELECT_USER, (row["id"],))
        assert row is not None
        return _user(row)

    def set_role(self, name: str, role: Role | str, *, actor: str = "cli") -> User:
        role = _role(role)
        with self._tx() as tx:
            row = tx.one(q.SELECT_USER_BY_NAME, (name,))
            if row is None:
                raise NotFound(f"no user named {name!r}", param="name")
            if tx.run(q.SET_ROLE, (role.value, row["id"], role.value)):
                self._audit(tx, actor, "user.role", row["id"], {"name": name, "from": row["role"], "to": role.value})
            row = tx.one(q.SELECT_USER, (row["id"],))
        assert row is not None
        return _user(row)

    def set_password(self, name: str, password: str | None, *, actor: str = "cli") -> User:
        """Set the studio password (scrypt, random salt); None removes it (the user signs in with a key)."""
        password_hash = hash_password(_check_password(password)) if password is not None else None
        with self._tx() as tx:
            row = tx.one(q.SELECT_USER_BY_NAME, (name,))
            if row is None:
                raise NotFound(f"no user named {name!r}", param="name")
            tx.run(q.SET_PASSWORD, (password_hash, row["id"]))
            self._audit(tx, actor, "user.password", row["id"], {"name": name, "set": password is not None})
        return _user(row)

    # --- keys --------------------------------------------------------------------------------------------
    def create_key(self, user_id: str, *, actor: str = "cli") -> str:
        """A new API key for the user; the returned string is the only time the secret is seen."""
        with self._tx() as tx:
            if tx.one(q.SELECT_USER, (user_id,)) is None:
                raise NotFound(f"no user with id {user_id!r}", param="user_id")
            return self._insert_key(tx, user_id, actor, self._store._now(tx))

    def _insert_key(self, tx: Tx, user_id: str, actor: str, now: float) -> str:
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)  # 256 random bits
        tx.run(q.INSERT_KEY, (key_id, user_id, hash_secret(secret), now))
        self._audit(tx, actor, "key.create", user_id, {"key_id": key_id})
        return f"{KEY_PREFIX}-{key_id}-{secret}"

    def list_keys(self, user_id: str) -> list[ApiKey]:
        with self._tx(write=False) as tx:
            return [_key(r) for r in tx.all(q.LIST_KEYS, (user_id,))]

    def get_key(self, key_id: str) -> ApiKey | None:
        with self._tx(write=False) as tx:
            row = tx.one(q.SELECT_KEY, (key_id,))
        return _key(row) if row else None

    def revoke_key(self, key_id: str, *, actor: str = "cli") -> ApiKey:
        """Revoke one key (revoking twice is harmless). Raises NotFound."""
        with self._tx() as tx:
            row = tx.one(q.SELECT_KEY, (key_id,))
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}", param="key_id")
            if tx.run(q.REVOKE_KEY, (self._store._now(tx), key_id)):
                self._audit(tx, actor, "key.revoke", row["user_id"], {"key_id": key_id})
            row = tx.one(q.SELECT_KEY, (key_id,))
        assert row is not None
        return _key(row)

    def revoke_all_keys(self, user_id: str, *, actor: str = "cli") -> int:
        """Revoke every live key of a user (an operator control); returns how many were revoked."""
        with self._tx() as tx:
            count = tx.run(q.REVOKE_USER_KEYS, (self._store._now(tx), user_id))
            if count:
                self._audit(tx, actor, "key.revoke_all", user_id, {"count": count})
        return count

    def authenticate_key(self, key: str) -> Principal | None:
        """The caller a key belongs to, or None (malformed, unknown, revoked, or its user disabled)."""
        parsed = parse_key(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._tx(write=False) as tx:
            row = tx.one(q.AUTH_KEY, (key_id,))
            now = self._store._now(tx)
        if row is None or not hmac.compare_digest(row["secret_hash"], hash_secret(secret)):
            return None
        if row["last_used_at"] is None or row["last_used_at"] < now - TOUCH_INTERVAL_SECONDS:
            with self._tx() as tx:
                tx.run(q.TOUCH_KEY, (now, key_id, now - TOUCH_INTERVAL_SECONDS))
        return _principal(row, key_id)

    # --- studio sessions ---------------------------------------------------------------------------------
    def login(self, name: str, password: str) -> Principal | None:
        """The user whose name and password these are (enabled users with a password only), or None."""
        with self._tx(write=False) as tx:
            row = tx.one(q.SELECT_LOGIN, (name,))
        if not verify_password(password, row["password_hash"] if row else None) or row is None:
            return None
        return Principal(user_id=row["id"], name=row["name"], role=Role(row["role"]))

    def create_session(self, user_id: str, lifetime_seconds: float) -> tuple[str, str]:
        """Start a session: (token for the cookie, CSRF token)."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        with self._tx() as tx:
            now = self._store._now(tx)
            tx.run(q.DELETE_EXPIRED_SESSIONS, (now,))
            tx.run(q.INSERT_SESSION, (hash_secret(token), user_id, csrf, now, now + lifetime_seconds))
        return token, csrf

    def session(self, token: str) -> Session | None:
        """The live session of a cookie token (None: unknown, expired, or its user disabled)."""
        with self._tx(write=False) as tx:
            row = tx.one(q.AUTH_SESSION, (hash_secret(token), self._store._now(tx)))
        if row is None:
            return None
        return Session(_principal(row), row["csrf_token"])

    def session_principal(self, token: str) -> tuple[Principal, str] | None:
        """(caller, CSRF token) of a live session, or None."""
        s = self.session(token)
        return (s.principal, s.csrf_token) if s else None

    def delete_session(self, token: str) -> None:
        with self._tx() as tx:
            tx.run(q.DELETE_SESSION, (hash_secret(token),))


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidParams(
            f"role must be one of {', '.join(r.value for r in Role)}, not {role!r}", param="role"
        ) from None


def _check_password(password: str | None) -> str:
    if password is None or len(password) < MIN_PASSWORD_CHARS:
        raise InvalidParams(f"a password needs at least {MIN_PASSWORD_CHARS} characters", param="password")
    return password
