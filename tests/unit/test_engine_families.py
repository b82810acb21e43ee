"""The HunyuanVideo, HunyuanVideo 1.5, CogVideoX and LTX-2 engines on the real diffusers pipelines at tiny random
configs, on the CPU, offline: every behaviour the Wan and LTX engine tests check, run once per family (parametrized),
then what only one family does (LTX-2's soundtrack and image-to-video).

Each family's record says how to build it, how diffusers itself would be called for the same request (the
engine's output must match it exactly), and where its transformer blocks are (for the LoRA and preset checks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.hooks import FirstBlockCacheConfig
from diffusers.pipelines.ltx2.pipeline_ltx2_image2video import LTX2ImageToVideoPipeline
from huggingface_hub import constants
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

from reelgen.domain.errors import InvalidParams, JobCancelled
from reelgen.domain.models import ModelSpec, Size
from reelgen.domain.params import GenerationParams
from reelgen.engines import presets, registry
from reelgen.engines.base import StageRequest, VideoOutput
from reelgen.engines.cogvideox import CogVideoXEngine, load_cogvideox_pipeline
from reelgen.engines.diffusers_engine import DiffusersEngine
from reelgen.engines.hunyuan import HunyuanEngine, load_hunyuan_pipeline
from reelgen.engines.hunyuan15 import HunyuanVideo15Engine, load_hunyuan15_pipeline
from reelgen.engines.lora import LoraLibrary, LoraWeights
from reelgen.engines.ltx2 import LTX2Engine, load_ltx2_pipeline
from reelgen.engines.open_catalog import (
    HUNYUAN15_FACTORY,
    HUNYUAN15_T2V_480P,
    HUNYUAN15_T2V_720P,
    LTX2_FACTORY,
    LTX_2,
    OPEN_MODELS,
)
from reelgen.engines.registry import Registry
from reelgen.engines.tiny_cogvideox import (
    MAX_SEQUENCE_LENGTH as COG_TEXT,
)
from reelgen.engines.tiny_cogvideox import (
    TINY_RANDOM_COGVIDEOX,
    build_tiny_cogvideox_pipeline,
)
from reelgen.engines.tiny_cogvideox import (
    create_engine as create_cogvideox,
)
from reelgen.engines.tiny_hunyuan import TINY_RANDOM_HUNYUAN, build_tiny_hunyuan_pipeline
from reelgen.engines.tiny_hunyuan import create_engine as create_hunyuan
from reelgen.engines.tiny_hunyuan15 import TINY_RANDOM_HUNYUAN15, build_tiny_hunyuan15_pipeline
from reelgen.engines.tiny_hunyuan15 import create_engine as create_hunyuan15
from reelgen.engines.tiny_ltx2 import GUIDANCE as LTX2_GUIDANCE
from reelgen.engines.tiny_ltx2 import MAX_SEQUENCE_LENGTH as LTX2_TEXT
from reelgen.engines.tiny_ltx2 import TINY_RANDOM_LTX2, build_tiny_ltx2_pipeline
from reelgen.engines.tiny_ltx2 import create_engine as create_ltx2
from reelgen.engines.weights import WeightsNotFound
from reelgen.media.probe import probe
from reelgen.worker.output import encode_clip
from tests.unit.engine_support import RecordingSink, job_params, loaded, one_cpu_thread  # noqa: F401 - autouse fixture

PROMPT = "a red fox running through the snow"


@dataclass(frozen=True)
class Family:
    spec: ModelSpec
    engine_class: type[DiffusersEngine[Any]]
    create: Callable[[], DiffusersEngine[Any]]
    build: Callable[[], Any]
    load: Callable[..., Any]
    factory: str
    # Keyword arguments of the pipeline call that make diffusers do what the engine does.
    reference_kwargs: dict[str, Any] = field(default_factory=dict)
    factory_options: dict[str, Any] = field(default_factory=dict)
    # The transformer's config key for its number of blocks (a second block lets FirstBlockCache act).
    blocks_key: str = "num_layers"
    # The pipeline takes its guidance scale from its `guider` (diffusers' modular guidance), not as an argument.
    guider: bool = False
    # Whether diffusers has a LoRA loader for the pipeline (the engine refuses LoRAs where it has none).
    lora: bool = True
    # Whether the model also animates an input image (else such a request is refused).
    takes_image: bool = False


FAMILIES = {
    "hunyuan": Family(
        TINY_RANDOM_HUNYUAN,
        HunyuanEngine,
        lambda: create_hunyuan(device="cpu"),
        build_tiny_hunyuan_pipeline,
        load_hunyuan_pipeline,
        "reelgen.engines.hunyuan:create_engine",
    ),
    "hunyuan15": Family(
        TINY_RANDOM_HUNYUAN15,
        HunyuanVideo15Engine,
        lambda: create_hunyuan15(device="cpu"),
        build_tiny_hunyuan15_pipeline,
        load_hunyuan15_pipeline,
        "reelgen.engines.hunyuan15:create_engine",
        guider=True,
        lora=False,
    ),
    "cogvideox": Family(
        TINY_RANDOM_COGVIDEOX,
        CogVideoXEngine,
        lambda: create_cogvideox(device="cpu"),
        build_tiny_cogvideox_pipeline,
        load_cogvideox_pipeline,
        "reelgen.engines.cogvideox:create_engine",
        reference_kwargs={"max_sequence_length": COG_TEXT, "use_dynamic_cfg": True},
        factory_options={"max_sequence_length": COG_TEXT},
    ),
    "ltx2": Family(
        TINY_RANDOM_LTX2,
        LTX2Engine,
        lambda: create_ltx2(device="cpu"),
        build_tiny_ltx2_pipeline,
        load_ltx2_pipeline,
        "reelgen.engines.ltx2:create_engine",
        reference_kwargs={"max_sequence_length": LTX2_TEXT, **LTX2_GUIDANCE},
        factory_options={"max_sequence_length": LTX2_TEXT, "guidance": LTX2_GUIDANCE},
        takes_image=True,
    ),
}


def spatial_ratio(pipe: Any) -> int:
    """How many pixels a side of one latent pixel covers (LTX-2's pipeline names it differently)."""
    return getattr(pipe, "vae_scale_factor_spatial", None) or pipe.vae_spatial_compression_ratio


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> Family:
    return FAMILIES[request.param]


@pytest.fixture(scope="module")
def engine(family: Family) -> Iterator[DiffusersEngine[Any]]:
    yield from loaded(family.create)


def params(family: Family, **kw: object) -> GenerationParams:
    return job_params(family.spec, PROMPT, **kw)


def frames_of(output: VideoOutput) -> np.ndarray:
    chunks = list(output.chunks)
    assert all(c.dtype == np.uint8 and c.ndim == 4 and c.shape[-1] == 3 for c in chunks)
    return np.concatenate(chunks)


def generate(engine: DiffusersEngine[Any], p: GenerationParams, lora: LoraWeights | None = None) -> np.ndarray:
    sink = RecordingSink()
    frames = frames_of(engine.run(StageRequest(p, lora=lora), sink))
    assert len(sink.steps) == p.steps
    return frames


def diffusers_reference(family: Family, pipe: Any, p: GenerationParams) -> np.ndarray:
    """What the pipeline itself returns for the same request, as uint8."""
    extra = dict(family.reference_kwargs)
    if p.negative_prompt:
        extra["negative_prompt"] = p.negative_prompt
    shipped_guider = pipe.guider if family.guider else None
    if family.guider:
        # The way diffusers' docs set it: a copy of the guider at the scale (put back below).
        pipe.guider = shipped_guider.new(guidance_scale=p.guidance_scale)
    else:
        extra["guidance_scale"] = p.guidance_scale
    try:
        frames = pipe(
            prompt=p.prompt,
            height=p.size.height,
            width=p.size.width,
            num_frames=p.num_frames,
            num_inference_steps=p.steps,
            generator=torch.Generator().manual_seed(p.seed),
            output_type="np",
            **extra,
        ).frames[0]
    finally:
        if family.guider:
            pipe.guider = shipped_guider
    return np.round(frames * 255).astype(np.uint8)


def test_a_job_makes_the_requested_frames_in_chunks_with_stats(family: Family, engine: DiffusersEngine[Any]) -> None:
    p = replace(params(family), num_frames=17)
    output = engine.run(StageRequest(p), RecordingSink())
    chunks = list(output.chunks)
    assert [len(c) for c in chunks] == [16, 1]
    assert (output.width, output.height, output.num_frames) == (64, 64, 17)
    assert np.concatenate(chunks).shape == (17, 64, 64, 3)
    for key in ("load_seconds", "mean_step_seconds", "first_step_seconds", "denoise_seconds", "decode_seconds"):
        assert output.stats[key] >= 0, key


def test_non_square_sizes(family: Family, engine: DiffusersEngine[Any]) -> None:
    p = params(family)
    assert generate(engine, params(family, size="96x64")).shape == (p.num_frames, 64, 96, 3)
    assert generate(engine, params(family, size="64x96")).shape == (p.num_frames, 96, 64, 3)


def test_output_matches_diffusers_own_pipeline(family: Family, engine: DiffusersEngine[Any]) -> None:
    """The engine's latent output + decode is exactly what the pipeline returns for output_type="np" (for
    CogVideoX 1.5-shaped models also with the padding latent frame an odd latent count brings; for HunyuanVideo
    1.5 also with quoted text, which its glyph encoder reads)."""
    p = params(family)
    assert generate(engine, p).shape == (p.num_frames, 64, 64, 3)
    np.testing.assert_array_equal(generate(engine, p), diffusers_reference(family, engine.pipe, p))
    sign = params(family, prompt='a neon sign that says "open" in a dark street')
    np.testing.assert_array_equal(generate(engine, sign), diffusers_reference(family, engine.pipe, sign))


def test_the_guidance_scale_is_the_jobs(family: Family, engine: DiffusersEngine[Any]) -> None:
    p = params(family, guidance_scale=2.5)
    assert not np.array_equal(generate(engine, p), generate(engine, params(family)))
    np.testing.assert_array_equal(generate(engine, p), diffusers_reference(family, engine.pipe, p))
    if family.guider:  # set for the call only: the checkpoint's guider is as it was
        assert engine.pipe.guider.guidance_scale == 6.0


def test_same_seed_same_video_different_seed_different_video(family: Family, engine: DiffusersEngine[Any]) -> None:
    first = generate(engine, params(family, seed=1))
    assert np.array_equal(first, generate(engine, params(family, seed=1)))
    assert not np.array_equal(first, generate(engine, params(family, seed=2)))
    assert not np.array_equal(first, generate(engine, params(family, seed=1, prompt="a blue whale")))
    varied = frames_of(engine.run(StageRequest(params(family, seed=1), variation=1), RecordingSink()))
    assert np.array_equal(varied, generate(engine, params(family, seed=2)))


def test_progress_reports_every_step_with_a_cheap_preview(family: Family, engine: DiffusersEngine[Any]) -> None:
    sink = RecordingSink()
    frames = frames_of(engine.run(StageRequest(params(family, size="96x64", steps=3)), sink))
    assert sink.steps == [(1, 3), (2, 3), (3, 3)]
    preview = sink.previews[-1]
    assert preview is not None
    image = preview()
    # Latent resolution (12x8 for an 8x VAE, 6x4 for a 16x one) upsampled to the frame; never the full decode.
    assert image.dtype == np.uint8 and image.shape == (64, 96, 3) and image.std() > 0
    # The fitted latent->RGB map is a cheap stand-in for the VAE: it correlates with the real middle frame.
    s = spatial_ratio(engine.pipe)
    guess = image.astype(float)[::s, ::s].ravel()
    truth = frames[len(frames) // 2].astype(float).reshape(64 // s, s, 96 // s, s, 3).mean(axis=(1, 3)).ravel()
    assert np.corrcoef(guess, truth)[0, 1] > 0.3


def test_cancel_stops_at_the_step_and_the_engine_recovers(family: Family, engine: DiffusersEngine[Any]) -> None:
    sink = RecordingSink(cancel_at=2)
    with pytest.raises(JobCancelled):
        engine.run(StageRequest(params(family, steps=4)), sink)
    assert [s for s, _ in sink.steps] == [1, 2]
    # HunyuanVideo 1.5 reports steps from a wrapped scheduler step: the wrapper is gone after the cancel too.
    assert "step" not in vars(engine.pipe.scheduler)
    assert np.array_equal(generate(engine, params(family, steps=4)), generate(engine, params(family, steps=4)))


def test_variations_in_one_batch_are_the_clips_separate_runs_make(family: Family, engine: DiffusersEngine[Any]) -> None:
    p = params(family, seed=11)
    request = StageRequest(p, count=3)
    if not engine.batches_variations:
        assert engine.max_batch(request) == 1  # the worker makes them one after another
        return
    assert engine.max_batch(request) == 3  # on a CPU, memory is not what limits a batch
    sink = RecordingSink()
    outputs = engine.run_batch(request, sink)
    assert len(sink.steps) == p.steps  # one pass for all three
    batched = [frames_of(output) for output in outputs]  # decoded before the engine runs anything else
    for k, output in enumerate(outputs):
        alone = engine.run(StageRequest(p, variation=k), RecordingSink())
        # Same noise (seed + k), same math; a batched matrix product may round differently in the last bit.
        assert np.abs(batched[k].astype(int) - frames_of(alone)).max() <= 2, k
        if output.audio is not None:
            assert alone.audio is not None and np.abs(output.audio.samples - alone.audio.samples).max() < 1e-3
    assert not np.array_equal(batched[0], batched[1])
    with pytest.raises(ValueError, match="run_batch"):
        engine.run(request, RecordingSink())


def test_an_unconsumed_output_cannot_decode_after_the_next_run(family: Family, engine: DiffusersEngine[Any]) -> None:
    stale = engine.run(StageRequest(params(family, seed=5)), RecordingSink())
    generate(engine, params(family, seed=6))
    with pytest.raises(RuntimeError, match="before this video was decoded"):
        next(stale.chunks)


def test_requests_the_pipeline_would_reject_or_round_are_refused(family: Family, engine: DiffusersEngine[Any]) -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    refused = [
        (StageRequest(replace(params(family), size=Size(72, 64))), "size"),
        (StageRequest(replace(params(family), num_frames=11)), "seconds"),
        (StageRequest(params(family), stage="upscale"), "stage"),
        (StageRequest(params(family), init_frames=np.zeros((9, 64, 64, 3), np.uint8)), "input_reference"),
    ]
    if not family.takes_image:  # text-to-video checkpoints
        refused.append((StageRequest(params(family), input_image=image), "input_reference"))
    for request, param in refused:
        with pytest.raises(InvalidParams) as err:
            engine.run(request, RecordingSink())
        assert err.value.param == param


def test_a_negative_prompt_is_used_or_refused_never_ignored(family: Family, engine: DiffusersEngine[Any]) -> None:
    if not family.spec.negative_prompt:
        # Guidance-distilled: the scale is a transformer input and a negative prompt has no pass to go into. The
        # API refuses it (validate_params), and so does the engine, for jobs that reach it another way.
        with pytest.raises(InvalidParams, match="guidance-distilled") as err:
            params(family, negative_prompt="blurry")
        assert err.value.param == "negative_prompt"
        with pytest.raises(InvalidParams, match="guidance-distilled") as err:
            engine.run(StageRequest(replace(params(family), negative_prompt="blurry")), RecordingSink())
        assert err.value.param == "negative_prompt"
        return
    p = params(family, negative_prompt="blurry")
    assert not np.array_equal(generate(engine, p), generate(engine, params(family)))
    np.testing.assert_array_equal(generate(engine, p), diffusers_reference(family, engine.pipe, p))


def test_engine_stays_resident_and_reloads_after_unload(family: Family) -> None:
    builds = 0

    def loader() -> Any:
        nonlocal builds
        builds += 1
        return family.build()

    built = family.create()
    engine = family.engine_class(family.spec, loader, "cpu", **family.factory_options)
    assert builds == 0 and type(engine) is type(built)
    generate(engine, params(family, steps=1))
    generate(engine, params(family, steps=1))
    assert builds == 1
    engine.unload()
    generate(engine, params(family, steps=1))
    assert builds == 2


def test_save_pretrained_then_load_through_the_registry_generates_identically(
    family: Family, engine: DiffusersEngine[Any], tmp_path: Path
) -> None:
    """The path a real checkpoint takes (folder in diffusers layout -> the family's create_engine), offline."""
    folder = tmp_path / family.spec.id
    family.build().save_pretrained(folder)
    assert type(family.load(folder, dtype=torch.float32, device="cpu")) is type(engine.pipe)
    reg = Registry()
    model_id = f"{family.spec.id}-from-folder"
    reg.register(
        replace(family.spec, id=model_id),
        family.factory,
        options={"source": str(folder), "dtype": "float32", **family.factory_options},
    )
    loaded = reg.create_engine(model_id, device="cpu")
    assert isinstance(loaded, family.engine_class)
    p = params(family)
    assert np.array_equal(generate(loaded, p), generate(engine, p))


def test_the_worker_encodes_a_clip_to_mp4(family: Family, engine: DiffusersEngine[Any], tmp_path: Path) -> None:
    p = replace(params(family), num_frames=17)
    clip = encode_clip(engine.run(StageRequest(p), RecordingSink()), tmp_path, "video", check=lambda: None)
    info = probe(clip.video)
    assert (info.num_frames, info.width, info.height, info.fps) == (17, 64, 64, family.spec.fps)
    assert clip.thumbnail is not None and clip.thumbnail.is_file()


# -- LoRA and speed presets ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lora(family: Family, tmp_path_factory: pytest.TempPathFactory) -> LoraWeights:
    root = tmp_path_factory.mktemp("loras")
    pipe = family.build()
    transformer = pipe.transformer
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        transformer.add_adapter(
            LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
        )
    layers = get_peft_model_state_dict(transformer)
    if family.lora:
        type(pipe).save_lora_weights(root / "style", transformer_lora_layers=layers, safe_serialization=True)
    else:  # no LoRA mixin to write it either: the file diffusers' writers make
        (root / "style").mkdir()
        save_file(
            {f"transformer.{k}": v for k, v in layers.items()}, root / "style" / "pytorch_lora_weights.safetensors"
        )
    return LoraLibrary(root).weights("style")


def test_a_lora_changes_the_video_and_is_removed_cleanly(
    family: Family, engine: DiffusersEngine[Any], lora: LoraWeights
) -> None:
    p = params(family, seed=3)
    base = generate(engine, p)
    if not family.lora:
        # diffusers has no LoRA loader for the pipeline: refused before any work, and the model is untouched.
        with pytest.raises(InvalidParams, match="takes no LoRA") as err:
            engine.run(StageRequest(p, lora=lora), RecordingSink())
        assert err.value.param == "lora" and engine.adapters.loads == 0
        assert np.array_equal(generate(engine, p), base)
        return
    styled = generate(engine, p, lora)
    assert styled.shape == base.shape and not np.array_equal(styled, base)
    assert np.array_equal(generate(engine, p), base)
    assert np.array_equal(generate(engine, p, lora), styled)
    assert engine.adapters.loads == 1


def test_presets_cache_steps_for_one_job_only(family: Family) -> None:
    def two_blocks() -> Any:
        """The tiny model with a second transformer block: FirstBlockCache needs a head and a tail block."""
        pipe = family.build()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            config = {**pipe.transformer.config, family.blocks_key: 2}
            transformer = type(pipe.transformer).from_config(config).eval()
        pipe.register_modules(transformer=transformer)
        return pipe

    engine = family.engine_class(family.spec, two_blocks, "cpu", **family.factory_options)
    quality = generate(engine, params(family, steps=10, preset="quality"))
    seen: list[object] = []

    class Watching(RecordingSink):
        def step(self, step: int, total: int, preview: object = None) -> None:
            seen.append(engine.pipe.transformer._cache_config)
            super().step(step, total, preview)  # type: ignore[arg-type]

    fast = frames_of(engine.run(StageRequest(params(family, steps=10, preset="fast")), Watching()))
    assert fast.shape == quality.shape
    assert seen and all(isinstance(c, FirstBlockCacheConfig) and c.threshold == presets.FAST_THRESHOLD for c in seen)
    assert not engine.pipe.transformer.is_cache_enabled
    assert np.array_equal(generate(engine, params(family, steps=10, preset="quality")), quality)
    few = presets.FEW_STEPS
    assert np.array_equal(
        generate(engine, params(family, steps=few, preset="fast")), generate(engine, params(family, steps=few))
    )


# -- HunyuanVideo 1.5 only ----------------------------------------------------------------------------------


def test_hunyuan15_tiny_tokenizer_crops_exactly_the_system_part() -> None:
    """The pipeline drops a hard-coded 108 tokens (its system message in the chat template) from the front of
    every encoded prompt; the tiny tokenizer is shaped so that is exactly everything before the user's text."""
    pipe = build_tiny_hunyuan15_pipeline()
    crop = pipe.prompt_template_encode_start_idx
    chat = [{"role": "system", "content": pipe.system_message}, {"role": "user", "content": PROMPT}]
    ids = pipe.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True)
    ids = ids["input_ids"]
    assert crop == 108
    assert pipe.tokenizer.decode(ids[:crop]).endswith("<|im_end|>\n<|im_start|>user\n")
    assert pipe.tokenizer.decode(ids[crop:]) == f"{PROMPT}<|im_end|>\n<|im_start|>assistant\n"


def test_hunyuan15_catalog_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = {spec.id: (spec, factory, options) for spec, factory, options in OPEN_MODELS}
    for spec, repo in [
        (HUNYUAN15_T2V_480P, "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_t2v"),
        (HUNYUAN15_T2V_720P, "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-720p_t2v"),
    ]:
        assert entries[spec.id] == (spec, HUNYUAN15_FACTORY, {"source": repo})
        assert (spec.num_frames(spec.default_seconds), spec.num_frames(spec.max_seconds), spec.fps) == (121, 121, 24)
        assert spec.negative_prompt and (spec.default_steps, spec.default_guidance) == (50, 6.0)
        # The factory is importable and fails before loading anything when the weights are not here.
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        with pytest.raises(WeightsNotFound, match=f"hf download {repo}"):
            registry.create_engine(spec.id, device="cpu")
    assert {str(s) for s in HUNYUAN15_T2V_480P.sizes} == {"848x480", "480x848"}
    assert {str(s) for s in HUNYUAN15_T2V_720P.sizes} == {"1280x720", "720x1280"}


# -- LTX-2 only ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ltx2() -> Iterator[LTX2Engine]:
    built = create_ltx2(device="cpu")
    built.load()
    yield built
    built.unload()


def ltx2_reference(pipe: Any, p: GenerationParams, **extra: Any) -> tuple[np.ndarray, np.ndarray]:
    """The frames (uint8) and the waveform LTX2Pipeline (or its image-to-video sibling) returns for the job."""
    output = pipe(
        prompt=p.prompt,
        height=p.size.height,
        width=p.size.width,
        num_frames=p.num_frames,
        num_inference_steps=p.steps,
        guidance_scale=p.guidance_scale,
        generator=torch.Generator().manual_seed(p.seed),
        output_type="np",
        max_sequence_length=LTX2_TEXT,
        **LTX2_GUIDANCE,
        **extra,
    )
    return np.round(output.frames[0] * 255).astype(np.uint8), output.audio[0].float().numpy()


def test_ltx2_makes_the_soundtrack_the_pipeline_makes_as_long_as_the_clip(ltx2: LTX2Engine) -> None:
    family = FAMILIES["ltx2"]
    p = replace(params(family, seed=7), num_frames=25)
    output = ltx2.run(StageRequest(p), RecordingSink())
    frames = frames_of(output)
    audio = output.audio
    assert audio is not None and audio.sample_rate == ltx2.pipe.vocoder.config.output_sampling_rate == 16_000
    assert audio.samples.dtype == np.float32 and audio.samples.shape[0] == 2
    # The audio latents are as long as the clip (25 frames at 24 fps), less the causal VAE's first mel frames.
    assert abs(audio.seconds - 25 / 24) < 0.1, audio.seconds
    assert np.abs(audio.samples).max() <= 1 and audio.samples.std() > 0
    assert output.stats["audio_decode_seconds"] >= 0
    ref_frames, ref_audio = ltx2_reference(ltx2.pipe, p)
    np.testing.assert_array_equal(frames, ref_frames)
    np.testing.assert_array_equal(audio.samples, np.clip(ref_audio, -1, 1))
    other = ltx2.run(StageRequest(replace(p, seed=8)), RecordingSink())
    assert other.audio is not None and not np.array_equal(other.audio.samples, audio.samples)


def test_ltx2_clips_are_stored_with_their_sound(ltx2: LTX2Engine, tmp_path: Path) -> None:
    p = replace(params(FAMILIES["ltx2"]), num_frames=25)
    output = ltx2.run(StageRequest(p), RecordingSink())
    clip = encode_clip(output, tmp_path, "video", check=lambda: None)
    info = probe(clip.video)
    assert info.num_frames == 25 and info.audio is not None and clip.audio is not None
    assert output.audio is not None
    assert (info.audio.sample_rate, info.audio.channels) == (output.audio.sample_rate, 2)
    assert abs(info.audio.seconds - output.audio.seconds) < 0.07  # one AAC frame


def test_ltx2_image_to_video_is_the_image_pipelines_video(ltx2: LTX2Engine) -> None:
    family = FAMILIES["ltx2"]
    p = params(family, size="96x64")
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    output = ltx2.run(StageRequest(p, input_image=image), RecordingSink())
    frames = frames_of(output)
    assert frames.shape == (p.num_frames, 64, 96, 3) and output.audio is not None
    assert not np.array_equal(frames, generate(ltx2, p))
    image_pipe = LTX2ImageToVideoPipeline(**ltx2.pipe.components)
    ref_frames, ref_audio = ltx2_reference(image_pipe, p, image=PIL.Image.fromarray(image))
    np.testing.assert_array_equal(frames, ref_frames)
    np.testing.assert_array_equal(output.audio.samples, np.clip(ref_audio, -1, 1))


def test_ltx2_makes_image_variations_one_pass_each(ltx2: LTX2Engine) -> None:
    """LTX2ImageToVideoPipeline re-compresses only a single PIL image and encodes it with the first generator only,
    so image-to-video variations are not batched (the worker asks max_batch and makes them one after another)."""
    image = np.zeros((64, 64, 3), np.uint8)
    p = params(FAMILIES["ltx2"])
    assert ltx2.max_batch(StageRequest(p, count=3)) == 3
    assert ltx2.max_batch(StageRequest(p, input_image=image, count=3)) == 1
    with pytest.raises(ValueError, match="one pass each"):
        ltx2.run_batch(StageRequest(p, input_image=image, count=2), RecordingSink())


def test_ltx2_timestep_conditioned_vae_decodes_as_the_pipeline_does() -> None:
    """With a decode timestep the pipeline mixes noise into the latents before denormalising them; the engine mixes
    after (it gets the denormalised latents), which is the same affine sum up to float rounding."""

    def conditioned() -> Any:
        pipe = build_tiny_ltx2_pipeline()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            config = {**pipe.vae.config, "timestep_conditioning": True}
            vae = type(pipe.vae).from_config(config).eval()
        # Non-trivial latent statistics, so denormalising is not the identity.
        vae.latents_mean.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(1))
        vae.latents_std.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(2))
        pipe.register_modules(vae=vae)
        return pipe

    engine = LTX2Engine(
        TINY_RANDOM_LTX2,
        conditioned,
        "cpu",
        max_sequence_length=LTX2_TEXT,
        guidance=LTX2_GUIDANCE,
        decode_timestep=0.05,
        decode_noise_scale=0.025,
    )
    p = params(FAMILIES["ltx2"], seed=3)
    frames = generate(engine, p)
    ref_frames, _ = ltx2_reference(engine.pipe, p, decode_timestep=0.05, decode_noise_scale=0.025)
    assert np.abs(frames.astype(int) - ref_frames).max() <= 1
    assert np.mean(frames != ref_frames) < 0.01


def test_ltx2_catalog_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = {spec.id: (spec, factory, options) for spec, factory, options in OPEN_MODELS}
    assert entries["ltx-2"] == (LTX_2, LTX2_FACTORY, {"source": "Lightricks/LTX-2"})
    assert (LTX_2.num_frames(LTX_2.default_seconds), LTX_2.num_frames(LTX_2.max_seconds), LTX_2.fps) == (121, 241, 24)
    assert all(s.width % 32 == 0 and s.height % 32 == 0 for s in LTX_2.sizes)
    assert "1920x1088" in {str(s) for s in LTX_2.sizes} and LTX_2.inputs == ("text", "image")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotFound, match="hf download Lightricks/LTX-2"):
        registry.create_engine("ltx-2", device="cpu")
