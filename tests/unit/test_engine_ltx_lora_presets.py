"""LoRA and speed presets on the real LTX engine (tiny random LTXPipeline), as test_engine_lora.py and
test_engine_presets.py do for Wan. LTX's `fast` is FirstBlockCache at a higher threshold (no TaylorSeer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.hooks import FirstBlockCacheConfig
from diffusers.models.transformers.transformer_ltx import LTXVideoTransformer3DModel
from diffusers.pipelines.ltx.pipeline_ltx import LTXPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from reelgen.domain.errors import InvalidParams
from reelgen.domain.params import GenerationParams, ParamLimits, validate_params
from reelgen.engines import presets
from reelgen.engines.base import StageRequest
from reelgen.engines.lora import LoraLibrary, LoraWeights
from reelgen.engines.ltx import LTXEngine
from reelgen.engines.tiny_ltx import MAX_SEQUENCE_LENGTH, TINY_RANDOM_LTX, build_tiny_ltx_pipeline, create_engine
from tests.unit.engine_support import RecordingSink, one_cpu_thread  # noqa: F401 - autouse fixture

SPEC = TINY_RANDOM_LTX


def two_block_pipeline() -> LTXPipeline:
    """tiny-random-ltx with a second transformer block: FirstBlockCache needs a head and a tail block."""
    pipe = build_tiny_ltx_pipeline()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformer = LTXVideoTransformer3DModel.from_config({**pipe.transformer.config, "num_layers": 2}).eval()
    pipe.register_modules(transformer=transformer)
    return pipe


@pytest.fixture(scope="module")
def engine() -> LTXEngine:
    built = create_engine(SPEC, "cpu")
    built.load()
    return built


@pytest.fixture(scope="module")
def two_block_engine() -> LTXEngine:
    built = LTXEngine(
        SPEC,
        two_block_pipeline,
        "cpu",
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        decode_timestep=0.05,
        decode_noise_scale=0.025,
    )
    built.load()
    return built


@pytest.fixture(scope="module")
def lora(tmp_path_factory: pytest.TempPathFactory) -> LoraWeights:
    root = tmp_path_factory.mktemp("loras")
    transformer = build_tiny_ltx_pipeline().transformer
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        transformer.add_adapter(
            LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
        )
    LTXPipeline.save_lora_weights(
        root / "ltx-style", transformer_lora_layers=get_peft_model_state_dict(transformer), safe_serialization=True
    )
    return LoraLibrary(root).weights("ltx-style")


def small(**kw: object) -> GenerationParams:
    kw.setdefault("prompt", "a red fox running through the snow")
    kw.setdefault("seed", 3)
    kw.setdefault("size", "64x64")
    kw.setdefault("seconds", 0.5)
    kw.setdefault("steps", 2)
    return validate_params(SPEC, ParamLimits(), **kw)  # type: ignore[arg-type]


def generate(engine: LTXEngine, p: GenerationParams, lora: LoraWeights | None = None) -> np.ndarray:
    sink = RecordingSink()
    frames = np.concatenate(list(engine.run(StageRequest(p, lora=lora), sink).chunks))
    assert len(sink.steps) == p.steps
    return frames


def test_a_lora_changes_the_video_and_is_removed_cleanly(engine: LTXEngine, lora: LoraWeights) -> None:
    base = generate(engine, small())
    styled = generate(engine, small(), lora)
    assert styled.shape == base.shape and not np.array_equal(styled, base)
    assert np.array_equal(generate(engine, small()), base)
    assert np.array_equal(generate(engine, small(), lora), styled)
    assert (engine.adapters.loads, engine.adapters.hits) == (1, 1)


def test_first_block_cache_skips_models_with_a_single_block(engine: LTXEngine) -> None:
    quality = generate(engine, small(steps=10, preset="quality"))
    assert np.array_equal(generate(engine, small(steps=10, preset="fast")), quality)


def test_presets(two_block_engine: LTXEngine) -> None:
    engine = two_block_engine
    quality = generate(engine, small(steps=10, preset="quality"))
    seen: list[object] = []

    class Watching(RecordingSink):
        def step(self, step: int, total: int, preview: object = None) -> None:
            assert engine._pipe is not None
            seen.append(engine._pipe.transformer._cache_config)
            super().step(step, total, preview)  # type: ignore[arg-type]

    fast = np.concatenate(list(engine.run(StageRequest(small(steps=10, preset="fast")), Watching()).chunks))
    assert fast.shape == quality.shape
    assert all(isinstance(c, FirstBlockCacheConfig) and c.threshold == presets.FAST_THRESHOLD for c in seen)
    assert engine._pipe is not None and not engine._pipe.transformer.is_cache_enabled
    assert np.array_equal(generate(engine, small(steps=10, preset="quality")), quality)
    few = presets.FEW_STEPS
    assert np.array_equal(generate(engine, small(steps=few, preset="fast")), generate(engine, small(steps=few)))


def test_a_lora_for_another_model_is_refused_and_the_model_keeps_working(
    engine: LTXEngine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.unit.test_engine_lora import save_random_lora

    root = tmp_path_factory.mktemp("wan-loras")
    save_random_lora(root / "wan-style", seed=1)
    base = generate(engine, small())
    with pytest.raises(InvalidParams) as err:
        generate(engine, small(), LoraLibrary(root).weights("wan-style"))
    assert err.value.param == "lora"
    assert np.array_equal(generate(engine, small()), base)
