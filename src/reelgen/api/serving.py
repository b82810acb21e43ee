"""VideoService: what each /v1 endpoint does, with no HTTP in it (routers only translate), so it can be
tested by calling it. It depends on the JobStore, the ArtifactStore and the model registry, never on an engine:
this module, like the whole API, must not import torch.

Every method takes the caller (a Principal, resolved by reelgen.api.auth) and every object access goes
through `_owned`, which answers 404 for another user's video exactly as for a missing one (moderators and
admins see all). New videos are owned by `principal.user_id`; idempotency keys are per owner.

Store and storage calls block (SQLite, Postgres, S3), so they run in worker threads, grouped per request:
one thread hop per request rather than one per query. The exception is reads from a SQLite store: a read of a
local WAL database never waits for a writer and takes tens of microseconds, less than the hop itself, so
those run inline (see `_reads_inline`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, NoReturn, TypeVar

from anyio import to_thread
from pydantic import BaseModel, ValidationError

from reelgen.api.batching import CreateBatcher
from reelgen.api.costs import estimate_gpu_seconds
from reelgen.api.errors import APIError, bad_request, from_validation
from reelgen.api.eta import EtaEstimator
from reelgen.api.forms import ParsedBody, optional_form_values
from reelgen.api.protocol import (
    ContentVariant,
    ModelCard,
    ModelList,
    Video,
    VideoCreateRequest,
    VideoDeleted,
    VideoEditRequest,
    VideoError,
    VideoExtendRequest,
    VideoList,
    VideoParams,
    VideoRemixRequest,
    VideoReview,
)
from reelgen.api.queueview import QueueView
from reelgen.api.sse import SseMessage
from reelgen.api.uploads import decode_data_url, validate_reference_image
from reelgen.domain.accounts import Principal
from reelgen.domain.errors import InvalidParams, NotFound, QuotaExceeded
from reelgen.domain.jobs import Job, JobStatus
from reelgen.domain.models import ModelSpec
from reelgen.domain.params import GenerationParams, validate_params
from reelgen.domain.review import Review, ReviewState
from reelgen.engines.lora import LoraLibrary
from reelgen.engines.registry import Registry, default_registry
from reelgen.jobs.store import JobStore, NewJob
from reelgen.moderation import Blocklist, ModerationBlocked, VerdictKind, load_prompt_check
from reelgen.settings import Settings
from reelgen.storage.base import ArtifactStore

log = logging.getLogger("reelgen.api")

T = TypeVar("T")

MAX_LIST_LIMIT = 100
# How long DELETE waits for a running job to stop at its next step before answering 409 (the SDK retries).
DELETE_WAIT_SECONDS = 10.0
# Event streams poll the job's event log this often: one indexed query per open stream.
EVENT_POLL_SECONDS = 0.15
# How often an event stream re-checks queue position (and notices a job deleted under it).
QUEUE_POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0

_MEDIA_TYPES = {".mp4": "video/mp4", ".webp": "image/webp", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@dataclass(frozen=True, slots=True)
class ContentRef:
    """Where the bytes of one downloadable asset are, and how to label them."""

    key: str
    media_type: str
    size: int
    filename: str
    etag: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """A Video plus what the router turns into headers."""

    video: Video
    poll_after_ms: int | None


async def _run(fn: Callable[..., T], *args: Any) -> T:
    return await to_thread.run_sync(fn, *args)


class VideoService:
    def __init__(
        self,
        store: JobStore,
        artifacts: ArtifactStore,
        settings: Settings,
        *,
        registry: Registry | None = None,
        started_at: float | None = None,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.settings = settings
        self.registry = registry or default_registry()
        self.eta = EtaEstimator(store)
        self.queue = QueueView(store)
        self.started_at = int(started_at if started_at is not None else time.time())
        self._batcher: CreateBatcher[tuple[Job, bool, Rendered]] = CreateBatcher(self._commit_batch)
        self._inline = _reads_inline(store)
        self.prompt_check = load_prompt_check(settings)
        loras = LoraLibrary(settings.lora_dir)
        # Whether a requested LoRA exists (a file lookup, no torch); None when the server has no LoRA folder.
        self._lora_exists = loras.exists if loras.enabled else None

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking read: inline for SQLite, in a worker thread otherwise."""
        if self._inline:
            return fn(*args)
        return await _run(fn, *args)

    async def aclose(self) -> None:
        await self._batcher.aclose()
        await _run(self.queue.close)

    # --- create ------------------------------------------------------------------------------------------
    async def create(self, principal: Principal, body: ParsedBody, *, idempotency_key: str | None = None) -> Rendered:
        fields = optional_form_values(body.fields) if body.is_form else body.fields
        if "input_reference" in body.files and "input_reference" in fields:
            raise bad_request(
                "give input_reference either as a file or as an object, not both", param="input_reference"
            )
        request = _parse(VideoCreateRequest, fields)
        image = _reference_bytes(request, body.files.get("input_reference"))
        spec = self.registry.get_spec(request.model or self.settings.default_model)
        params = validate_params(
            spec,
            self.settings.limits,
            prompt=request.prompt,
            seconds=request.seconds,
            size=request.size,
            fps=request.fps,
            seed=request.seed,
            steps=request.steps,
            guidance_scale=request.guidance_scale,
            negative_prompt=request.negative_prompt,
            n=request.n,
            preset=request.preset,
            lora=request.lora,
            lora_scale=request.lora_scale,
            lora_exists=self._lora_exists,
            # A stand-in key: validate_params refuses an image for text-only models before anything is stored.
            input_image="pending" if image is not None else None,
        )
        hold = await self._moderate_prompt(params.prompt)
        if image is not None:
            params = replace(params, input_image=await _run(self._store_reference, image))
        try:
            _, created, rendered = await self._batcher.create(
                NewJob(principal.user_id, params, idempotency_key=_key(idempotency_key), hold_reason=hold)
            )
        except BaseException:
            if params.input_image:  # no job will ever read it
                await asyncio.shield(_run(self._delete_input, params.input_image))
            raise
        if not created and params.input_image:
            # A replay of an earlier request: its job keeps its own image; this copy is unused.
            await _run(self._delete_input, params.input_image)
        return rendered

    def _commit_batch(self, batch: list[NewJob]) -> list[tuple[Job, bool, Rendered] | QuotaExceeded]:
        """Create a batch in one transaction and render the responses (in a worker thread). Each job is charged
        its estimated GPU time atomically with its insert; one over its owner's quota gets its QuotaExceeded
        (429) while the others are created."""
        batch = [n if n.gpu_seconds is not None else replace(n, gpu_seconds=self._gpu_estimate(n)) for n in batch]
        results = self.store.create_each(batch)
        # Jobs that joined the line now (held ones wait outside it for a moderator).
        joined = [
            job.id
            for job, created in (r for r in results if not isinstance(r, QuotaExceeded))
            if created and job.status is JobStatus.QUEUED and job.review.state is not ReviewState.HELD
        ]
        positions = self.store.queue_positions(joined)
        out: list[tuple[Job, bool, Rendered] | QuotaExceeded] = []
        for result in results:
            if isinstance(result, QuotaExceeded):
                out.append(result)
                continue
            job, created = result
            if job.id in positions:
                out.append((job, created, self._render_at(job, positions[job.id])))
            else:
                out.append((job, created, self._render(job)))
        return out

    def _gpu_estimate(self, new: NewJob) -> float:
        """GPU-seconds to charge at enqueue (api/costs.py): from the model's measured step time."""
        spec = self.registry.get_spec(new.params.model)
        return estimate_gpu_seconds(self.eta.timing(new.params.model), spec, new.params)

    async def _moderate_prompt(self, prompt: str) -> str | None:
        """The prompt check before enqueue: raises ModerationBlocked (400, param prompt) for a blocked prompt;
        returns the reason to hold the job for review, or None to let it run. The built-in blocklist runs inline;
        a plugin (maybe a classifier) in a worker thread."""
        check = self.prompt_check
        verdict = check.check(prompt) if isinstance(check, Blocklist) else await _run(check.check, prompt)
        if verdict.kind is VerdictKind.BLOCK:
            raise ModerationBlocked(f"prompt refused by moderation: {verdict.reason}", param="prompt")
        if verdict.kind is VerdictKind.HOLD:
            return verdict.reason or "held by the prompt check"
        return None

    def _store_reference(self, data: bytes) -> str:
        ref = validate_reference_image(data)
        key = f"inputs/{secrets.token_hex(12)}/reference.{ref.extension}"
        self.artifacts.put_bytes(key, ref.data)
        return key

    # --- read --------------------------------------------------------------------------------------------
    async def retrieve(self, principal: Principal, video_id: str) -> Rendered:
        return await self._read(self._retrieve, principal, video_id)

    def _retrieve(self, principal: Principal, video_id: str) -> Rendered:
        return self._render(self._owned(principal, video_id))

    async def list(
        self,
        principal: Principal,
        *,
        limit: int = 20,
        after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
        owner: str | None = None,
    ) -> VideoList:
        """The caller's videos. Moderators and admins may pass `owner` (a user id, or "all") to list others'."""
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise bad_request(f"limit must be between 1 and {MAX_LIST_LIMIT}", param="limit")
        if owner is None or owner == principal.user_id:
            whose: str | None = principal.user_id
        elif not principal.sees_all:
            raise bad_request("owner: only moderators and admins may list other users' videos", param="owner")
        else:
            whose = None if owner == "all" else owner
        return await self._read(self._list, whose, limit, after, order)

    def _list(self, owner: str | None, limit: int, after: str | None, order: Literal["asc", "desc"]) -> VideoList:
        """One page of `owner`'s videos (None: every owner's)."""
        if after is not None:
            cursor = self.store.get(after)
            if cursor is None or (owner is not None and cursor.owner != owner):
                raise bad_request(f"after: no video with id {after!r}", param="after", code="invalid_cursor")
        page = self.store.list(owner, limit=limit, after=after, order=order)
        data = [self._render(job).video for job in page.jobs]
        return VideoList(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=page.has_more,
        )

    # --- cancel ------------------------------------------------------------------------------------------
    async def cancel(self, principal: Principal, video_id: str) -> Rendered:
        """Stop a video but keep its record: queued ones at once, running ones at their next step (the
        returned object may still say in_progress). Finished ones are returned unchanged."""
        return await _run(self._cancel, principal, video_id)

    def _cancel(self, principal: Principal, video_id: str) -> Rendered:
        return self._render(self.store.cancel(self._owned(principal, video_id).id))

    # --- delete ------------------------------------------------------------------------------------------
    async def delete(self, principal: Principal, video_id: str) -> VideoDeleted:
        job = await _run(self._owned, principal, video_id)
        if not job.status.terminal:
            job = await self._stop(job)
        deleted = await _run(self.store.delete, job.id)
        if deleted is None:  # a concurrent DELETE won
            raise NotFound(f"no video with id {video_id!r}", param="video_id")
        await _run(self._delete_files, deleted)
        return VideoDeleted(id=deleted.id, deleted=True)

    async def _stop(self, job: Job) -> Job:
        """Cancel, then wait for a running job's worker to stop at its next step."""
        deadline = time.monotonic() + DELETE_WAIT_SECONDS
        current: Job | None = await _run(self.store.cancel, job.id)
        while current is not None and not current.status.terminal:
            if time.monotonic() > deadline:
                raise APIError(
                    409,
                    f"video {job.id} is still stopping (cancel requested); try again shortly",
                    code="cancel_pending",
                    headers={"retry-after": "2"},
                    retry=True,
                )
            await asyncio.sleep(0.1)
            current = await _run(self.store.get, job.id)
            if current is not None and current.status is JobStatus.QUEUED:
                # Requeued after its worker was lost: a queued job cancels at once.
                current = await _run(self.store.cancel, job.id)
        if current is None:
            raise NotFound(f"no video with id {job.id!r}", param="video_id")
        return current

    def _delete_files(self, job: Job) -> None:
        # Best effort: the row is already gone, so leftovers are garbage, never visible content.
        prefixes = [f"videos/{job.id}/", f"tmp/{job.id}/"]
        if job.params.input_image:
            prefixes.append(job.params.input_image.rsplit("/", 1)[0] + "/")
        for prefix in prefixes:
            try:
                self.artifacts.delete_prefix(prefix)
            except Exception:
                log.exception("could not delete %s of deleted video %s", prefix, job.id)

    def _delete_input(self, key: str) -> None:
        try:
            self.artifacts.delete_prefix(key.rsplit("/", 1)[0] + "/")
        except Exception:
            log.exception("could not delete unused upload %s", key)

    # --- remix, edits, extensions ------------------------------------------------------------------------
    async def remix(
        self, principal: Principal, video_id: str, body: ParsedBody, *, idempotency_key: str | None = None
    ) -> Rendered:
        request = _parse(VideoRemixRequest, body.fields, files=body.files)
        source = await _run(self._owned, principal, video_id)
        p = source.params
        params = validate_params(
            self.registry.get_spec(p.model),
            self.settings.limits,
            prompt=request.prompt,
            seconds=p.seconds,
            size=p.size,
            fps=p.fps,
            seed=p.seed,
            steps=p.steps,
            guidance_scale=p.guidance_scale,
            negative_prompt=p.negative_prompt,
            n=p.n,
            input_image=p.input_image,
            preset=p.preset,
            lora=p.lora,
            lora_scale=p.lora_scale if p.lora else None,
            lora_exists=self._lora_exists,
        )
        hold = await self._moderate_prompt(params.prompt)
        if p.input_image:
            # Each video owns its reference image, so deleting the source never breaks the remix.
            params = replace(params, input_image=await _run(self._copy_input, p.input_image))
        # The remix belongs to the caller (a moderator remixing someone's video makes their own copy).
        new = NewJob(
            principal.user_id,
            params,
            idempotency_key=_key(idempotency_key),
            remixed_from=source.id,
            hold_reason=hold,
        )
        job, created, rendered = await self._batcher.create(new)
        if not created and params.input_image and params.input_image != job.params.input_image:
            await _run(self._delete_input, params.input_image)
        return rendered

    def _copy_input(self, key: str) -> str:
        new_key = f"inputs/{secrets.token_hex(12)}/{key.rsplit('/', 1)[-1]}"
        self.artifacts.put_bytes(new_key, self.artifacts.read_bytes(key))
        return new_key

    async def unsupported(
        self, principal: Principal, operation: Literal["edit", "extend", "character"], body: ParsedBody | None
    ) -> NoReturn:
        """POST /videos/edits, /videos/extensions, /videos/characters: answer a clear 400 (never 404) that
        names the model that cannot do it, after checking the request itself is well formed."""
        if operation == "character":
            raise APIError(400, "characters are not supported by reelgen", code="unsupported_operation")
        assert body is not None
        fields = optional_form_values(body.fields) if body.is_form else dict(body.fields)
        has_upload = "video" in body.files
        if has_upload:
            fields.setdefault("video", {"id": "upload"})
        _parse(VideoEditRequest if operation == "edit" else VideoExtendRequest, fields)
        model = self.settings.default_model
        video_ref = fields.get("video")
        if not has_upload and isinstance(video_ref, dict) and isinstance(video_ref.get("id"), str):
            source = await _run(self.store.get, video_ref["id"])
            # An unknown (or someone else's) id still gets this 400: no model can do it anyway.
            if source is not None and principal.can_see(source.owner):
                model = source.model
        spec = self.registry.get_spec(model)
        what = "video edits are" if operation == "edit" else "video extensions are"
        # A model may list the stage before this server wires it up; say which of the two it is.
        reason = (
            "not implemented by this server yet" if operation in spec.stages else f"not supported by model {spec.id}"
        )
        raise APIError(400, f"{what} {reason}", param="video", code="unsupported_operation")

    # --- content -----------------------------------------------------------------------------------------
    async def content(
        self, principal: Principal, video_id: str, variant: ContentVariant, variation: int = 0
    ) -> ContentRef:
        return await _run(self._content, principal, video_id, variant, variation)

    def _content(self, principal: Principal, video_id: str, variant: ContentVariant, variation: int) -> ContentRef:
        job = self._owned(principal, video_id)
        if job.review.state in (ReviewState.HELD, ReviewState.BLOCKED) and not principal.sees_all:
            # Flagged by a moderation check: withheld from its owner until a moderator releases it.
            what = "held for review" if job.review.state is ReviewState.HELD else "blocked by a moderator"
            raise APIError(
                409,
                f"video {job.id} is {what} ({job.review.reason}); its content is not available",
                code=f"video_{job.review.state.value}",
            )
        return self.content_ref(job, variant, variation)

    def content_ref(self, job: Job, variant: ContentVariant, variation: int = 0) -> ContentRef:
        """Where a job's asset is (no access check: callers decide who may see it)."""
        if job.status in (JobStatus.QUEUED, JobStatus.IN_PROGRESS):
            raise APIError(
                409,
                f"video {job.id} is {job.status.value}; its content is available once it is completed",
                code="video_not_ready",
            )
        if job.status is not JobStatus.COMPLETED or job.artifact is None:
            raise NotFound(f"video {job.id} is {job.status.value} and has no content", param="video_id")
        art = job.artifact
        if variation:
            extra = art.extra.get("variations") or []
            if variant != "video":
                raise bad_request("variation applies to variant=video only", param="variation")
            if not 0 < variation <= len(extra):
                raise bad_request(f"variation must be between 0 and {len(extra)} for this video", param="variation")
            key: str | None = extra[variation - 1]
        else:
            key = {"video": art.video_key, "thumbnail": art.thumbnail_key, "spritesheet": art.spritesheet_key}[variant]
        if not key:
            raise NotFound(f"video {job.id} has no {variant}", param="variant")
        try:
            size = self.artifacts.size(key)
        except FileNotFoundError:
            raise NotFound(f"the {variant} of video {job.id} is missing from storage", param="variant") from None
        suffix = "." + key.rsplit(".", 1)[-1].lower()
        media_type = _MEDIA_TYPES.get(suffix, "application/octet-stream")
        tag = art.sha256[:32] if variant == "video" and not variation else f"{job.id}-{job.attempt}-{variant}"
        name = f"{job.id}{'' if variant == 'video' else '-' + variant}{f'-{variation}' if variation else ''}{suffix}"
        return ContentRef(key=key, media_type=media_type, size=size, filename=name, etag=f'"{tag}"')

    # --- events ------------------------------------------------------------------------------------------
    async def events(self, principal: Principal, video_id: str, after_seq: int = 0) -> AsyncIterator[SseMessage]:
        """The job's event log from `after_seq` on, live, ending after its final status.

        Yields a `video` snapshot first, then every stored event (id = seq: status, progress with step/total
        and preview frames, cancel_requested), `queue` updates while it waits, and a final `video` object.
        """
        first = await _run(self._retrieve, principal, video_id)
        return self._event_stream(first.video, after_seq)

    async def _event_stream(self, first: Video, after_seq: int) -> AsyncIterator[SseMessage]:
        video_id = first.id
        yield SseMessage("video", first.model_dump(mode="json"))
        last_position = first.queue_position
        if first.queue_position is not None:
            yield SseMessage("queue", {"queue_position": first.queue_position, "eta_seconds": first.eta_seconds})
        last_check = last_sent = time.monotonic()
        seq = after_seq
        while True:
            events = await _run(self.store.events, video_id, seq, 200)
            final = False
            for ev in events:
                seq = ev.seq
                yield SseMessage(ev.kind, {"video_id": video_id, **ev.data}, id=ev.seq)
                if ev.kind == "status" and ev.data.get("status") in ("completed", "failed", "cancelled"):
                    final = True
            now = time.monotonic()
            if events:
                last_sent = now
            if final or now - last_check >= QUEUE_POLL_SECONDS:
                last_check = now
                job = await _run(self.store.get, video_id)
                if job is None:
                    yield SseMessage("error", {"message": f"video {video_id} was deleted", "code": "not_found"})
                    return
                if job.status.terminal:
                    # Drain whatever was logged between the events query and this read, then finish.
                    for ev in await _run(self.store.events, video_id, seq, 200):
                        seq = ev.seq
                        yield SseMessage(ev.kind, {"video_id": video_id, **ev.data}, id=ev.seq)
                    final_video = (await _run(self._render, job)).video
                    yield SseMessage("video", final_video.model_dump(mode="json"))
                    return
                if job.status is JobStatus.QUEUED:
                    rendered = await _run(self._render, job)
                    if rendered.video.queue_position != last_position:
                        last_position = rendered.video.queue_position
                        yield SseMessage(
                            "queue",
                            {"queue_position": last_position, "eta_seconds": rendered.video.eta_seconds},
                        )
                        last_sent = now
            if len(events) >= 200:
                continue  # more backlog to send right away
            if now - last_sent >= KEEPALIVE_SECONDS:
                yield SseMessage("ping", {})
                last_sent = now
            await asyncio.sleep(EVENT_POLL_SECONDS)

    # --- models ------------------------------------------------------------------------------------------
    async def models(self) -> ModelList:
        return await _run(self._models)

    def _models(self) -> ModelList:
        return ModelList(data=[self._model_card(spec) for spec in self.registry.list_specs()])

    async def model(self, model_id: str) -> ModelCard:
        try:
            spec = self.registry.get_spec(model_id)
        except InvalidParams as e:
            raise NotFound(e.message, param="model") from None
        return await _run(self._model_card, spec)

    def _model_card(self, spec: ModelSpec) -> ModelCard:
        avail = self.registry.availability(spec.id)
        max_seconds = min(spec.max_seconds, self.settings.max_seconds)
        return ModelCard(
            id=spec.id,
            created=self.started_at,
            owned_by=spec.owned_by,
            description=spec.description,
            family=spec.family,
            sizes=[str(s) for s in spec.sizes],
            default_size=str(spec.default_size),
            seconds=[str(s) for s in range(1, int(max_seconds) + 1)],
            default_seconds=spec.default_seconds,
            max_seconds=max_seconds,
            fps=spec.fps,
            default_steps=spec.default_steps,
            max_steps=min(spec.max_steps, self.settings.max_steps),
            inputs=list(spec.inputs),
            vocabulary=list(spec.vocabulary) or None,
            runnable=avail.runnable,
            runnable_reason=avail.reason,
        )

    # --- helpers -----------------------------------------------------------------------------------------
    def _owned(self, principal: Principal, video_id: str) -> Job:
        job = self.store.get(video_id)
        # Someone else's video is answered exactly like a missing one: ids must not leak across owners.
        if job is None or not principal.can_see(job.owner):
            raise NotFound(f"no video with id {video_id!r}", param="video_id")
        return job

    def _render(self, job: Job) -> Rendered:
        """The API view of a job (blocking: may query queue position and timing)."""
        return self._render_at(job, self.queue.position(job.id) if job.status is JobStatus.QUEUED else None)

    def _render_at(self, job: Job, position: int | None) -> Rendered:
        eta = self.eta.estimate(job, position)
        return Rendered(video=to_video(job, position, eta), poll_after_ms=poll_after_ms(job, eta))


