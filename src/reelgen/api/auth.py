"""Who is calling. `AuthMiddleware` resolves the caller of every /v1 request once (an API key in
`Authorization: Bearer rg-…`, what the OpenAI SDK sends as its api_key, or the studio's session cookie) and
routes take it from `current_principal`; the service checks ownership on every object access
(`Principal.can_see`), answering 404 for another user's objects exactly as for missing ones.

Authentication is on when `REELGEN_AUTH=on`, or with `auto` (the default) as soon as one user exists;
then every /v1 route, unknown ones included, answers 401 without valid credentials. Off (no users, a single
person on loopback): every caller is LOCAL, the owner "local", and any Bearer token is accepted.

Cookie-authenticated unsafe requests (POST, PUT, PATCH, DELETE) must carry the session's CSRF token in
`X-CSRF-Token` (403 otherwise); Bearer requests need none (a browser never adds that header on its own).

Cost per request: checked keys and sessions are remembered for `REELGEN_AUTH_CACHE_SECONDS` (5 s), so a
polling client costs one dict lookup; a revoke or disable through the API clears that memory at once, one made
by `reelgen users` in another process takes effect within those seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from reelgen.api.errors import error_response, from_domain
from reelgen.domain.accounts import LOCAL, Principal, Role
from reelgen.domain.errors import Forbidden, ReelgenError, Unauthenticated
from reelgen.jobs.store import JobStore
from reelgen.settings import Settings

PRINCIPAL_SCOPE_KEY = "reelgen.principal"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# How often `auth=auto` re-checks whether a user exists while none does.
AUTO_CHECK_SECONDS = 2.0
_CACHE_MAX = 10_000


@dataclass(frozen=True)
class Identity:
    """A resolved request: the caller, and for a studio session its CSRF token (None for a key or auth off)."""

    principal: Principal
    csrf_token: str | None = None


class Authenticator:
    """Resolves credentials to a Principal, with a short-lived memory of recent answers."""

    def __init__(self, store: JobStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.cookie_name = settings.session_cookie
        self.session_seconds = settings.session_hours * 3600
        self._ttl = settings.auth_cache_seconds
        self._latched = settings.auth == "on"
        self._checked_at = float("-inf")
        self._cache: dict[str, tuple[float, Identity | None]] = {}

    async def enabled(self) -> bool:
        """Whether credentials are required. `auto` turns on at the first user and stays on."""
        if self._latched:
            return True
        if self.settings.auth == "off":
            return False
        now = time.monotonic()
        if now - self._checked_at >= AUTO_CHECK_SECONDS:
            self._checked_at = now
            if await to_thread.run_sync(self.store.accounts.has_users):
                self._latched = True
        return self._latched

    def enabled_now(self) -> bool:
        """`enabled` for blocking callers (CLI, server start-up): asks the database directly."""
        if self.settings.auth != "auto":
            return self.settings.auth == "on"
        return self._latched or self.store.accounts.has_users()

    def forget(self) -> None:
        """Drop remembered answers (after a revoke or disable made through this process)."""
        self._cache.clear()
        self._checked_at = float("-inf")

    async def key(self, key: str) -> Identity | None:
        return await self._cached("k:" + key, lambda: self._key(key))

    async def session(self, token: str) -> Identity | None:
        return await self._cached("s:" + token, lambda: self._session(token))

    def _key(self, key: str) -> Identity | None:
        principal = self.store.accounts.authenticate_key(key)
        return Identity(principal) if principal else None

    def _session(self, token: str) -> Identity | None:
        found = self.store.accounts.session(token)
        return Identity(found.principal, found.csrf_token) if found else None

    async def _cached(self, raw: str, lookup: Callable[[], Identity | None]) -> Identity | None:
        # Remembered under a hash: the process keeps no usable secrets in this table.
        slot = hashlib.sha256(raw.encode()).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(slot)
        if hit is not None and hit[0] > now:
            return hit[1]
        identity = await to_thread.run_sync(lookup)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[slot] = (now + self._ttl, identity)
        return identity

    async def resolve(self, method: str, headers: dict[str, str], cookies: dict[str, str]) -> Identity:
        """The caller of a /v1 request; raises Unauthenticated (401) or Forbidden (403, CSRF)."""
        if not await self.enabled():
            return Identity(LOCAL)
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if authorization:
            if scheme.lower() != "bearer" or not credentials.strip():
                raise Unauthenticated("the Authorization header must be 'Bearer <API key>'")
            identity = await self.key(credentials.strip())
            if identity is None:
                raise Unauthenticated("invalid API key (unknown, revoked, or its user is disabled)")
            return identity
        token = cookies.get(self.cookie_name)
        if token:
            identity = await self.session(token)
            if identity is None:
                raise Unauthenticated("your studio session has expired; sign in again")
            if method in UNSAFE_METHODS:
                sent = headers.get(CSRF_HEADER, "")
                assert identity.csrf_token is not None
                if not hmac.compare_digest(sent.encode(), identity.csrf_token.encode()):
                    raise Forbidden("missing or wrong X-CSRF-Token header for this studio session")
            return identity
        raise Unauthenticated(
            "missing API key: send 'Authorization: Bearer <API key>' (`reelgen users add NAME` makes one) "
            "or sign in to the studio"
        )

    async def page_identity(self, request: Request) -> Identity | None:
        """For studio pages: the signed-in user (LOCAL when authentication is off), or None."""
        if not await self.enabled():
            return Identity(LOCAL)
        token = request.cookies.get(self.cookie_name)
        return await self.session(token) if token else None


class AuthMiddleware:
    """Authenticates every /v1 request before routing, so no route (including unknown ones and those added
    later) is reachable without credentials when authentication is on."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            identity = await self.authenticator.resolve(scope["method"], headers, _cookies(headers.get("cookie")))
        except ReelgenError as e:
            await error_response(from_domain(e))(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = identity.principal
        await self.app(scope, receive, send)


def _cookies(header: str | None) -> dict[str, str]:
    if not header:
        return {}
    from starlette.requests import cookie_parser

    return cookie_parser(header)


async def current_principal(request: Request) -> Principal:
    # async on purpose: FastAPI would run a plain function in a worker thread, a hop on every request.
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(principal, Principal):
        return principal
    # Not under /v1 (the middleware did not run): resolve here, with the same rules.
    authenticator: Authenticator | None = getattr(request.app.state, "authenticator", None)
    if authenticator is None:
        return LOCAL
    identity = await authenticator.resolve(request.method, dict(request.headers), dict(request.cookies))
    return identity.principal


def require_role(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that answers 403 unless the caller holds one of `roles` (admin always qualifies)."""
    allowed = {*roles, Role.ADMIN}

    async def check(request: Request) -> Principal:
        principal = await current_principal(request)
        if principal.role not in allowed:
            raise Forbidden(f"this endpoint needs the {' or '.join(sorted(r.value for r in allowed))} role")
        return principal

    return check


Caller = Annotated[Principal, Depends(current_principal)]
Moderator = Annotated[Principal, Depends(require_role(Role.MODERATOR))]
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
