"""Speed presets on the real Wan engine (tiny random weights, loaded from a save_pretrained folder), ~10 s.

On these random weights the first block's residual changes by far more than FirstBlockCache's threshold from
one step to the next, so `balanced` never skips a step and its video equals `quality`'s; the tests check
instead that the cache really is on the transformer during the job (and gone after). `fast` (TaylorSeer on
Wan) predicts whole steps and so always differs from `quality`, slightly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.hooks import FirstBlockCacheConfig, HookRegistry, TaylorSeerCacheConfig
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel
from diffusers.pipelines.wan.pipeline_wan import WanPipeline

from reelgen.domain.errors import InvalidParams, JobCancelled
from reelgen.domain.params import GenerationParams, ParamLimits, validate_params
from reelgen.engines import presets, registry
from reelgen.engines.base import StageRequest
from reelgen.engines.tiny_wan import MAX_SEQUENCE_LENGTH, build_tiny_wan_pipeline
from reelgen.engines.wan import WanEngine, load_wan_pipeline
from tests.unit.engine_support import RecordingSink, one_cpu_thread  # noqa: F401 - autouse fixture

SPEC = registry.get_spec("tiny-random-wan")
STEPS = 10  # more than presets.FEW_STEPS, so the caches apply


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-wan")
    build_tiny_wan_pipeline().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def engine(folder: Path) -> WanEngine:
    built = WanEngine(
        SPEC,
        lambda: load_wan_pipeline(folder, dtype=torch.float32, device="cpu"),
        "cpu",
        torch.float32,
        max_sequence_length=MAX_SEQUENCE_LENGTH,
    )
    built.load()
    return built


def small(**kw: object) -> GenerationParams:
    kw.setdefault("prompt", "a red fox running through the snow")
    kw.setdefault("seed", 11)
    kw.setdefault("size", "64x64")
    kw.setdefault("seconds", 0.5)
    kw.setdefault("steps", STEPS)
    return validate_params(SPEC, ParamLimits(), **kw)  # type: ignore[arg-type]


class CacheWatchingSink(RecordingSink):
    """Records, at every step, which step cache the transformer has on."""

    def __init__(self, engine: WanEngine, cancel_at: int | None = None) -> None:
        super().__init__(cancel_at)
        self.engine = engine
        self.caches: list[object] = []

    def step(self, step: int, total: int, preview: object = None) -> None:
        assert self.engine._pipe is not None
        self.caches.append(self.engine._pipe.transformer._cache_config)
        super().step(step, total, preview)  # type: ignore[arg-type]


def run(engine: WanEngine, p: GenerationParams) -> tuple[np.ndarray, list[object]]:
    sink = CacheWatchingSink(engine)
    frames = np.concatenate(list(engine.run(StageRequest(p), sink).chunks))
    assert sink.steps == [(i + 1, p.steps) for i in range(p.steps)]
    assert engine._pipe is not None and not engine._pipe.transformer.is_cache_enabled
    return frames, sink.caches


def test_quality_is_plain_diffusers_bit_for_bit(engine: WanEngine, folder: Path) -> None:
    p = small(preset="quality")
    ours, caches = run(engine, p)
    assert caches == [None] * STEPS
    pipe = load_wan_pipeline(folder, dtype=torch.float32, device="cpu")
    reference = pipe(
        prompt=p.prompt,
        height=p.size.height,
        width=p.size.width,
        num_frames=p.num_frames,
        num_inference_steps=p.steps,
        guidance_scale=p.guidance_scale,
        generator=torch.Generator().manual_seed(p.seed),
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        output_type="np",
    ).frames[0]
    assert ours.shape == reference.shape == (9, 64, 64, 3)
    np.testing.assert_array_equal(ours, np.round(reference * 255).astype(np.uint8))


def test_balanced_runs_first_block_cache_during_the_job_only(engine: WanEngine) -> None:
    quality, _ = run(engine, small(preset="quality"))
    balanced, caches = run(engine, small(preset="balanced"))
    assert all(isinstance(c, FirstBlockCacheConfig) and c.threshold == presets.BALANCED_THRESHOLD for c in caches)
    assert balanced.shape == quality.shape
    # Documented above: on random weights no step is similar enough to skip.
    assert np.array_equal(balanced, quality)


def test_fast_uses_taylorseer_on_every_wan_block_and_quality_is_exact_afterwards(engine: WanEngine) -> None:
    quality, _ = run(engine, small(preset="quality"))
    hooked: list[str] = []

    class BlockWatchingSink(CacheWatchingSink):
        def step(self, step: int, total: int, preview: object = None) -> None:
            if step == 1:
                transformer = self.engine._pipe.transformer  # type: ignore[union-attr]
                hooked.extend(
                    name
                    for name, module in transformer.named_modules()
                    if (registry_ := getattr(module, "_diffusers_hook", None)) is not None
                    and isinstance(registry_, HookRegistry)
                    and registry_.get_hook("taylorseer_cache") is not None
                )
            super().step(step, total, preview)

    sink = BlockWatchingSink(engine)
    fast = np.concatenate(list(engine.run(StageRequest(small(preset="fast")), sink).chunks))
    assert all(isinstance(c, TaylorSeerCacheConfig) for c in sink.caches)
    # diffusers' default identifiers would hook nothing in Wan; ours hook exactly its blocks.
    assert hooked == ["blocks.0", "blocks.1"]
    assert fast.shape == quality.shape and not np.array_equal(fast, quality)
    assert np.array_equal(fast, np.concatenate(list(engine.run(StageRequest(small(preset="fast")), sink).chunks)))
    again, caches = run(engine, small(preset="quality"))
    assert caches == [None] * STEPS and np.array_equal(again, quality)


def test_a_cancelled_fast_job_leaves_no_cache_behind(engine: WanEngine) -> None:
    quality, _ = run(engine, small(preset="quality"))
    with pytest.raises(JobCancelled):
        engine.run(StageRequest(small(preset="fast")), CacheWatchingSink(engine, cancel_at=5))
    assert engine._pipe is not None and not engine._pipe.transformer.is_cache_enabled
    assert np.array_equal(run(engine, small(preset="quality"))[0], quality)


@pytest.mark.parametrize("preset", ["balanced", "fast"])
def test_few_step_jobs_ignore_the_cache(engine: WanEngine, preset: str) -> None:
    steps = presets.FEW_STEPS
    quality, _ = run(engine, small(preset="quality", steps=steps))
    cached, caches = run(engine, small(preset=preset, steps=steps))
    assert caches == [None] * steps and np.array_equal(cached, quality)


def test_preset_validation_and_default() -> None:
    assert small().preset == "quality"
    assert validate_params(SPEC, ParamLimits(default_preset="fast"), prompt="a cat").preset == "fast"
    assert small(preset="balanced").preset == "balanced"
    with pytest.raises(InvalidParams) as err:
        small(preset="turbo")
    assert err.value.param == "preset"
    p = small(preset="fast")
    assert GenerationParams.from_dict(p.to_dict()) == p
    # A job stored before presets existed (no key) runs as quality.
    old = p.to_dict()
    del old["preset"], old["lora"], old["lora_scale"]
    assert GenerationParams.from_dict(old).preset == "quality"


def two_expert_pipeline() -> WanPipeline:
    """Wan 2.2 A14B's layout at the tiny size: a high-noise and a low-noise transformer split at a boundary."""
    pipe = build_tiny_wan_pipeline()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        low_noise = WanTransformer3DModel.from_config(pipe.transformer.config).eval()
    return WanPipeline(
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        vae=pipe.vae,
        scheduler=pipe.scheduler,
        transformer=pipe.transformer,
        transformer_2=low_noise,
        boundary_ratio=0.5,
    )


