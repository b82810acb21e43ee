"""The Wan engine on the real diffusers WanPipeline at the tiny random-weight config, on the CPU.

Run with `-s` to see timings. The whole file takes ~30 s on a 2-core machine; `-m "not slow"` skips the
832x480 timing run (~15 s) and takes ~15 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import WanPipeline

from reelgen.domain.errors import InvalidParams, JobCancelled
from reelgen.domain.models import Size
from reelgen.domain.params import GenerationParams, ParamLimits, validate_params
from reelgen.engines import registry
from reelgen.engines.base import StageRequest, VideoOutput
from reelgen.engines.tiny_wan import MAX_SEQUENCE_LENGTH, build_tiny_wan_pipeline
from reelgen.engines.wan import WanEngine, load_wan_pipeline
from tests.unit.engine_support import RecordingSink

SPEC = registry.get_spec("tiny-random-wan")
PROMPT = "a red fox running through the snow"


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread() -> Iterator[None]:
    """These tensors are tiny: a second OpenMP thread barely helps on an idle machine, and on a busy shared
    CI box (other test processes on the same 2 cores) it made the VAE decode 16x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def engine() -> WanEngine:
    built = registry.create_engine("tiny-random-wan", device="cpu")
    assert isinstance(built, WanEngine)
    built.load()
    return built


def params(**kw: object) -> GenerationParams:
    kw.setdefault("prompt", PROMPT)
    kw.setdefault("seed", 42)
    return validate_params(SPEC, ParamLimits(), **kw)  # type: ignore[arg-type]


def small(**kw: object) -> GenerationParams:
    """64x64, 9 frames, 2 steps: the cheapest clip that still spans three latent frames."""
    kw.setdefault("size", "64x64")
    kw.setdefault("seconds", 0.5)
    kw.setdefault("steps", 2)
    return params(**kw)


def frames_of(output: VideoOutput) -> np.ndarray:
    chunks = list(output.chunks)
    assert all(c.dtype == np.uint8 and c.ndim == 4 and c.shape[-1] == 3 for c in chunks)
    return np.concatenate(chunks)


def generate(engine: WanEngine, p: GenerationParams) -> np.ndarray:
    return frames_of(engine.run(StageRequest(p), RecordingSink()))


def test_default_job_end_to_end(engine: WanEngine) -> None:
    p = params()
    assert (p.size, p.num_frames, p.steps) == (Size(128, 128), 17, 4)
    started = time.perf_counter()
    output = engine.run(StageRequest(p), RecordingSink())
    chunks = list(output.chunks)
    elapsed = time.perf_counter() - started
    print(f"\ntiny-random-wan default job (128x128, 17 frames, 4 steps, cfg 5): {elapsed:.2f}s {output.stats}")
    assert [len(c) for c in chunks] == [16, 1]
    assert (output.width, output.height, output.fps, output.num_frames) == (128, 128, 16, 17)
    assert np.concatenate(chunks).shape == (17, 128, 128, 3)
    for key in ("load_seconds", "mean_step_seconds", "first_step_seconds", "denoise_seconds", "decode_seconds"):
        assert output.stats[key] >= 0, key


def test_non_square_sizes(engine: WanEngine) -> None:
    for size, shape in [("256x144", (5, 144, 256, 3)), ("144x256", (5, 256, 144, 3))]:
        frames = generate(engine, small(size=size, seconds=0.3, steps=1))
        assert frames.shape == shape


def test_every_advertised_size_runs(engine: WanEngine) -> None:
    """One frame, one step per size: enough to catch patching, RoPE and VAE limits at each shape."""
    for size in SPEC.sizes:
        p = replace(small(size=str(size), steps=1), num_frames=1)
        assert generate(engine, p).shape == (1, size.height, size.width, 3), size


