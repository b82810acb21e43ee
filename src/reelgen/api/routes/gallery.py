"""/v1/gallery (reelgen extension): the videos a moderator approved for publication, and their content, for
any authenticated caller (the studio's gallery page). Anything not approved answers 404 here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from reelgen.api.auth import Caller
from reelgen.api.protocol import ContentVariant, ErrorResponse, VideoList
from reelgen.api.ranges import content_response
from reelgen.api.reviewing import ReviewService

router = APIRouter(prefix="/v1", tags=["gallery"])


def _reviews(request: Request) -> ReviewService:
    reviews: ReviewService = request.app.state.reviews
    return reviews


@router.get(
    "/gallery",
    response_model=VideoList,
    responses={400: {"model": ErrorResponse, "description": "Invalid request; `error.param` names the field"}},
    summary="List published (approved) videos, most recently published first (reelgen extension)",
)
async def list_gallery(
    request: Request,
    caller: Caller,
    after: Annotated[str | None, Query(description="Id of the last video of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
) -> Response:
    page = await _reviews(request).gallery(limit=limit, after=after)
    return Response(page.model_dump_json(), media_type="application/json")


@router.get(
    "/gallery/{video_id}/content",
    response_class=Response,
    responses={
        200: {
            "description": "The asset (HTTP Range supported: 206 with Content-Range)",
            "content": {"video/mp4": {}, "image/webp": {}, "image/jpeg": {}},
        },
        206: {"description": "Partial content"},
        404: {"model": ErrorResponse, "description": "No published video with this id"},
        416: {"model": ErrorResponse, "description": "Range not satisfiable"},
    },
    summary="Download a published video's mp4, thumbnail or spritesheet (reelgen extension)",
)
async def gallery_content(
    request: Request,
    caller: Caller,
    video_id: Annotated[str, Path(description="The video id")],
    variant: Annotated[ContentVariant, Query(description="Which asset")] = "video",
) -> Response:
    reviews = _reviews(request)
    ref = await reviews.gallery_content(video_id, variant)
    return await content_response(request, reviews.videos.artifacts, ref)
