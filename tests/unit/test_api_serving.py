"""VideoService without HTTP: a real SQLite store and a real local artifact folder; jobs are moved along with
the store's own worker calls (claim, report_progress, complete), exactly as a worker would."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reelgen.api.errors import APIError
from reelgen.api.forms import ParsedBody
from reelgen.api.serving import VideoService
from reelgen.domain import Artifact, InvalidParams, NotFound
from reelgen.domain.accounts import LOCAL, Principal, Role
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.engines.registry import Registry
from reelgen.jobs import JobStore, open_job_store
from reelgen.settings import Settings
from reelgen.storage.local import LocalArtifactStore

ALICE = Principal(user_id="alice", name="alice", role=Role.USER)
BOB = Principal(user_id="bob", name="bob", role=Role.USER)

IMAGE_MODEL = replace(TINY_RANDOM_WAN, id="tiny-image-wan", inputs=("text", "image"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    s = open_job_store(f"sqlite:///{tmp_path / 'reelgen.db'}")
    yield s
    s.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "videos")


@pytest.fixture
def service(tmp_path: Path, store: JobStore, artifacts: LocalArtifactStore) -> Iterator[VideoService]:
    registry = Registry()
    registry.register(TINY_RANDOM_WAN, "reelgen.engines.tiny_wan:create_engine")
    registry.register(IMAGE_MODEL, "reelgen.engines.tiny_wan:create_engine")
    service = VideoService(store, artifacts, Settings(home=tmp_path), registry=registry)
    yield service
    asyncio.run(service.aclose())


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def form(**fields: Any) -> ParsedBody:
    return ParsedBody(fields={k: str(v) for k, v in fields.items()}, files={}, is_form=True)


def tiny(**extra: Any) -> ParsedBody:
    return ParsedBody(fields={"prompt": "a red fox", "size": "64x64", "seconds": 0.5, **extra}, files={})


def png(size: tuple[int, int] = (48, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 90)).save(buf, format="PNG")
    return buf.getvalue()


def finish_next(store: JobStore, artifacts: LocalArtifactStore, *, step_seconds: float = 0.25) -> str:
    """Do what a worker does for the next queued job: claim, progress, store files, complete."""
    claim = store.claim("test-worker")
    assert claim is not None
    total = claim.job.params.steps
    for step in range(1, total + 1):
        store.report_progress(claim, step, total)
    prefix = f"videos/{claim.job_id}/{claim.attempt}"
    artifacts.put_bytes(f"{prefix}/video.mp4", b"\0\0\0\x20ftypisom" + bytes(range(256)) * 4)
    artifacts.put_bytes(f"{prefix}/thumbnail.webp", b"RIFF\0\0\0\0WEBPVP8 ")
    artifacts.put_bytes(f"{prefix}/spritesheet.jpg", b"\xff\xd8\xff\xe0")
    store.complete(
        claim,
        Artifact(
            video_key=f"{prefix}/video.mp4",
            thumbnail_key=f"{prefix}/thumbnail.webp",
            spritesheet_key=f"{prefix}/spritesheet.jpg",
            bytes=1036,
            num_frames=claim.job.params.num_frames,
            width=64,
            height=64,
            fps=16,
            sha256="ab" * 32,
            extra={"stats": {"mean_step_seconds": step_seconds}},
        ),
    )
    return claim.job_id


def test_create_validates_resolves_defaults_and_enqueues(service: VideoService, store: JobStore) -> None:
    rendered = run(service.create(LOCAL, form(prompt="a red fox", size="64x64", seconds="1", steps="3", seed="")))
    video = rendered.video
    assert video.status == "queued" and video.object == "video" and video.model == "tiny-random-wan"
    assert (video.size, video.seconds, video.progress, video.queue_position) == ("64x64", "1", 0, 1)
    assert video.params.steps == 3 and video.params.num_frames == 17 and video.params.fps == 16
    assert video.eta_seconds is None  # nothing measured yet
    assert rendered.poll_after_ms == 1000
    job = store.get(video.id)
    assert job is not None and job.owner == "local" and job.params.seed == video.params.seed


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"size": "65x64"}, "size"),
        ({"seconds": "99"}, "seconds"),
        ({"steps": "0"}, "steps"),
        ({"steps": "many"}, "steps"),
        ({"model": "sora-2"}, "model"),
        ({"prompt": ""}, "prompt"),
        ({"sizes": "64x64"}, "sizes"),
    ],
)
def test_invalid_requests_name_the_parameter_and_enqueue_nothing(
    service: VideoService, store: JobStore, fields: dict[str, str], param: str
) -> None:
    with pytest.raises((InvalidParams, APIError)) as e:
        run(service.create(LOCAL, form(**{"prompt": "a fox", **fields})))
    assert e.value.param == param
    assert store.list("local").jobs == []


def test_owner_isolation_answers_404_for_someone_elses_video(service: VideoService) -> None:
    video = run(service.create(ALICE, tiny())).video
    assert run(service.retrieve(ALICE, video.id)).video.id == video.id
    for call in (
        service.retrieve(BOB, video.id),
        service.delete(BOB, video.id),
        service.content(BOB, video.id, "video"),
        service.remix(BOB, video.id, ParsedBody({"prompt": "x"}, {})),
    ):
        with pytest.raises(NotFound):
            run(call)
    assert run(service.list(BOB)).data == []
    with pytest.raises(APIError) as e:
        run(service.list(BOB, after=video.id))
    assert e.value.param == "after"


def test_list_pages_both_ways(service: VideoService) -> None:
    ids = [run(service.create(LOCAL, tiny())).video.id for _ in range(5)]
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        seen, after = [], None
        while True:
            page = run(service.list(LOCAL, limit=2, after=after, order=order))
            seen += [v.id for v in page.data]
            assert page.first_id == page.data[0].id and page.last_id == page.data[-1].id
            if not page.has_more:
                break
            after = page.last_id
        assert seen == expected
    with pytest.raises(APIError):
        run(service.list(LOCAL, limit=0))


def test_queue_positions_and_eta_from_measured_steps(
    service: VideoService, store: JobStore, artifacts: LocalArtifactStore
) -> None:
    run(service.create(LOCAL, tiny(steps=4)))
    done = finish_next(store, artifacts, step_seconds=0.25)
    service.eta._cache.clear()  # the test does not wait out the refresh interval
    first = run(service.create(LOCAL, tiny(steps=4))).video
    second = run(service.create(LOCAL, tiny(steps=8))).video
    assert (first.queue_position, second.queue_position) == (1, 2)
    assert first.eta_seconds is not None and second.eta_seconds is not None
    assert first.eta_seconds >= 4 * 0.25 and second.eta_seconds > first.eta_seconds
    finished = run(service.retrieve(LOCAL, done))
    assert finished.video.status == "completed" and finished.video.eta_seconds is None
    assert finished.poll_after_ms is None and finished.video.completed_at is not None


def test_content_is_409_until_completed_then_served(
    service: VideoService, store: JobStore, artifacts: LocalArtifactStore
) -> None:
    video = run(service.create(LOCAL, tiny())).video
    with pytest.raises(APIError) as e:
        run(service.content(LOCAL, video.id, "video"))
    assert e.value.status == 409
    finish_next(store, artifacts)
    refs = {v: run(service.content(LOCAL, video.id, v)) for v in ("video", "thumbnail", "spritesheet")}
    assert [r.media_type for r in refs.values()] == ["video/mp4", "image/webp", "image/jpeg"]
    assert refs["video"].size == 1036 and refs["video"].filename == f"{video.id}.mp4"
    with pytest.raises(APIError):
        run(service.content(LOCAL, video.id, "video", variation=1))


def test_delete_removes_row_events_and_files(
    service: VideoService, store: JobStore, artifacts: LocalArtifactStore
) -> None:
    video = run(service.create(LOCAL, tiny())).video
    finish_next(store, artifacts)
    assert artifacts.list(f"videos/{video.id}/")
    deleted = run(service.delete(LOCAL, video.id))
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    assert store.get(video.id) is None and store.events(video.id) == []
    assert artifacts.list(f"videos/{video.id}/") == []
    with pytest.raises(NotFound):
        run(service.delete(LOCAL, video.id))


def test_delete_cancels_a_queued_job_first(service: VideoService, store: JobStore) -> None:
    video = run(service.create(LOCAL, tiny())).video
    assert run(service.delete(LOCAL, video.id)).deleted
    assert store.get(video.id) is None


def test_delete_of_a_running_job_waits_for_its_worker_to_stop(service: VideoService, store: JobStore) -> None:
    video = run(service.create(LOCAL, tiny()))
    claim = store.claim("w")
    assert claim is not None

    async def scenario() -> Any:
        async def worker() -> None:
            while not store.report_progress(claim, 1, 2).cancel_requested:
                await asyncio.sleep(0.05)
            store.mark_cancelled(claim)

        task = asyncio.create_task(worker())
        deleted = await service.delete(LOCAL, video.video.id)
        await task
        return deleted

    assert run(scenario()).deleted
    assert store.get(video.video.id) is None


def test_remix_keeps_the_recipe_and_links_the_source(service: VideoService) -> None:
    source = run(service.create(LOCAL, tiny(seed=42, steps=3))).video
    remix = run(service.remix(LOCAL, source.id, ParsedBody({"prompt": "a blue fox"}, {}))).video
    assert remix.remixed_from_video_id == source.id and remix.prompt == "a blue fox"
    assert (remix.params.seed, remix.params.steps, remix.size) == (42, 3, "64x64")
    with pytest.raises(APIError) as e:
        run(service.remix(LOCAL, source.id, ParsedBody({"prompt": "x", "seed": 1}, {})))
    assert e.value.param == "seed"


def test_idempotency_key_returns_the_first_video(service: VideoService) -> None:
    a = run(service.create(LOCAL, tiny(), idempotency_key="key-1")).video
    b = run(service.create(LOCAL, tiny(steps=9), idempotency_key="key-1")).video
    c = run(service.create(LOCAL, tiny(), idempotency_key="key-2")).video
    assert a.id == b.id != c.id and b.params.steps == a.params.steps


def test_concurrent_creates_share_commits_and_keep_their_order(service: VideoService, store: JobStore) -> None:
    async def burst() -> list[Any]:
        return await asyncio.gather(*(service.create(LOCAL, tiny(prompt=f"fox {i}")) for i in range(40)))

    videos = [r.video for r in run(burst())]
    assert [v.queue_position for v in videos] == list(range(1, 41))
    assert [j.params.prompt for j in store.list("local", limit=100, order="asc").jobs] == [
        f"fox {i}" for i in range(40)
    ]


def test_reference_image_is_stored_and_passed_as_a_storage_key(
    service: VideoService, artifacts: LocalArtifactStore
) -> None:
    body = ParsedBody(
        fields={"prompt": "a fox", "model": "tiny-image-wan", "size": "64x64"},
        files={"input_reference": png()},
        is_form=True,
    )
    video = run(service.create(LOCAL, body)).video
    key = video.params.input_image
    assert key is not None and key.startswith("inputs/") and key.endswith("/reference.png")
    assert artifacts.read_bytes(key) == png()
    remix = run(service.remix(LOCAL, video.id, ParsedBody({"prompt": "again"}, {}))).video
    assert remix.params.input_image not in (None, key)  # the remix owns a copy
    run(service.delete(LOCAL, video.id))
    assert not artifacts.exists(key) and artifacts.exists(remix.params.input_image or "")


def test_reference_image_for_a_text_only_model_is_400_and_stores_nothing(
    service: VideoService, artifacts: LocalArtifactStore
) -> None:
    body = ParsedBody(fields={"prompt": "a fox", "size": "64x64"}, files={"input_reference": png()}, is_form=True)
    with pytest.raises(InvalidParams) as e:
        run(service.create(LOCAL, body))
    assert e.value.param == "input_reference" and "tiny-random-wan" in e.value.message
    assert artifacts.list("inputs/") == []


def test_file_ids_and_remote_urls_are_refused(service: VideoService) -> None:
    for ref, param in (({"file_id": "file_1"}, "input_reference[file_id]"), ({"image_url": "https://x/y.png"}, None)):
        with pytest.raises((InvalidParams, APIError)) as e:
            run(service.create(LOCAL, tiny(model="tiny-image-wan", input_reference=ref)))
        assert e.value.param == (param or "input_reference[image_url]")


@pytest.mark.parametrize("operation", ["edit", "extend"])
def test_edits_and_extensions_are_a_clear_400(service: VideoService, operation: str) -> None:
    source = run(service.create(LOCAL, tiny())).video
    fields: dict[str, Any] = {"prompt": "x", "video": {"id": source.id}}
    if operation == "extend":
        fields["seconds"] = "4"
    with pytest.raises(APIError) as e:
        run(service.unsupported(LOCAL, operation, ParsedBody(fields, {})))  # type: ignore[arg-type]
    assert e.value.status == 400 and "not supported by model tiny-random-wan" in e.value.message


def test_event_stream_replays_the_log_and_ends_with_the_final_video(
    service: VideoService, store: JobStore, artifacts: LocalArtifactStore
) -> None:
    video = run(service.create(LOCAL, tiny(steps=3))).video
    finish_next(store, artifacts)

    async def collect(after: int = 0) -> list[Any]:
        return [m async for m in await service.events(LOCAL, video.id, after)]

    messages = run(collect())
    kinds = [m.event for m in messages]
    assert kinds[0] == "video" and kinds[-1] == "video" and messages[-1].data["status"] == "completed"
    progress = [m.data["step"] for m in messages if m.event == "progress"]
    assert progress == [1, 2, 3]
    ids = [m.id for m in messages if m.id is not None]
    assert ids == sorted(ids)
    resumed = run(collect(after=ids[2]))
    assert [m.id for m in resumed if m.id is not None] == ids[3:]


def test_models_describe_what_each_accepts(service: VideoService) -> None:
    models = {m.id: m for m in run(service.models()).data}
    tiny_model = models["tiny-random-wan"]
    assert tiny_model.object == "model" and "64x64" in tiny_model.sizes and tiny_model.inputs == ["text"]
    assert models["tiny-image-wan"].inputs == ["text", "image"]
    assert tiny_model.seconds == ["1", "2", "3", "4", "5"] and tiny_model.runnable
    with pytest.raises(NotFound):
        run(service.model("sora-2"))
