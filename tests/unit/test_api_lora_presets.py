"""The `preset`, `lora` and `lora_scale` request fields through VideoService (no HTTP, no torch): validated
and resolved at create time, kept in the stored recipe, carried over by a remix."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reelgen.api.errors import APIError
from reelgen.api.forms import ParsedBody
from reelgen.api.serving import VideoService
from reelgen.domain import InvalidParams
from reelgen.domain.accounts import LOCAL
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.engines.registry import Registry
from reelgen.jobs import JobStore, open_job_store
from reelgen.settings import Settings
from reelgen.storage.local import LocalArtifactStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    s = open_job_store(f"sqlite:///{tmp_path / 'reelgen.db'}")
    yield s
    s.close()


def make_service(tmp_path: Path, store: JobStore, **settings: Any) -> VideoService:
    registry = Registry()
    registry.register(TINY_RANDOM_WAN, "reelgen.engines.tiny_wan:create_engine")
    return VideoService(
        store, LocalArtifactStore(tmp_path / "videos"), Settings(home=tmp_path, **settings), registry=registry
    )


@pytest.fixture
def lora_dir(tmp_path: Path) -> Path:
    root = tmp_path / "loras"
    (root / "anime").mkdir(parents=True)
    (root / "anime" / "pytorch_lora_weights.safetensors").write_bytes(b"{}")
    (root / "film-grain.safetensors").write_bytes(b"{}")
    return root


@pytest.fixture
def service(tmp_path: Path, store: JobStore, lora_dir: Path) -> Iterator[VideoService]:
    service = make_service(tmp_path, store, lora_dir=lora_dir)
    yield service
    asyncio.run(service.aclose())


def form(**fields: Any) -> ParsedBody:
    fields = {"prompt": "a red fox", "size": "64x64", "seconds": "0.5", **fields}
    return ParsedBody(fields={k: str(v) for k, v in fields.items()}, files={}, is_form=True)


def test_preset_and_lora_are_resolved_and_stored(service: VideoService, store: JobStore) -> None:
    video = asyncio.run(service.create(LOCAL, form(preset="fast", lora="anime", lora_scale="0.75"))).video
    assert (video.params.preset, video.params.lora, video.params.lora_scale) == ("fast", "anime", 0.75)
    job = store.get(video.id)
    assert job is not None and (job.params.preset, job.params.lora, job.params.lora_scale) == ("fast", "anime", 0.75)
    plain = asyncio.run(service.create(LOCAL, form(lora=""))).video
    assert (plain.params.preset, plain.params.lora, plain.params.lora_scale) == ("quality", None, 1.0)
    remixed = asyncio.run(service.remix(LOCAL, video.id, ParsedBody({"prompt": "a blue fox"}, {}))).video
    assert (remixed.params.preset, remixed.params.lora, remixed.params.lora_scale) == ("fast", "anime", 0.75)
    json_body = ParsedBody({"prompt": "a fox", "size": "64x64", "seconds": 0.5, "lora": "film-grain"}, {})
    assert asyncio.run(service.create(LOCAL, json_body)).video.params.lora == "film-grain"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"lora": "missing"}, "lora"),
        ({"lora": "../loras/anime"}, "lora"),
        ({"lora": "anime/pytorch_lora_weights"}, "lora"),
        ({"lora": "anime", "lora_scale": "9"}, "lora_scale"),
        ({"lora_scale": "0.5"}, "lora_scale"),
        ({"preset": "turbo"}, "preset"),
    ],
)
def test_bad_fields_are_a_400_naming_the_parameter(
    service: VideoService, store: JobStore, fields: dict[str, str], param: str
) -> None:
    with pytest.raises((InvalidParams, APIError)) as e:
        asyncio.run(service.create(LOCAL, form(**fields)))
    assert e.value.param == param
    assert store.list("local").jobs == []


def test_without_a_lora_folder_every_lora_is_refused(tmp_path: Path, store: JobStore) -> None:
    service = make_service(tmp_path, store, default_preset="balanced")
    try:
        with pytest.raises(InvalidParams) as e:
            asyncio.run(service.create(LOCAL, form(lora="anime")))
        assert e.value.param == "lora" and "REELGEN_LORA_DIR" in e.value.message
        assert asyncio.run(service.create(LOCAL, form())).video.params.preset == "balanced"
    finally:
        asyncio.run(service.aclose())