def test_both_experts_of_a_two_transformer_model_get_the_cache_and_lose_it() -> None:
    engine = WanEngine(SPEC, two_expert_pipeline, "cpu", torch.float32, max_sequence_length=MAX_SEQUENCE_LENGTH)
    quality = np.concatenate(list(engine.run(StageRequest(small(preset="quality")), RecordingSink()).chunks))
    seen: list[tuple[object, object]] = []

    class Watching(RecordingSink):
        def step(self, step: int, total: int, preview: object = None) -> None:
            pipe = engine._pipe
            assert pipe is not None and pipe.transformer_2 is not None
            seen.append((pipe.transformer._cache_config, pipe.transformer_2._cache_config))
            super().step(step, total, preview)  # type: ignore[arg-type]

    fast = np.concatenate(list(engine.run(StageRequest(small(preset="fast")), Watching()).chunks))
    assert len(seen) == STEPS and all(isinstance(c, TaylorSeerCacheConfig) for pair in seen for c in pair)
    assert fast.shape == quality.shape and not np.array_equal(fast, quality)
    again = np.concatenate(list(engine.run(StageRequest(small(preset="quality")), RecordingSink()).chunks))
    assert np.array_equal(again, quality)


def test_an_attention_backend_is_put_on_the_transformer_once(engine: WanEngine) -> None:
    from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry

    active = _AttentionBackendRegistry._active_backend  # set_attention_backend changes it for the whole process
    default, _ = run(engine, small(preset="quality"))
    try:
        engine.attention_backend = "_native_math"
        exact, _ = run(engine, small(preset="quality"))
        assert engine._pipe is not None
        processors = [m.processor for m in engine._pipe.transformer.modules() if hasattr(m, "processor")]
        assert processors and all(p._attention_backend == AttentionBackendName._NATIVE_MATH for p in processors)
        # PyTorch's math kernel is exact attention: on the CPU SDPA computes the same thing, to rounding.
        assert exact.shape == default.shape
        assert np.abs(exact.astype(int) - default.astype(int)).max() <= 1
        assert np.array_equal(run(engine, small(preset="quality"))[0], exact)
    finally:
        engine.attention_backend = None
        assert engine._pipe is not None
        engine._pipe.transformer.reset_attention_backend()
        engine._pipe.transformer._reelgen_attention_backend = None
        _AttentionBackendRegistry.set_active_backend(active)
    assert np.array_equal(run(engine, small(preset="quality"))[0], default)


def test_regional_compile_runs_the_same_math_with_and_without_caches(folder: Path, engine: WanEngine) -> None:
    """REELGEN_COMPILE=blocks: every repeated transformer block is compiled at load, the transformer itself is not,
    and jobs give the video the uncompiled engine gives, also with a step cache hooked onto the blocks. Dynamo's
    eager backend traces the real blocks without generating code (inductor's codegen is the GPU benchmark's part)."""
    compiled = WanEngine(
        SPEC,
        lambda: load_wan_pipeline(folder, dtype=torch.float32, device="cpu"),
        "cpu",
        torch.float32,
        max_sequence_length=MAX_SEQUENCE_LENGTH,
    )
    compiled.compile_blocks = True
    compiled.compile_options = {"backend": "eager"}
    compiled.load()
    transformer = compiled.pipe.transformer
    assert transformer._compiled_call_impl is None
    assert all(block._compiled_call_impl is not None for block in transformer.blocks)
    for preset in ("quality", "fast"):
        p = small(preset=preset)
        ours = np.concatenate(list(compiled.run(StageRequest(p), RecordingSink()).chunks))
        plain = np.concatenate(list(engine.run(StageRequest(p), RecordingSink()).chunks))
        np.testing.assert_array_equal(ours, plain)
