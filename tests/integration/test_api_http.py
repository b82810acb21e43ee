"""The HTTP layer over a real SQLite store and artifact folder: body formats, errors, downloads with Range,
event streams, browser guards, the OpenAPI document, and the torch-free HTTP process."""

from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from reelgen.api.app import create_app
from reelgen.api.errors import APIError
from reelgen.api.middleware import GuardMiddleware
from reelgen.domain import Artifact, JobError
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.engines.registry import Registry
from reelgen.jobs import JobStore, open_job_store
from reelgen.settings import Settings
from reelgen.storage.local import LocalArtifactStore

IMAGE_MODEL = replace(TINY_RANDOM_WAN, id="tiny-image-wan", inputs=("text", "image"))
VIDEO_BYTES = bytes(range(256)) * 40  # 10240 bytes with a recognisable pattern
TINY = {"prompt": "a red fox", "size": "64x64", "seconds": "0.5", "steps": "2"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    s = open_job_store(f"sqlite:///{tmp_path / 'reelgen.db'}")
    yield s
    s.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "videos")


@pytest.fixture
def client(tmp_path: Path, store: JobStore, artifacts: LocalArtifactStore) -> Iterator[TestClient]:
    registry = Registry()
    registry.register(TINY_RANDOM_WAN, "reelgen.engines.tiny_wan:create_engine")
    registry.register(IMAGE_MODEL, "reelgen.engines.tiny_wan:create_engine")
    app = create_app(Settings(home=tmp_path), store=store, artifacts=artifacts, registry=registry)
    with TestClient(app) as c:
        yield c


def png(size: tuple[int, int] = (48, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 90)).save(buf, format="PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def complete_next(store: JobStore, artifacts: LocalArtifactStore) -> str:
    claim = store.claim("test-worker")
    assert claim is not None
    prefix = f"videos/{claim.job_id}/{claim.attempt}"
    artifacts.put_bytes(f"{prefix}/video.mp4", VIDEO_BYTES)
    artifacts.put_bytes(f"{prefix}/thumbnail.webp", b"RIFF\0\0\0\0WEBPVP8 ")
    artifacts.put_bytes(f"{prefix}/spritesheet.jpg", b"\xff\xd8\xff\xe0")
    store.complete(
        claim,
        Artifact(
            video_key=f"{prefix}/video.mp4",
            thumbnail_key=f"{prefix}/thumbnail.webp",
            spritesheet_key=f"{prefix}/spritesheet.jpg",
            bytes=len(VIDEO_BYTES),
            num_frames=9,
            width=64,
            height=64,
            fps=16,
            sha256="cd" * 32,
            extra={"stats": {"mean_step_seconds": 0.1}},
        ),
    )
    return claim.job_id


def assert_error(response: Any, status: int, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param, error
    return error


# --- create ------------------------------------------------------------------------------------------------


def test_json_create(client: TestClient) -> None:
    r = client.post("/v1/videos", json={"prompt": "a red fox", "size": "64x64", "seconds": 0.5, "seed": 7})
    assert r.status_code == 200, r.text
    video = r.json()
    assert video["object"] == "video" and video["status"] == "queued" and video["params"]["seed"] == 7
    assert r.headers["openai-poll-after-ms"] == "1000"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_multipart_create_as_the_sdk_sends_it(client: TestClient) -> None:
    # The SDK sends multipart even without a file; optional values it sends as "" mean "not given".
    r = client.post("/v1/videos", files={k: (None, v) for k, v in {**TINY, "seed": "", "n": ""}.items()})
    assert r.status_code == 200, r.text
    assert r.json()["params"]["n"] == 1 and r.json()["seconds"] == "0.5"


def test_unknown_fields_are_400_naming_them(client: TestClient) -> None:
    r = client.post("/v1/videos", json={"prompt": "x", "duration": 4, "quality": "high"})
    error = assert_error(r, 400, "duration")
    assert "duration" in error["message"] and "quality" in error["message"]
    assert r.headers["x-should-retry"] == "false"
    r = client.post("/v1/videos", files={"prompt": (None, "x"), "colour": (None, "red")})
    assert_error(r, 400, "colour")


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"prompt": "x", "size": "64x65"}, 400, "size"),
        ({"prompt": "x", "seconds": "forever"}, 400, "seconds"),
        ({"size": "64x64"}, 400, "prompt"),
        ({"prompt": "x", "input_reference": "file.png"}, 400, "input_reference"),
    ],
)
def test_invalid_values_name_the_param(client: TestClient, body: dict, status: int, param: str) -> None:
    assert_error(client.post("/v1/videos", json=body), status, param)


