"""Wan image-to-video: WanEngine driving the real diffusers WanImageToVideoPipeline at a tiny random config
(CLIP image encoder included), on the CPU, offline. A few seconds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.pipelines.wan.pipeline_wan_i2v import WanImageToVideoPipeline

from reelgen.domain.errors import InvalidParams, JobCancelled
from reelgen.domain.params import GenerationParams, ParamLimits, validate_params
from reelgen.engines import registry
from reelgen.engines.base import StageRequest
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.engines.registry import Registry
from reelgen.engines.tiny_wan_i2v import MAX_SEQUENCE_LENGTH, build_tiny_wan_i2v_pipeline, create_engine
from reelgen.engines.wan import WanEngine, load_wan_i2v_pipeline
from tests.unit.engine_support import RecordingSink, one_cpu_thread  # noqa: F401 - autouse fixture

SPEC = replace(TINY_RANDOM_WAN, id="tiny-random-wan-i2v", inputs=("text", "image"))
IMAGE = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def engine() -> WanEngine:
    built = create_engine(SPEC, "cpu")
    built.load()
    return built


def params(**kw: object) -> GenerationParams:
    """64x64, 9 frames, 2 steps."""
    kw.setdefault("prompt", "a red fox running through the snow")
    kw.setdefault("seed", 42)
    kw.setdefault("size", "64x64")
    kw.setdefault("seconds", 0.5)
    kw.setdefault("steps", 2)
    return validate_params(SPEC, ParamLimits(), input_image="uploaded", **kw)  # type: ignore[arg-type]


def generate(engine: WanEngine, p: GenerationParams, image: np.ndarray = IMAGE) -> np.ndarray:
    return np.concatenate(list(engine.run(StageRequest(p, input_image=image), RecordingSink()).chunks))


def test_variations_of_an_image_in_one_batch_are_the_clips_separate_runs_make(engine: WanEngine) -> None:
    """diffusers 0.42 repeats the image embedding per prompt, not per video: the engine batches the prompt."""
    p = params(negative_prompt="blurry")
    request = StageRequest(p, input_image=IMAGE, count=2)
    assert engine.max_batch(request) == 2
    batched = [np.concatenate(list(o.chunks)) for o in engine.run_batch(request, RecordingSink())]
    for k in range(2):
        alone = np.concatenate(
            list(engine.run(StageRequest(p, input_image=IMAGE, variation=k), RecordingSink()).chunks)
        )
        assert np.abs(batched[k].astype(int) - alone).max() <= 2, k
    assert not np.array_equal(batched[0], batched[1])


def test_image_to_video_matches_diffusers_own_output(engine: WanEngine) -> None:
    p = params(negative_prompt="blurry")
    ours = generate(engine, p)
    pipe = engine._pipe
    assert isinstance(pipe, WanImageToVideoPipeline)
    reference = pipe(
        image=PIL.Image.fromarray(IMAGE),
        prompt=p.prompt,
        negative_prompt=p.negative_prompt,
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


def test_the_image_and_the_seed_decide_the_video(engine: WanEngine) -> None:
    first = generate(engine, params(seed=1))
    assert np.array_equal(first, generate(engine, params(seed=1)))
    assert not np.array_equal(first, generate(engine, params(seed=2)))
    assert not np.array_equal(first, generate(engine, params(seed=1), 255 - IMAGE))
    # Any image size: the pipeline resizes it to the requested video size.
    wide = np.ascontiguousarray(np.repeat(IMAGE, 2, axis=1))
    assert generate(engine, params(size="256x144", seconds=0.3, steps=1), wide).shape == (5, 144, 256, 3)


def test_progress_with_previews_and_cancel(engine: WanEngine) -> None:
    sink = RecordingSink()
    list(engine.run(StageRequest(params(steps=3), input_image=IMAGE), sink).chunks)
    assert sink.steps == [(1, 3), (2, 3), (3, 3)]
    preview = sink.previews[-1]
    assert preview is not None and preview().dtype == np.uint8

    cancelling = RecordingSink(cancel_at=1)
    with pytest.raises(JobCancelled):
        engine.run(StageRequest(params(steps=3), input_image=IMAGE), cancelling)
    assert [s for s, _ in cancelling.steps] == [1]
    assert np.array_equal(generate(engine, params()), generate(engine, params()))


def test_an_image_model_needs_an_image_and_a_text_model_refuses_one(engine: WanEngine) -> None:
    with pytest.raises(InvalidParams) as err:
        engine.run(StageRequest(params()), RecordingSink())
    assert err.value.param == "input_reference" and "image" in err.value.message
    with pytest.raises(InvalidParams) as err:
        engine.run(StageRequest(params(), input_image=IMAGE[..., :2]), RecordingSink())
    assert err.value.param == "input_reference"

    text_only = registry.create_engine("tiny-random-wan", device="cpu")
    text_params = replace(params(), model="tiny-random-wan")
    with pytest.raises(InvalidParams, match="text-to-video only"):
        text_only.run(StageRequest(text_params, input_image=IMAGE), RecordingSink())


def test_save_pretrained_then_load_through_the_registry_generates_identically(
    engine: WanEngine, tmp_path: Path
) -> None:
    """The path Wan-AI/Wan2.1-I2V-14B-*-Diffusers take: wan.create_engine(image_to_video=True) on a folder."""
    folder = tmp_path / "tiny-wan-i2v"
    build_tiny_wan_i2v_pipeline().save_pretrained(folder)
    pipe = load_wan_i2v_pipeline(folder, dtype=torch.float32, device="cpu")
    assert type(pipe) is WanImageToVideoPipeline and pipe.image_encoder is not None

    reg = Registry()
    reg.register(
        replace(SPEC, id="tiny-wan-i2v-from-folder"),
        "reelgen.engines.wan:create_engine",
        options={"source": str(folder), "max_sequence_length": MAX_SEQUENCE_LENGTH, "image_to_video": True},
    )
    loaded = reg.create_engine("tiny-wan-i2v-from-folder", device="cpu")
    p = params(negative_prompt="blurry")
    assert np.array_equal(generate(loaded, p), generate(engine, p))
