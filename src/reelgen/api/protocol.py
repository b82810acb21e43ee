"""Request and response models of the HTTP API, and nothing else (no logic, no I/O).

Shapes follow the OpenAI Videos API as the official `openai` SDK (3.x) sends and parses them: fields are
listed in the order of the SDK's `openai/types/video*.py`. What reelgen adds is grouped after the official
fields under a `reelgen extension` comment; the SDK keeps unknown response fields (`video.model_extra`), and
sends extra request fields with `extra_body=`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

VideoStatus = Literal["queued", "in_progress", "completed", "failed", "cancelled"]
"""The SDK's four statuses plus `cancelled` (reelgen extension: a job stopped by DELETE or a cancel)."""

ContentVariant = Literal["video", "thumbnail", "spritesheet"]


class _Model(BaseModel):
    # Attribute docstrings become field descriptions in /openapi.json.
    model_config = ConfigDict(use_attribute_docstrings=True)


class _Request(_Model):
    # Unknown fields are an error, never silently ignored: a typo must not yield a different video.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


# --- POST /v1/videos -------------------------------------------------------------------------------------


class ImageInputReference(_Request):
    """`input_reference` given as an object (JSON, or form keys `input_reference[image_url]`)."""

    file_id: str | None = None
    """Not supported by reelgen (there is no Files API); answered with 400."""

    image_url: str | None = None
    """A base64 `data:` URL of a png, jpeg or webp image. Remote URLs are refused (the server does not fetch)."""


class VideoCreateRequest(_Request):
    """Body of POST /v1/videos as JSON. The SDK sends the same fields as multipart form parts instead."""

    prompt: str
    """Text prompt that describes the video to generate."""

    input_reference: ImageInputReference | None = None
    """Reference image for image-to-video models (as multipart: a file part named `input_reference`)."""

    model: str | None = None
    """Model id (see GET /v1/models); default: the deployment's REELGEN_DEFAULT_MODEL."""

    seconds: str | float | None = None
    """Clip duration in seconds. The SDK types it as a string ("4", "8", "12"); any number the model allows."""

    size: str | None = None
    """Output resolution `WIDTHxHEIGHT`; one of the model's sizes (GET /v1/models)."""

    # --- reelgen extension -------------------------------------------------------------------------------
    seed: int | None = None
    """Random seed; the same recipe and seed reproduce the same video on the same hardware."""

    steps: int | None = None
    """Denoising steps (quality against time)."""

    negative_prompt: str | None = None
    """What the video should not show."""

    fps: int | None = None
    """Frames per second of the output (the model's native rate by default)."""

    n: int | None = None
    """Number of variations (seeds seed, seed+1, ...); extra ones are downloadable with `variation=`."""

    guidance_scale: float | None = None
    """Classifier-free guidance strength."""

    preset: Literal["quality", "balanced", "fast"] | None = None
    """Speed preset: `quality` (exact math), `balanced` or `fast` (step caches: faster, slightly different
    frames; jobs of 8 steps or fewer always run exact). Default: the deployment's REELGEN_DEFAULT_PRESET."""

    lora: str | None = None
    """Name of a LoRA adapter in the server's LoRA folder (REELGEN_LORA_DIR), applied to this video only."""

    lora_scale: float | None = None
    """Strength of the LoRA, between -2 and 2 (default 1)."""


class VideoCreateForm(VideoCreateRequest):
    """The multipart/form-data form of POST /v1/videos, as the SDK sends it (documentation only)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_attribute_docstrings=True)

    input_reference: bytes | None = None  # type: ignore[assignment]
    """A png, jpeg or webp file part (type sniffed from the bytes; byte and pixel caps apply)."""

    input_reference_image_url: str | None = Field(default=None, alias="input_reference[image_url]")
    """Instead of a file part: a base64 `data:` URL, in bracket notation."""


class VideoRemixRequest(_Request):
    """Body of POST /v1/videos/{video_id}/remix."""

    prompt: str
    """Updated text prompt; every other setting (seed included) is taken from the source video."""


class VideoReference(_Request):
    id: str
    """The identifier of a completed video."""


class VideoEditRequest(_Request):
    """Body of POST /v1/videos/edits (no reelgen model supports edits yet: answered with 400)."""

    prompt: str
    video: VideoReference


class VideoExtendRequest(_Request):
    """Body of POST /v1/videos/extensions (no reelgen model supports extensions yet: answered with 400)."""

    prompt: str
    seconds: str | float
    video: VideoReference


# --- responses -----------------------------------------------------------------------------------------


class VideoError(_Model):
    """Why generation failed."""

    code: str
    """A machine-readable error code."""

    message: str
    """A human-readable description."""


class VideoParams(_Model):
    """reelgen extension: the full, resolved recipe of a video (no defaults left to guess)."""

    prompt: str
    model: str
    seconds: float
    size: str
    fps: int
    num_frames: int
    seed: int
    steps: int
    guidance_scale: float
    negative_prompt: str
    n: int
    input_image: str | None = None
    """Storage key of the uploaded reference image, if any."""

    preset: str = "quality"
    """Speed preset the video was made with (quality | balanced | fast)."""

    lora: str | None = None
    """The LoRA adapter applied, if any."""

    lora_scale: float = 1.0
    """Its strength."""


ReviewStateName = Literal["none", "pending", "approved", "rejected", "held", "blocked"]


class VideoReview(_Model):
    """reelgen extension: where the video stands on its way to the public gallery (see README, Publishing and
    moderation). Only a moderator's approval publishes it."""

    state: ReviewStateName = "none"
    """none (private) | pending (submitted, waiting for a moderator) | approved (in the gallery) | rejected
    (with a reason; the owner may submit again) | held (flagged by a moderation check: a queued job waits, a
    completed video's content is withheld until a moderator releases it) | blocked (a held video a moderator
    rejected)."""

    reason: str | None = None
    """Why it was rejected, taken down or held."""

    submitted_at: int | None = None
    """Unix time (seconds) when it entered the review queue (submitted or held)."""

    reviewed_at: int | None = None
    """Unix time (seconds) of the last moderator decision or hold."""