def test_malformed_bodies(client: TestClient) -> None:
    assert_error(client.post("/v1/videos", content=b"{nope", headers={"content-type": "application/json"}), 400)
    assert_error(client.post("/v1/videos", content=b"[1]", headers={"content-type": "application/json"}), 400)
    assert_error(client.post("/v1/videos", content=b"prompt=x", headers={"content-type": "text/plain"}), 415)
    twice = client.post(
        "/v1/videos", content=b"prompt=a&prompt=b", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert_error(twice, 400, "prompt")


def test_idempotency_key_header(client: TestClient) -> None:
    first = client.post("/v1/videos", json={"prompt": "x", "size": "64x64"}, headers={"Idempotency-Key": "abc"})
    again = client.post("/v1/videos", json={"prompt": "y", "size": "64x64"}, headers={"Idempotency-Key": "abc"})
    assert first.json()["id"] == again.json()["id"] and again.json()["prompt"] == "x"


# --- input_reference ---------------------------------------------------------------------------------------


def test_png_upload_is_stored_for_an_image_model(client: TestClient, artifacts: LocalArtifactStore) -> None:
    files = {**{k: (None, v) for k, v in TINY.items()}, "model": (None, "tiny-image-wan")}
    r = client.post("/v1/videos", files={**files, "input_reference": ("ref.png", png(), "image/png")})
    assert r.status_code == 200, r.text
    key = r.json()["params"]["input_image"]
    assert key.endswith("reference.png") and artifacts.read_bytes(key) == png()


def test_bracket_data_url_reference(client: TestClient) -> None:
    url = "data:image/png;base64," + base64.b64encode(png()).decode()
    fields = {**TINY, "model": "tiny-image-wan", "input_reference[image_url]": url}
    r = client.post("/v1/videos", files={k: (None, v) for k, v in fields.items()})
    assert r.status_code == 200, r.text
    assert r.json()["params"]["input_image"].endswith(".png")
    r = client.post("/v1/videos", json={**TINY, "model": "tiny-image-wan", "input_reference": {"image_url": url}})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"just some text, not a png at all\n" * 4, "png, jpeg or webp"),
        (png_claiming(100_000, 100_000), "pixels"),
        (png()[:40], "not a readable"),
    ],
    ids=["text-disguised-as-png", "huge-dimensions", "truncated"],
)
def test_bad_reference_images_are_400(
    client: TestClient, artifacts: LocalArtifactStore, data: bytes, message: str
) -> None:
    files = {**{k: (None, v) for k, v in TINY.items()}, "model": (None, "tiny-image-wan")}
    r = client.post("/v1/videos", files={**files, "input_reference": ("ref.png", data, "image/png")})
    assert message in assert_error(r, 400, "input_reference")["message"]
    assert artifacts.list("inputs/") == []


def test_reference_for_a_text_only_model_is_400(client: TestClient) -> None:
    files = {k: (None, v) for k, v in TINY.items()}
    r = client.post("/v1/videos", files={**files, "input_reference": ("ref.png", png(), "image/png")})
    assert "tiny-random-wan" in assert_error(r, 400, "input_reference")["message"]


# --- reads, downloads --------------------------------------------------------------------------------------


def test_retrieve_list_and_unknown_ids(client: TestClient) -> None:
    ids = [client.post("/v1/videos", json={"prompt": f"fox {i}", "size": "64x64"}).json()["id"] for i in range(3)]
    assert client.get(f"/v1/videos/{ids[0]}").json()["id"] == ids[0]
    page = client.get("/v1/videos", params={"limit": 2, "order": "asc"}).json()
    assert page["object"] == "list" and [v["id"] for v in page["data"]] == ids[:2] and page["has_more"]
    assert page["first_id"] == ids[0] and page["last_id"] == ids[1]
    rest = client.get("/v1/videos", params={"limit": 2, "order": "asc", "after": ids[1]}).json()
    assert [v["id"] for v in rest["data"]] == ids[2:] and not rest["has_more"]
    assert_error(client.get("/v1/videos/video_unknown"), 404, "video_id")
    assert_error(client.get("/v1/videos", params={"limit": 0}), 400, "limit")
    assert_error(client.get("/v1/videos", params={"order": "sideways"}), 400, "order")
    assert_error(client.get("/v1/nothing-here"), 404)


