"""Per-request LoRAs on the real Wan engine: a real peft LoRA for the tiny random Wan transformer, saved as
safetensors with diffusers' own LoRA saver, loaded by the engine from a LoRA folder.

The engine loads its pipeline from a save_pretrained folder, the path every real checkpoint takes. ~10 s.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import WanPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from reelgen.domain.errors import InvalidParams
from reelgen.domain.params import GenerationParams, ParamLimits, validate_params
from reelgen.engines import registry
from reelgen.engines.base import StageRequest
from reelgen.engines.lora import AdapterCache, LoraLibrary, LoraWeights
from reelgen.engines.tiny_wan import MAX_SEQUENCE_LENGTH, build_tiny_wan_pipeline
from reelgen.engines.wan import WanEngine, load_wan_pipeline
from tests.unit.engine_support import RecordingSink, one_cpu_thread  # noqa: F401 - autouse fixture

SPEC = registry.get_spec("tiny-random-wan")
ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]


def save_random_lora(folder: Path, seed: int, *, rank: int = 4) -> None:
    """A LoRA on the attention projections of the tiny Wan transformer, every weight random and non-zero
    (peft's init_lora_weights=False keeps the Linear init for B, which is zeros by default), saved the way
    LoRA trainers save one: WanPipeline.save_lora_weights -> pytorch_lora_weights.safetensors."""
    transformer = build_tiny_wan_pipeline().transformer
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=ATTENTION, init_lora_weights=False))
    layers = get_peft_model_state_dict(transformer)
    assert layers and all(t.abs().sum() > 0 for t in layers.values())
    WanPipeline.save_lora_weights(folder, transformer_lora_layers=layers, safe_serialization=True)


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("loras")
    # A folder per LoRA (what save_lora_weights writes) and a single renamed file: both layouts are accepted.
    save_random_lora(root / "style", seed=1)
    save_random_lora(root / "other-tmp", seed=2)
    (root / "other-tmp" / "pytorch_lora_weights.safetensors").rename(root / "other.safetensors")
    (root / "other-tmp").rmdir()
    return root


class CountingLoader:
    def __init__(self, folder: Path) -> None:
        self.folder, self.calls = folder, 0

    def __call__(self) -> WanPipeline:
        self.calls += 1
        return load_wan_pipeline(self.folder, dtype=torch.float32, device="cpu")


@pytest.fixture(scope="module")
def loader(tmp_path_factory: pytest.TempPathFactory) -> CountingLoader:
    folder = tmp_path_factory.mktemp("tiny-wan")
    build_tiny_wan_pipeline().save_pretrained(folder)
    return CountingLoader(folder)


@pytest.fixture(scope="module")
def engine(loader: CountingLoader) -> WanEngine:
    built = WanEngine(SPEC, loader, "cpu", torch.float32, max_sequence_length=MAX_SEQUENCE_LENGTH)
    built.load()
    return built


def small(**kw: object) -> GenerationParams:
    kw.setdefault("prompt", "a red fox running through the snow")
    kw.setdefault("seed", 7)
    kw.setdefault("size", "64x64")
    kw.setdefault("seconds", 0.5)
    kw.setdefault("steps", 2)
    return validate_params(SPEC, ParamLimits(), **kw)  # type: ignore[arg-type]


def generate(engine: WanEngine, p: GenerationParams, lora: LoraWeights | None = None) -> np.ndarray:
    sink = RecordingSink()
    frames = np.concatenate(list(engine.run(StageRequest(p, lora=lora), sink).chunks))
    assert sink.steps == [(i + 1, p.steps) for i in range(p.steps)]
    return frames


def job(lora_dir: Path, name: str, scale: float = 1.0) -> tuple[GenerationParams, LoraWeights]:
    """What the API and the worker do: validate the name against the folder, then resolve its file."""
    library = LoraLibrary(lora_dir)
    p = small(lora=name, lora_scale=scale, lora_exists=library.exists)
    assert p.lora == name
    return p, library.weights(name, p.lora_scale)


def test_a_lora_changes_the_video_and_is_removed_cleanly(
    engine: WanEngine, loader: CountingLoader, lora_dir: Path
) -> None:
    base = generate(engine, small())
    p, lora = job(lora_dir, "style")
    styled = generate(engine, p, lora)
    assert styled.shape == base.shape == (9, 64, 64, 3)
    assert not np.array_equal(styled, base)
    # The next job without a LoRA runs the exact base model again, with the adapter still cached.
    assert np.array_equal(generate(engine, small()), base)
    assert "style" in engine.adapters.loaded
    # Same seed, same LoRA: same video (deterministic), and no reload of anything.
    loads, hits = engine.adapters.loads, engine.adapters.hits
    assert np.array_equal(generate(engine, p, lora), styled)
    assert (engine.adapters.loads, engine.adapters.hits) == (loads, hits + 1)
    assert loader.calls == 1


def test_scale_and_switching_between_loras(engine: WanEngine, lora_dir: Path) -> None:
    base = generate(engine, small())
    p_style, style = job(lora_dir, "style")
    p_other, other = job(lora_dir, "other")
    styled, othered = generate(engine, p_style, style), generate(engine, p_other, other)
    assert not np.array_equal(styled, othered)
    # Switching back activates the cached adapter alone (the other one does not leak in).
    assert np.array_equal(generate(engine, p_style, style), styled)
    p_half, half = job(lora_dir, "style", 0.5)
    halfway = generate(engine, p_half, half)
    assert not np.array_equal(halfway, styled) and not np.array_equal(halfway, base)
    p_zero, zero = job(lora_dir, "style", 0.0)
    assert np.array_equal(generate(engine, p_zero, zero), base)


def test_the_least_recently_used_adapter_is_dropped(engine: WanEngine, lora_dir: Path) -> None:
    engine.adapters = AdapterCache(capacity=1)
    p_style, style = job(lora_dir, "style")
    p_other, other = job(lora_dir, "other")
    first = generate(engine, p_style, style)
    generate(engine, p_other, other)
    assert engine.adapters.loaded == ("other",)
    assert np.array_equal(generate(engine, p_style, style), first)
    assert engine.adapters.loads == 3 and engine.adapters.loaded == ("style",)
    engine.adapters = AdapterCache()


def test_a_cancelled_lora_job_leaves_the_base_model(engine: WanEngine, lora_dir: Path) -> None:
    from reelgen.domain.errors import JobCancelled

    base = generate(engine, small())
    p, lora = job(lora_dir, "style")
    with pytest.raises(JobCancelled):
        engine.run(StageRequest(p, lora=lora), RecordingSink(cancel_at=1))
    assert np.array_equal(generate(engine, small()), base)


# -- validation (the HTTP process: no torch needed for any of this) -------------------------------------------


def test_unknown_and_path_like_names_are_refused(lora_dir: Path) -> None:
    exists = LoraLibrary(lora_dir).exists
    for name in ("missing", "style/pytorch_lora_weights", "../loras/style", "/etc/passwd", ".hidden", "a..b", "st yle"):
        with pytest.raises(InvalidParams) as err:
            small(lora=name, lora_exists=exists)
        assert err.value.param == "lora", name
    with pytest.raises(InvalidParams) as err:
        small(lora="style")  # the server has no LoRA folder
    assert err.value.param == "lora"
    for scale in (2.5, -3, float("nan")):
        with pytest.raises(InvalidParams) as err:
            small(lora="style", lora_scale=scale, lora_exists=exists)
        assert err.value.param == "lora_scale"
    with pytest.raises(InvalidParams) as err:
        small(lora_scale=0.5)
    assert err.value.param == "lora_scale"
    p = small(lora="other", lora_exists=exists)
    assert (p.lora, p.lora_scale) == ("other", 1.0)
    assert GenerationParams.from_dict(p.to_dict()) == p


def test_the_library_finds_safetensors_only_inside_its_folder(tmp_path: Path, lora_dir: Path) -> None:
    root = tmp_path / "loras"
    root.mkdir()
    (root / "pickled.bin").write_bytes(b"x")
    (root / "pickled").mkdir()
    (root / "pickled" / "adapter.bin").write_bytes(b"x")
    (root / "two").mkdir()
    (root / "two" / "a.safetensors").write_bytes(b"x")
    (root / "two" / "b.safetensors").write_bytes(b"x")
    os.symlink(lora_dir / "other.safetensors", root / "escape.safetensors")
    (root / "one").mkdir()
    (root / "one" / "weights.safetensors").write_bytes(b"x")
    library = LoraLibrary(root)
    assert library.names() == ["one"]
    assert library.find("one") == root / "one" / "weights.safetensors"
    for name in ("pickled", "two", "escape", "../loras/one", "missing"):
        assert library.find(name) is None, name
    assert not LoraLibrary(None).enabled and LoraLibrary(None).find("one") is None
    assert LoraLibrary(lora_dir).names() == ["other", "style"]


def test_a_two_expert_lora_goes_into_both_transformers(engine: WanEngine, tmp_path: Path) -> None:
    """Wan 2.2 A14B LoRAs (e.g. Lightning) come as high_noise_model / low_noise_model files in one folder: the
    high-noise file goes into `transformer`, the low-noise one into `transformer_2`, under one adapter name."""
    from tests.unit.test_engine_presets import two_expert_pipeline

    for expert, seed in [("high_noise_model", 3), ("low_noise_model", 4)]:
        save_random_lora(tmp_path / "staging" / expert, seed=seed)
        (tmp_path / "loras" / "lightning").mkdir(parents=True, exist_ok=True)
        (tmp_path / "staging" / expert / "pytorch_lora_weights.safetensors").rename(
            tmp_path / "loras" / "lightning" / f"{expert}.safetensors"
        )
    save_random_lora(tmp_path / "loras" / "high-only", seed=3)  # the same high-noise weights, alone
    library = LoraLibrary(tmp_path / "loras")
    pair = library.weights("lightning")
    assert (pair.path.name, pair.path_2 and pair.path_2.name) == (
        "high_noise_model.safetensors",
        "low_noise_model.safetensors",
    )
    assert library.names() == ["high-only", "lightning"]

    # Enough steps that the low-noise expert runs too (the first steps are above the boundary, high-noise only).
    steps = small(steps=6)
    experts = WanEngine(SPEC, two_expert_pipeline, "cpu", torch.float32, max_sequence_length=MAX_SEQUENCE_LENGTH)
    base = generate(experts, steps)
    both = generate(experts, steps, pair)
    high_only = generate(experts, steps, library.weights("high-only"))
    assert not np.array_equal(both, base) and not np.array_equal(both, high_only)
    adapters = experts.pipe.get_list_adapters()
    assert adapters["transformer_2"] == ["lightning"] and "lightning" in adapters["transformer"]
    assert np.array_equal(generate(experts, steps), base)
    assert np.array_equal(generate(experts, steps, pair), both)

    # A one-transformer model refuses the pair (nothing half-loaded) and keeps working.
    before = generate(engine, small())
    with pytest.raises(InvalidParams, match="two-expert") as err:
        generate(engine, small(), pair)
    assert err.value.param == "lora" and "lightning" not in engine.adapters.loaded
    assert np.array_equal(generate(engine, small()), before)


# -- few-step presets: a distillation LoRA fused at load --------------------------------------------------------


def test_a_distill_lora_is_fused_at_load_and_job_loras_still_apply_on_top(
    loader: CountingLoader, lora_dir: Path, tmp_path: Path
) -> None:
    """A registry entry with `distill_lora` loads the base checkpoint and merges the LoRA into its weights: the
    video is the one the base model makes with that LoRA active (up to the rounding of merging), no adapter is
    left behind, and a job's own LoRA goes on top of the merged model and off again."""
    reg = registry.Registry()
    reg.register(
        replace(SPEC, id="tiny-wan-distilled"),
        "reelgen.engines.wan:create_engine",
        options={
            "source": str(loader.folder),
            "dtype": "float32",
            "max_sequence_length": MAX_SEQUENCE_LENGTH,
            "distill_lora": {"source": str(lora_dir / "style"), "file": "pytorch_lora_weights.safetensors"},
        },
    )
    distilled = reg.create_engine("tiny-wan-distilled", device="cpu")
    assert isinstance(distilled, WanEngine)
    fused = generate(distilled, small())
    assert distilled.pipe.get_list_adapters() == {} or not any(distilled.pipe.get_list_adapters().values())

    reference = WanEngine(SPEC, loader, "cpu", torch.float32, max_sequence_length=MAX_SEQUENCE_LENGTH)
    p, style = job(lora_dir, "style")
    with_adapter = generate(reference, p, style)
    assert np.abs(fused.astype(int) - with_adapter).max() <= 2
    assert not np.array_equal(fused, generate(reference, small()))

    p_other, other = job(lora_dir, "other")
    stacked = generate(distilled, p_other, other)
    assert not np.array_equal(stacked, fused)
    assert np.array_equal(generate(distilled, small()), fused)  # the job's LoRA is off again; the fused one stays


def test_a_missing_distill_lora_is_named_before_anything_loads(
    loader: CountingLoader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from reelgen.engines.weights import WeightsNotFound

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    reg = registry.Registry()
    lora = {"source": "someone/distill-loras", "file": "wan_4step.safetensors"}
    reg.register(
        replace(SPEC, id="tiny-wan-distilled"),
        "reelgen.engines.wan:create_engine",
        options={"source": str(loader.folder), "distill_lora": lora},
    )
    with pytest.raises(WeightsNotFound, match=re.escape("hf download someone/distill-loras wan_4step.safetensors")):
        reg.create_engine("tiny-wan-distilled", device="cpu")
    status = reg.availability("tiny-wan-distilled")
    assert not status.runnable and "hf download someone/distill-loras wan_4step.safetensors" in status.reason
