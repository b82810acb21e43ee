"""Image to video for CogVideoX and HunyuanVideo 1.5: the engines driving the real diffusers
CogVideoXImageToVideoPipeline and HunyuanVideo15ImageToVideoPipeline at tiny random configs (HunyuanVideo 1.5's
SigLIP image encoder included), on the CPU, offline. Each test runs once per family; a few seconds each.

As in tests/unit/test_engine_families.py, each family's record says how to build it and how diffusers itself would
be called for the same request: the engine's output must match it exactly.
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
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import CogVideoXImageToVideoPipeline
from diffusers.pipelines.hunyuan_video1_5.image_processor import HunyuanVideo15ImageProcessor
from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5_image2video import (
    HunyuanVideo15ImageToVideoPipeline,
)
from huggingface_hub import constants

from reelgen.domain.errors import InvalidParams, JobCancelled
from reelgen.domain.models import ModelSpec, Size
from reelgen.domain.params import GenerationParams, ParamLimits, validate_params
from reelgen.engines import registry
from reelgen.engines.base import StageRequest
from reelgen.engines.cogvideox import CogVideoXEngine, load_cogvideox_i2v_pipeline
from reelgen.engines.diffusers_engine import DiffusersEngine
from reelgen.engines.hunyuan15 import HunyuanVideo15Engine, load_hunyuan15_i2v_pipeline
from reelgen.engines.open_catalog import (
    COGVIDEOX_1_5_5B_I2V,
    COGVIDEOX_5B_I2V,
    COGVIDEOX_FACTORY,
    HUNYUAN15_FACTORY,
    HUNYUAN15_I2V_480P,
    HUNYUAN15_I2V_720P,
    OPEN_MODELS,
)
from reelgen.engines.registry import Registry
from reelgen.engines.tiny_cogvideox import MAX_SEQUENCE_LENGTH as COG_TEXT
from reelgen.engines.tiny_cogvideox_i2v import TINY_RANDOM_COGVIDEOX_I2V, build_tiny_cogvideox_i2v_pipeline
from reelgen.engines.tiny_cogvideox_i2v import create_engine as create_cogvideox_i2v
from reelgen.engines.tiny_hunyuan15_i2v import TINY_RANDOM_HUNYUAN15_I2V, build_tiny_hunyuan15_i2v_pipeline
from reelgen.engines.tiny_hunyuan15_i2v import create_engine as create_hunyuan15_i2v
from reelgen.engines.weights import WeightsNotFound
from tests.unit.engine_support import RecordingSink, job_params, loaded, one_cpu_thread  # noqa: F401 - autouse fixture
from tests.unit.test_engine_families import frames_of

PROMPT = "a red fox running through the snow"
IMAGE = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)


@dataclass(frozen=True)
class Family:
    spec: ModelSpec
    engine_class: type[DiffusersEngine[Any]]
    pipeline_class: type[Any]
    create: Callable[[], DiffusersEngine[Any]]
    build: Callable[[], Any]
    load: Callable[..., Any]
    factory: str
    # Keyword arguments of the pipeline call that make diffusers do what the engine does.
    reference_kwargs: dict[str, Any] = field(default_factory=dict)
    factory_options: dict[str, Any] = field(default_factory=dict)
    # The pipeline takes its guidance scale from its `guider`, and its size from the image (HunyuanVideo 1.5).
    guider: bool = False
    # A size the pipeline would fail at, round, or not make (as "WIDTHxHEIGHT").
    unmade_size: str = "72x64"


FAMILIES = {
    "cogvideox": Family(
        TINY_RANDOM_COGVIDEOX_I2V,
        CogVideoXEngine,
        CogVideoXImageToVideoPipeline,
        lambda: create_cogvideox_i2v(device="cpu"),
        build_tiny_cogvideox_i2v_pipeline,
        load_cogvideox_i2v_pipeline,
        "reelgen.engines.cogvideox:create_engine",
        reference_kwargs={"max_sequence_length": COG_TEXT, "use_dynamic_cfg": True},
        factory_options={"max_sequence_length": COG_TEXT},
    ),
    "hunyuan15": Family(
        TINY_RANDOM_HUNYUAN15_I2V,
        HunyuanVideo15Engine,
        HunyuanVideo15ImageToVideoPipeline,
        lambda: create_hunyuan15_i2v(device="cpu"),
        build_tiny_hunyuan15_i2v_pipeline,
        load_hunyuan15_i2v_pipeline,
        "reelgen.engines.hunyuan15:create_engine",
        guider=True,
        # Not a bucket of its own shape: the pipeline would make 48x64 from such an image.
        unmade_size="48x80",
    ),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> Family:
    return FAMILIES[request.param]


@pytest.fixture(scope="module")
def engine(family: Family) -> Iterator[DiffusersEngine[Any]]:
    yield from loaded(family.create)


def params(family: Family, **kw: object) -> GenerationParams:
    """64x64, 9 frames, 2 steps (the tiny specs' defaults), with an uploaded image."""
    return job_params(family.spec, PROMPT, input_image="inputs/x/ref.png", **kw)


def generate(engine: DiffusersEngine[Any], p: GenerationParams, image: np.ndarray = IMAGE) -> np.ndarray:
    sink = RecordingSink()
    frames = frames_of(engine.run(StageRequest(p, input_image=image), sink))
    assert len(sink.steps) == p.steps
    return frames


def diffusers_reference(family: Family, pipe: Any, p: GenerationParams, image: np.ndarray = IMAGE) -> np.ndarray:
    """What the image-to-video pipeline itself returns for the same request, as uint8."""
    extra = dict(family.reference_kwargs)
    if p.negative_prompt:
        extra["negative_prompt"] = p.negative_prompt
    shipped_guider = pipe.guider if family.guider else None
    if family.guider:
        # The way diffusers' docs set it: a copy of the guider at the scale (put back below). No size argument:
        # this pipeline takes the size from the image.
        pipe.guider = shipped_guider.new(guidance_scale=p.guidance_scale)
    else:
        extra.update(guidance_scale=p.guidance_scale, height=p.size.height, width=p.size.width)
    try:
        frames = pipe(
            image=PIL.Image.fromarray(image),
            prompt=p.prompt,
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


def test_output_matches_diffusers_own_image_pipeline(family: Family, engine: DiffusersEngine[Any]) -> None:
    """Exactly the pipeline's output_type="np" video (for the CogVideoX 1.5-shaped model also through the padding
    latent frame its odd latent count brings), with a negative prompt too; the image decides the video."""
    p = params(family)
    frames = generate(engine, p)
    assert isinstance(engine.pipe, family.pipeline_class)
    assert frames.shape == (p.num_frames, 64, 64, 3)
    np.testing.assert_array_equal(frames, diffusers_reference(family, engine.pipe, p))
    negative = params(family, negative_prompt="blurry", guidance_scale=2.5)
    np.testing.assert_array_equal(generate(engine, negative), diffusers_reference(family, engine.pipe, negative))
    assert not np.array_equal(generate(engine, p, 255 - IMAGE), frames)


def test_sizes_and_images_of_another_shape(family: Family, engine: DiffusersEngine[Any]) -> None:
    """Every size of the spec comes out as asked, from an image of any size. CogVideoX stretches the image to the
    size; HunyuanVideo 1.5 centre-crops it, as its pipeline does: an image of the size's shape gives the video the
    pipeline makes from that image itself."""
    for size in family.spec.sizes[1:]:
        p = params(family, size=str(size), steps=1)
        image = np.ascontiguousarray(np.repeat(IMAGE, 2, axis=1))  # 128x64
        assert generate(engine, p, image).shape == (p.num_frames, size.height, size.width, 3)
    large = np.ascontiguousarray(np.repeat(np.repeat(IMAGE, 2, axis=0), 2, axis=1))  # 128x128, the 64x64 shape
    p = params(family, steps=1)
    np.testing.assert_array_equal(generate(engine, p, large), diffusers_reference(family, engine.pipe, p, large))


def test_requests_without_an_image_or_at_an_unmade_size_are_refused(
    family: Family, engine: DiffusersEngine[Any]
) -> None:
    with pytest.raises(InvalidParams) as err:
        validate_params(family.spec, ParamLimits(), prompt=PROMPT)  # the API's check (requires_image)
    assert err.value.param == "input_reference"
    with pytest.raises(InvalidParams, match="animates an image") as err:
        engine.run(StageRequest(params(family)), RecordingSink())  # a job that reached the engine another way
    assert err.value.param == "input_reference"
    refused = [
        (StageRequest(params(family), input_image=IMAGE[..., :2]), "input_reference"),
        (StageRequest(replace(params(family), size=Size.parse(family.unmade_size)), input_image=IMAGE), "size"),
        (StageRequest(replace(params(family), num_frames=11), input_image=IMAGE), "seconds"),
    ]
    for request, param in refused:
        with pytest.raises(InvalidParams) as err:
            engine.run(request, RecordingSink())
        assert err.value.param == param


def test_progress_reports_every_step_and_cancel_stops_mid_run(family: Family, engine: DiffusersEngine[Any]) -> None:
    sink = RecordingSink()
    frames = frames_of(engine.run(StageRequest(params(family, steps=3), input_image=IMAGE), sink))
    assert sink.steps == [(1, 3), (2, 3), (3, 3)]
    preview = sink.previews[-1]
    assert preview is not None
    image = preview()
    assert image.dtype == np.uint8 and image.shape == frames.shape[1:]

    cancelling = RecordingSink(cancel_at=2)
    with pytest.raises(JobCancelled):
        engine.run(StageRequest(params(family, steps=4), input_image=IMAGE), cancelling)
    assert [s for s, _ in cancelling.steps] == [1, 2]
    # HunyuanVideo 1.5's step reporting wraps the scheduler's step: the wrapper is gone after the cancel too.
    assert "step" not in vars(engine.pipe.scheduler)
    p = params(family, steps=4)
    assert np.array_equal(generate(engine, p), generate(engine, p))


def test_variations_in_one_batch_are_the_clips_separate_runs_make(family: Family, engine: DiffusersEngine[Any]) -> None:
    p = params(family, seed=11)
    request = StageRequest(p, input_image=IMAGE, count=2)
    assert engine.batches_variations and engine.max_batch(request) == 2
    sink = RecordingSink()
    outputs = engine.run_batch(request, sink)
    assert len(sink.steps) == p.steps  # one pass for both
    batched = [frames_of(output) for output in outputs]
    for k in range(2):
        alone = frames_of(engine.run(StageRequest(p, input_image=IMAGE, variation=k), RecordingSink()))
        # Same noise (seed + k; CogVideoX also samples the image's latent with it), same math; a batched matrix
        # product may round differently in the last bit.
        assert np.abs(batched[k].astype(int) - alone).max() <= 2, k
    assert not np.array_equal(batched[0], batched[1])


def test_save_pretrained_then_load_through_the_registry_generates_identically(
    family: Family, engine: DiffusersEngine[Any], tmp_path: Path
) -> None:
    """The path the real I2V checkpoints take: the family's create_engine(image_to_video=True) on a folder."""
    folder = tmp_path / family.spec.id
    family.build().save_pretrained(folder)
    assert type(family.load(folder, dtype=torch.float32, device="cpu")) is type(engine.pipe)
    reg = Registry()
    model_id = f"{family.spec.id}-from-folder"
    reg.register(
        replace(family.spec, id=model_id),
        family.factory,
        options={"source": str(folder), "dtype": "float32", "image_to_video": True, **family.factory_options},
    )
    loaded = reg.create_engine(model_id, device="cpu")
    assert isinstance(loaded, family.engine_class)
    p = params(family, steps=1)
    assert np.array_equal(generate(loaded, p), generate(engine, p))


# -- what only one family does --------------------------------------------------------------------------------


def test_cogvideox_5b_i2v_layout_makes_its_one_learned_shape() -> None:
    """CogVideoX-5b-I2V's transformer (no time patching, a position table learned at one size and length) runs
    exactly as its pipeline at that shape, and the engine refuses the sizes its transformer would fail at and the
    lengths diffusers would give another table."""
    engine = CogVideoXEngine(
        TINY_RANDOM_COGVIDEOX_I2V,
        lambda: build_tiny_cogvideox_i2v_pipeline(layout="5b"),
        "cpu",
        max_sequence_length=COG_TEXT,
    )
    family = FAMILIES["cogvideox"]
    p = params(family, steps=1)
    frames = generate(engine, p)
    assert (
        isinstance(engine.pipe, CogVideoXImageToVideoPipeline) and engine.pipe.transformer.config.patch_size_t is None
    )
    np.testing.assert_array_equal(frames, diffusers_reference(family, engine.pipe, p))
    for request, param in [
        (StageRequest(params(family, size="96x64"), input_image=IMAGE), "size"),
        (StageRequest(params(family, seconds=2.0), input_image=IMAGE), "seconds"),
    ]:
        with pytest.raises(InvalidParams) as err:
            engine.run(request, RecordingSink())
        assert err.value.param == param


# -- the catalog ----------------------------------------------------------------------------------------------


def test_catalog_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = {spec.id: (spec, factory, options) for spec, factory, options in OPEN_MODELS}
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for spec, factory, repo, frames, fps in [
        (COGVIDEOX_5B_I2V, COGVIDEOX_FACTORY, "THUDM/CogVideoX-5b-I2V", (49, 49), 8),
        (COGVIDEOX_1_5_5B_I2V, COGVIDEOX_FACTORY, "THUDM/CogVideoX1.5-5B-I2V", (81, 81), 16),
        (
            HUNYUAN15_I2V_480P,
            HUNYUAN15_FACTORY,
            "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v",
            (121, 121),
            24,
        ),
        (
            HUNYUAN15_I2V_720P,
            HUNYUAN15_FACTORY,
            "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-720p_i2v",
            (121, 121),
            24,
        ),
    ]:
        assert entries[spec.id] == (spec, factory, {"source": repo, "image_to_video": True})
        assert spec.requires_image and spec.inputs == ("text", "image") and spec.needs_gpu
        assert (spec.num_frames(spec.default_seconds), spec.num_frames(spec.max_seconds)) == frames
        assert spec.fps == fps and (spec.default_steps, spec.default_guidance) == (50, 6.0)
        # The factory is importable and fails before loading anything when the weights are not here.
        with pytest.raises(WeightsNotFound, match=f"hf download {repo}"):
            registry.create_engine(spec.id, device="cpu")
    # CogVideoX-5b-I2V's learned position table: one size, one length (shorter requests get the 49 frames).
    assert COGVIDEOX_5B_I2V.sizes == (COGVIDEOX_5B_I2V.default_size,) and COGVIDEOX_5B_I2V.num_frames(1.0) == 49
    assert {str(s) for s in COGVIDEOX_1_5_5B_I2V.sizes} == {"1360x768", "768x1360"}
    # HunyuanVideo 1.5 I2V: every size is the bucket its pipeline makes for an image of that shape.
    buckets = HunyuanVideo15ImageProcessor(vae_scale_factor=16)
    for spec, target in [(HUNYUAN15_I2V_480P, 640), (HUNYUAN15_I2V_720P, 960)]:
        for s in spec.sizes:
            assert buckets.calculate_default_height_width(s.height, s.width, target) == (s.height, s.width), s
    assert str(HUNYUAN15_I2V_480P.default_size) == "848x480" and str(HUNYUAN15_I2V_720P.default_size) == "1280x720"
