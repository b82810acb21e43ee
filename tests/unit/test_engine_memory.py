"""The memory plan applied by the real engines (tiny Wan and LTX pipelines on the CPU, real diffusers classes).

A CPU reports no device memory, so the plan runs every job with no offload unless a budget is set
(REELGEN_GPU_MEMORY_GB, here `MemoryPolicy(budget_bytes=...)`): that is how these tests make jobs too big.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from reelgen.domain.params import GenerationParams, ParamLimits, validate_params
from reelgen.engines import registry
from reelgen.engines.base import StageRequest
from reelgen.engines.ltx import LTXEngine
from reelgen.engines.memory import HEADROOM, DoesNotFit, MemoryPolicy, module_bytes, peak_bytes
from reelgen.engines.tiny_ltx import TINY_RANDOM_LTX
from reelgen.engines.tiny_ltx import create_engine as create_tiny_ltx
from reelgen.engines.tiny_wan import MAX_SEQUENCE_LENGTH, build_tiny_wan_pipeline
from reelgen.engines.wan import WanEngine, _can_stream
from tests.unit.engine_support import RecordingSink, one_cpu_thread  # noqa: F401 - autouse fixture

SPEC = registry.get_spec("tiny-random-wan")
# Tiles smaller than the tiny test videos, so tiled decoding really tiles (the defaults are 256 px).
WAN_TILES = {
    "tile_sample_min_height": 32,
    "tile_sample_min_width": 32,
    "tile_sample_stride_height": 16,
    "tile_sample_stride_width": 16,
}


def params(**kw: object) -> GenerationParams:
    kw.setdefault("prompt", "a red fox running through the snow")
    kw.setdefault("seed", 7)
    kw.setdefault("size", "64x64")
    kw.setdefault("seconds", 0.5)
    kw.setdefault("steps", 2)
    return validate_params(SPEC, ParamLimits(), **kw)  # type: ignore[arg-type]


def frames(engine: WanEngine | LTXEngine, p: GenerationParams, sink: RecordingSink | None = None) -> np.ndarray:
    return np.concatenate(list(engine.run(StageRequest(p), sink or RecordingSink()).chunks))


def budget_for(engine: WanEngine, p: GenerationParams, mode: str, tiling: bool = False) -> int:
    """The free memory in which job `p` just fits under `mode`, by the planner's own estimate."""
    assert engine._footprint is not None and engine._pipe is not None
    peak = peak_bytes(
        engine._footprint,
        engine._profile(engine._pipe),
        p.size,
        p.num_frames,
        mode,
        tiling,  # type: ignore[arg-type]
    )
    return int(peak / (1 - HEADROOM)) + 1


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt") / "tiny-wan"
    build_tiny_wan_pipeline().save_pretrained(folder)
    return folder


@pytest.fixture()
def engine(checkpoint: Path) -> WanEngine:
    """Loaded from a saved folder exactly as a real checkpoint is (reelgen.engines.wan:create_engine)."""
    reg = registry.Registry()
    reg.register(
        replace(SPEC, id="tiny-wan-from-folder"),
        "reelgen.engines.wan:create_engine",
        options={"source": str(checkpoint), "max_sequence_length": MAX_SEQUENCE_LENGTH},
    )
    built = reg.create_engine("tiny-wan-from-folder", device="cpu")
    assert isinstance(built, WanEngine)
    built.load()
    return built


def test_footprint_is_measured_from_the_loaded_weights(engine: WanEngine, checkpoint: Path) -> None:
    footprint = engine._footprint
    assert footprint is not None and len(footprint.transformers) == 1
    assert min(footprint.transformers[0], footprint.text_encoder, footprint.vae) > 0
    # float32 in memory and on disk: every saved weight is counted; memory also holds buffers that are never
    # saved (the transformer's RoPE tables), so it can only weigh more.
    on_disk = sum(f.stat().st_size for f in checkpoint.rglob("*.safetensors"))
    assert on_disk * 0.95 <= footprint.total < on_disk * 2
    # No device memory figure on a CPU: everything resident, nothing refused.
    assert engine._placement == "none"
    frames(engine, params())
    assert engine.memory_plan is not None and engine.memory_plan.mode == "none"


