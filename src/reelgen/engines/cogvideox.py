"""CogVideoX (THUDM / Zhipu AI) 5B and 1.5 through diffusers' CogVideoXPipeline, and their image-to-video
checkpoints through CogVideoXImageToVideoPipeline.

Reading order: `load_cogvideox_pipeline` and `create_engine` (how a checkpoint is found and loaded), then
`CogVideoXEngine.run`, which calls the real pipeline with `output_type="latent"`, reports every step to the sink
(with a cheap latent->RGB preview), and returns a VideoOutput whose chunks come from the pipeline's own
`decode_latents`, run when the worker asks for the first chunk.

The image-to-video checkpoints (CogVideoX-5b-I2V, CogVideoX1.5-5B-I2V) are separate models: their transformer
takes the encoded image, padded with zero latent frames, concatenated on channels with the noise (and, for 1.5, an
`ofs` embedding). They load as CogVideoXImageToVideoPipeline (`create_engine(image_to_video=True)`), need
`request.input_image` and return latents laid out as text-to-video's (padding frames included), so previews and
decoding are shared. The 5B I2V transformer adds a learned position table for its one training shape (720x480,
49 frames): other sizes fail inside the transformer and other lengths silently get another table, so the engine
refuses both (`_check_learned_positions`).

Two things differ from Wan: the latents are laid out frames-first, (batch, frames, channels, height, width), and
CogVideoX 1.5 patchifies time 2x, so the pipeline prepends padding latent frames when the count is odd; with
`output_type="latent"` it returns them, and `_video_latents` drops them exactly as its own decoding path does.
Its VAE decodes a clip in one call (chunked internally, two latent frames at a time).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

# Imported from their modules, not `from diffusers import ...`, so type checkers see the real classes.
from diffusers.pipelines.cogvideo.pipeline_cogvideox import CogVideoXPipeline
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import CogVideoXImageToVideoPipeline

from reelgen.domain.errors import InvalidParams
from reelgen.domain.models import ModelSpec
from reelgen.engines.alignment import align_weights
from reelgen.engines.base import ProgressSink, StageRequest, VideoOutput
from reelgen.engines.diffusers_engine import (
    DTYPE_KWARG,
    DiffusersEngine,
    Preview,
    StepCallback,
    default_device,
    resolve_dtype,
    to_uint8_frames,
    variation_generators,
)
from reelgen.engines.memory import ActivationProfile
from reelgen.engines.previews import fit_rgb_projection, middle_frame_preview
from reelgen.engines.weights import require_weights

# CogVideoX was trained with 226-token T5 prompts (the pipeline's default).
MAX_SEQUENCE_LENGTH = 226

AnyCogVideoXPipeline = CogVideoXPipeline | CogVideoXImageToVideoPipeline


def load_cogvideox_pipeline(source: str | Path, *, dtype: torch.dtype, device: str) -> CogVideoXPipeline:
    """Load a CogVideoX text-to-video pipeline from a Hub repo id or a local diffusers folder (model_index.json).
    Honours HF_HUB_OFFLINE."""
    pipe = CogVideoXPipeline.from_pretrained(source, **{DTYPE_KWARG: dtype})
    return align_weights(pipe.to(device))


def load_cogvideox_i2v_pipeline(
    source: str | Path, *, dtype: torch.dtype, device: str
) -> CogVideoXImageToVideoPipeline:
    """`load_cogvideox_pipeline` for the image-to-video checkpoints (THUDM/CogVideoX-5b-I2V,
    THUDM/CogVideoX1.5-5B-I2V)."""
    pipe = CogVideoXImageToVideoPipeline.from_pretrained(source, **{DTYPE_KWARG: dtype})
    return align_weights(pipe.to(device))


def create_engine(
    spec: ModelSpec,
    device: str | None = None,
    *,
    source: str,
    dtype: str | None = None,
    max_sequence_length: int = MAX_SEQUENCE_LENGTH,
    dynamic_cfg: bool = True,
    image_to_video: bool = False,
) -> CogVideoXEngine:
    """Registry factory: `register(spec, "reelgen.engines.cogvideox:create_engine", options={"source": "..."})`;
    add `"image_to_video": True` for the I2V checkpoints.

    `dynamic_cfg` ramps the guidance scale up over the steps (a cosine schedule), as the CogVideoX model cards
    recommend with their DPM scheduler. Fails here, before any job work, when the weights are missing and cannot
    be downloaded (HF_HUB_OFFLINE)."""
    require_weights(source)
    device = device or default_device()
    torch_dtype = resolve_dtype(dtype, device)
    loader = load_cogvideox_i2v_pipeline if image_to_video else load_cogvideox_pipeline
    return CogVideoXEngine(
        spec,
        # Loaded on the CPU: the engine places it on `device` as its memory plan says (whole, or offloaded).
        lambda: loader(source, dtype=torch_dtype, device="cpu"),
        device,
        max_sequence_length=max_sequence_length,
        dynamic_cfg=dynamic_cfg,
    )


class CogVideoXEngine(DiffusersEngine[AnyCogVideoXPipeline]):
    """One CogVideoX pipeline (engines/diffusers_engine.py: residency, memory plan, reported denoising): text to
    video, or image to video when the loader returns CogVideoXImageToVideoPipeline (a checkpoint does one or the
    other)."""

    def __init__(
        self,
        spec: ModelSpec,
        pipeline_loader: Callable[[], AnyCogVideoXPipeline],
        device: str = "cpu",
        *,
        max_sequence_length: int = MAX_SEQUENCE_LENGTH,
        dynamic_cfg: bool = True,
    ) -> None:
        super().__init__(spec, pipeline_loader, device)
        self.max_sequence_length = max_sequence_length
        self.dynamic_cfg = dynamic_cfg

    # -- what differs from other families ----------------------------------------------------------------

    def _profile(self, pipe: AnyCogVideoXPipeline) -> ActivationProfile:
        return self._transformer_profile(
            "cogvideox",
            pipe,
            spatial=pipe.vae_scale_factor_spatial,
            temporal=pipe.vae_scale_factor_temporal,
            patch=pipe.transformer.config.patch_size,
        )

    def _fit_preview(self, pipe: AnyCogVideoXPipeline) -> torch.Tensor:
        return _fit_preview_projection(pipe)

    # -- one job -----------------------------------------------------------------------------------------

    batches_variations = True

    def run(self, request: StageRequest, sink: ProgressSink) -> VideoOutput:
        return self._one_variation(request, sink)

    def run_batch(self, request: StageRequest, sink: ProgressSink) -> list[VideoOutput]:
        """`request.count` variations in one denoising pass, each with its own noise."""
        self.load()
        self._check_request(self.pipe, request)
        self._plan_memory(request)  # may reload the pipeline with more offloading
        pipe = self.pipe
        params = request.params
        image_input: dict[str, Any] = {}
        if isinstance(pipe, CogVideoXImageToVideoPipeline):
            assert request.input_image is not None
            image = PIL.Image.fromarray(np.ascontiguousarray(request.input_image), mode="RGB")
            # Resized (stretched) by the pipeline to the requested size. Once per variation: with a generator
            # per variation the pipeline encodes image i with generator i (the draw a call of its own makes).
            image_input["image"] = [image] * request.count

        def call(on_step_end: StepCallback) -> torch.Tensor:
            return pipe(
                **image_input,
                # The pipeline fixes num_videos_per_prompt at 1: a batch is the prompt once per variation.
                prompt=[params.prompt] * request.count,
                negative_prompt=[params.negative_prompt] * request.count if params.negative_prompt else None,
                height=params.size.height,
                width=params.size.width,
                num_frames=params.num_frames,
                num_inference_steps=params.steps,
                guidance_scale=params.guidance_scale,
                use_dynamic_cfg=self.dynamic_cfg,
                generator=variation_generators(request),
                output_type="latent",
                return_dict=False,
                callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=["latents"],
                max_sequence_length=self.max_sequence_length,
            )[0]

        latents, stats = self._denoise(request, sink, call, self._preview)
        latents = _video_latents(pipe, latents, params.num_frames)
        generation = self._generation
        return self._batch_outputs(request, stats, lambda i: self._decode(latents[i : i + 1], generation))

    def _check_request(self, pipe: AnyCogVideoXPipeline, request: StageRequest) -> None:
        """Refuse what the pipeline would reject late or silently round (sizes, frame counts), and a request
        without an image on an image-to-video checkpoint."""
        image_to_video = isinstance(pipe, CogVideoXImageToVideoPipeline)
        self._check_stage(request, takes_image=image_to_video)
        if image_to_video and request.input_image is None:
            raise InvalidParams(
                f"model {self.spec.id} animates an image: send input_reference", param="input_reference"
            )
        config = pipe.transformer.config
        self._check_grid(
            request,
            multiple=pipe.vae_scale_factor_spatial * config.patch_size,
            temporal=pipe.vae_scale_factor_temporal,
        )
        if config.use_learned_positional_embeddings:
            _check_learned_positions(pipe, request, self.spec.id)

    # -- previews and decoding ---------------------------------------------------------------------------

    def _preview(self, latents: torch.Tensor) -> Preview:
        return middle_frame_preview(latents, self._preview_projection, max_upscale=8, time_axis=1)

    @torch.no_grad()
    def _decode(self, latents: torch.Tensor, generation: int) -> np.ndarray:
        """What CogVideoXPipeline.__call__ does after its loop for output_type="np", returning uint8 frames."""
        self._check_current(generation)
        video = self.pipe.decode_latents(latents.to(self.pipe.vae.dtype))
        return to_uint8_frames(video)


def _check_learned_positions(pipe: AnyCogVideoXPipeline, request: StageRequest, model_id: str) -> None:
    """CogVideoX-5b-I2V adds a learned position table for its one training shape (720x480, 49 frames). At another
    size its transformer raises; at another length diffusers silently swaps in a sin-cos table the model never
    saw. Both are refused."""
    config = pipe.transformer.config
    spatial = pipe.vae_scale_factor_spatial
    width, height = config.sample_width * spatial, config.sample_height * spatial
    params = request.params
    if (params.size.width, params.size.height) != (width, height):
        raise InvalidParams(f"model {model_id} makes {width}x{height} only; got {params.size}", param="size")
    if params.num_frames != config.sample_frames:
        raise InvalidParams(
            f"model {model_id} makes {config.sample_frames} frames only; got {params.num_frames}", param="seconds"
        )


def _video_latents(pipe: AnyCogVideoXPipeline, latents: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Drop the padding latent frames CogVideoX 1.5 prepends (its transformer patchifies time 2x), as both its
    pipelines do before decoding."""
    wanted = (num_frames - 1) // pipe.vae_scale_factor_temporal + 1
    return latents[:, latents.shape[1] - wanted :]


@torch.no_grad()
def _fit_preview_projection(pipe: AnyCogVideoXPipeline) -> torch.Tensor:
    """Fit the (channels + 1, 3) linear map from diffusion latents (plus a bias) to RGB in [0, 1] by decoding one
    latent frame of noise with this very VAE and least squares against the RGB averaged over each latent pixel's
    footprint. Any checkpoint, no hand-made table; one small decode at load time."""
    vae = pipe.vae
    channels = vae.config.latent_channels
    noise = torch.randn(1, 1, channels, 16, 16, generator=torch.Generator().manual_seed(0))
    device = next(vae.parameters()).device
    decoded = pipe.decode_latents(noise.to(device, vae.dtype))[:, :, 0]
    return fit_rgb_projection(noise[0, 0], decoded, pipe.vae_scale_factor_spatial)
