"""A context-parallel worker: `torchrun --nproc-per-node 2 -m reelgen worker --context-parallel ulysses|cfg`, two
real CPU processes on gloo splitting each video's transformer (its tokens, or its two guidance passes), against a
real database and storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reelgen.domain import JobStatus
from reelgen.engines.registry import create_engine
from reelgen.jobs import QueuePolicy, open_job_store
from reelgen.media.probe import decode_frames
from reelgen.storage.local import LocalArtifactStore
from reelgen.worker.engine_cache import EngineCache
from reelgen.worker.runner import Worker, WorkerConfig
from tests.integration.test_worker_processes import tiny, wait_for


def single_process_frames(tmp_path: Path, params) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The same job on an ordinary in-process worker: the frames context parallelism must reproduce."""
    store = open_job_store(f"sqlite:///{tmp_path / 'reference.db'}", QueuePolicy())
    artifacts = LocalArtifactStore(tmp_path / "reference")
    try:
        store.create("alice", params)
        worker = Worker(store, artifacts, EngineCache(create_engine), WorkerConfig("ref", heartbeat_seconds=1.0))
        done = worker.run_once()
        assert done is not None and done.status is JobStatus.COMPLETED, done
        return decode_frames(artifacts.local_path(done.artifact.video_key))
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ulysses", "cfg"])
def test_two_ranks_make_the_single_process_video_and_stop_together_on_cancel(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'reelgen.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGEN_")}
    env.update(
        REELGEN_HOME=str(tmp_path / "home"),
        REELGEN_DATABASE_URL=url,
        REELGEN_STORAGE_URL=str(tmp_path / "videos"),
        REELGEN_HEARTBEAT_SECONDS="0.3",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
    )
    store = open_job_store(url, QueuePolicy())
    artifacts = LocalArtifactStore(tmp_path / "videos")
    first, _ = store.create("alice", tiny(steps=3, seed=7))
    log = open(tmp_path / "torchrun.log", "wb")  # noqa: SIM115
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    proc = subprocess.Popen(
        [*torchrun, "-m", "reelgen", "worker", "--context-parallel", kind],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        done = wait_for(lambda: (j := store.get(first.id)) and j.status.terminal and j, 240, "the first job")
        assert done.status is JobStatus.COMPLETED, (done, (tmp_path / "torchrun.log").read_text()[-3000:])
        split = decode_frames(artifacts.local_path(done.artifact.video_key))
        # Ulysses attention is exact: each rank computes whole attention for half the heads. CFG parallel on Wan
        # is too: each rank runs one of the two guidance passes on the same inputs.
        assert np.array_equal(split, single_process_frames(tmp_path, tiny(steps=3, seed=7)))

        # Cancel a long job mid-run: rank 0's sink stops it, both ranks leave the pipeline at the same step,
        # and the follower is back waiting for the next job (a stuck follower would hang that job's collectives).
        long, _ = store.create("alice", tiny(steps=50, seed=8, size="832x480"))
        wait_for(lambda: (j := store.get(long.id)) and j.step >= 2, 120, "the long job to make progress")
        store.cancel(long.id)
        cancelled = wait_for(lambda: (j := store.get(long.id)) and j.status.terminal and j, 60, "the cancel")
        assert cancelled.status is JobStatus.CANCELLED and cancelled.step < 50
        after, _ = store.create("alice", tiny(steps=2, seed=9))
        finished = wait_for(lambda: (j := store.get(after.id)) and j.status.terminal and j, 120, "the next job")
        assert finished.status is JobStatus.COMPLETED, finished
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            store.close()
    text = (tmp_path / "torchrun.log").read_text()
    assert f"context-parallel worker: {kind} over 2 ranks" in text, text[-3000:]
    # Each rank loaded the model once and split its transformer (the same model for all three jobs).
    split = {
        "ulysses": "WanTransformer3DModel split ulysses-wise over 2 ranks",
        "cfg": "WanTransformer3DModel runs its guidance passes on 2 ranks (CFG parallel)",
    }[kind]
    assert text.count(split) == 2, text[-3000:]
