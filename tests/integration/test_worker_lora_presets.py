"""A worker running LoRA and speed-preset jobs end to end: the request's LoRA name is resolved in the worker's
LoRA folder (REELGEN_LORA_DIR), applied by the real tiny Wan engine, and the video lands as an mp4."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelgen.domain import JobStatus
from reelgen.domain.params import validate_params
from reelgen.engines.lora import LoraLibrary
from reelgen.engines.registry import create_engine, get_spec
from reelgen.jobs import JobStore
from reelgen.settings import Settings
from reelgen.storage.local import LocalArtifactStore
from reelgen.worker.engine_cache import EngineCache
from reelgen.worker.runner import Worker, WorkerConfig
from tests.unit.test_engine_lora import save_random_lora

SPEC = get_spec("tiny-random-wan")


@pytest.fixture
def lora_dir(tmp_path: Path) -> Path:
    save_random_lora(tmp_path / "loras" / "style", seed=3)
    return tmp_path / "loras"


def test_lora_and_preset_jobs_complete_and_a_vanished_lora_fails_for_good(
    store: JobStore, tmp_path: Path, lora_dir: Path
) -> None:
    artifacts = LocalArtifactStore(tmp_path / "videos")
    cache = EngineCache(lambda model_id: create_engine(model_id, device="cpu"))
    worker = Worker(store, artifacts, cache, WorkerConfig("w", heartbeat_seconds=0.2, lora_dir=lora_dir))
    exists = LoraLibrary(lora_dir).exists

    def create(**kw: object) -> str:
        params = validate_params(SPEC, Settings().limits, prompt="a red fox", size="64x64", seconds=0.5, seed=1, **kw)  # type: ignore[arg-type]
        return store.create("alice", params)[0].id

    ids = [
        create(steps=2, lora="style", lora_exists=exists),
        create(steps=10, preset="fast"),
        create(steps=10, preset="balanced", lora="style", lora_scale=0.5, lora_exists=exists),
    ]
    for job_id in ids:
        done = worker.run_once()
        assert done is not None and done.id == job_id and done.status is JobStatus.COMPLETED, done
    engine = cache.get("tiny-random-wan")
    assert engine.adapters.loads == 1 and engine.adapters.hits == 1  # type: ignore[attr-defined]
    assert cache.loads == 1

    job_id = create(steps=2, lora="style", lora_exists=exists)
    (lora_dir / "style" / "pytorch_lora_weights.safetensors").unlink()
    failed = worker.run_once()
    assert failed is not None and failed.id == job_id and failed.status is JobStatus.FAILED
    assert failed.error is not None and "no LoRA named 'style'" in failed.error.message
