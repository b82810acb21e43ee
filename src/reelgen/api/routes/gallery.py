"""/v1/gallery (reelgen extension): the videos their owners published, for the studio's gallery page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from reelgen.api.auth import Owner
from reelgen.api.protocol import ErrorResponse, VideoList
from reelgen.api.serving import VideoService

router = APIRouter(prefix="/v1", tags=["gallery"])


@router.get(
    "/gallery",
    response_model=VideoList,
    responses={400: {"model": ErrorResponse, "description": "Invalid request; `error.param` names the field"}},
    summary="List published videos, most recently published first (reelgen extension)",
)
async def list_gallery(
    request: Request,
    owner: Owner,
    after: Annotated[str | None, Query(description="Id of the last video of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
) -> Response:
    service: VideoService = request.app.state.service
    page = await service.gallery(limit=limit, after=after)
    return Response(page.model_dump_json(), media_type="application/json")