def test_output_matches_diffusers_own_decode(engine: WanEngine) -> None:
    """Our latent denormalisation and frame-by-frame VAE decode give exactly what WanPipeline returns."""
    p = small(negative_prompt="blurry")
    ours = generate(engine, p)
    pipe = engine._pipe
    assert pipe is not None
    reference = pipe(
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
    assert reference.shape == ours.shape == (9, 64, 64, 3)
    np.testing.assert_array_equal(ours, np.round(reference * 255).astype(np.uint8))


def test_same_seed_same_video_different_seed_different_video(engine: WanEngine) -> None:
    first = generate(engine, small(seed=1))
    assert np.array_equal(first, generate(engine, small(seed=1)))
    assert not np.array_equal(first, generate(engine, small(seed=2)))
    assert not np.array_equal(first, generate(engine, small(seed=1, prompt="a blue whale")))
    # Variation k of a request is seed + k.
    varied = frames_of(engine.run(StageRequest(small(seed=1), variation=1), RecordingSink()))
    assert np.array_equal(varied, generate(engine, small(seed=2)))


def test_variations_in_one_batch_are_the_clips_separate_runs_make(engine: WanEngine) -> None:
    p = small(seed=3, steps=3)
    request = StageRequest(p, count=3)
    assert engine.max_batch(request) == 3  # on a CPU, memory is not what limits a batch
    sink = RecordingSink()
    outputs = engine.run_batch(request, sink)
    assert sink.steps == [(1, 3), (2, 3), (3, 3)]  # one denoising pass for the three
    batched = [frames_of(o) for o in outputs]
    separate = [frames_of(engine.run(StageRequest(p, variation=k), RecordingSink())) for k in range(3)]
    for k in range(3):
        assert batched[k].shape == separate[k].shape == (9, 64, 64, 3)
        # Same noise (seed + k), same math; a batched matrix product may round differently in the last bit.
        assert np.abs(batched[k].astype(int) - separate[k]).max() <= 2, k
    assert not np.array_equal(batched[0], batched[1])
    # A batch that starts at variation 1 holds variations 1 and 2.
    later = [frames_of(o) for o in engine.run_batch(StageRequest(p, variation=1, count=2), RecordingSink())]
    assert np.abs(later[0].astype(int) - separate[1]).max() <= 2
    with pytest.raises(ValueError, match="run_batch"):
        engine.run(request, RecordingSink())


def test_the_clips_of_a_batch_decode_one_after_another(engine: WanEngine) -> None:
    p = small(seed=4, seconds=1.5)
    first, second = engine.run_batch(StageRequest(p, count=2), RecordingSink())
    assert len(next(first.chunks)) < p.num_frames  # the first clip is half decoded
    # The second clip takes over the VAE's causal cache: it decodes right, and the first refuses to go on
    # rather than continue from the other clip's state.
    alone = frames_of(engine.run(StageRequest(p, variation=1), RecordingSink()))
    first, second = engine.run_batch(StageRequest(p, count=2), RecordingSink())
    next(first.chunks)
    assert np.abs(frames_of(second).astype(int) - alone).max() <= 2
    with pytest.raises(RuntimeError, match="started decoding before this one finished"):
        list(first.chunks)


def test_a_batch_is_as_large_as_gpu_memory_allows() -> None:
    from reelgen.engines.memory import HEADROOM, ActivationProfile, Footprint, MemoryPlan, MemoryPolicy, largest_batch

    gib = 1 << 30
    weights = Footprint(transformers=(4 * gib,), text_encoder=2 * gib, vae=gib // 4)
    profile = ActivationProfile(spatial=8, temporal=4, patch=2, hidden=1536)
    size, frames = Size(832, 480), 81
    plan = MemoryPlan("none", False, "", 0)
    per_clip = profile.transformer_bytes(size, frames)  # the transformer's activations for one variation
    decode = profile.decode_bytes(size, frames, tiled=False)  # one clip at a time, whatever the batch

    def batch(free: int) -> int:
        return largest_batch(weights, profile, size, frames, plan, free_bytes=free, policy=MemoryPolicy(), limit=4)

    def free_for(room: int) -> int:
        return int((weights.total + max(room * per_clip, decode)) / (1 - HEADROOM)) + 1

    assert 2 * per_clip > decode
    assert batch(free_for(2) - (1 << 20)) == 1
    for room in (2, 3, 4):
        assert batch(free_for(room)) == room
    assert batch(100 * weights.total) == 4  # never more than asked for
    assert largest_batch(weights, profile, size, frames, plan, free_bytes=None, policy=MemoryPolicy(), limit=3) == 3


def test_progress_reports_every_step_with_a_cheap_preview(engine: WanEngine) -> None:
    sink = RecordingSink()
    frames_of(engine.run(StageRequest(small(size="256x144", steps=3)), sink))
    assert sink.steps == [(1, 3), (2, 3), (3, 3)]
    preview = sink.previews[-1]
    assert preview is not None
    image = preview()
    # Latent resolution (32x18) upsampled 4x; never the full decode.
    assert image.dtype == np.uint8 and image.shape == (72, 128, 3)
    assert image.std() > 0


def test_cancel_stops_at_the_step_and_the_engine_recovers(engine: WanEngine) -> None:
    sink = RecordingSink(cancel_at=2)
    with pytest.raises(JobCancelled) as err:
        engine.run(StageRequest(small(steps=4)), sink)
    assert [s for s, _ in sink.steps] == [1, 2]
    # The exception's traceback no longer pins the pipeline's intermediate tensors.
    tb = err.value.__traceback__
    pipeline_frames = []
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "__call__" and "pipeline_wan" in tb.tb_frame.f_code.co_filename:
            pipeline_frames.append(tb.tb_frame)
        tb = tb.tb_next
    assert pipeline_frames and all("latents" not in f.f_locals for f in pipeline_frames)
    # A cancelled run leaves no state behind: the next job is exactly what a fresh run gives.
    assert np.array_equal(generate(engine, small(steps=4)), generate(engine, small(steps=4)))


def test_engine_stays_resident_between_jobs() -> None:
    builds = 0

    def loader() -> WanPipeline:
        nonlocal builds
        builds += 1
        return build_tiny_wan_pipeline()

    engine = WanEngine(SPEC, loader, "cpu", torch.float32, max_sequence_length=MAX_SEQUENCE_LENGTH)
    assert builds == 0  # creating an engine loads nothing
    engine.load()
    engine.load()
    generate(engine, small(steps=1))
    generate(engine, small(steps=1))
    assert builds == 1
    engine.unload()
    generate(engine, small(steps=1))  # run loads again after an unload
    assert builds == 2


def test_an_unconsumed_output_cannot_decode_after_the_next_run(engine: WanEngine) -> None:
    stale = engine.run(StageRequest(small(seed=5)), RecordingSink())
    fresh = generate(engine, small(seed=6))
    assert fresh.shape == (9, 64, 64, 3)
    with pytest.raises(RuntimeError, match="before this video was decoded"):
        next(stale.chunks)


def test_shapes_the_pipeline_would_silently_round_are_refused(engine: WanEngine) -> None:
    with pytest.raises(InvalidParams) as err:
        engine.run(StageRequest(replace(small(), size=Size(72, 64))), RecordingSink())
    assert err.value.param == "size"
    with pytest.raises(InvalidParams) as err:
        engine.run(StageRequest(replace(small(), num_frames=8)), RecordingSink())
    assert err.value.param == "seconds"
    with pytest.raises(InvalidParams) as err:
        engine.run(StageRequest(small(), stage="upscale"), RecordingSink())
    assert err.value.param == "stage"


def test_save_pretrained_then_from_pretrained_generates_identically(engine: WanEngine, tmp_path: Path) -> None:
    """The folder/repo loading path real checkpoints use, here without any network."""
    build_tiny_wan_pipeline().save_pretrained(tmp_path / "tiny-wan")
    pipe = load_wan_pipeline(tmp_path / "tiny-wan", dtype=torch.float32, device="cpu")
    assert type(pipe) is WanPipeline and pipe.vae.dtype == torch.float32

    reg = registry.Registry()
    reg.register(
        replace(SPEC, id="tiny-wan-from-folder"),
        "reelgen.engines.wan:create_engine",
        options={"source": str(tmp_path / "tiny-wan"), "max_sequence_length": MAX_SEQUENCE_LENGTH},
    )
    loaded = reg.create_engine("tiny-wan-from-folder", device="cpu")
    p = small(negative_prompt="blurry")
    assert np.array_equal(generate(loaded, p), generate(engine, p))


@pytest.mark.slow
def test_timing_at_832x480(engine: WanEngine) -> None:
    p = params(size="832x480")
    started = time.perf_counter()
    output = engine.run(StageRequest(p), RecordingSink())
    frames = frames_of(output)
    elapsed = time.perf_counter() - started
    print(f"\ntiny-random-wan 832x480, {p.num_frames} frames, {p.steps} steps: {elapsed:.2f}s {output.stats}")
    assert frames.shape == (17, 480, 832, 3)