def test_download_with_ranges(client: TestClient, store: JobStore, artifacts: LocalArtifactStore) -> None:
    video_id = client.post("/v1/videos", json={"prompt": "x", "size": "64x64"}).json()["id"]
    not_ready = client.get(f"/v1/videos/{video_id}/content")
    assert_error(not_ready, 409)
    assert not_ready.headers["x-should-retry"] == "false"
    complete_next(store, artifacts)
    url = f"/v1/videos/{video_id}/content"

    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == VIDEO_BYTES
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["x-content-type-options"] == "nosniff"
    assert whole.headers["content-length"] == str(len(VIDEO_BYTES))

    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == VIDEO_BYTES[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(VIDEO_BYTES)}"
    tail = client.get(url, headers={"Range": "bytes=-16"})
    assert tail.status_code == 206 and tail.content == VIDEO_BYTES[-16:]
    open_end = client.get(url, headers={"Range": "bytes=10000-"})
    assert open_end.content == VIDEO_BYTES[10000:]

    beyond = client.get(url, headers={"Range": f"bytes={len(VIDEO_BYTES)}-"})
    assert_error(beyond, 416)
    assert beyond.headers["content-range"] == f"bytes */{len(VIDEO_BYTES)}"

    stale = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"some-other-version"'})
    assert stale.status_code == 200 and stale.content == VIDEO_BYTES
    fresh = client.get(url, headers={"Range": "bytes=0-9", "If-Range": whole.headers["etag"]})
    assert fresh.status_code == 206

    for variant, media_type in (("thumbnail", "image/webp"), ("spritesheet", "image/jpeg")):
        r = client.get(url, params={"variant": variant})
        assert r.status_code == 200 and r.headers["content-type"] == media_type
    assert_error(client.get(url, params={"variant": "poster"}), 400, "variant")


def test_cancel_keeps_the_record(client: TestClient) -> None:
    video_id = client.post("/v1/videos", json={"prompt": "x", "size": "64x64"}).json()["id"]
    r = client.post(f"/v1/videos/{video_id}/cancel")
    assert r.json()["status"] == "cancelled" and "openai-poll-after-ms" not in r.headers
    assert client.get(f"/v1/videos/{video_id}").json()["status"] == "cancelled"
    assert_error(client.get(f"/v1/videos/{video_id}/content"), 404)


def test_delete_then_everything_is_404(client: TestClient, store: JobStore, artifacts: LocalArtifactStore) -> None:
    video_id = client.post("/v1/videos", json={"prompt": "x", "size": "64x64"}).json()["id"]
    complete_next(store, artifacts)
    assert client.delete(f"/v1/videos/{video_id}").json() == {
        "id": video_id,
        "deleted": True,
        "object": "video.deleted",
    }
    assert_error(client.get(f"/v1/videos/{video_id}"), 404)
    assert_error(client.get(f"/v1/videos/{video_id}/content"), 404)
    assert artifacts.list(f"videos/{video_id}/") == []


def test_remix_edits_extensions(client: TestClient) -> None:
    source = client.post("/v1/videos", json={"prompt": "x", "size": "64x64", "seed": 5}).json()
    remix = client.post(f"/v1/videos/{source['id']}/remix", json={"prompt": "y"}).json()
    assert remix["remixed_from_video_id"] == source["id"] and remix["params"]["seed"] == 5
    edit = client.post("/v1/videos/edits", json={"prompt": "x", "video": {"id": source["id"]}})
    assert "not supported by model tiny-random-wan" in assert_error(edit, 400, "video")["message"]
    form = {"prompt": (None, "x"), "seconds": (None, "4"), "video[id]": (None, source["id"])}
    assert_error(client.post("/v1/videos/extensions", files=form), 400, "video")
    assert_error(client.post("/v1/videos/characters", files={"name": (None, "x")}), 400)


def test_models_and_health(client: TestClient) -> None:
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    card = next(m for m in models["data"] if m["id"] == "tiny-random-wan")
    assert card["object"] == "model" and card["owned_by"] and "64x64" in card["sizes"] and card["runnable"] is True
    assert client.get("/v1/models/tiny-image-wan").json()["inputs"] == ["text", "image"]
    assert client.get("/healthz").json()["status"] == "ok"


# --- events ------------------------------------------------------------------------------------------------


def parse_sse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if "event" in fields:
            fields["data"] = json.loads(fields["data"])
            events.append(fields)
    return events


