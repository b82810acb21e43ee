"""The engine interface: GenerationParams in, frames out, with progress, previews and cancel between steps.

A job runs as a chain of stages (generate -> extend -> upscale -> interpolate). Each stage is one call to
`Engine.run(StageRequest, sink)`; the output frames of one stage are the `init_frames` of the next. Today every
job is the single stage "generate"; the interface already carries what later stages need.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from reelgen.domain.models import ModelSpec
from reelgen.domain.params import GenerationParams
from reelgen.engines.lora import LoraWeights

if TYPE_CHECKING:
    import numpy as np

STAGE_GENERATE = "generate"
STAGE_EXTEND = "extend"
STAGE_UPSCALE = "upscale"
STAGE_INTERPOLATE = "interpolate"


@dataclass(frozen=True)
class StageRequest:
    params: GenerationParams
    stage: str = STAGE_GENERATE
    # uint8 RGB, shape (H, W, 3): the decoded reference image for image-to-video.
    input_image: np.ndarray | None = None
    # uint8 RGB, shape (T, H, W, 3): the previous stage's output, for extend / upscale / interpolate.
    init_frames: np.ndarray | None = None
    # Which of the request's n variations this is (0-based); seeds are params.seed + variation.
    variation: int = 0
    # How many variations, from `variation` on, one `run_batch` call makes together (see Engine.max_batch).
    count: int = 1
    # The LoRA named by params.lora, resolved by the worker to its file in the LoRA folder (None: base model).
    lora: LoraWeights | None = None

    @property
    def seed(self) -> int:
        return self.params.seed + self.variation

    @property
    def seeds(self) -> list[int]:
        """One seed per variation of this call: the seeds sequential calls would use, so a batch makes the
        same clips."""
        return [self.seed + i for i in range(self.count)]


class ProgressSink(Protocol):
    """Where an engine reports progress. `step` raises JobCancelled when the job must stop."""

    def step(self, step: int, total: int, preview: Callable[[], np.ndarray] | None = None) -> None:
        """Report that `step` of `total` denoising steps is done.

        `preview`, when given, returns a small uint8 RGB image (H, W, 3) of the current state; the sink calls it
        only when it wants one (it is rate-limited), so engines can offer it for free.
        """
        ...


@dataclass(frozen=True)
class AudioTrack:
    """A clip's sound (models such as LTX-2 make it with the picture): float32 samples in [-1, 1] of shape
    (channels, samples), starting with the first frame."""

    samples: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.samples.shape[-1] / self.sample_rate


@dataclass(frozen=True)
class VideoOutput:
    """Frames of one clip. `chunks` yields uint8 RGB arrays of shape (t, H, W, 3) in order; it may be lazy
    (decoded while the encoder consumes the previous chunk) and can be iterated once."""

    width: int
    height: int
    fps: int
    num_frames: int
    chunks: Iterator[np.ndarray]
    # Step timings etc. that end up in the job's artifact metadata (feeds ETAs). Engines may add entries
    # while `chunks` is consumed (e.g. decode_seconds), so read it after the last chunk.
    stats: dict[str, float] = field(default_factory=dict)
    # The soundtrack, for models that make one (None: a silent video, as most models make).
    audio: AudioTrack | None = None


class Engine(ABC):
    """One loaded model. Created by the registry, loaded lazily, kept resident by the worker between jobs."""

    spec: ModelSpec

    @abstractmethod
    def load(self) -> None:
        """Load weights onto the device. Idempotent."""

    @abstractmethod
    def run(self, request: StageRequest, sink: ProgressSink) -> VideoOutput:
        """Run one stage. Must call `sink.step` after every denoising step and let JobCancelled propagate."""

    def max_batch(self, request: StageRequest) -> int:
        """How many of `request.count` variations `run_batch` can make in one call (memory allowing); 1 for
        engines that make one clip per call."""
        return 1

    def run_batch(self, request: StageRequest, sink: ProgressSink) -> list[VideoOutput]:
        """Make `request.count` variations (at most `max_batch`) in one denoising pass, one VideoOutput each,
        in variation order. Their chunks are consumed one output after another."""
        if request.count != 1:
            raise ValueError(f"{type(self).__name__} makes one variation per call, not {request.count}")
        return [self.run(request, sink)]

    def unload(self) -> None:  # noqa: B027 - optional hook
        """Free device memory (called when the worker switches models or shuts down)."""
