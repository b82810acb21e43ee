"""The studio's routes: four page shells and their static files (no data: pages call the /v1 API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from reelgen import __version__

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

router = APIRouter(include_in_schema=False)


def _page(template: str, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(version=__version__, **context)
    return HTMLResponse(html, headers=_PAGE_HEADERS)


@router.get("/")
async def create_page() -> HTMLResponse:
    return _page("create.html", page="create", title="Create")


@router.get("/library")
async def library_page() -> HTMLResponse:
    return _page("library.html", page="library", title="Library")


@router.get("/library/{video_id}")
async def video_page(video_id: str) -> HTMLResponse:
    return _page("video.html", page="library", title="Video", video_id=video_id)


@router.get("/gallery")
async def gallery_page() -> HTMLResponse:
    return _page("gallery.html", page="gallery", title="Gallery")


class _StaticFiles(StaticFiles):
    """Static files that the browser revalidates (ETag, 304) on every load, so an upgrade is seen at once."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["cache-control"] = "no-cache"
        return response


def mount_studio(app: FastAPI) -> None:
    """Serve the studio on `app`: pages at /, /library, /library/{id}, /gallery and files under /static."""
    app.include_router(router)
    app.mount("/static", _StaticFiles(directory=STATIC_DIR), name="studio-static")
