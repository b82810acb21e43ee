"""The FastAPI application: OpenAI Videos API under /v1, /v1/models, /healthz, /openapi.json.

`create_app(settings)` opens the job store and the artifact store named by the settings (tests may pass
their own) and never imports torch: the HTTP process validates against torch-free model specs and leaves
the GPU to workers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from reelgen import __version__
from reelgen.api.auth import Authenticator, AuthMiddleware
from reelgen.api.errors import install_error_handlers
from reelgen.api.forms import MAX_JSON_BYTES
from reelgen.api.maintenance import MaintenanceMiddleware, MaintenanceState
from reelgen.api.middleware import GuardMiddleware
from reelgen.api.protocol import openapi_components
from reelgen.api.reviewing import ReviewService
from reelgen.api.routes import admin_queue, admin_users, gallery, health, models, reviews, videos
from reelgen.api.serving import VideoService
from reelgen.engines.registry import Registry, configure_models
from reelgen.jobs.store import JobStore
from reelgen.settings import Settings
from reelgen.storage.base import ArtifactStore

log = logging.getLogger("reelgen.api")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


def create_app(
    settings: Settings,
    *,
    store: JobStore | None = None,
    artifacts: ArtifactStore | None = None,
    registry: Registry | None = None,
    trusted_hosts: Iterable[str] | None = None,
) -> FastAPI:
    """Build the app. `trusted_hosts`: Host header names to serve (None: any), see api/middleware.py."""
    from reelgen.runtime import open_artifacts_from, open_job_store_from

    if registry is None:
        configure_models(settings.model_dir)
    owns_store = store is None
    job_store = store if store is not None else open_job_store_from(settings)
    service = VideoService(
        job_store,
        artifacts if artifacts is not None else open_artifacts_from(settings),
        settings,
        registry=registry,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await service.aclose()
        if owns_store:
            job_store.close()

    app = FastAPI(
        title="reelgen",
        version=__version__,
        summary="Self-hosted text-to-video: the OpenAI Videos API over a durable job queue.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.reviews = ReviewService(service)
    app.state.settings = settings
    authenticator = Authenticator(job_store, settings)
    app.state.authenticator = authenticator
    install_error_handlers(app)
    app.include_router(videos.router)
    app.include_router(models.router)
    app.include_router(health.router)
    app.include_router(gallery.router)
    app.include_router(reviews.router)
    app.include_router(admin_users.router)
    app.include_router(admin_queue.router)

    # The studio (reelgen.web): page shells at /, /library, /gallery and their static files. It is a client of
    # the /v1 routes above from the browser and adds no data routes of its own.
    from reelgen.web import mount_studio

    mount_studio(app)

    # Maintenance mode refuses /v1 writes (503) once the caller is authenticated (added first: innermost).
    maintenance = MaintenanceState(job_store, retry_after=settings.maintenance_retry_after_seconds)
    app.state.maintenance = maintenance
    app.add_middleware(MaintenanceMiddleware, state=maintenance)
    # Every /v1 request is authenticated (or is LOCAL with authentication off) before it is routed.
    app.add_middleware(AuthMiddleware, authenticator=authenticator)
    app.add_middleware(GuardMiddleware, max_body_bytes=MAX_JSON_BYTES, trusted_hosts=trusted_hosts)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description="Compatible with the official `openai` SDK (`client.videos`): point `base_url` at "
                "`http://host:port/v1`. Fields and endpoints marked as reelgen extensions are additions.",
                routes=app.routes,
            )
            # FastAPI documents a 422 for every route with parameters; reelgen answers invalid input with 400
            # (documented per route), as OpenAI does.
            for operations in schema["paths"].values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            components = schema.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            for name, model_schema in openapi_components().items():
                # Nested models come back under $defs; OpenAPI wants them as sibling components.
                schemas.update(model_schema.pop("$defs", {}))
                schemas[name] = model_schema
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            components["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from `reelgen users add` (rg-…). With authentication off "
                    "(no users yet, single-owner mode) any token is accepted.",
                }
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
