"""/healthz: the process answers and its database does too (for load balancers and `reelgen serve` checks)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from reelgen import __version__
from reelgen.api.errors import APIError
from reelgen.api.protocol import ErrorResponse, Health
from reelgen.api.serving import VideoService

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": ErrorResponse}}, summary="Liveness")
async def healthz(request: Request) -> JSONResponse:
    service: VideoService = request.app.state.service
    try:
        await run_in_threadpool(service.store.get, "video_healthz")
    except Exception as e:
        raise APIError(503, f"database unavailable: {type(e).__name__}", code="database_unavailable") from None
    return JSONResponse(Health(version=__version__).model_dump())
