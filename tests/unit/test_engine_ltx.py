"""The LTX-Video engine on the real diffusers LTXPipeline / LTXImageToVideoPipeline at a tiny random config, on
the CPU, offline. The whole file takes a few seconds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.pipelines.ltx.modeling_latent_upsampler import LTXLatentUpsamplerModel
from diffusers.pipelines.ltx.pipeline_ltx import LTXPipeline
from diffusers.pipelines.ltx.pipeline_ltx_latent_upsample import LTXLatentUpsamplePipeline

from reelgen.domain.errors import InvalidParams, JobCancelled
from reelgen.domain.models import Size
from reelgen.domain.params import GenerationParams, ParamLimits, validate_params
from reelgen.engines.base import StageRequest, VideoOutput
from reelgen.engines.ltx import LTXEngine, load_ltx_pipeline
from reelgen.engines.registry import Registry
from reelgen.engines.tiny_ltx import MAX_SEQUENCE_LENGTH, TINY_RANDOM_LTX, build_tiny_ltx_pipeline, create_engine
from reelgen.media.probe import probe
from reelgen.worker.output import encode_clip
from tests.unit.engine_support import RecordingSink, one_cpu_thread  # noqa: F401 - autouse fixture

SPEC = TINY_RANDOM_LTX
PROMPT = "a red fox running through the snow"
IMAGE = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def engine() -> LTXEngine:
    built = create_engine(SPEC, "cpu")
    built.load()
    return built


def params(**kw: object) -> GenerationParams:
    kw.setdefault("prompt", PROMPT)
    kw.setdefault("seed", 42)
    return validate_params(SPEC, ParamLimits(), **kw)  # type: ignore[arg-type]


def frames_of(output: VideoOutput) -> np.ndarray:
    chunks = list(output.chunks)
    assert all(c.dtype == np.uint8 and c.ndim == 4 and c.shape[-1] == 3 for c in chunks)
    return np.concatenate(chunks)


def generate(engine: LTXEngine, p: GenerationParams, image: np.ndarray | None = None) -> np.ndarray:
    return frames_of(engine.run(StageRequest(p, input_image=image), RecordingSink()))


def diffusers_reference(pipe: Any, p: GenerationParams, **extra: object) -> np.ndarray:
    """What the pipeline itself returns for the same request, as uint8."""
    frames = pipe(
        prompt=p.prompt,
        negative_prompt=p.negative_prompt or None,
        height=p.size.height,
        width=p.size.width,
        num_frames=p.num_frames,
        frame_rate=p.fps,
        num_inference_steps=p.steps,
        guidance_scale=p.guidance_scale,
        generator=torch.Generator().manual_seed(p.seed),
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        decode_timestep=0.05,
        decode_noise_scale=0.025,
        output_type="np",
        **extra,
    ).frames[0]
    return np.round(frames * 255).astype(np.uint8)


def test_a_job_makes_the_requested_frames_in_chunks_with_stats(engine: LTXEngine) -> None:
    p = params(seconds=0.7)  # 16.8 frames at 24 fps -> 17 (8k+1)
    assert (p.size, p.num_frames, p.steps, p.fps) == (Size(64, 64), 17, 2, 24)
    output = engine.run(StageRequest(p), RecordingSink())
    chunks = list(output.chunks)
    assert [len(c) for c in chunks] == [16, 1]
    assert (output.width, output.height, output.fps, output.num_frames) == (64, 64, 24, 17)
    assert np.concatenate(chunks).shape == (17, 64, 64, 3)
    for key in ("load_seconds", "mean_step_seconds", "first_step_seconds", "denoise_seconds", "decode_seconds"):
        assert output.stats[key] >= 0, key


def test_non_square_sizes(engine: LTXEngine) -> None:
    assert generate(engine, params(size="96x64")).shape == (9, 64, 96, 3)
    assert generate(engine, params(size="64x96")).shape == (9, 96, 64, 3)


def test_output_matches_diffusers_own_text_to_video(engine: LTXEngine) -> None:
    """Our unpack + denormalise + timestep-conditioned decode (noise from the same generator) is exactly what
    LTXPipeline returns for output_type="np"."""
    p = params(negative_prompt="blurry")
    assert engine._pipe is not None
    np.testing.assert_array_equal(generate(engine, p), diffusers_reference(engine._pipe, p))


def test_image_to_video_runs_the_image_pipeline_exactly(engine: LTXEngine) -> None:
    p = params()
    ours = generate(engine, p, IMAGE)
    assert ours.shape == (9, 64, 64, 3)
    assert not np.array_equal(ours, generate(engine, p))  # the image changes the video
    assert engine._image_pipe is not None
    np.testing.assert_array_equal(ours, diffusers_reference(engine._image_pipe, p, image=PIL.Image.fromarray(IMAGE)))
    # Both pipelines share one set of weights.
    assert engine._image_pipe.transformer is engine._pipe.transformer  # type: ignore[union-attr]


def test_same_seed_same_video_different_seed_different_video(engine: LTXEngine) -> None:
    first = generate(engine, params(seed=1))
    assert np.array_equal(first, generate(engine, params(seed=1)))
    assert not np.array_equal(first, generate(engine, params(seed=2)))
    assert not np.array_equal(first, generate(engine, params(seed=1, prompt="a blue whale")))
    varied = frames_of(engine.run(StageRequest(params(seed=1), variation=1), RecordingSink()))
    assert np.array_equal(varied, generate(engine, params(seed=2)))


def test_text_variations_in_one_batch_are_the_clips_separate_runs_make(engine: LTXEngine) -> None:
    """Each clip of a batch decodes with its own generator's noise (the timestep-conditioned VAE), as a run of its
    own would; image-to-video variations go one pass each."""
    p = params(seed=11)
    assert engine.max_batch(StageRequest(p, count=3)) == 3
    assert engine.max_batch(StageRequest(p, input_image=IMAGE, count=3)) == 1
    batched = [frames_of(o) for o in engine.run_batch(StageRequest(p, count=3), RecordingSink())]
    for k in range(3):
        alone = frames_of(engine.run(StageRequest(p, variation=k), RecordingSink()))
        assert np.abs(batched[k].astype(int) - alone).max() <= 2, k
    assert not np.array_equal(batched[0], batched[1])
    with pytest.raises(ValueError, match="one pass each"):
        engine.run_batch(StageRequest(p, input_image=IMAGE, count=2), RecordingSink())


def test_progress_reports_every_step_with_a_cheap_preview(engine: LTXEngine) -> None:
    sink = RecordingSink()
    frames_of(engine.run(StageRequest(params(size="96x64", steps=3)), sink))
    assert sink.steps == [(1, 3), (2, 3), (3, 3)]
    preview = sink.previews[-1]
    assert preview is not None
    image = preview()
    # Latent resolution (12x8) upsampled 8x; never the full decode.
    assert image.dtype == np.uint8 and image.shape == (64, 96, 3)
    assert image.std() > 0


def test_the_preview_map_tracks_the_decoded_colours(engine: LTXEngine) -> None:
    """The fitted latent->RGB map is a cheap stand-in for the VAE: on a finished clip, its picture of the middle
    frame correlates with the real decode of that frame (downsampled to latent size)."""
    sink = RecordingSink()
    frames = frames_of(engine.run(StageRequest(params(steps=3)), sink))
    preview = sink.previews[-1]
    assert preview is not None
    guess = preview().astype(float)[::8, ::8].ravel()
    truth = frames[len(frames) // 2].astype(float).reshape(8, 8, 8, 8, 3).mean(axis=(1, 3)).ravel()
    assert np.corrcoef(guess, truth)[0, 1] > 0.3


def test_cancel_stops_at_the_step_and_the_engine_recovers(engine: LTXEngine) -> None:
    sink = RecordingSink(cancel_at=2)
    with pytest.raises(JobCancelled):
        engine.run(StageRequest(params(steps=4)), sink)
    assert [s for s, _ in sink.steps] == [1, 2]
    assert np.array_equal(generate(engine, params(steps=4)), generate(engine, params(steps=4)))


def test_an_unconsumed_output_cannot_decode_after_the_next_run(engine: LTXEngine) -> None:
    stale = engine.run(StageRequest(params(seed=5)), RecordingSink())
    generate(engine, params(seed=6))
    with pytest.raises(RuntimeError, match="before this video was decoded"):
        next(stale.chunks)


def test_requests_the_pipeline_would_reject_or_round_are_refused(engine: LTXEngine) -> None:
    for bad, param in [
        (replace(params(), size=Size(80, 64)), "size"),
        (replace(params(), num_frames=13), "seconds"),  # 4k+1 but not 8k+1
    ]:
        with pytest.raises(InvalidParams) as err:
            engine.run(StageRequest(bad), RecordingSink())
        assert err.value.param == param
    with pytest.raises(InvalidParams) as err:
        engine.run(StageRequest(params(), stage="upscale"), RecordingSink())
    assert err.value.param == "stage"
    with pytest.raises(InvalidParams) as err:
        engine.run(StageRequest(params(), input_image=IMAGE[..., 0]), RecordingSink())
    assert err.value.param == "input_reference"


def test_engine_stays_resident_and_reloads_after_unload() -> None:
    builds = 0

    def loader() -> LTXPipeline:
        nonlocal builds
        builds += 1
        return build_tiny_ltx_pipeline()

    engine = LTXEngine(SPEC, loader, "cpu", max_sequence_length=MAX_SEQUENCE_LENGTH)
    assert builds == 0
    generate(engine, params(steps=1))
    generate(engine, params(steps=1))
    assert builds == 1
    engine.unload()
    generate(engine, params(steps=1))
    assert builds == 2


def test_save_pretrained_then_load_through_the_registry_generates_identically(
    engine: LTXEngine, tmp_path: Path
) -> None:
    """The path a real checkpoint takes (folder in diffusers layout -> ltx.create_engine), without network."""
    folder = tmp_path / "tiny-ltx"
    build_tiny_ltx_pipeline().save_pretrained(folder)
    assert type(load_ltx_pipeline(folder, dtype=torch.float32, device="cpu")) is LTXPipeline

    reg = Registry()
    reg.register(
        replace(SPEC, id="tiny-ltx-from-folder"),
        "reelgen.engines.ltx:create_engine",
        options={
            "source": str(folder),
            "dtype": "float32",
            "max_sequence_length": MAX_SEQUENCE_LENGTH,
            "decode_timestep": 0.05,
            "decode_noise_scale": 0.025,
        },
    )
    loaded = reg.create_engine("tiny-ltx-from-folder", device="cpu")
    assert isinstance(loaded, LTXEngine)
    p = params(negative_prompt="blurry")
    assert np.array_equal(generate(loaded, p), generate(engine, p))
    assert np.array_equal(generate(loaded, p, IMAGE), generate(engine, p, IMAGE))


def test_the_worker_encodes_an_ltx_clip_to_mp4(engine: LTXEngine, tmp_path: Path) -> None:
    """The engine's output contract end to end: lazy chunks -> the worker's encoder -> a playable 24 fps mp4."""
    p = params(seconds=0.7)
    clip = encode_clip(engine.run(StageRequest(p), RecordingSink()), tmp_path, "video", check=lambda: None)
    info = probe(clip.video)
    assert (info.num_frames, info.width, info.height, info.fps) == (17, 64, 64, 24)
    assert clip.stats["decode_seconds"] >= 0 and clip.thumbnail is not None and clip.thumbnail.is_file()


def test_image_to_video_through_the_condition_pipeline_exactly() -> None:
    """LTX 0.9.5+ checkpoints run image-to-video through LTXConditionPipeline (the image a condition at frame 0):
    the engine's output is what that pipeline returns for output_type="np"."""
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXConditionPipeline, LTXVideoCondition

    engine = LTXEngine(
        SPEC,
        build_tiny_ltx_pipeline,
        "cpu",
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        decode_timestep=0.05,
        decode_noise_scale=0.025,
        condition_pipeline=True,
    )
    p = params(negative_prompt="blurry")
    ours = generate(engine, p, IMAGE)
    assert isinstance(engine._image_pipe, LTXConditionPipeline) and ours.shape == (9, 64, 64, 3)
    condition = LTXVideoCondition(image=PIL.Image.fromarray(IMAGE), frame_index=0)
    np.testing.assert_array_equal(ours, diffusers_reference(engine._image_pipe, p, conditions=[condition]))
    assert not np.array_equal(ours, generate(engine, p))  # text-to-video is still LTXPipeline


