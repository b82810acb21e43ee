"""A worker wired from Settings (REELGEN_GPU_MEMORY_GB, REELGEN_VAE_TILING) runs what fits and fails, for good
and before any step, the job that cannot fit, with what would fit in the error."""

from __future__ import annotations

from pathlib import Path

from reelgen.domain import JobStatus
from reelgen.domain.params import validate_params
from reelgen.engines.registry import get_spec
from reelgen.jobs import JobStore
from reelgen.runtime import build_worker
from reelgen.settings import Settings
from reelgen.storage.local import LocalArtifactStore

SPEC = get_spec("tiny-random-wan")


def test_a_job_too_big_for_the_memory_budget_fails_at_once(store: JobStore, tmp_path: Path) -> None:
    # ~50 MiB: the tiny model's 64x64 jobs fit, its 128x128 ones do not (by the planner's estimates).
    settings = Settings(home=tmp_path, device="cpu", gpu_memory_gb=0.05, vae_tiling="off")
    worker = build_worker(settings, store, LocalArtifactStore(tmp_path / "videos"), worker_id="w")

    def create(size: str) -> str:
        params = validate_params(SPEC, settings.limits, prompt="a red fox", size=size, seconds=0.5, steps=2, seed=1)
        return store.create("alice", params)[0].id

    fits, too_big = create("64x64"), create("128x128")
    done = worker.run_once()
    assert done is not None and done.id == fits and done.status is JobStatus.COMPLETED, done

    failed = worker.run_once()
    assert failed is not None and failed.id == too_big and failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code == "insufficient_gpu_memory"
    assert "tiny-random-wan at 128x128 with 9 frames needs about" in failed.error.message
    assert "What fits: 64x64 up to" in failed.error.message
    # Not retried: nothing is left in the queue, and no step of it ever ran.
    assert worker.run_once() is None
    assert failed.progress == 0 and failed.attempt == 1
