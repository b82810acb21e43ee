"""Studio sign-in and sign-out: /login (name and password, or an API key) and /logout.

Plain HTML forms, no script needed. A foreign site cannot post them: the guard middleware refuses requests
whose Origin is another site, and /logout also checks the session's CSRF token (a hidden form field).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, quote

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reelgen.api.auth import Authenticator
from reelgen.domain.accounts import Principal
from reelgen.web.pages import _page

login_router = APIRouter(include_in_schema=False)
MAX_FORM_BYTES = 16 * 1024


def _authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


def _safe_next(value: str | None) -> str:
    """Only a path on this site (never //other.site or a full URL) may be the target after signing in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def sign_in_redirect(request: Request, exc: Exception) -> Response:
    next_path = getattr(exc, "next_path", "/")
    target = "/login" if next_path in ("/", "") else f"/login?next={quote(next_path, safe='/')}"
    return RedirectResponse(target, status_code=303, headers={"cache-control": "no-store"})


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items() if v}


def _login_page(request: Request, *, next_path: str, error: str | None = None, name: str = "") -> HTMLResponse:
    response = _page(request, "login.html", page="login", title="Sign in", next_path=next_path, error=error, name=name)
    if error:
        response.status_code = 401
    return response


@login_router.get("/login")
async def login_page(request: Request) -> Response:
    authenticator = _authenticator(request)
    next_path = _safe_next(request.query_params.get("next"))
    if not await authenticator.enabled():
        return RedirectResponse(next_path, status_code=303)
    identity = await authenticator.page_identity(request)
    if identity is not None:
        return RedirectResponse(next_path, status_code=303)
    return _login_page(request, next_path=next_path)


@login_router.post("/login")
async def login(request: Request) -> Response:
    authenticator = _authenticator(request)
    form = await _form(request)
    next_path = _safe_next(form.get("next"))
    if not await authenticator.enabled():
        return RedirectResponse(next_path, status_code=303)
    accounts = authenticator.store.accounts
    api_key = form.get("api_key", "").strip()
    name = form.get("name", "").strip()
    principal: Principal | None
    if api_key:
        principal = await to_thread.run_sync(accounts.authenticate_key, api_key)
        error = "That API key is not valid (unknown, revoked, or its user is disabled)."
    else:
        password = form.get("password", "")
        principal = await to_thread.run_sync(accounts.login, name, password) if name and password else None
        error = "Wrong name or password."
    if principal is None:
        return _login_page(request, next_path=next_path, error=error, name=name)
    token, _ = await to_thread.run_sync(accounts.create_session, principal.user_id, authenticator.session_seconds)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        authenticator.cookie_name,
        token,
        max_age=int(authenticator.session_seconds),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@login_router.post("/logout")
async def logout(request: Request) -> Response:
    authenticator = _authenticator(request)
    form = await _form(request)
    token = request.cookies.get(authenticator.cookie_name)
    response = RedirectResponse("/login", status_code=303)
    if token:
        identity = await authenticator.session(token)
        if identity is not None:
            sent = form.get("csrf", "")
            if not identity.csrf_token or not hmac.compare_digest(sent.encode(), identity.csrf_token.encode()):
                return HTMLResponse("missing or wrong CSRF token", status_code=403)
            await to_thread.run_sync(authenticator.store.accounts.delete_session, token)
            authenticator.forget()
    response.delete_cookie(authenticator.cookie_name, path="/", httponly=True, samesite="lax")
    return response
