"""Speed presets: how much exactness a job trades for time, per model family, with diffusers' step caches.

- `quality`: exact math. The pipeline runs as diffusers ships it (no step cache): the same seed gives the
  same video as plain diffusers, bit for bit.
- `balanced`: FirstBlockCache with a conservative threshold (0.05): when the first transformer block's residual
  barely changes from one step to the next, the other blocks' cached residuals are reused for that step.
- `fast`: a stronger cache. Wan: TaylorSeer, which computes every block in full every few steps and predicts
  the blocks' outputs in between from a Taylor expansion. Its default identifiers (`^blocks.*attn`) match
  nothing in Wan (whose attention modules are `attn1` / `attn2`, and fullmatch is used), so Wan's blocks are
  named explicitly. LTX and other families: FirstBlockCache with a higher threshold (0.1).

Few-step models (distilled, Lightning/CausVid LoRAs; jobs with `steps <= FEW_STEPS`) run every preset as
`quality`: with so few steps there is nothing to reuse, and a skipped step costs visible quality.

Every preset runs attention with the worker's attention kernel (REELGEN_ATTENTION_BACKEND, e.g. `flash` or
`_native_cudnn`; default: diffusers' own, PyTorch SDPA). Only exact kernels are offered (no int8 SageAttention,
no kernels downloaded from the Hub), so `quality` stays exact math on any of them.

FasterCache is not used: on Wan it fails unless the model is guidance-distilled. The cache is applied for one
job and removed after it (also when the job fails or is cancelled), so a `quality` job after a `fast` one is
exact again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers.hooks import FirstBlockCacheConfig, TaylorSeerCacheConfig
from diffusers.hooks._common import _ALL_TRANSFORMER_BLOCK_IDENTIFIERS

from reelgen.domain.params import PRESETS

QUALITY, BALANCED, FAST = PRESETS
# Jobs with this many steps or fewer never use a step cache.
FEW_STEPS = 8
BALANCED_THRESHOLD = 0.05
FAST_THRESHOLD = 0.1
# Wan's transformer blocks are `blocks.0`, `blocks.1`, ... (re.fullmatch).
WAN_BLOCKS = r"blocks\.\d+"

CacheConfig = FirstBlockCacheConfig | TaylorSeerCacheConfig


def cache_config(family: str, preset: str, steps: int) -> CacheConfig | None:
    """The step cache a job of `family` with `steps` steps uses under `preset`; None means exact math."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; one of {', '.join(PRESETS)}")
    if preset == QUALITY or steps <= FEW_STEPS:
        return None
    if preset == BALANCED:
        return FirstBlockCacheConfig(threshold=BALANCED_THRESHOLD)
    if family == "wan":
        # Full computation for the first steps (they set the layout) and the last two (fine detail); in between,
        # one full step out of three.
        return TaylorSeerCacheConfig(
            cache_interval=3,
            disable_cache_before_step=max(3, steps // 10),
            disable_cache_after_step=steps - 2,
            max_order=1,
            taylor_factors_dtype=torch.float32,
            cache_identifiers=[WAN_BLOCKS],
        )
    return FirstBlockCacheConfig(threshold=FAST_THRESHOLD)


def denoisers(pipe: Any) -> list[Any]:
    """The pipeline's denoising transformers (Wan 2.2 A14B has two: high noise and low noise)."""
    found = [getattr(pipe, name, None) for name in ("transformer", "transformer_2")]
    return [m for m in found if m is not None and hasattr(m, "enable_cache")]


def use_attention_backend(pipe: Any, backend: str | None) -> None:
    """Put `backend` (a diffusers attention backend name) on the pipeline's transformers; None leaves diffusers'
    default. Done once per transformer: later calls with the same name cost nothing."""
    if backend is None:
        return
    for model in denoisers(pipe):
        if getattr(model, "_reelgen_attention_backend", None) != backend:
            model.set_attention_backend(backend)
            model._reelgen_attention_backend = backend


@contextmanager
def speed_preset(
    pipe: Any, family: str, preset: str, steps: int, *, attention_backend: str | None = None
) -> Iterator[CacheConfig | None]:
    """Run the body with the preset's step cache on the pipeline's transformers; remove it afterwards."""
    config = cache_config(family, preset, steps)
    use_attention_backend(pipe, attention_backend)
    models = denoisers(pipe)
    for model in models:
        # A cache left behind by a crash elsewhere must not leak into this job.
        if model.is_cache_enabled:
            model.disable_cache()
    if config is None:
        yield None
        return
    applied: list[Any] = []
    try:
        for model in models:
            if isinstance(config, FirstBlockCacheConfig) and _block_count(model) < 2:
                continue  # FirstBlockCache needs a head block and a tail block (tiny test models have one)
            # One config object per model: the hooks keep a reference to it.
            model.enable_cache(dataclasses.replace(config))
            applied.append(model)
        yield config
    finally:
        for model in applied:
            model.disable_cache()


def _block_count(model: Any) -> int:
    """How many transformer blocks diffusers' block hooks would see in `model`."""
    return sum(
        len(child)
        for name, child in model.named_children()
        if name in _ALL_TRANSFORMER_BLOCK_IDENTIFIERS and isinstance(child, torch.nn.ModuleList)
    )
