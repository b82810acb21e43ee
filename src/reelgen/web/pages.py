"""The studio's routes: page shells and their static files (no data: pages call the /v1 API), plus sign-in.

With authentication on, every page needs a studio session (else a redirect to /login). Signing in (name and
password, or an API key) starts a session: a random token in an HttpOnly, SameSite=Lax cookie (Secure over
https) and a CSRF token the pages put in a <meta> tag, which api.js sends as X-CSRF-Token on unsafe calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from reelgen import __version__
from reelgen.api.auth import Authenticator, Identity

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"

# Pages load scripts, styles, images and media from this server only; previews arrive as data: URLs inside
# event streams, and the reference image preview is a blob: URL. Nothing may frame the studio.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "style-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "referrer-policy": "same-origin",
    "cache-control": "no-cache",
}

_env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class _SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


async def _studio_identity(request: Request) -> None:
    """Every page: the signed-in user (request.state.identity), or a redirect to /login."""
    authenticator: Authenticator = request.app.state.authenticator
    identity = await authenticator.page_identity(request)
    if identity is None:
        raise _SignInRequired(request.url.path)
    request.state.identity = identity


router = APIRouter(include_in_schema=False, dependencies=[Depends(_studio_identity)])


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    identity: Identity | None = getattr(request.state, "identity", None)
    signed_in = identity is not None and identity.csrf_token is not None  # None: authentication is off
    html = _env.get_template(template).render(
        version=__version__,
        user=identity.principal if signed_in and identity else None,
        csrf_token=identity.csrf_token if identity else None,
        **context,
    )
    return HTMLResponse(html, headers=_PAGE_HEADERS)


@router.get("/")
async def create_page(request: Request) -> HTMLResponse:
    return _page(request, "create.html", page="create", title="Create")


@router.get("/library")
async def library_page(request: Request) -> HTMLResponse:
    return _page(request, "library.html", page="library", title="Library")


@router.get("/library/{video_id}")
async def video_page(request: Request, video_id: str) -> HTMLResponse:
    return _page(request, "video.html", page="library", title="Video", video_id=video_id)


@router.get("/gallery")
async def gallery_page(request: Request) -> HTMLResponse:
    return _page(request, "gallery.html", page="gallery", title="Gallery")


@router.get("/review")
async def review_page(request: Request) -> HTMLResponse:
    """Moderators' review queue and held list (the API answers 403 to others; the page says so)."""
    return _page(request, "review.html", page="review", title="Review")


class _StaticFiles(StaticFiles):
    """Static files that the browser revalidates (ETag, 304) on every load, so an upgrade is seen at once."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["cache-control"] = "no-cache"
        return response


def mount_studio(app: FastAPI) -> None:
    """Serve the studio on `app`: pages at /, /library, /library/{id}, /gallery and files under /static."""
    from reelgen.web.login import login_router, sign_in_redirect

    app.include_router(router)
    app.include_router(login_router)
    app.add_exception_handler(_SignInRequired, sign_in_redirect)
    app.mount("/static", _StaticFiles(directory=STATIC_DIR), name="studio-static")
