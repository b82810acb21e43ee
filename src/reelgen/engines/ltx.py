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

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

# Imported from their modules, not `from diffusers import ...`, so type checkers see the real classes.
from diffusers.pipelines.ltx.pipeline_ltx import LTXPipeline
from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXConditionPipeline, LTXVideoCondition
from diffusers.pipelines.ltx.pipeline_ltx_image2video import LTXImageToVideoPipeline
from diffusers.pipelines.ltx.pipeline_ltx_latent_upsample import LTXLatentUpsamplePipeline
from diffusers.utils.torch_utils import randn_tensor

from reelgen.domain.errors import InvalidParams
from reelgen.domain.models import ModelSpec
from reelgen.engines.alignment import align_weights
from reelgen.engines.base import STAGE_UPSCALE, ProgressSink, StageRequest, VideoOutput
from reelgen.engines.diffusers_engine import (
    DTYPE_KWARG,
    FRAMES_PER_CHUNK,
    DiffusersEngine,
    StepCallback,
    cpu_generator,
    default_device,
    pipeline_generator,
    resolve_dtype,
    seed_generators,
    to_uint8_frames,
)
from reelgen.engines.memory import ActivationProfile
from reelgen.engines.previews import Preview, fit_rgb_projection, middle_frame_preview
from reelgen.engines.weights import require_weights

# LTX 0.9.7's two-pass recipe: the upsampled latents are re-noised this far and denoised again.
REFINE_STRENGTH = 0.4
# LTX checkpoints were trained with 128-token prompts (the pipeline's default).
MAX_SEQUENCE_LENGTH = 128
# Previews are upsampled from latent resolution (1/32 of the video for real LTX) towards this long side.


