"""ETAs come from measured step times of recent jobs of the same model, never from a constant."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reelgen.api.eta import estimate, timing_from
from reelgen.domain import Artifact, Job, JobStatus, Size
from tests.conftest import make_params

NOW = 1_000_000.0


def completed(step_seconds: float, run_seconds: float, *, size: Size = Size(64, 64), worker: str = "w1", **kw) -> Job:
    params = make_params(size=size, **kw)
    artifact = Artifact(
        video_key="videos/x/1/video.mp4",
        thumbnail_key=None,
        spritesheet_key=None,
        bytes=1,
        num_frames=params.num_frames,
        width=size.width,
        height=size.height,
        fps=params.fps,
        sha256="0" * 64,
        extra={"stats": {"mean_step_seconds": step_seconds}},
    )
    return Job(
        id="video_done",
        owner="local",
        status=JobStatus.COMPLETED,
        params=params,
        created_at=NOW - 100,
        started_at=NOW - 10 - run_seconds,
        finished_at=NOW - 10,
        attempt=1,
        worker_id=worker,
        artifact=artifact,
    )


def pending(status: JobStatus = JobStatus.QUEUED, **kw) -> Job:
    return Job(id="video_new", owner="local", status=status, params=make_params(**kw), created_at=NOW)


def test_no_measurement_means_no_estimate() -> None:
    assert timing_from([], NOW) is None
    assert estimate(None, pending(), 1, NOW) is None
    unmeasured = completed(0.5, 2.0)
    unmeasured = replace(unmeasured, artifact=replace(unmeasured.artifact, extra={}))  # type: ignore[arg-type]
    assert timing_from([unmeasured], NOW) is None


def test_queued_job_at_the_head_of_the_line_costs_its_own_steps_and_tail() -> None:
    # steps=2, n=1: 2 * 0.5 s of denoising in a 3 s job -> 2 s of decode/encode tail.
    timing = timing_from([completed(0.5, 3.0)], NOW)
    assert estimate(timing, pending(steps=4), 1, NOW) == pytest.approx(4 * 0.5 + 2.0)


def test_jobs_ahead_add_their_typical_duration_shared_by_active_workers() -> None:
    one_worker = timing_from([completed(0.5, 3.0), completed(0.5, 3.0)], NOW)
    two_workers = timing_from([completed(0.5, 3.0, worker="w1"), completed(0.5, 3.0, worker="w2")], NOW)
    assert estimate(one_worker, pending(), 4, NOW) == pytest.approx(3 * 3.0 + 3.0)
    assert estimate(two_workers, pending(), 4, NOW) == pytest.approx(3 * 3.0 / 2 + 3.0)


def test_running_job_counts_only_its_remaining_steps() -> None:
    timing = timing_from([completed(0.5, 3.0)], NOW)
    running = replace(pending(JobStatus.IN_PROGRESS, steps=10), step=6, total_steps=10)
    assert estimate(timing, running, None, NOW) == pytest.approx(4 * 0.5 + 2.0)


def test_other_sizes_scale_with_pixels_times_frames() -> None:
    timing = timing_from([completed(0.5, 1.0, size=Size(64, 64))], NOW)
    big = pending(size=Size(128, 128), steps=2)  # 4x the pixels, same frames
    assert estimate(timing, big, 1, NOW) == pytest.approx(4 * (2 * 0.5 + 0.0))


def test_retry_backoff_delays_the_start() -> None:
    timing = timing_from([completed(0.5, 1.0)], NOW)
    backing_off = replace(pending(), not_before=NOW + 30)
    assert estimate(timing, backing_off, 1, NOW) == pytest.approx(30 + 1.0)


def test_engine_timings_keep_a_model_load_out_of_the_tail() -> None:
    # A worker's first job also loaded the model (20 s); the engine's decode timing says the tail is 1.5 s.
    first_job = completed(0.5, 21.0)
    stats = {"mean_step_seconds": 0.5, "first_step_seconds": 0.7, "decode_seconds": 1.3}
    first_job = replace(first_job, artifact=replace(first_job.artifact, extra={"stats": stats}))  # type: ignore[arg-type]
    timing = timing_from([first_job], NOW)
    assert estimate(timing, pending(steps=4), 1, NOW) == pytest.approx(4 * 0.5 + 1.3 + 0.2)


def test_finished_jobs_have_no_estimate() -> None:
    timing = timing_from([completed(0.5, 1.0)], NOW)
    assert estimate(timing, completed(0.5, 1.0), None, NOW) is None