def _reads_inline(store: JobStore) -> bool:
    from reelgen.jobs.sqlite import SqliteJobStore

    return isinstance(store, SqliteJobStore)


def to_video(job: Job, queue_position: int | None, eta_seconds: float | None) -> Video:
    p = job.params
    return Video(
        id=job.id,
        completed_at=int(job.finished_at) if job.finished_at is not None and job.status.terminal else None,
        created_at=int(job.created_at),
        error=VideoError(code=job.error.code, message=job.error.message)
        if job.error is not None and job.status in (JobStatus.FAILED, JobStatus.CANCELLED)
        else None,
        model=p.model,
        progress=100 if job.status is JobStatus.COMPLETED else job.progress,
        prompt=p.prompt,
        remixed_from_video_id=job.remixed_from,
        seconds=f"{p.seconds:g}",
        size=str(p.size),
        status=job.status.value,
        queue_position=queue_position,
        eta_seconds=eta_seconds,
        attempt=job.attempt,
        params=_params(p),
        published_at=int(job.published_at) if job.published_at is not None else None,
        review=to_review(job.review),
        has_audio="audio" in job.artifact.extra if job.artifact is not None else None,
    )


def to_review(review: Review) -> VideoReview:
    return VideoReview(
        state=review.state.value,
        reason=review.reason,
        submitted_at=int(review.submitted_at) if review.submitted_at is not None else None,
        reviewed_at=int(review.reviewed_at) if review.reviewed_at is not None else None,
    )