def load_ltx_pipeline(source: str | Path, *, dtype: torch.dtype, device: str) -> LTXPipeline:
    """Load an LTX-Video pipeline from a Hub repo id or a local diffusers folder (model_index.json).

    Works for every 0.9.x checkpoint in diffusers layout whatever pipeline class its model_index names
    (LTXPipeline, LTXConditionPipeline): they share the same five components. Honours HF_HUB_OFFLINE.
    """
    pipe = LTXPipeline.from_pretrained(source, **{DTYPE_KWARG: dtype})
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
    condition_pipeline: bool = False,
    upsampler: str | None = None,
) -> LTXEngine:
    """Registry factory: `register(spec, "reelgen.engines.ltx:create_engine", options={"source": "..."})`.
    `condition_pipeline`: image-to-video through LTXConditionPipeline (how 0.9.5+ checkpoints are meant to run).
    `upsampler`: the repo or folder of a latent upsampler (e.g. Lightricks/ltxv-spatial-upscaler-0.9.7) for the
    upscale stage; its weights are looked up when an upscale job comes, so the model runs without them.

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
        condition_pipeline=condition_pipeline,
        upsampler_loader=None if upsampler is None else _upsampler_loader(upsampler, torch_dtype),
    )


def load_ltx_upsampler(source: str | Path, *, vae: Any, dtype: torch.dtype) -> LTXLatentUpsamplePipeline:
    """The latent upsampler pipeline of `source` around an already loaded LTX VAE (no second copy of it)."""
    return LTXLatentUpsamplePipeline.from_pretrained(source, vae=vae, **{DTYPE_KWARG: dtype})


def _upsampler_loader(source: str, dtype: torch.dtype) -> Callable[[Any], LTXLatentUpsamplePipeline]:
    def load(vae: Any) -> LTXLatentUpsamplePipeline:
        require_weights(source)  # a clear "hf download ..." for the upscale job, not an ImportError-like crash
        return load_ltx_upsampler(source, vae=vae, dtype=dtype)

    return load


class LTXEngine(DiffusersEngine[LTXPipeline]):
    """One LTX pipeline (engines/diffusers_engine.py: residency, memory plan, reported denoising).

    Text-to-video runs LTXPipeline; with `request.input_image` the same components (no second copy of the
    weights) run as LTXImageToVideoPipeline, which keeps the image as the first frame, or, with
    `condition_pipeline` (0.9.5 and later), as LTXConditionPipeline with the image as a condition at frame 0:
    the pipeline the next stages (extend from a clip's last frames, conditions at other frames) build on.
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
        condition_pipeline: bool = False,
        upsampler_loader: Callable[[Any], LTXLatentUpsamplePipeline] | None = None,
        refine_strength: float = REFINE_STRENGTH,
    ) -> None:
        super().__init__(spec, pipeline_loader, device, frames_per_chunk=frames_per_chunk)
        self.condition_pipeline = condition_pipeline
        # The upscale stage: builds the latent upsampler pipeline around the model's VAE (loaded on first use).
        self._upsampler_loader = upsampler_loader
        self._upsample_pipe: LTXLatentUpsamplePipeline | None = None
        self.refine_strength = refine_strength
        self.max_sequence_length = max_sequence_length
        self.decode_timestep = decode_timestep
        # diffusers' rule: no explicit noise scale means "the decode timestep".
        self.decode_noise_scale = decode_timestep if decode_noise_scale is None else decode_noise_scale
        self._image_pipe: LTXImageToVideoPipeline | LTXConditionPipeline | None = None

    # -- what differs from other families ----------------------------------------------------------------

    def _profile(self, pipe: LTXPipeline) -> ActivationProfile:
        return self._transformer_profile(
            "ltx",
            pipe,
            spatial=pipe.vae_spatial_compression_ratio,
            temporal=pipe.vae_temporal_compression_ratio,
            patch=pipe.transformer_spatial_patch_size,
        )

    def _fit_preview(self, pipe: LTXPipeline) -> torch.Tensor:
        return fit_ltx_preview_projection(pipe, self.decode_timestep)

    def _on_load(self, pipe: LTXPipeline) -> None:
        image_class = LTXConditionPipeline if self.condition_pipeline else LTXImageToVideoPipeline
        self._image_pipe = image_class(**pipe.components)
        self._image_pipe.set_progress_bar_config(disable=True)

    def _on_unload(self) -> None:
        self._image_pipe = None
        self._upsample_pipe = None

    # -- one job -----------------------------------------------------------------------------------------

    batches_variations = True

    def run(self, request: StageRequest, sink: ProgressSink) -> VideoOutput:
        return self._one_variation(request, sink)

    def max_batch(self, request: StageRequest) -> int:
        # Text to video only: the image and condition pipelines would need the image once per video (not tested
        # here), and the upscale stage refines one clip.
        if request.input_image is not None or request.stage == STAGE_UPSCALE:
            return 1
        return super().max_batch(request)

    def run_batch(self, request: StageRequest, sink: ProgressSink) -> list[VideoOutput]:
        """`request.count` text-to-video variations in one denoising pass (num_videos_per_prompt), each with its
        own generator (seed + i), which then draws that clip's decode noise as a call of its own would."""
        if request.count > 1 and self.max_batch(request) == 1:
            raise ValueError("LTX makes image-to-video and upscale variations one pass each (see max_batch)")
        self.load()
        if request.stage == STAGE_UPSCALE:
            return [self._upscale(request, sink)]
        self._check_request(self.pipe, request)
        self._plan_memory(request)  # may reload the pipeline with more offloading
        pipe, image_pipe = self.pipe, self._image_pipe
        assert image_pipe is not None
        params = request.params
        shape = latent_shape(pipe, params.num_frames, params.size.height, params.size.width)
        generators = seed_generators(request)

        def call(on_step_end: StepCallback) -> torch.Tensor:
            common = self._call_arguments(params, pipeline_generator(generators), on_step_end)
            if request.input_image is not None:
                image = PIL.Image.fromarray(np.ascontiguousarray(request.input_image), mode="RGB")
                if isinstance(image_pipe, LTXConditionPipeline):
                    # Returns unpacked latents (batch, channels, frames, height, width); `_decode` takes both.
                    return image_pipe(conditions=[LTXVideoCondition(image=image, frame_index=0)], **common)[0]
                return image_pipe(image=image, **common)[0]
            return pipe(num_videos_per_prompt=request.count, **common)[0]

        packed, stats = self._denoise(request, sink, call, lambda latents: self._preview(latents, shape))
        generation = self._generation
        return self._batch_outputs(
            request, stats, lambda i: self._decode(packed[i : i + 1], request, generators[i], generation)
        )

    def _call_arguments(
        self, params: Any, generator: torch.Generator | list[torch.Generator], on_step_end: StepCallback
    ) -> dict[str, Any]:
        """The pipeline arguments every LTX call shares (LTXPipeline, its image and condition pipelines)."""
        return {
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

    # -- the upscale stage -------------------------------------------------------------------------------

    def _upscale(self, request: StageRequest, sink: ProgressSink) -> VideoOutput:
        """LTX 0.9.7's second pass as a stage: a clip (`init_frames`) is encoded, its latents doubled in size by
        the latent upsampler, and `refine_strength` of the way re-noised and denoised again at the new size with
        the prompt (LTXConditionPipeline with `latents` and `denoise_strength`), then decoded. The frames must be
        half of `params.size` on each side; the frame count stays."""
        if self._upsampler_loader is None:
            raise InvalidParams(f"model {self.spec.id} has no latent upsampler to upscale with", param="stage")
        frames = self._check_upscale(request)
        self._plan_memory(request)  # at the output size
        upsampler, refiner = self._upscale_pipes()
        params = request.params
        generator = cpu_generator(request.seed)
        video: list[Any] = [PIL.Image.fromarray(np.ascontiguousarray(frame), mode="RGB") for frame in frames]
        shape = latent_shape(self.pipe, params.num_frames, params.size.height, params.size.width)

        def call(on_step_end: StepCallback) -> torch.Tensor:
            low = upsampler(
                video=video,
                height=frames.shape[1],
                width=frames.shape[2],
                generator=generator,
                output_type="latent",
                return_dict=False,
            )[0]
            common = self._call_arguments(params, generator, on_step_end)
            return refiner(latents=low, denoise_strength=self.refine_strength, **common)[0]

        latents, stats = self._denoise(request, sink, call, lambda packed: self._preview(packed, shape))
        generation = self._generation
        return self._video_output(
            request, self._lazy_chunks(lambda: self._decode(latents, request, generator, generation), stats), stats
        )

    def _upscale_pipes(self) -> tuple[LTXLatentUpsamplePipeline, LTXConditionPipeline]:
        """The latent upsampler (loaded on first use, sharing the model's VAE) and a condition pipeline over the
        loaded components for the refining pass."""
        assert self._upsampler_loader is not None
        if self._upsample_pipe is None:
            self._upsample_pipe = self._upsampler_loader(self.pipe.vae)
            self._upsample_pipe.to(self.device)
            self._upsample_pipe.set_progress_bar_config(disable=True)
        refiner = self._image_pipe
        if not isinstance(refiner, LTXConditionPipeline):
            refiner = LTXConditionPipeline(**self.pipe.components)
            refiner.set_progress_bar_config(disable=True)
        return self._upsample_pipe, refiner

    def _check_upscale(self, request: StageRequest) -> np.ndarray:
        frames = request.init_frames
        if frames is None or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise InvalidParams("upscaling needs the clip's frames: uint8 RGB (T, H, W, 3)", param="input_reference")
        if request.input_image is not None:
            raise InvalidParams("the upscale stage takes a clip, not an image", param="input_reference")
        params = request.params
        height, width = frames.shape[1:3]
        if (params.size.width, params.size.height) != (2 * width, 2 * height):
            raise InvalidParams(
                f"upscaling doubles the size: a {width}x{height} clip becomes {2 * width}x{2 * height}, "
                f"not {params.size}",
                param="size",
            )
        if params.num_frames != len(frames):
            raise InvalidParams(f"the clip has {len(frames)} frames; params say {params.num_frames}", param="seconds")
        # The upsampler encodes the clip at its own size: half the output's 32-multiples is not always enough.
        if width % self.pipe.vae_spatial_compression_ratio or height % self.pipe.vae_spatial_compression_ratio:
            raise InvalidParams(
                f"the clip's sides must be multiples of {self.pipe.vae_spatial_compression_ratio}", param="size"
            )
        self._check_grid(request, multiple=32, temporal=self.pipe.vae_temporal_compression_ratio)
        if int(params.steps * self.refine_strength) < 1:
            least = math.ceil(1 / self.refine_strength)
            raise InvalidParams(
                f"the upscale pass runs {self.refine_strength:.0%} of the steps: ask for at least {least}",
                param="steps",
            )
        return frames

    def _check_request(self, pipe: LTXPipeline, request: StageRequest) -> None:
        """Refuse what the pipeline would reject late or silently round (sizes, frame counts)."""
        self._check_stage(request, takes_image=True)
        # LTXPipeline.check_inputs demands multiples of 32 whatever the VAE's compression.
        self._check_grid(request, multiple=32, temporal=pipe.vae_temporal_compression_ratio)

    # -- previews ----------------------------------------------------------------------------------------

    def _preview(self, packed: torch.Tensor, shape: tuple[int, int, int]) -> Preview:
        return packed_preview(self.pipe, packed, shape, self._preview_projection)

    # -- decoding ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def _decode(
        self, packed: torch.Tensor, request: StageRequest, generator: torch.Generator, generation: int
    ) -> np.ndarray:
        """What LTXPipeline.__call__ (and LTXConditionPipeline's) does after its loop for output_type="np",
        returning uint8 frames. `packed` is LTXPipeline's token layout, or already unpacked (condition pipeline)."""
        self._check_current(generation)
        pipe = self.pipe
        params = request.params
        vae = pipe.vae
        latents = packed
        if latents.ndim == 3:
            latents = pipe._unpack_latents(
                packed,
                *latent_shape(pipe, params.num_frames, params.size.height, params.size.width),
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
        return to_uint8_frames(video)


def latent_shape(pipe: Any, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
    """(frames, height, width) of the latent video, as LTXPipeline (and LTX2Pipeline) compute them."""
    return (
        (num_frames - 1) // pipe.vae_temporal_compression_ratio + 1,
        height // pipe.vae_spatial_compression_ratio,
        width // pipe.vae_spatial_compression_ratio,
    )


def packed_preview(
    pipe: Any, packed: torch.Tensor, shape: tuple[int, int, int], projection: torch.Tensor | None
) -> Preview:
    """LTX's (and LTX-2's) latents are packed into tokens: unpack the first video, then its middle frame."""
    frames, height, width = shape
    latents = pipe._unpack_latents(
        packed[:1], frames, height, width, pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
    )
    return middle_frame_preview(latents, projection, max_upscale=8)


@torch.no_grad()
def fit_ltx_preview_projection(pipe: Any, decode_timestep: float) -> torch.Tensor:
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
