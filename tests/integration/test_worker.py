"""The worker loop in-process with the real tiny Wan engine, real SQLite/Postgres and real mp4 files."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from reelgen.api.serving import to_video
from reelgen.domain import JobStatus
from reelgen.domain.params import validate_params
from reelgen.engines.base import AudioTrack, Engine, StageRequest, VideoOutput
from reelgen.engines.registry import create_engine, get_spec
from reelgen.jobs import JobStore
from reelgen.media.probe import decode_audio, probe
from reelgen.settings import Settings
from reelgen.storage.local import LocalArtifactStore
from reelgen.worker.engine_cache import EngineCache
from reelgen.worker.runner import Worker, WorkerConfig

SPEC = get_spec("tiny-random-wan")


def tiny(prompt: str = "a red fox in the snow", **kw):
    kw.setdefault("size", "64x64")
    kw.setdefault("steps", 2)
    kw.setdefault("seed", 1)
    return validate_params(SPEC, Settings().limits, prompt=prompt, **kw)


class CrashingEngine(Engine):
    """A real Engine implementation whose model always fails (fault injection, like a CUDA error)."""

    spec = SPEC

    def load(self) -> None:
        pass

    def run(self, request: StageRequest, sink) -> VideoOutput:
        sink.step(1, request.params.steps)
        raise RuntimeError("the GPU caught fire")


class SoundEngine(Engine):
    """A real Engine implementation that makes a soundtrack with the picture, as LTX-2 does: gray frames and a
    440 Hz stereo tone at 48 kHz, built by hand (the video models here are silent)."""

    spec = SPEC

    def load(self) -> None:
        pass

    def run(self, request: StageRequest, sink) -> VideoOutput:
        p = request.params
        for step in range(1, p.steps + 1):
            sink.step(step, p.steps)
        frames = np.full((p.num_frames, p.size.height, p.size.width, 3), 128, np.uint8)
        t = np.arange(round(p.num_frames / p.fps * 48000)) / 48000
        tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        return VideoOutput(
            width=p.size.width,
            height=p.size.height,
            fps=p.fps,
            num_frames=p.num_frames,
            chunks=iter(np.array_split(frames, 3)),
            audio=AudioTrack(np.stack([tone, tone]), 48000),
        )


TEST_ENGINES = {"crashy": CrashingEngine, "with-sound": SoundEngine}


@pytest.fixture(scope="module")
def shared_cache() -> EngineCache:
    """One resident tiny engine for the whole module (as in a long-lived worker)."""
    return EngineCache(
        lambda model_id: TEST_ENGINES[model_id]() if model_id in TEST_ENGINES else create_engine(model_id)
    )


def make_worker(store: JobStore, artifacts, cache: EngineCache, name: str = "w", **cfg) -> Worker:
    config = WorkerConfig(worker_id=name, heartbeat_seconds=cfg.pop("heartbeat_seconds", 0.2), **cfg)
    return Worker(store, artifacts, cache, config)


@pytest.fixture
def artifacts(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "videos")


def test_job_runs_to_an_mp4_with_the_requested_frames_size_and_fps(store, artifacts, shared_cache) -> None:
    params = tiny(size="128x128", seconds=1, fps=8, steps=2)
    job, _ = store.create("alice", params)
    done = make_worker(store, artifacts, shared_cache).run_once()
    assert done is not None and done.status is JobStatus.COMPLETED, done
    art = done.artifact
    assert art is not None and art.video_key == f"videos/{job.id}/1/video.mp4"
    path = artifacts.local_path(art.video_key)
    assert path is not None
    info = probe(path)
    assert (info.num_frames, info.width, info.height) == (params.num_frames, 128, 128)
    assert float(info.fps) == 8 and info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert art.thumbnail_key and artifacts.exists(art.thumbnail_key)
    assert art.spritesheet_key and artifacts.exists(art.spritesheet_key)
    assert info.audio is None and "audio" not in art.extra and to_video(done, None, None).has_audio is False
    assert artifacts.list(f"tmp/{job.id}/") == []
    assert [e.data.get("status") for e in store.events(job.id) if e.kind == "status"] == [
        "queued",
        "in_progress",
        "completed",
    ]


def test_an_engine_soundtrack_ends_up_in_the_mp4_and_the_artifact(store, artifacts, shared_cache) -> None:
    params = replace(tiny(seconds=1, fps=16), model="with-sound")
    job, _ = store.create("alice", params)
    done = make_worker(store, artifacts, shared_cache).run_once()
    assert done is not None and done.status is JobStatus.COMPLETED, done
    seconds = params.num_frames / params.fps
    audio = {"sample_rate": 48000, "channels": 2, "seconds": pytest.approx(seconds)}
    assert done.artifact is not None and done.artifact.extra["audio"] == audio
    stored = store.get(job.id)  # read back from the database (JSON)
    assert stored is not None and stored.artifact is not None and stored.artifact.extra["audio"] == audio
    assert to_video(stored, None, None).has_audio is True
    path = artifacts.local_path(stored.artifact.video_key)
    assert path is not None
    info = probe(path)
    assert info.num_frames == params.num_frames and info.audio is not None
    assert (info.audio.sample_rate, info.audio.channels) == (48000, 2)
    decoded = decode_audio(path)
    assert decoded is not None
    samples, rate = decoded
    assert 0 <= samples.shape[1] - seconds * rate <= 1024  # up to one AAC frame of padding at the end
    spectrum = np.abs(np.fft.rfft(samples[0]))
    assert np.argmax(spectrum) * rate / samples.shape[1] == pytest.approx(440, abs=2)


def test_variations_run_as_one_batch_with_per_variation_progress(store, artifacts, shared_cache) -> None:
    from reelgen.media.probe import decode_frames

    job, _ = store.create("alice", tiny(n=3, steps=2, seed=7))
    worker = make_worker(store, artifacts, shared_cache, progress_interval=0.0)
    done = worker.run_once()
    assert done is not None and done.status is JobStatus.COMPLETED, done
    art = done.artifact
    assert art is not None and art.extra["stats"]["batch"] == 3.0  # one denoising pass made all three
    keys = [art.video_key, *art.extra["variations"]]
    assert [k.rsplit("/", 1)[1] for k in keys] == ["video.mp4", "video_1.mp4", "video_2.mp4"]
    # Progress counts every variation's steps: one pass of 2 steps for 3 clips is 6 of 6.
    steps = [e.data for e in store.events(job.id) if e.kind == "progress"]
    assert steps and steps[-1]["step"] == steps[-1]["total_steps"] == 6
    # Variation k of the batch is the clip a job of its own with seed 7 + k makes.
    single, _ = store.create("alice", tiny(seed=8, steps=2))
    alone = worker.run_once()
    assert alone is not None and alone.artifact is not None and alone.id == single.id
    batched = decode_frames(artifacts.local_path(keys[1]))  # type: ignore[arg-type]
    separate = decode_frames(artifacts.local_path(alone.artifact.video_key))  # type: ignore[arg-type]
    assert batched.shape == separate.shape
    assert abs(batched.astype(int) - separate).max() <= 4  # same noise, same math; h264 rounds alike


def test_engine_stays_resident_between_jobs(store, artifacts) -> None:
    cache = EngineCache(create_engine)
    worker = make_worker(store, artifacts, cache)
    for seed in (1, 2):
        store.create("a", tiny(seed=seed))
        assert worker.run_once().status is JobStatus.COMPLETED  # type: ignore[union-attr]
    assert cache.loads == 1


def test_cancel_stops_a_running_job_at_the_next_step_and_keeps_nothing(store, artifacts, shared_cache) -> None:
    job, _ = store.create("a", tiny(steps=40, size="128x128"))
    worker = make_worker(store, artifacts, shared_cache, progress_interval=0.0)
    result: list = []
    t = threading.Thread(target=lambda: result.append(worker.run_once()))
    t.start()
    deadline = time.monotonic() + 60
    while (j := store.get(job.id)) is not None and j.step < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    store.cancel(job.id)
    t.join(60)
    final = store.get(job.id)
    assert final is not None and final.status is JobStatus.CANCELLED
    assert final.step < 40  # it stopped early, not at the end
    assert artifacts.list(f"videos/{job.id}/") == [] and artifacts.list(f"tmp/{job.id}/") == []


def test_crashing_engine_fails_after_max_attempts_while_other_jobs_flow(store_factory, artifacts, shared_cache) -> None:
    store = store_factory(max_attempts=3, retry_backoff_seconds=0.05)
    bad, _ = store.create("a", replace(tiny(), model="crashy"))
    good, _ = store.create("a", tiny(seed=5))
    worker = make_worker(store, artifacts, shared_cache)
    stop = threading.Event()
    t = threading.Thread(target=worker.run_forever, args=(stop,))
    t.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        b, g = store.get(bad.id), store.get(good.id)
        if b and g and b.status.terminal and g.status.terminal:
            break
        time.sleep(0.05)
    stop.set()
    t.join(30)
    b, g = store.get(bad.id), store.get(good.id)
    assert b is not None and b.status is JobStatus.FAILED and b.attempt == 3
    assert b.error is not None and "failed after 3 attempts" in b.error.message and "GPU caught fire" in b.error.message
    assert g is not None and g.status is JobStatus.COMPLETED
    assert artifacts.list(f"videos/{bad.id}/") == []


def test_stale_worker_discards_its_files_and_the_newer_attempt_wins(store_factory, artifacts, shared_cache) -> None:
    store = store_factory(lease_seconds=0.5, retry_backoff_seconds=0.0)
    job, _ = store.create("a", tiny(steps=4, size="64x64"))
    stalled, release = threading.Event(), threading.Event()

    def stall(done: int, total: int) -> None:
        if done == 2:  # a GC pause / stuck kernel: the slow worker goes silent past its lease
            stalled.set()
            release.wait(60)

    # The slow worker never heartbeats in time (its beat interval is far longer than the lease).
    slow = make_worker(store, artifacts, shared_cache, name="slow", heartbeat_seconds=3600)
    slow.on_step = stall
    claim = store.claim("slow")
    assert claim is not None
    result: list = []
    t = threading.Thread(target=lambda: result.append(slow.process(claim)))
    t.start()
    assert stalled.wait(60)
    time.sleep(0.6)
    fresh = make_worker(store, artifacts, EngineCache(create_engine), name="fresh")
    done = fresh.run_once()
    release.set()
    t.join(120)
    assert done is not None and done.status is JobStatus.COMPLETED and done.attempt == 2
    assert result == [None]  # the slow worker noticed it was superseded and gave up
    assert {k.split("/")[2] for k in artifacts.list(f"videos/{job.id}/")} == {"2"}
    assert artifacts.list(f"tmp/{job.id}/") == []
    final = store.get(job.id)
    assert final is not None and final.attempt == 2 and final.status is JobStatus.COMPLETED


def test_a_real_job_is_charged_its_measured_gpu_time(
    store: JobStore, artifacts: LocalArtifactStore, shared_cache: EngineCache
) -> None:
    from reelgen.jobs import NewJob

    ((job, _),) = store.create_many([NewJob("alice", tiny(), gpu_seconds=500.0)])
    assert store.ledger_entry(job.id).charged == 500.0  # type: ignore[attr-defined]
    done = make_worker(store, artifacts, shared_cache).run_once()
    assert done is not None and done.status is JobStatus.COMPLETED
    stats = done.artifact.extra["stats"]  # type: ignore[union-attr]
    entry = store.ledger_entry(job.id)  # type: ignore[attr-defined]
    assert entry.state == "settled" and entry.estimated == 500.0
    assert entry.actual == pytest.approx(stats["denoise_seconds"] + stats["decode_seconds"])
    assert entry.charged == entry.actual and 0 < entry.actual < 500.0
    assert store.user_usage("alice").charged_seconds == pytest.approx(entry.actual)