def _params(p: GenerationParams) -> VideoParams:
    return VideoParams(
        prompt=p.prompt,
        model=p.model,
        seconds=p.seconds,
        size=str(p.size),
        fps=p.fps,
        num_frames=p.num_frames,
        seed=p.seed,
        steps=p.steps,
        guidance_scale=p.guidance_scale,
        negative_prompt=p.negative_prompt,
        n=p.n,
        input_image=p.input_image,
        preset=p.preset,
        lora=p.lora,
        lora_scale=p.lora_scale,
    )


def poll_after_ms(job: Job, eta_seconds: float | None) -> int | None:
    """How soon a polling client should ask again (`openai-poll-after-ms`); None once the job is finished.

    A quarter of the estimated remaining time, between 250 ms and 5 s: short jobs finish promptly for the
    client, long queues are not hammered. One second while nothing has been measured yet."""
    if job.status.terminal:
        return None
    if eta_seconds is None:
        return 1000
    return int(min(max(eta_seconds * 1000 / 4, 250), 5000))


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], fields: dict[str, Any], *, files: dict[str, bytes] | None = None) -> M:
    if files:
        name = next(iter(files))
        raise bad_request(f"unexpected file part {name!r}", param=name)
    try:
        return model.model_validate(fields)
    except ValidationError as e:
        raise from_validation(list(e.errors())) from None


def _reference_bytes(request: VideoCreateRequest, upload: bytes | None) -> bytes | None:
    if upload is not None:
        return upload
    ref = request.input_reference
    if ref is None:
        return None
    if ref.file_id is not None:
        raise bad_request(
            "input_reference[file_id] is not supported (reelgen has no Files API); upload the image as the "
            "input_reference file part or send it as a data: URL in input_reference[image_url]",
            param="input_reference[file_id]",
            code="unsupported_parameter",
        )
    if ref.image_url is None:
        raise bad_request("input_reference needs image_url (a data: URL) or a file part", param="input_reference")
    return decode_data_url(ref.image_url)


def _key(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > 255:
        raise bad_request("Idempotency-Key must be at most 255 characters", param="Idempotency-Key")
    return value
