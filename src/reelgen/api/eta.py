"""Time estimates for queued and running jobs, from what recent jobs of the same model really took.

Workers store the mean seconds per denoising step of every completed job (`artifact.extra["stats"]
["mean_step_seconds"]`) next to its started/finished times. From the newest completions of a model we get:

- seconds per step, for the job's own size and frame count when recent jobs had the same ones, otherwise
  scaled linearly by pixels x frames (a rough model of transformer cost, which is at least linear in it);
- the tail after denoising (VAE decode, as the engine timed it, or else everything the steps do not explain),
  scaled the same way;
- how long a whole job took, and how many distinct workers finished them lately (to divide a queue by).

No completions yet means no estimate (null), never a made-up constant. Estimates are computed from a small
per-model snapshot refreshed every few seconds, so polling clients cost one cheap query per model, not one per
request.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from reelgen.domain.jobs import Job, JobStatus
from reelgen.jobs.store import JobStore

SAMPLE_JOBS = 20
REFRESH_SECONDS = 5.0
# Workers that finished a job this recently count as still serving the model.
ACTIVE_WORKER_WINDOW = 600.0


@dataclass(frozen=True, slots=True)
class _Sample:
    work: int  # width * height * frames
    step_seconds: float
    tail_seconds: float  # per variation
    job_seconds: float
    worker_id: str | None
    finished_at: float


@dataclass(frozen=True, slots=True)
class ModelTiming:
    samples: tuple[_Sample, ...]
    active_workers: int

    def step_seconds(self, work: int) -> float:
        same = [s.step_seconds for s in self.samples if s.work == work]
        if same:
            return statistics.median(same)
        return statistics.median(s.step_seconds / s.work for s in self.samples) * work

    def tail_seconds(self, work: int) -> float:
        same = [s.tail_seconds for s in self.samples if s.work == work]
        if same:
            return statistics.median(same)
        return statistics.median(s.tail_seconds / s.work for s in self.samples) * work

    def typical_job_seconds(self) -> float:
        return statistics.median(s.job_seconds for s in self.samples)


def _work(job: Job) -> int:
    p = job.params
    return max(p.size.width * p.size.height * p.num_frames, 1)


def _sample(job: Job) -> _Sample | None:
    if job.artifact is None or job.started_at is None or job.finished_at is None:
        return None
    stats = job.artifact.extra.get("stats") or {}
    step = stats.get("mean_step_seconds")
    if not isinstance(step, int | float) or step <= 0:
        return None
    p = job.params
    run = job.finished_at - job.started_at
    decode = stats.get("decode_seconds")
    if isinstance(decode, int | float):
        # The engine timed its decode and its first step (which also encodes the prompt): that is the tail
        # of a resident model, without the one-off load a worker's first job pays.
        first = stats.get("first_step_seconds", step)
        tail = float(decode) + max(float(first) - float(step), 0.0)
    else:
        # Whatever the steps do not explain (decode, encode, store; a first job also loads the model).
        tail = max(run - step * p.steps * p.n, 0.0) / p.n
    return _Sample(
        work=_work(job),
        step_seconds=float(step),
        tail_seconds=tail,
        job_seconds=run,
        worker_id=job.worker_id,
        finished_at=job.finished_at,
    )


def timing_from(jobs: list[Job], now: float) -> ModelTiming | None:
    """What recent completions of one model tell about its speed (None if none measured its steps)."""
    samples = tuple(s for s in map(_sample, jobs) if s is not None)
    if not samples:
        return None
    recent = now - ACTIVE_WORKER_WINDOW
    workers = {s.worker_id for s in samples if s.finished_at >= recent and s.worker_id}
    return ModelTiming(samples=samples, active_workers=max(len(workers), 1))


def estimate(timing: ModelTiming | None, job: Job, queue_position: int | None, now: float) -> float | None:
    """Seconds until `job` completes, or None when finished or nothing has been measured yet."""
    if job.status.terminal or timing is None:
        return None
    p = job.params
    work = _work(job)
    step_s = timing.step_seconds(work)
    tail_s = timing.tail_seconds(work)
    total_steps = p.steps * p.n
    if job.status is JobStatus.IN_PROGRESS:
        done = min(job.step, total_steps)
        # Every variation still to be finished (the current one included) pays its decode/encode tail.
        variations_left = p.n - done // p.steps
        remaining = (total_steps - done) * step_s + max(variations_left, 1) * tail_s
        return round(max(remaining, 0.0), 1)
    own = total_steps * step_s + p.n * tail_s
    ahead = max((queue_position or 1) - 1, 0)
    wait = ahead * timing.typical_job_seconds() / timing.active_workers
    if job.not_before is not None:  # waiting out a retry backoff
        wait = max(wait, job.not_before - now)
    return round(wait + own, 1)


class EtaEstimator:
    """`estimate` with each model's timing cached for a few seconds (one small query per model, not per poll)."""

    def __init__(
        self, store: JobStore, *, refresh_seconds: float = REFRESH_SECONDS, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._refresh = refresh_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, ModelTiming | None]] = {}
        self._lock = threading.Lock()

    def timing(self, model: str) -> ModelTiming | None:
        """The model's measured timing (None before its first completion). Blocking: may query the store."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(model)
        if cached is not None and now - cached[0] < self._refresh:
            return cached[1]
        timing = timing_from(self._store.recent_completed(model, SAMPLE_JOBS), self._clock())
        with self._lock:
            self._cache[model] = (now, timing)
        return timing

    def estimate(self, job: Job, queue_position: int | None) -> float | None:
        if job.status.terminal:
            return None
        return estimate(self.timing(job.model), job, queue_position, self._clock())