def test_vae_tiling_on_gives_the_same_shape_and_turns_streaming_off(engine: WanEngine) -> None:
    p = params()
    plain = frames(engine, p)
    assert engine.memory_plan is not None and not engine.memory_plan.vae_tiling
    assert _can_stream(engine._pipe.vae)  # type: ignore[union-attr]

    engine.memory_policy = MemoryPolicy(vae_tiling="on")
    engine.vae_tile_options = WAN_TILES
    sink = RecordingSink()
    tiled = frames(engine, p, sink)
    vae = engine._pipe.vae  # type: ignore[union-attr]
    assert engine.memory_plan.vae_tiling and vae.use_tiling and vae.tile_sample_min_height == 32
    assert not _can_stream(vae)  # the whole clip goes through vae.decode, which tiles it
    assert tiled.shape == plain.shape == (9, 64, 64, 3) and tiled.dtype == np.uint8
    assert sink.steps == [(1, 2), (2, 2)]
    # Tiles are blended at their seams: close to the untiled video, not identical.
    assert np.abs(tiled.astype(int) - plain.astype(int)).mean() < 16

    # Off again for the next job: streaming decode is back and the video is bit-identical to the first.
    engine.memory_policy = MemoryPolicy(vae_tiling="off")
    assert np.array_equal(frames(engine, p), plain)
    assert not engine._pipe.vae.use_tiling and _can_stream(engine._pipe.vae)  # type: ignore[union-attr]


def test_auto_tiles_when_only_the_tiled_decode_fits(engine: WanEngine) -> None:
    p = params(size="128x128", seconds=1.0)
    engine.vae_tile_options = WAN_TILES
    untiled = budget_for(engine, p, "none")
    tiled = budget_for(engine, p, "none", tiling=True)
    assert tiled < untiled
    engine.memory_policy = MemoryPolicy(budget_bytes=tiled)
    out = frames(engine, p)
    assert out.shape == (17, 128, 128, 3)
    assert engine.memory_plan is not None and (engine.memory_plan.mode, engine.memory_plan.vae_tiling) == (
        "none",
        True,
    )
    engine.memory_policy = MemoryPolicy(budget_bytes=untiled)
    frames(engine, p)
    assert not engine.memory_plan.vae_tiling


def test_a_job_that_cannot_fit_fails_before_any_step(engine: WanEngine) -> None:
    small, big = params(), params(size="128x128", seconds=1.0)
    # Room for the small job at most: the big one is refused before the pipeline runs a single step.
    engine.memory_policy = MemoryPolicy(budget_bytes=budget_for(engine, small, "sequential", tiling=True))
    sink = RecordingSink()
    with pytest.raises(DoesNotFit) as caught:
        engine.run(StageRequest(big), sink)
    assert sink.steps == []
    message = str(caught.value)
    assert message.startswith("tiny-wan-from-folder at 128x128 with 17 frames needs about")
    assert "What fits: 64x64 up to 9 frames (0.6 s)" in message
    assert caught.value.code == "insufficient_gpu_memory" and isinstance(caught.value, ValueError)
    # What it says fits does run.
    assert frames(engine, small).shape == (9, 64, 64, 3)

    engine.memory_policy = MemoryPolicy(budget_bytes=1024)
    with pytest.raises(
        DoesNotFit, match=r"Nothing tiny-wan-from-folder makes fits: its smallest job \(64x64, 5 frames\)"
    ):
        engine.run(StageRequest(small), sink)
    assert sink.steps == []


