"""/v1/videos routes: parse the HTTP request, call VideoService, shape the HTTP response. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from reelgen.api.auth import Caller
from reelgen.api.forms import read_body
from reelgen.api.protocol import ContentVariant, ErrorResponse, Video, VideoDeleted, VideoList
from reelgen.api.ranges import content_response
from reelgen.api.reviewing import ReviewService
from reelgen.api.serving import Rendered, VideoService
from reelgen.api.sse import KEEPALIVE, parse_last_event_id

router = APIRouter(prefix="/v1", tags=["videos"])

VideoId = Annotated[str, Path(description="The video (job) id, e.g. video_01a2...")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="reelgen extension: repeating a create with the same key returns the first video instead "
        "of making another (per owner).",
    ),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid request; `error.param` names the field"},
    404: {"model": ErrorResponse, "description": "No such video (for this owner)"},
}
_POLL_HEADER = {
    "openai-poll-after-ms": {
        "description": "On queued and in-progress videos: milliseconds to wait before polling again",
        "schema": {"type": "integer"},
    }
}
_VIDEO_OK: dict[int | str, dict[str, Any]] = {200: {"headers": _POLL_HEADER}}


def _body(json_schema: str, form_schema: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{json_schema}"}}}
    if form_schema:
        content["multipart/form-data"] = {"schema": {"$ref": f"#/components/schemas/{form_schema}"}}
    return {"requestBody": {"required": True, "content": content}}


def _service(request: Request) -> VideoService:
    service: VideoService = request.app.state.service
    return service


def _video(rendered: Rendered) -> Response:
    headers = None if rendered.poll_after_ms is None else {"openai-poll-after-ms": str(rendered.poll_after_ms)}
    # Serialised by pydantic-core directly: skips FastAPI's second validation of the response model.
    return Response(rendered.video.model_dump_json(), media_type="application/json", headers=headers)


# Routes are matched in order and polling is most of the traffic: retrieve comes first.
@router.get("/videos/{video_id}", response_model=Video, responses={**_ERRORS, **_VIDEO_OK}, summary="Retrieve")
async def retrieve_video(request: Request, caller: Caller, video_id: VideoId) -> Response:
    return _video(await _service(request).retrieve(caller, video_id))


@router.post(
    "/videos",
    response_model=Video,
    responses={**_ERRORS, **_VIDEO_OK, 413: {"model": ErrorResponse}, 415: {"model": ErrorResponse}},
    openapi_extra=_body("VideoCreateRequest", "VideoCreateForm"),
    summary="Create a video",
    description="Validates everything (model, size, seconds, steps, reference image) and enqueues a job. "
    "Accepts multipart/form-data (what the SDK sends; `input_reference` as a file part or "
    "`input_reference[image_url]`) and application/json. Unknown fields are a 400 naming them.",
)
async def create_video(request: Request, caller: Caller, idempotency_key: IdempotencyKey = None) -> Response:
    body = await read_body(request)
    return _video(await _service(request).create(caller, body, idempotency_key=idempotency_key))


@router.get("/videos", response_model=VideoList, responses=_ERRORS, summary="List videos")
async def list_videos(
    request: Request,
    caller: Caller,
    after: Annotated[str | None, Query(description="Id of the last video of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
    order: Annotated[Literal["asc", "desc"], Query(description="By creation time")] = "desc",
    owner: Annotated[
        str | None,
        Query(description="reelgen extension, moderators and admins only: a user id, or `all`, to list others' videos"),
    ] = None,
) -> Response:
    page = await _service(request).list(caller, limit=limit, after=after, order=order, owner=owner)
    return Response(page.model_dump_json(), media_type="application/json")


@router.post(
    "/videos/edits",
    response_model=Video,
    responses=_ERRORS,
    openapi_extra=_body("VideoEditRequest"),
    summary="Edit a video (no model supports it yet: 400)",
)
async def edit_video(request: Request, caller: Caller) -> Response:
    await _service(request).unsupported(caller, "edit", await read_body(request))


@router.post(
    "/videos/extensions",
    response_model=Video,
    responses=_ERRORS,
    openapi_extra=_body("VideoExtendRequest"),
    summary="Extend a video (no model supports it yet: 400)",
)
async def extend_video(request: Request, caller: Caller) -> Response:
    await _service(request).unsupported(caller, "extend", await read_body(request))


@router.post(
    "/videos/characters",
    responses=_ERRORS,
    summary="Create a character (not supported by reelgen: 400)",
)
async def create_character(request: Request, caller: Caller) -> Response:
    await _service(request).unsupported(caller, "character", None)


@router.get(
    "/videos/characters/{character_id}",
    responses=_ERRORS,
    summary="Retrieve a character (not supported by reelgen: 400)",
)
async def get_character(request: Request, caller: Caller, character_id: str) -> Response:
    await _service(request).unsupported(caller, "character", None)


@router.delete(
    "/videos/{video_id}",
    response_model=VideoDeleted,
    responses={**_ERRORS, 409: {"model": ErrorResponse, "description": "Still stopping; retry"}},
    summary="Delete a video (a running one is cancelled first) and its files",
)
async def delete_video(request: Request, caller: Caller, video_id: VideoId) -> Response:
    deleted = await _service(request).delete(caller, video_id)
    return Response(deleted.model_dump_json(), media_type="application/json")


@router.post(
    "/videos/{video_id}/cancel",
    response_model=Video,
    responses={**_ERRORS, **_VIDEO_OK},
    summary="Cancel a video, keeping its record (reelgen extension; a running job stops at its next step)",
)
async def cancel_video(request: Request, caller: Caller, video_id: VideoId) -> Response:
    return _video(await _service(request).cancel(caller, video_id))


@router.post(
    "/videos/{video_id}/publish",
    response_model=Video,
    responses={**_ERRORS, 409: {"model": ErrorResponse, "description": "Not completed, or held / blocked"}},
    summary="Submit a completed video for publication: it appears in the gallery (GET /v1/gallery) once a "
    "moderator approves it; `review.state` says where it stands (reelgen extension)",
)
async def publish_video(request: Request, caller: Caller, video_id: VideoId) -> Response:
    reviews: ReviewService = request.app.state.reviews
    return _video(await reviews.publish(caller, video_id))


@router.post(
    "/videos/{video_id}/unpublish",
    response_model=Video,
    responses=_ERRORS,
    summary="Withdraw a submission, or take a published video out of the gallery (reelgen extension)",
)
async def unpublish_video(request: Request, caller: Caller, video_id: VideoId) -> Response:
    reviews: ReviewService = request.app.state.reviews
    return _video(await reviews.unpublish(caller, video_id))


@router.post(
    "/videos/{video_id}/remix",
    response_model=Video,
    responses={**_ERRORS, **_VIDEO_OK},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/VideoRemixRequest"}}},
        }
    },
    summary="Remix: a new video with the source's settings (seed included) and a new prompt",
)
async def remix_video(
    request: Request, caller: Caller, video_id: VideoId, idempotency_key: IdempotencyKey = None
) -> Response:
    body = await read_body(request)
    return _video(await _service(request).remix(caller, video_id, body, idempotency_key=idempotency_key))


@router.get(
    "/videos/{video_id}/content",
    response_class=Response,
    responses={
        200: {
            "description": "The asset (HTTP Range supported: 206 with Content-Range)",
            "content": {"video/mp4": {}, "image/webp": {}, "image/jpeg": {}},
        },
        206: {"description": "Partial content"},
        409: {"model": ErrorResponse, "description": "Not completed yet"},
        416: {"model": ErrorResponse, "description": "Range not satisfiable"},
        **_ERRORS,
    },
    summary="Download the mp4, the webp thumbnail or the jpg spritesheet",
)
async def download_content(
    request: Request,
    caller: Caller,
    video_id: VideoId,
    variant: Annotated[ContentVariant, Query(description="Which asset")] = "video",
    variation: Annotated[int, Query(ge=0, description="reelgen extension: which of the n variations (video only)")] = 0,
) -> Response:
    service = _service(request)
    ref = await service.content(caller, video_id, variant, variation)
    return await content_response(request, service.artifacts, ref)


@router.get(
    "/videos/{video_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `video` (snapshot first and final object last), `status`, "
            "`progress` (step, total_steps, preview data URL), `queue`, `cancel_requested`. Stored events carry "
            "`id:` (their sequence number); reconnect with Last-Event-ID to resume without gaps.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **_ERRORS,
    },
    summary="Stream a video's progress (reelgen extension)",
)
async def video_events(
    request: Request,
    caller: Caller,
    video_id: VideoId,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    messages = await _service(request).events(caller, video_id, parse_last_event_id(last_event_id))

    async def body() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        async for message in messages:
            yield KEEPALIVE if message.event == "ping" else message.encode()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