def test_event_stream_follows_a_job_and_resumes_from_last_event_id(client: TestClient, store: JobStore) -> None:
    video_id = client.post("/v1/videos", json={"prompt": "x", "size": "64x64", "steps": 4}).json()["id"]

    def worker() -> None:
        time.sleep(0.3)
        claim = store.claim("w")
        assert claim is not None
        for step in range(1, 5):
            store.report_progress(claim, step, 4)
            time.sleep(0.1)
        store.fail(claim, JobError("boom", "it broke"), retryable=False)

    t = threading.Thread(target=worker)
    t.start()
    r = client.get(f"/v1/videos/{video_id}/events")
    t.join()
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    assert events[0]["event"] == "video" and events[-1]["event"] == "video"
    assert events[-1]["data"]["status"] == "failed" and events[-1]["data"]["error"]["code"] == "boom"
    steps = [e["data"]["step"] for e in events if e["event"] == "progress"]
    assert steps == [1, 2, 3, 4]
    ids = [int(e["id"]) for e in events if "id" in e]
    resumed = parse_sse(client.get(f"/v1/videos/{video_id}/events", headers={"Last-Event-ID": str(ids[3])}).text)
    assert [int(e["id"]) for e in resumed if "id" in e] == ids[4:]
    assert_error(client.get("/v1/videos/video_unknown/events"), 404)


# --- guards ------------------------------------------------------------------------------------------------


def test_cross_origin_requests_are_refused(client: TestClient) -> None:
    evil = client.post("/v1/videos", json={"prompt": "x"}, headers={"Origin": "https://evil.example"})
    assert_error(evil, 403)
    same = client.post("/v1/videos", json={"prompt": "x", "size": "64x64"}, headers={"Origin": "http://testserver"})
    assert same.status_code == 200


def test_trusted_hosts_defeat_dns_rebinding(tmp_path: Path, store: JobStore, artifacts: LocalArtifactStore) -> None:
    app = create_app(Settings(home=tmp_path), store=store, artifacts=artifacts, trusted_hosts=["127.0.0.1"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/healthz").status_code == 200
        assert_error(c.get("/healthz", headers={"Host": "rebound.example:8000"}), 403)


def test_bodies_are_capped_while_they_stream() -> None:
    async def echo(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    c = TestClient(GuardMiddleware(echo, max_body_bytes=100), raise_server_exceptions=True)
    assert c.post("/", content=b"x" * 100).status_code == 200
    assert_error(c.post("/", content=b"x" * 101), 413)
    with pytest.raises(APIError):  # no Content-Length: refused while streaming (the app maps it to 413)
        c.post("/", content=iter([b"x" * 60, b"x" * 60]))


# --- the document and the process --------------------------------------------------------------------------


def test_openapi_document_is_complete_and_resolvable(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    expected = {
        ("/v1/videos", "post"),
        ("/v1/videos", "get"),
        ("/v1/videos/{video_id}", "get"),
        ("/v1/videos/{video_id}", "delete"),
        ("/v1/videos/{video_id}/content", "get"),
        ("/v1/videos/{video_id}/remix", "post"),
        ("/v1/videos/{video_id}/events", "get"),
        ("/v1/videos/edits", "post"),
        ("/v1/videos/extensions", "post"),
        ("/v1/models", "get"),
        ("/healthz", "get"),
    }
    assert expected <= {(p, m) for p, ops in paths.items() for m in ops}
    create_body = paths["/v1/videos"]["post"]["requestBody"]["content"]
    assert set(create_body) == {"application/json", "multipart/form-data"}
    schemas = doc["components"]["schemas"]
    video = schemas["Video"]["properties"]
    for field in ("id", "object", "created_at", "status", "progress", "seconds", "size", "queue_position", "params"):
        assert field in video
    assert "cancelled" in json.dumps(schemas["Video"])
    form = schemas["VideoCreateForm"]["properties"]
    assert form["input_reference"]["anyOf"][0]["format"] == "binary" and "input_reference[image_url]" in form
    assert not [(p, m) for p, ops in paths.items() for m, op in ops.items() if "422" in op["responses"]]
    refs = [m for m in _walk(doc) if isinstance(m, str) and m.startswith("#/components/schemas/")]
    missing = {r for r in refs if r.rsplit("/", 1)[-1] not in schemas}
    assert not missing, missing


def _walk(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_the_http_process_never_imports_torch(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from fastapi.testclient import TestClient
        from reelgen.api.app import create_app
        from reelgen.settings import Settings
        with TestClient(create_app(Settings())) as c:
            tiny = {"prompt": "x", "model": "tiny-random-wan", "size": "64x64"}
            assert c.post("/v1/videos", json=tiny).status_code == 200
            assert c.post("/v1/videos", json={"prompt": "a red ball rolls to the left"}).status_code == 200
            models = {m["id"]: m for m in c.get("/v1/models").json()["data"]}
            assert models["tiny-random-wan"]["runnable"] and "star" in models["reelgen-demo"]["vocabulary"]
            assert c.get("/openapi.json").status_code == 200
        heavy = sorted(m for m in ("torch", "diffusers", "transformers", "av", "numpy") if m in sys.modules)
        assert not heavy, heavy
        """
    )
    env = {"REELGEN_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