def test_a_job_needing_more_offloading_reloads_the_model_with_it(engine: WanEngine) -> None:
    p = params(size="128x128", seconds=1.0)
    reference = frames(engine, p)
    before = engine._pipe
    engine.memory_policy = MemoryPolicy(budget_bytes=budget_for(engine, p, "model_offload"), vae_tiling="off")
    out = frames(engine, p)
    # On a CPU the offload hooks have no accelerator to onload to, so the weights stay put; the placement and
    # the reload are what a GPU worker does.
    assert engine._placement == "model_offload" and engine._pipe is not before
    assert engine.memory_plan is not None and engine.memory_plan.mode == "model_offload"
    assert np.array_equal(out, reference)
    # A later job that would fit without offload keeps the loaded placement (no reload back and forth).
    engine.memory_policy = MemoryPolicy()
    reloaded = engine._pipe
    frames(engine, params())
    assert engine._pipe is reloaded and engine.memory_plan.mode == "model_offload"


def test_ltx_tiling_and_refusal() -> None:
    ltx = create_tiny_ltx(TINY_RANDOM_LTX, "cpu")
    ltx.load()
    p = validate_params(TINY_RANDOM_LTX, ParamLimits(), prompt="a cat", size="64x64", seconds=0.7, steps=2, seed=3)
    plain = frames(ltx, p)
    ltx.memory_policy = MemoryPolicy(vae_tiling="on")
    ltx.vae_tile_options = {
        "tile_sample_min_height": 32,
        "tile_sample_min_width": 32,
        "tile_sample_stride_height": 16,
        "tile_sample_stride_width": 16,
    }
    tiled = frames(ltx, p)
    vae = ltx._pipe.vae  # type: ignore[union-attr]
    # LTX's decoder is not causal: tiled means tiled in space and decoded frame-wise in time.
    assert tiled.shape == plain.shape and vae.use_tiling and vae.use_framewise_decoding
    assert np.abs(tiled.astype(int) - plain.astype(int)).mean() < 16
    ltx.memory_policy = MemoryPolicy(vae_tiling="off")
    assert np.array_equal(frames(ltx, p), plain)
    assert not vae.use_tiling and not vae.use_framewise_decoding
    ltx.memory_policy = MemoryPolicy(budget_bytes=1024)
    sink = RecordingSink()
    with pytest.raises(DoesNotFit, match="tiny-random-ltx at 64x64"):
        ltx.run(StageRequest(p), sink)
    assert sink.steps == []
    assert torch.get_num_threads() == 1


def test_fp8_weights_shrink_the_measured_transformer_and_keep_the_video(checkpoint: Path, engine: WanEngine) -> None:
    """REELGEN_FP8_WEIGHTS: the transformer's layer weights sit in float8 and are upcast per layer, so the footprint
    the memory plan works from shrinks, and the video stays close to the full-precision one."""
    reg = registry.Registry()
    reg.register(
        replace(SPEC, id="tiny-wan-fp8"),
        "reelgen.engines.wan:create_engine",
        options={"source": str(checkpoint), "max_sequence_length": MAX_SEQUENCE_LENGTH},
    )
    fp8 = reg.create_engine("tiny-wan-fp8", device="cpu")
    assert isinstance(fp8, WanEngine)
    fp8.fp8_weights = True
    fp8.load()
    assert engine._footprint is not None and fp8._footprint is not None
    assert fp8._footprint.transformers[0] < engine._footprint.transformers[0]
    assert fp8._footprint.text_encoder == engine._footprint.text_encoder
    # float32 -> float8 for the blocks' layer weights (norms stay: at real sizes they are a rounding error).
    full, small = module_bytes(engine.pipe.transformer.blocks), module_bytes(fp8.pipe.transformer.blocks)
    assert small < 0.3 * full
    assert torch.float8_e4m3fn in {p.dtype for p in fp8.pipe.transformer.blocks.parameters()}
    p = params()
    ours, reference = frames(fp8, p).astype(int), frames(engine, p).astype(int)
    assert ours.shape == reference.shape and not np.array_equal(ours, reference)
    assert np.abs(ours - reference).mean() < 8  # a rounding of the weights, not another video
