"""Context parallelism: one video's transformer split across the GPUs of a torchrun job, through diffusers'
``ContextParallelConfig`` (``ModelMixin.enable_parallelism``).

Every rank holds the whole pipeline and makes the same call with the same inputs; inside the transformer the
token sequence is split across ranks. Ulysses attention exchanges heads with an all-to-all (each rank computes
full attention for its share of heads: exact, the same numbers as one GPU); ring attention passes key/value
chunks around and merges partial results with their log-sum-exp (diffusers needs an attention backend that
returns it: flash / ``_native_cudnn`` / sage on CUDA, not the plain SDPA one). Which families can: those whose
diffusers transformer carries a context-parallel plan (``_cp_plan``): Wan 2.1/2.2 and LTX-Video in diffusers
0.42. The worker side (who claims jobs, how the ranks stay in step) is ``reelgen.worker.lockstep``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

CONTEXT_PARALLEL_KINDS = ("ulysses", "ring")
TRANSFORMER_COMPONENTS = ("transformer", "transformer_2")

log = logging.getLogger("reelgen.engines")


@dataclass(frozen=True, slots=True)
class ContextParallel:
    """How a worker splits one video: ``kind`` (ulysses | ring) over ``degree`` ranks (the torchrun world)."""

    kind: str
    degree: int

    def __post_init__(self) -> None:
        if self.kind not in CONTEXT_PARALLEL_KINDS:
            raise ValueError(f"context parallel kind must be one of {CONTEXT_PARALLEL_KINDS}, not {self.kind!r}")
        if self.degree < 2:
            raise ValueError(f"context parallel needs at least 2 ranks, not {self.degree}")


def enable_context_parallel(pipe: Any, cp: ContextParallel) -> None:
    """Split the pipeline's transformer(s) across the ranks of the default process group. Raises ValueError,
    before touching anything, when a transformer has no context-parallel plan in diffusers."""
    from diffusers import ContextParallelConfig

    models = [getattr(pipe, name) for name in TRANSFORMER_COMPONENTS if getattr(pipe, name, None) is not None]
    for model in models:
        if getattr(model, "_cp_plan", None) is None:
            raise ValueError(
                f"{type(model).__name__} has no context-parallel plan in diffusers, so it cannot split one video "
                "across GPUs; run this model on a worker without --context-parallel (families that can: Wan, "
                "LTX-Video)"
            )
    for model in models:
        # The "anything" variants pad sequences and head counts that the degree does not divide (Wan 2.1 1.3B
        # has 12 heads; 8 GPUs would not divide them), at no cost where it does.
        options = {"ulysses_anything": True} if cp.kind == "ulysses" else {"ring_anything": True}
        config = ContextParallelConfig(**{f"{cp.kind}_degree": cp.degree}, **options)  # type: ignore[arg-type]
        with _a_device_per_rank():
            model.enable_parallelism(config=config)
        log.info("%s split %s-wise over %d ranks", type(model).__name__, cp.kind, cp.degree)


@contextmanager
def _a_device_per_rank() -> Iterator[None]:
    """diffusers picks each rank's device as ``rank % torch.accelerator.device_count()``, which divides by zero
    on a machine without an accelerator (CPU ranks on gloo: how the tests run). There, report one device while
    the parallel config is built; the device it names ("cpu") is the right one anyway."""
    count = torch.accelerator.device_count
    if count() > 0:
        yield
        return
    torch.accelerator.device_count = lambda: 1  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.accelerator.device_count = count  # type: ignore[assignment]