class Video(_Model):
    """A video generation job."""

    id: str
    completed_at: int | None = None
    """Unix time (seconds) when the job finished (completed, failed or cancelled)."""

    created_at: int
    """Unix time (seconds) when the job was created."""

    error: VideoError | None = None
    expires_at: int | None = None
    """reelgen keeps videos until they are deleted: always null."""

    model: str
    object: Literal["video"] = "video"
    progress: int
    """Approximate completion percentage, 0-100."""

    prompt: str | None = None
    remixed_from_video_id: str | None = None
    seconds: str
    """Requested duration in seconds, as a string like the SDK's ("4")."""

    size: str
    """Resolution `WIDTHxHEIGHT`."""

    status: VideoStatus

    # --- reelgen extension -------------------------------------------------------------------------------
    queue_position: int | None = None
    """1-based place among queued jobs (null unless queued)."""

    eta_seconds: float | None = None
    """Estimated seconds until completion, from measured step times of recent jobs of this model (null until
    one has completed, and once the job is finished)."""

    attempt: int = 0
    """Which attempt runs (or ran) the job; >1 after a worker was lost or a retryable error."""

    params: VideoParams

    published_at: int | None = None
    """Unix time (seconds) when a moderator approved it for the gallery; null when not published."""

    review: VideoReview = Field(default_factory=VideoReview)

    has_audio: bool | None = None
    """Whether the video has a soundtrack (an AAC stream in the mp4; some models make one); null until it is
    completed."""


class VideoList(_Model):
    """GET /v1/videos: one page, newest first by default (also GET /v1/gallery: published videos)."""

    object: Literal["list"] = "list"
    data: list[Video]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class VideoDeleted(_Model):
    id: str
    deleted: bool
    object: Literal["video.deleted"] = "video.deleted"


# --- publishing and moderation (reelgen extension; /v1/admin/reviews, /v1/admin/held, /v1/admin/audit) ----
class ReviewDecisionRequest(_Request):
    """Body of POST /v1/admin/reviews/{video_id}/reject and /v1/admin/held/{video_id}/reject."""

    reason: str = Field(min_length=1, max_length=500)
    """Why (shown to the owner and written to the audit log)."""


class ReviewItem(_Model):
    """A video waiting for a moderator, with its owner."""

    owner: str
    """The owner's user id."""

    video: Video


class ReviewList(_Model):
    """GET /v1/admin/reviews and /v1/admin/held: one page, oldest submission first."""

    object: Literal["list"] = "list"
    data: list[ReviewItem]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class AuditRecord(_Model):
    """One audit log entry: who did what to which object."""

    seq: int
    actor: str
    """User id of who acted (or hook:prompt / hook:frames for a moderation hook)."""

    action: str
    """e.g. review.submit, review.approve, review.reject, review.take_down, moderation.hold, moderation.release"""

    target: str | None = None
    data: dict[str, Any]
    created_at: float


class AuditList(_Model):
    """GET /v1/admin/audit: newest first; pass `before=last_seq` for the next page."""

    object: Literal["list"] = "list"
    data: list[AuditRecord]
    last_seq: int | None = None
    has_more: bool


class ModelCard(_Model):
    """A model this deployment knows (OpenAI's Model object plus what a video request may ask of it)."""

    id: str
    created: int
    """OpenAI field; reelgen reports when this server started."""

    object: Literal["model"] = "model"
    owned_by: str

    # --- reelgen extension -------------------------------------------------------------------------------
    description: str
    family: str
    sizes: list[str]
    """Every accepted `size`."""

    default_size: str
    seconds: list[str]
    """Whole-second durations accepted (any number up to `max_seconds` is accepted too)."""

    default_seconds: float
    max_seconds: float
    fps: int
    default_steps: int
    max_steps: int
    inputs: list[str]
    """`text`, and `image` when `input_reference` is accepted."""

    vocabulary: list[str] | None = None
    """Models trained on a closed vocabulary (reelgen-demo): every word they understand; other words are
    ignored. None for open-vocabulary models."""

    runnable: bool
    """Whether a worker on this deployment can run it (checked without loading it)."""

    runnable_reason: str


class ModelList(_Model):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(_Model):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(_Model):
    """Every error, in OpenAI's envelope."""

    error: ErrorDetail


class Health(_Model):
    status: Literal["ok"] = "ok"
    version: str


def openapi_components() -> dict[str, Any]:
    """Schemas referenced by hand-written parts of the OpenAPI document (request bodies parsed manually)."""
    return {
        "VideoCreateRequest": VideoCreateRequest.model_json_schema(ref_template="#/components/schemas/{model}"),
        "VideoCreateForm": VideoCreateForm.model_json_schema(
            ref_template="#/components/schemas/{model}", by_alias=True
        ),
        "VideoRemixRequest": VideoRemixRequest.model_json_schema(ref_template="#/components/schemas/{model}"),
        "ReviewDecisionRequest": ReviewDecisionRequest.model_json_schema(ref_template="#/components/schemas/{model}"),
        "VideoEditRequest": VideoEditRequest.model_json_schema(ref_template="#/components/schemas/{model}"),
        "VideoExtendRequest": VideoExtendRequest.model_json_schema(ref_template="#/components/schemas/{model}"),
    }
