"""Wan 2.2 TI2V 5B-style checkpoints through WanEngine: the high-compression VAE (48 channels, 16x), and one
checkpoint serving text-to-video (WanPipeline) and image-to-video (WanImageToVideoPipeline on the same
components). Real diffusers classes at a tiny random config, CPU, offline; a few seconds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.pipelines.wan.pipeline_wan_i2v import WanImageToVideoPipeline

from reelgen.domain.errors import JobCancelled
from reelgen.domain.params import GenerationParams, ParamLimits, validate_params
from reelgen.engines.base import StageRequest
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.engines.registry import Registry
from reelgen.engines.tiny_wan22 import MAX_SEQUENCE_LENGTH, build_tiny_wan22_pipeline, create_engine
from reelgen.engines.wan import WanEngine
from tests.unit.engine_support import one_cpu_thread  # noqa: F401 - autouse fixture

SPEC = replace(TINY_RANDOM_WAN, id="tiny-random-wan22", inputs=("text", "image"))
IMAGE = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def engine() -> WanEngine:
    built = create_engine(SPEC, "cpu")
    built.load()
    return built


class RecordingSink:
    def __init__(self, cancel_at: int | None = None) -> None:
        self.steps: list[int] = []
        self.previews: list[Callable[[], np.ndarray] | None] = []
        self.cancel_at = cancel_at

    def step(self, step: int, total: int, preview: Callable[[], np.ndarray] | None = None) -> None:
        self.steps.append(step)
        self.previews.append(preview)
        if step == self.cancel_at:
            raise JobCancelled("cancelled by request")


def params(**kw: object) -> GenerationParams:
    """64x64 (a 4x4 latent at 16x), 9 frames, 2 steps."""
    kw.setdefault("prompt", "a red fox running through the snow")
    kw.setdefault("seed", 42)
    kw.setdefault("size", "64x64")
    kw.setdefault("seconds", 0.5)
    kw.setdefault("steps", 2)
    return validate_params(SPEC, ParamLimits(), **kw)  # type: ignore[arg-type]


def generate(engine: WanEngine, p: GenerationParams, image: np.ndarray | None = None) -> np.ndarray:
    return np.concatenate(list(engine.run(StageRequest(p, input_image=image), RecordingSink()).chunks))


def reference(pipe: object, p: GenerationParams, **extra: object) -> np.ndarray:
    frames = pipe(  # type: ignore[operator]
        prompt=p.prompt,
        negative_prompt=p.negative_prompt or None,
        height=p.size.height,
        width=p.size.width,
        num_frames=p.num_frames,
        num_inference_steps=p.steps,
        guidance_scale=p.guidance_scale,
        generator=torch.Generator().manual_seed(p.seed),
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        output_type="np",
        **extra,
    ).frames[0]
    return np.round(frames * 255).astype(np.uint8)


def test_text_to_video_with_the_wan22_vae_matches_diffusers(engine: WanEngine) -> None:
    p = params(negative_prompt="blurry")
    ours = generate(engine, p)
    assert ours.shape == (9, 64, 64, 3)
    np.testing.assert_array_equal(ours, reference(engine._pipe, p))


def test_an_image_switches_the_same_weights_to_image_to_video(engine: WanEngine) -> None:
    p = params(negative_prompt="blurry")
    ours = generate(engine, p, IMAGE)
    assert ours.shape == (9, 64, 64, 3)
    assert not np.array_equal(ours, generate(engine, p))
    image_pipe = engine._image_pipe
    assert isinstance(image_pipe, WanImageToVideoPipeline) and image_pipe.config.expand_timesteps
    assert image_pipe.transformer is engine._pipe.transformer  # type: ignore[union-attr]
    np.testing.assert_array_equal(ours, reference(image_pipe, p, image=PIL.Image.fromarray(IMAGE)))
    # Deterministic by seed in both modes.
    assert np.array_equal(ours, generate(engine, p, IMAGE))
    assert not np.array_equal(ours, generate(engine, replace(p, seed=7), IMAGE))


def test_progress_previews_and_cancel_in_image_mode(engine: WanEngine) -> None:
    sink = RecordingSink()
    list(engine.run(StageRequest(params(steps=3), input_image=IMAGE), sink).chunks)
    assert sink.steps == [1, 2, 3]
    preview = sink.previews[-1]
    assert preview is not None and preview().shape == (16, 16, 3)
    cancelling = RecordingSink(cancel_at=2)
    with pytest.raises(JobCancelled):
        engine.run(StageRequest(params(steps=3), input_image=IMAGE), cancelling)
    assert cancelling.steps == [1, 2]


def test_save_pretrained_then_load_through_the_registry(engine: WanEngine, tmp_path: Path) -> None:
    """How Wan-AI/Wan2.2-TI2V-5B-Diffusers loads: a WanPipeline folder with expand_timesteps in its index."""
    folder = tmp_path / "tiny-wan22"
    build_tiny_wan22_pipeline().save_pretrained(folder)
    reg = Registry()
    reg.register(
        replace(SPEC, id="tiny-wan22-from-folder"),
        "reelgen.engines.wan:create_engine",
        options={"source": str(folder), "max_sequence_length": MAX_SEQUENCE_LENGTH},
    )
    loaded = reg.create_engine("tiny-wan22-from-folder", device="cpu")
    p = params()
    assert np.array_equal(generate(loaded, p), generate(engine, p))
    assert np.array_equal(generate(loaded, p, IMAGE), generate(engine, p, IMAGE))
