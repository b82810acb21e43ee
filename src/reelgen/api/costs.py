"""What a job will cost in GPU-seconds, estimated at enqueue: the amount charged against its owner's budget
(and corrected to the measured time when it completes) and the scheduler's fair-share charge.

    estimate = step_seconds x steps x n  +  n x decode_seconds

Step and decode seconds come from the model's recent completions (api/eta.py: measured per job, scaled by
pixels x frames when the size differs). Before a model has completed anything, a stated default is used:
DEFAULT_STEP_SECONDS per model family, for the model's default size and length, scaled linearly by
pixels x frames, and a decode tail of DEFAULT_DECODE_STEPS steps' worth per variation.
"""

from __future__ import annotations

from reelgen.api.eta import ModelTiming
from reelgen.domain.models import ModelSpec
from reelgen.domain.params import GenerationParams

# Seconds per denoising step at the model's default size and length, on one data-centre GPU (rough figures:
# they only matter until the model's first completion is measured).
DEFAULT_STEP_SECONDS: dict[str, float] = {
    "wan": 2.0,
    "ltx": 0.5,
    "hunyuan": 4.0,
    "cogvideox": 2.0,
    "demo": 0.05,
}
FALLBACK_STEP_SECONDS = 1.0
# Decode, encode and store, per variation, as a number of steps' worth of time.
DEFAULT_DECODE_STEPS = 3.0
# Never charge less than this (a job always costs something).
MIN_ESTIMATE_SECONDS = 0.1


def _work(params: GenerationParams) -> int:
    return max(params.size.width * params.size.height * params.num_frames, 1)


def default_step_seconds(spec: ModelSpec, params: GenerationParams) -> float:
    base = DEFAULT_STEP_SECONDS.get(spec.family, FALLBACK_STEP_SECONDS)
    default_frames = spec.frame_rule.frames_for(spec.default_seconds, spec.fps)
    default_work = max(spec.default_size.width * spec.default_size.height * default_frames, 1)
    return base * _work(params) / default_work


def estimate_gpu_seconds(timing: ModelTiming | None, spec: ModelSpec, params: GenerationParams) -> float:
    """GPU-seconds the job is expected to take (see the module docstring)."""
    work = _work(params)
    if timing is not None:
        step, tail = timing.step_seconds(work), timing.tail_seconds(work)
    else:
        step = default_step_seconds(spec, params)
        tail = DEFAULT_DECODE_STEPS * step
    return round(max(step * params.steps * params.n + tail * params.n, MIN_ESTIMATE_SECONDS), 3)