def tiny_upsampler(vae: object) -> LTXLatentUpsamplePipeline:
    """A latent upsampler at a tiny random config (2x in space) around the model's VAE."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LTXLatentUpsamplerModel(
            in_channels=8, mid_channels=32, num_blocks_per_stage=1, dims=3, spatial_upsample=True
        ).eval()
    return LTXLatentUpsamplePipeline(vae=vae, latent_upsampler=model)  # type: ignore[arg-type]


def test_the_upscale_stage_doubles_a_clip_exactly_as_the_two_pipelines_do() -> None:
    """LTX 0.9.7's second pass as a stage: the clip is encoded, its latents upsampled 2x, re-noised 40% and
    denoised with the prompt at the new size (LTXConditionPipeline), then decoded; the same as running diffusers'
    LTXLatentUpsamplePipeline and LTXConditionPipeline by hand with one generator."""
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXConditionPipeline

    engine = LTXEngine(
        SPEC,
        build_tiny_ltx_pipeline,
        "cpu",
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        decode_timestep=0.05,
        decode_noise_scale=0.025,
        upsampler_loader=tiny_upsampler,
    )
    low = generate(engine, params(seed=3))
    p = params(size="128x128", seed=3, steps=5)
    sink = RecordingSink()
    high = frames_of(engine.run(StageRequest(p, stage="upscale", init_frames=low), sink))
    assert high.shape == (9, 128, 128, 3)
    assert sink.steps and sink.steps[-1][0] == sink.steps[-1][1] == len(sink.steps) == 2  # 40% of 5 steps

    pipe = build_tiny_ltx_pipeline()
    generator = torch.Generator().manual_seed(3)
    video: list[Any] = [PIL.Image.fromarray(f) for f in low]
    upsampled = tiny_upsampler(pipe.vae)(
        video=video, height=64, width=64, generator=generator, output_type="latent", return_dict=False
    )[0]
    frames = LTXConditionPipeline(**pipe.components)(
        latents=upsampled,
        denoise_strength=0.4,
        prompt=p.prompt,
        height=128,
        width=128,
        num_frames=9,
        frame_rate=p.fps,
        num_inference_steps=5,
        guidance_scale=p.guidance_scale,
        generator=generator,
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        decode_timestep=0.05,
        decode_noise_scale=0.025,
        output_type="np",
    ).frames[0]
    np.testing.assert_array_equal(high, np.round(frames * 255).astype(np.uint8))

    for request, param in [
        (StageRequest(params(size="96x64"), stage="upscale", init_frames=low), "size"),
        (StageRequest(p, stage="upscale"), "input_reference"),
        (StageRequest(p, stage="upscale", init_frames=low[:5]), "seconds"),
        (StageRequest(params(size="128x128", steps=2), stage="upscale", init_frames=low), "steps"),
    ]:
        with pytest.raises(InvalidParams) as err:
            engine.run(request, RecordingSink())
        assert err.value.param == param
    plain = create_engine(SPEC, "cpu")  # no upsampler configured
    with pytest.raises(InvalidParams, match="no latent upsampler") as err:
        plain.run(StageRequest(p, stage="upscale", init_frames=low), RecordingSink())
    assert err.value.param == "stage"


def test_an_upsampler_folder_is_found_through_the_registry(tmp_path: Path) -> None:
    """The `upsampler` option (a repo id or a diffusers folder, as Lightricks/ltxv-spatial-upscaler-0.9.7 is laid
    out) is loaded around the model's VAE when the first upscale job comes."""
    model, upsampler = tmp_path / "ltx", tmp_path / "upsampler"
    pipe = build_tiny_ltx_pipeline()
    pipe.save_pretrained(model)
    tiny_upsampler(pipe.vae).save_pretrained(upsampler)
    reg = Registry()
    reg.register(
        replace(SPEC, id="tiny-ltx-upscaling"),
        "reelgen.engines.ltx:create_engine",
        options={
            "source": str(model),
            "dtype": "float32",
            "max_sequence_length": MAX_SEQUENCE_LENGTH,
            "upsampler": str(upsampler),
        },
    )
    loaded = reg.create_engine("tiny-ltx-upscaling", device="cpu")
    reference = LTXEngine(
        SPEC, build_tiny_ltx_pipeline, "cpu", max_sequence_length=MAX_SEQUENCE_LENGTH, upsampler_loader=tiny_upsampler
    )
    low = generate(reference, params(seed=4))
    request = StageRequest(params(size="128x128", seed=4, steps=3), stage="upscale", init_frames=low)
    assert np.array_equal(
        frames_of(loaded.run(request, RecordingSink())), frames_of(reference.run(request, RecordingSink()))
    )
