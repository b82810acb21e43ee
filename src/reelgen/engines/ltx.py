"""LTX-Video (Lightricks) through diffusers' LTXPipeline, and LTXImageToVideoPipeline for an input image.

Reading order: `load_ltx_pipeline` and `create_engine` (how a checkpoint is found and loaded), then
`LTXEngine.run`, which calls the real pipeline with `output_type="latent"`, reports every step to the sink
(with a cheap latent->RGB preview), and returns a VideoOutput whose chunks come from the pipeline's own
decode arithmetic (unpack, denormalise, timestep-conditioned VAE decode with the same generator), run lazily
when the worker asks for the first chunk.

Unlike Wan's causal VAE, LTX's decoder is not causal in time (and 0.9.1+ is conditioned on a decode timestep),
so a clip is decoded in one VAE call, not frame by frame; large sizes should use VAE tiling (issue 4, memory).
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

# Imported from their modules, not `from diffusers import ...`, so type checkers see the real classes.
from diffusers.pipelines.ltx.pipeline_ltx import LTXPipeline
from diffusers.pipelines.ltx.pipeline_ltx_image2video import LTXImageToVideoPipeline
from diffusers.utils.torch_utils import randn_tensor

from reelgen.domain.errors import InvalidParams
from reelgen.domain.models import ModelSpec
from reelgen.engines.alignment import align_weights
from reelgen.engines.base import STAGE_GENERATE, Engine, ProgressSink, StageRequest, VideoOutput
from reelgen.engines.lora import AdapterCache
from reelgen.engines.memory import (
    ActivationProfile,
    Footprint,
    MemoryMode,
    MemoryPlan,
    MemoryPolicy,
    apply_placement,
    device_free_bytes,
    family_profile,
    measure_footprint,
    placement_for,
    plan_job,
    set_vae_tiling,
    with_vae_tiles,
)
from reelgen.engines.presets import speed_preset
from reelgen.engines.previews import fit_rgb_projection, project_to_rgb
from reelgen.engines.wan import _DTYPE_KWARG, default_device, resolve_dtype
from reelgen.engines.weights import require_weights

FRAMES_PER_CHUNK = 16
# LTX checkpoints were trained with 128-token prompts (the pipeline's default).
MAX_SEQUENCE_LENGTH = 128
# Previews are upsampled from latent resolution (1/32 of the video for real LTX) towards this long side.


def load_ltx_pipeline(source: str | Path, *, dtype: torch.dtype, device: str) -> LTXPipeline:
    """Load an LTX-Video pipeline from a Hub repo id or a local diffusers folder (model_index.json).

    Works for every 0.9.x checkpoint in diffusers layout whatever pipeline class its model_index names
    (LTXPipeline, LTXConditionPipeline): they share the same five components. Honours HF_HUB_OFFLINE.
    """
    pipe = LTXPipeline.from_pretrained(source, **{_DTYPE_KWARG: dtype})
    return align_weights(pipe.to(device))


def create_engine(
    spec: ModelSpec,
    device: str | None = None,
    *,
    source: str,
    dtype: str | None = None,
    max_sequence_length: int = MAX_SEQUENCE_LENGTH,
    decode_timestep: float = 0.0,
    decode_noise_scale: float | None = None,
) -> LTXEngine:
    """Registry factory: `register(spec, "reelgen.engines.ltx:create_engine", options={"source": "..."})`.

    Fails here, before any job work, when the weights are missing and cannot be downloaded (HF_HUB_OFFLINE).
    """
    require_weights(source)
    device = device or default_device()
    torch_dtype = resolve_dtype(dtype, device)
    return LTXEngine(
        spec,
        # Loaded on the CPU: the engine places it on `device` as its memory plan says (whole, or offloaded).
        lambda: load_ltx_pipeline(source, dtype=torch_dtype, device="cpu"),
        device,
        max_sequence_length=max_sequence_length,
        decode_timestep=decode_timestep,
        decode_noise_scale=decode_noise_scale,
    )


class LTXEngine(Engine):
    """One LTX pipeline, built on first `load` and kept resident until `unload`.

    Text-to-video runs LTXPipeline; with `request.input_image` the same components (no second copy of the
    weights) run as LTXImageToVideoPipeline, which keeps the image as the first frame. Not re-entrant: one
    job at a time, and a VideoOutput's chunks must be consumed before the next `run`.
    """

    def __init__(
        self,
        spec: ModelSpec,
        pipeline_loader: Callable[[], LTXPipeline],
        device: str = "cpu",
        *,
        max_sequence_length: int = MAX_SEQUENCE_LENGTH,
        decode_timestep: float = 0.0,
        decode_noise_scale: float | None = None,
        frames_per_chunk: int = FRAMES_PER_CHUNK,
    ) -> None:
        self.spec = spec
        self.device = device
        self.max_sequence_length = max_sequence_length
        self.decode_timestep = decode_timestep
        # diffusers' rule: no explicit noise scale means "the decode timestep".
        self.decode_noise_scale = decode_timestep if decode_noise_scale is None else decode_noise_scale
        self.frames_per_chunk = frames_per_chunk
        self._loader = pipeline_loader
        self._load_lock = threading.Lock()
        self._pipe: LTXPipeline | None = None
        self._image_pipe: LTXImageToVideoPipeline | None = None
        self._preview_projection: torch.Tensor | None = None
        self._load_seconds = 0.0
        # Bumped by every run/unload so a VideoOutput from an earlier run knows it may no longer decode.
        self._generation = 0
        # Per-request LoRAs (engines/lora.py): loaded once each, switched on and off without reloading the model.
        self.adapters = AdapterCache()
        # A diffusers attention backend for the transformers (REELGEN_ATTENTION_BACKEND); None: diffusers' default.
        self.attention_backend: str | None = None
        # GPU memory (engines/memory.py), as in WanEngine: policy from settings, placement at load, plan per job.
        self.memory_policy = MemoryPolicy()
        self.vae_tile_options: dict[str, Any] = {}
        self.memory_plan: MemoryPlan | None = None
        self._placement: MemoryMode = "none"
        self._footprint: Footprint | None = None
        self._free_at_load: int | None = None

    # -- residency ---------------------------------------------------------------------------------------

    def load(self, placement: MemoryMode | None = None) -> None:
        with self._load_lock:
            if self._pipe is not None:
                return
            started = time.perf_counter()
            self._free_at_load = device_free_bytes(self.device)  # before this model's weights arrive
            pipe = self._loader()
            self._footprint = measure_footprint(pipe.components)
            self._placement = placement or placement_for(
                self.spec,
                self._footprint,
                _profile(pipe, self.vae_tile_options),
                self._free_at_load,
                self.memory_policy,
                streams=self.device.startswith("cuda"),
            )
            pipe.set_progress_bar_config(disable=True)
            if self._placement != "none":
                # Offload hooks leave parameters off the device: fit the preview map first, with only the VAE
                # (small next to the rest, and on the device for decoding anyway) briefly on the device.
                pipe.vae.to(self.device)
                self._preview_projection = _fit_preview_projection(pipe, self.decode_timestep)
                pipe.vae.to("cpu")
            apply_placement(pipe, self._placement, self.device)
            image_pipe = LTXImageToVideoPipeline(**pipe.components)
            image_pipe.set_progress_bar_config(disable=True)
            if self._placement == "none":
                self._preview_projection = _fit_preview_projection(pipe, self.decode_timestep)
            self._pipe, self._image_pipe = pipe, image_pipe
            self._load_seconds = time.perf_counter() - started

    def unload(self) -> None:
        with self._load_lock:
            self._generation += 1
            self._pipe = self._image_pipe = None
            self._preview_projection = None
        self._free_memory()

    def _free_memory(self, *, collect: bool = True) -> None:
        if collect:
            gc.collect()
        if self.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- one job -----------------------------------------------------------------------------------------

    def run(self, request: StageRequest, sink: ProgressSink) -> VideoOutput:
        self.load()
        pipe, image_pipe = self._pipe, self._image_pipe
        assert pipe is not None and image_pipe is not None
        self._check_request(pipe, request)
        self._plan_memory(request)  # may reload the pipeline with more offloading
        pipe, image_pipe = self._pipe, self._image_pipe
        assert pipe is not None and image_pipe is not None
        params = request.params
        self._generation += 1
        stats: dict[str, float] = {"load_seconds": self._load_seconds}
        step_seconds: list[float] = []
        latent_shape = _latent_shape(pipe, params.num_frames, params.size.height, params.size.width)
        mark = time.perf_counter()

        def on_step_end(pipeline: LTXPipeline, i: int, t: Any, tensors: dict[str, torch.Tensor]) -> dict:
            nonlocal mark
            # Time spent in the sink (database writes, previews) is not model time: keep it out of the ETA.
            step_seconds.append(time.perf_counter() - mark)
            sink.step(i + 1, pipeline.num_timesteps, self._preview(tensors["latents"], latent_shape))
            mark = time.perf_counter()
            return {}

        # Noise drawn on the CPU: the same seed gives the same video on any device. The same generator then
        # draws the decode noise, exactly as the pipeline would after its last step.
        generator = torch.Generator(device="cpu").manual_seed(request.seed)
        common: dict[str, Any] = {
            "prompt": params.prompt,
            "negative_prompt": params.negative_prompt or None,
            "height": params.size.height,
            "width": params.size.width,
            "num_frames": params.num_frames,
            # LTX scales its RoPE positions by the frame rate: tell it the rate the video will play at.
            "frame_rate": params.fps,
            "num_inference_steps": params.steps,
            "guidance_scale": params.guidance_scale,
            "generator": generator,
            "output_type": "latent",
            "return_dict": False,
            "callback_on_step_end": on_step_end,
            "callback_on_step_end_tensor_inputs": ["latents"],
            "max_sequence_length": self.max_sequence_length,
        }
        started = time.perf_counter()
        failed = True
        # The request's LoRA and speed preset, on for this call only (removed in the finally below). The image
        # pipeline shares the transformer, so adapters loaded through `pipe` serve both.
        tuning = ExitStack()
        try:
            tuning.enter_context(self.adapters.applied(pipe, request.lora))
            tuning.enter_context(
                speed_preset(
                    pipe, self.spec.family, params.preset, params.steps, attention_backend=self.attention_backend
                )
            )
            if request.input_image is not None:
                image = PIL.Image.fromarray(np.ascontiguousarray(request.input_image), mode="RGB")
                packed = image_pipe(image=image, **common)[0]
            else:
                packed = pipe(**common)[0]
            failed = False
        except BaseException as e:
            # The traceback pins every intermediate tensor of the pipeline's frames; clear them now.
            traceback.clear_frames(e.__traceback__)
            raise
        finally:
            tuning.close()
            self._free_memory(collect=failed)

        stats["denoise_seconds"] = time.perf_counter() - started
        steady = step_seconds[1:] or step_seconds  # the first step also pays for prompt encoding
        stats["mean_step_seconds"] = sum(steady) / len(steady)
        stats["first_step_seconds"] = step_seconds[0]
        return VideoOutput(
            width=params.size.width,
            height=params.size.height,
            fps=params.fps,
            num_frames=params.num_frames,
            chunks=self._chunks(packed, request, generator, stats, self._generation),
            stats=stats,
        )

    def _plan_memory(self, request: StageRequest) -> None:
        """Plan this job's memory before any work (DoesNotFit with what would fit), reload with more offloading
        when the loaded placement would not hold it, and switch VAE tiling on or off for it."""
        assert self._pipe is not None and self._footprint is not None
        params = request.params
        plan, reload = plan_job(
            self.spec,
            self._footprint,
            _profile(self._pipe, self.vae_tile_options),
            params.size,
            params.num_frames,
            loaded=self._placement,
            free_bytes=self._free_at_load,
            policy=self.memory_policy,
            streams=self.device.startswith("cuda"),
        )
        if reload:
            self.unload()
            self.load(plan.mode)
        assert self._pipe is not None
        set_vae_tiling(self._pipe.vae, plan.vae_tiling, **self.vae_tile_options)
        self.memory_plan = plan

    def _check_request(self, pipe: LTXPipeline, request: StageRequest) -> None:
        """Refuse what the pipeline would reject late or silently round (sizes, frame counts)."""
        if request.stage != STAGE_GENERATE:
            raise InvalidParams(f"model {self.spec.id} cannot run stage {request.stage!r}", param="stage")
        if request.init_frames is not None:
            raise InvalidParams(f"model {self.spec.id} cannot continue a video yet", param="input_reference")
        image = request.input_image
        if image is not None and (image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8):
            raise InvalidParams("the input image must be uint8 RGB (H, W, 3)", param="input_reference")
        params = request.params
        # LTXPipeline.check_inputs demands multiples of 32 whatever the VAE's compression.
        if params.size.width % 32 or params.size.height % 32:
            raise InvalidParams(f"width and height must be multiples of 32; got {params.size}", param="size")
        temporal = pipe.vae_temporal_compression_ratio
        if params.num_frames < 1 or (params.num_frames - 1) % temporal:
            raise InvalidParams(f"{self.spec.id} makes {temporal}k+1 frames; got {params.num_frames}", param="seconds")

    # -- previews ----------------------------------------------------------------------------------------

    def _preview(self, packed: torch.Tensor, latent_shape: tuple[int, int, int]) -> Callable[[], np.ndarray]:
        """A lazy preview of the middle frame through a linear latent->RGB map, no VAE. Only one latent frame
        is copied now; the sink calls `render` when it wants a picture."""
        pipe, projection = self._pipe, self._preview_projection
        assert pipe is not None and projection is not None
        frames, height, width = latent_shape
        latents = pipe._unpack_latents(
            packed[:1], frames, height, width, pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
        )
        middle = latents[0, :, frames // 2].detach().clone()

        def render() -> np.ndarray:
            return project_to_rgb(middle, projection, max_upscale=8)

        return render

    # -- decoding ----------------------------------------------------------------------------------------

    def _chunks(
        self,
        packed: torch.Tensor,
        request: StageRequest,
        generator: torch.Generator,
        stats: dict[str, float],
        generation: int,
    ) -> Iterator[np.ndarray]:
        """Decode on the first `next()`, then yield (t, H, W, 3) uint8 chunks of `frames_per_chunk` frames."""
        started = time.perf_counter()
        frames = self._decode(packed, request, generator, generation)
        del packed
        stats["decode_seconds"] = time.perf_counter() - started
        for start in range(0, len(frames), self.frames_per_chunk):
            yield frames[start : start + self.frames_per_chunk]

    @torch.no_grad()
    def _decode(
        self, packed: torch.Tensor, request: StageRequest, generator: torch.Generator, generation: int
    ) -> np.ndarray:
        """What LTXPipeline.__call__ does after its loop for output_type="np", returning uint8 frames."""
        pipe = self._pipe
        if pipe is None or generation != self._generation:
            raise RuntimeError("this engine ran another job (or unloaded) before this video was decoded")
        params = request.params
        vae = pipe.vae
        latents = pipe._unpack_latents(
            packed,
            *_latent_shape(pipe, params.num_frames, params.size.height, params.size.width),
            pipe.transformer_spatial_patch_size,
            pipe.transformer_temporal_patch_size,
        )
        latents = pipe._denormalize_latents(latents, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
        latents = latents.to(pipe.text_encoder.dtype)
        timestep: torch.Tensor | None = None
        if vae.config.timestep_conditioning:
            # The pipeline draws this noise on its execution device from the same generator.
            noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
            timestep = torch.tensor([self.decode_timestep], device=latents.device, dtype=latents.dtype)
            scale = torch.tensor([self.decode_noise_scale], device=latents.device, dtype=latents.dtype)
            scale = scale[:, None, None, None, None]
            latents = (1 - scale) * latents + scale * noise
        video = vae.decode(latents.to(vae.dtype), timestep, return_dict=False)[0]
        return _to_uint8_frames(video)


def _to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """(1, 3, t, H, W) in [-1, 1] -> (t, H, W, 3) uint8: diffusers' postprocess, then round(x * 255).
    Converted on the device so only bytes cross to the host."""
    x = (video[0].float() / 2 + 0.5).clamp(0, 1)
    return (x * 255).round().to(torch.uint8).permute(1, 2, 3, 0).contiguous().cpu().numpy()


def _profile(pipe: LTXPipeline, tile_options: dict[str, Any]) -> ActivationProfile:
    """Activation costs of this checkpoint (engines/memory.py), from its real configuration and tile size."""
    config = pipe.transformer.config
    profile = family_profile(
        "ltx",
        spatial=pipe.vae_spatial_compression_ratio,
        temporal=pipe.vae_temporal_compression_ratio,
        patch=pipe.transformer_spatial_patch_size,
        hidden=config.num_attention_heads * config.attention_head_dim,
    )
    return with_vae_tiles(profile, pipe.vae, tile_options)


def _latent_shape(pipe: LTXPipeline, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
    """(frames, height, width) of the latent video, as LTXPipeline computes them."""
    return (
        (num_frames - 1) // pipe.vae_temporal_compression_ratio + 1,
        height // pipe.vae_spatial_compression_ratio,
        width // pipe.vae_spatial_compression_ratio,
    )


@torch.no_grad()
def _fit_preview_projection(pipe: LTXPipeline, decode_timestep: float) -> torch.Tensor:
    """Fit the (channels + 1, 3) linear map from diffusion latents (plus a bias) to RGB in [0, 1] by decoding one
    latent frame of noise with this very VAE and solving least squares against the RGB averaged over each latent
    pixel's footprint. Any checkpoint, no hand-made table; one small decode at load time (512x512 for real LTX)."""
    vae = pipe.vae
    channels = vae.config.latent_channels
    side = 16  # 256 samples: more than the 129 unknowns of real LTX (128 channels + bias)
    noise = torch.randn(1, channels, 1, side, side, generator=torch.Generator().manual_seed(0))
    device = next(vae.parameters()).device
    z = pipe._denormalize_latents(
        noise.to(device, vae.dtype), vae.latents_mean, vae.latents_std, vae.config.scaling_factor
    )
    timestep = None
    if vae.config.timestep_conditioning:
        timestep = torch.tensor([decode_timestep], device=device, dtype=vae.dtype)
    decoded = vae.decode(z, timestep, return_dict=False)[0][:, :, 0]
    return fit_rgb_projection(noise[0, :, 0], decoded, pipe.vae_spatial_compression_ratio)
