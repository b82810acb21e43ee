"""/v1/admin/reviews, /v1/admin/held, /v1/admin/audit (reelgen extensions): the moderators' review queue and
held list, and the admins' audit log. Every route takes the `Moderator` or `Admin` dependency: an ordinary
key gets 403."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from reelgen.api.auth import Admin, Moderator
from reelgen.api.forms import read_body
from reelgen.api.protocol import AuditList, ErrorResponse, ReviewList, Video
from reelgen.api.reviewing import ReviewService
from reelgen.api.serving import Rendered
from reelgen.domain.review import ReviewState

router = APIRouter(prefix="/v1/admin", tags=["moderation"])

VideoId = Annotated[str, Path(description="The video (job) id")]
After = Annotated[str | None, Query(description="Id of the last video of the previous page")]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid request; `error.param` names the field"},
    403: {"model": ErrorResponse, "description": "The caller is not a moderator (or admin)"},
    404: {"model": ErrorResponse, "description": "No such video"},
    409: {"model": ErrorResponse, "description": "The video is not in a state this decision applies to"},
}
_REASON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReviewDecisionRequest"}}},
    }
}


def _reviews(request: Request) -> ReviewService:
    reviews: ReviewService = request.app.state.reviews
    return reviews


def _json(model: Any) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


def _video(rendered: Rendered) -> Response:
    return _json(rendered.video)


@router.get("/reviews", response_model=ReviewList, responses=_ERRORS, summary="The review queue, oldest first")
async def list_reviews(request: Request, moderator: Moderator, after: After = None, limit: Limit = 20) -> Response:
    return _json(await _reviews(request).queue(ReviewState.PENDING, limit=limit, after=after))


@router.post(
    "/reviews/{video_id}/approve",
    response_model=Video,
    responses=_ERRORS,
    summary="Approve a pending video: it appears in the gallery",
)
async def approve_video(request: Request, moderator: Moderator, video_id: VideoId) -> Response:
    return _video(await _reviews(request).approve(moderator, video_id))


@router.post(
    "/reviews/{video_id}/reject",
    response_model=Video,
    responses=_ERRORS,
    openapi_extra=_REASON_BODY,
    summary="Reject a pending video, or take a published one down, with a reason",
)
async def reject_video(request: Request, moderator: Moderator, video_id: VideoId) -> Response:
    body = await read_body(request)
    return _video(await _reviews(request).reject(moderator, video_id, body))


@router.get(
    "/held", response_model=ReviewList, responses=_ERRORS, summary="Jobs held by a moderation check, oldest first"
)
async def list_held(request: Request, moderator: Moderator, after: After = None, limit: Limit = 20) -> Response:
    return _json(await _reviews(request).queue(ReviewState.HELD, limit=limit, after=after))


@router.post(
    "/held/{video_id}/release",
    response_model=Video,
    responses=_ERRORS,
    summary="Release a held job: it runs (or its video is shown to its owner)",
)
async def release_held(request: Request, moderator: Moderator, video_id: VideoId) -> Response:
    return _video(await _reviews(request).release(moderator, video_id))


@router.post(
    "/held/{video_id}/reject",
    response_model=Video,
    responses=_ERRORS,
    openapi_extra=_REASON_BODY,
    summary="Reject a held job for good, with a reason (a job that never ran is cancelled)",
)
async def reject_held(request: Request, moderator: Moderator, video_id: VideoId) -> Response:
    body = await read_body(request)
    return _video(await _reviews(request).block(moderator, video_id, body))


@router.get("/audit", response_model=AuditList, responses=_ERRORS, summary="The audit log, newest first (admins)")
async def audit_log(
    request: Request,
    admin: Admin,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 50,
    before: Annotated[int | None, Query(ge=1, description="`last_seq` of the previous page")] = None,
    target: Annotated[str | None, Query(description="Only entries about this object (e.g. a video id)")] = None,
    actor: Annotated[str | None, Query(description="Only entries by this user id")] = None,
) -> Response:
    return _json(await _reviews(request).audit(limit=limit, before=before, target=target, actor=actor))
