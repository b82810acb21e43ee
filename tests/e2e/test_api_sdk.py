"""The official `openai` SDK, unchanged but for `base_url`, against a real `reelgen serve` generating real
videos with the tiny Wan model (64x64, two steps: about a second each on a laptop CPU after warm-up)."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from reelgen.media.probe import probe

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")]

# What every test video is: small and fast. `extra_body` carries reelgen's extra parameters.
TINY: dict[str, Any] = {
    "model": "tiny-random-wan",
    "size": "64x64",
    "seconds": "0.5",
    "extra_body": {"steps": 2, "guidance_scale": 1.0, "seed": 1},
}


@pytest.fixture(scope="module")
def client(server_url: str) -> openai.OpenAI:
    # Any key works in single-owner mode; no retries so that every error surfaces as it is.
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="any-key", max_retries=0, timeout=60)


def test_create_and_poll_then_download_every_variant(client: openai.OpenAI, tmp_path: Path) -> None:
    video = client.videos.create_and_poll(prompt="a red fox running through snow", **TINY)
    assert video.status == "completed", video.error
    assert (video.object, video.progress, video.size, video.seconds) == ("video", 100, "64x64", "0.5")
    assert video.completed_at is not None and video.completed_at >= video.created_at
    extra = video.model_extra or {}
    assert extra["attempt"] == 1 and extra["params"]["steps"] == 2 and extra["params"]["num_frames"] == 9

    mp4 = tmp_path / "video.mp4"
    client.videos.download_content(video.id).write_to_file(mp4)
    info = probe(mp4)
    assert (info.num_frames, info.width, info.height, info.fps) == (9, 64, 64, 16)

    for variant, fmt in (("thumbnail", "WEBP"), ("spritesheet", "JPEG")):
        data = client.videos.download_content(video.id, variant=variant).content
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == fmt
            image.load()


def test_list_pages_of_one_walk_every_video_in_both_orders(client: openai.OpenAI) -> None:
    created = {client.videos.create(prompt=f"fox {i}", **TINY).id for i in range(3)}

    def walk(order: str) -> list[str]:
        ids = []
        for page in client.videos.list(limit=1, order=order).iter_pages():  # type: ignore[arg-type]
            assert len(page.data) == 1
            ids.append(page.data[0].id)
        return ids

    ascending, descending = walk("asc"), walk("desc")
    assert created <= set(ascending) and len(set(ascending)) == len(ascending)
    assert descending == ascending[::-1]
    assert [v.id for v in client.videos.list(order="asc")] == ascending  # the SDK's auto-paging agrees
    for video_id in created:  # keep the queue short for the tests that follow
        client.videos.delete(video_id)


def test_unknown_video_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_does_not_exist")
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content("video_does_not_exist")


def test_bad_size_is_a_bad_request_naming_size(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="a fox", **{**TINY, "size": "1x1"})
    assert e.value.param == "size" and "64x64" in e.value.message  # it lists the supported sizes
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="a fox", **{**TINY, "extra_body": {"stepz": 2}})
    assert e.value.param == "stepz"


def test_delete_removes_the_video(client: openai.OpenAI) -> None:
    video = client.videos.create_and_poll(prompt="a fox to delete", **TINY)
    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)


def test_deleting_an_unfinished_video_cancels_it(client: openai.OpenAI) -> None:
    video = client.videos.create(prompt="a long fox", **{**TINY, "extra_body": {"steps": 40, "guidance_scale": 1.0}})
    assert client.videos.delete(video.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)


def test_cancelled_videos_parse_and_end_polling(client: openai.OpenAI) -> None:
    video = client.videos.create(prompt="a fox to stop", **{**TINY, "extra_body": {"steps": 40, "guidance_scale": 1.0}})
    client.post(f"/videos/{video.id}/cancel", cast_to=openai.types.Video)
    stopped = client.videos.poll(video.id)  # "cancelled" is a status the SDK does not list; it still returns
    assert stopped.status == "cancelled"
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)


def test_remix_reuses_the_recipe_with_a_new_prompt(client: openai.OpenAI) -> None:
    source = client.videos.create_and_poll(prompt="a red fox", **TINY)
    remix = client.videos.remix(source.id, prompt="a blue fox")
    assert remix.remixed_from_video_id == source.id and remix.prompt == "a blue fox"
    done = client.videos.poll(remix.id)
    assert done.status == "completed"
    assert (done.model_extra or {})["params"]["seed"] == (source.model_extra or {})["params"]["seed"]


def test_idempotency_key_returns_the_same_video(client: openai.OpenAI) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = client.videos.create(prompt="once", **TINY, extra_headers=key)
    again = client.videos.create(prompt="once", **TINY, extra_headers=key)
    assert first.id == again.id
    client.videos.delete(first.id)


def test_edits_and_extensions_are_a_clear_bad_request(client: openai.OpenAI) -> None:
    # (This SDK version cannot send `video={"id": ...}` as multipart; the JSON form is covered by the HTTP tests.)
    clip = ("clip.mp4", b"\0\0\0\x20ftypisom", "video/mp4")
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.edit(prompt="make it blue", video=clip)
    assert "not supported by model tiny-random-wan" in e.value.message and e.value.param == "video"
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.extend(prompt="and then", seconds="4", video=clip)
    assert "not supported by model tiny-random-wan" in e.value.message


def test_models_say_what_they_accept(client: openai.OpenAI) -> None:
    model = next(m for m in client.models.list() if m.id == "tiny-random-wan")
    extra = model.model_extra or {}
    assert model.object == "model" and "64x64" in extra["sizes"] and extra["inputs"] == ["text"]
    assert extra["runnable"] is True


def read_events(url: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with httpx.stream("GET", url, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if "event" in current:
                    current["data"] = json.loads(current["data"])
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = value
    return events


def test_event_stream_shows_progress_and_the_final_status(client: openai.OpenAI, server_url: str) -> None:
    video = client.videos.create(prompt="a streamed fox", **{**TINY, "extra_body": {"steps": 6, "guidance_scale": 1.0}})
    url = f"{server_url}/v1/videos/{video.id}/events"
    events = read_events(url)

    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses[0] == "queued" and statuses[-1] == "completed" and "in_progress" in statuses
    progress = [e["data"]["progress"] for e in events if e["event"] == "progress"]
    assert progress and progress == sorted(set(progress)) and progress[-1] == 95
    steps = [(e["data"]["step"], e["data"]["total_steps"]) for e in events if e["event"] == "progress"]
    assert steps[-1] == (6, 6)
    assert events[-1]["event"] == "video" and events[-1]["data"]["status"] == "completed"
    assert events[-1]["data"]["progress"] == 100

    # A client that reconnects with the last id it saw misses nothing and repeats nothing.
    ids = [int(e["id"]) for e in events if "id" in e]
    resumed = read_events(url, {"Last-Event-ID": str(ids[1])})
    assert [int(e["id"]) for e in resumed if "id" in e] == ids[2:]
