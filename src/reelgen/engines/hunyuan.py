"""HunyuanVideo (Tencent) through diffusers' HunyuanVideoPipeline.

Reading order: `load_hunyuan_pipeline` and `create_engine` (how a checkpoint is found and loaded), then
`HunyuanEngine.run`, which calls the real pipeline with `output_type="latent"`, reports every step to the sink
(with a cheap latent->RGB preview), and returns a VideoOutput whose chunks come from the pipeline's own decode
arithmetic (divide by the VAE's scaling factor, one VAE call), run when the worker asks for the first chunk.

HunyuanVideo is guidance-distilled: the guidance scale is an input of the transformer ("embedded guidance"), one
forward pass per step. A negative prompt would need a second pass per step (diffusers' true_cfg_scale), which
the checkpoint was not trained for, so a request with one is refused rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Imported from their modules, not `from diffusers import ...`, so type checkers see the real classes.
from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import HunyuanVideoPipeline

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

# HunyuanVideo's Llama prompts: 256 tokens after the template (the pipeline's default).
MAX_SEQUENCE_LENGTH = 256


def load_hunyuan_pipeline(source: str | Path, *, dtype: torch.dtype, device: str) -> HunyuanVideoPipeline:
    """Load a HunyuanVideo pipeline from a Hub repo id or a local diffusers folder (model_index.json).

    The VAE is loaded in float32 whatever `dtype` is: it is small next to the 13B transformer, and the model
    card decodes in full precision. Honours HF_HUB_OFFLINE."""
    pipe = HunyuanVideoPipeline.from_pretrained(source, **{DTYPE_KWARG: dtype})
    pipe.vae.to(torch.float32)
    return align_weights(pipe.to(device))


def create_engine(
    spec: ModelSpec,
    device: str | None = None,
    *,
    source: str,
    dtype: str | None = None,
    max_sequence_length: int = MAX_SEQUENCE_LENGTH,
) -> HunyuanEngine:
    """Registry factory: `register(spec, "reelgen.engines.hunyuan:create_engine", options={"source": "..."})`.

    Fails here, before any job work, when the weights are missing and cannot be downloaded (HF_HUB_OFFLINE)."""
    require_weights(source)
    device = device or default_device()
    torch_dtype = resolve_dtype(dtype, device)
    return HunyuanEngine(
        spec,
        # Loaded on the CPU: the engine places it on `device` as its memory plan says (whole, or offloaded).
        lambda: load_hunyuan_pipeline(source, dtype=torch_dtype, device="cpu"),
        device,
        max_sequence_length=max_sequence_length,
    )


class HunyuanEngine(DiffusersEngine[HunyuanVideoPipeline]):
    """One HunyuanVideo pipeline (engines/diffusers_engine.py: residency, memory plan, reported denoising).
    Text-to-video only: the image-to-video checkpoint is a separate model with another transformer."""

    def __init__(
        self,
        spec: ModelSpec,
        pipeline_loader: Callable[[], HunyuanVideoPipeline],
        device: str = "cpu",
        *,
        max_sequence_length: int = MAX_SEQUENCE_LENGTH,
    ) -> None:
        super().__init__(spec, pipeline_loader, device)
        self.max_sequence_length = max_sequence_length

    # -- what differs from other families ----------------------------------------------------------------

    def _profile(self, pipe: HunyuanVideoPipeline) -> ActivationProfile:
        return self._transformer_profile(
            "hunyuan",
            pipe,
            spatial=pipe.vae_scale_factor_spatial,
            temporal=pipe.vae_scale_factor_temporal,
            patch=pipe.transformer.config.patch_size,
        )

    def _fit_preview(self, pipe: HunyuanVideoPipeline) -> torch.Tensor:
        return fit_scaled_preview_projection(pipe)

    # -- one job -----------------------------------------------------------------------------------------

    batches_variations = True

    def run(self, request: StageRequest, sink: ProgressSink) -> VideoOutput:
        return self._one_variation(request, sink)

    def run_batch(self, request: StageRequest, sink: ProgressSink) -> list[VideoOutput]:
        """`request.count` variations in one denoising pass (num_videos_per_prompt), each with its own noise."""
        self.load()
        self._check_request(self.pipe, request)
        self._plan_memory(request)  # may reload the pipeline with more offloading
        pipe = self.pipe
        params = request.params

        def call(on_step_end: StepCallback) -> torch.Tensor:
            return pipe(
                prompt=params.prompt,
                height=params.size.height,
                width=params.size.width,
                num_frames=params.num_frames,
                num_inference_steps=params.steps,
                guidance_scale=params.guidance_scale,
                num_videos_per_prompt=request.count,
                generator=variation_generators(request),
                output_type="latent",
                return_dict=False,
                callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=["latents"],
                max_sequence_length=self.max_sequence_length,
            )[0]

        latents, stats = self._denoise(request, sink, call, self._preview)
        generation = self._generation
        return self._batch_outputs(request, stats, lambda i: self._decode(latents[i : i + 1], generation))

    def _check_request(self, pipe: HunyuanVideoPipeline, request: StageRequest) -> None:
        """Refuse what the pipeline would reject late, silently round or silently ignore."""
        self._check_stage(request, takes_image=False)
        if request.params.negative_prompt:
            raise InvalidParams(
                f"model {self.spec.id} is guidance-distilled and takes no negative_prompt", param="negative_prompt"
            )
        self._check_grid(
            request,
            multiple=pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size,
            temporal=pipe.vae_scale_factor_temporal,
        )

    # -- previews and decoding ---------------------------------------------------------------------------

    def _preview(self, latents: torch.Tensor) -> Preview:
        return middle_frame_preview(latents, self._preview_projection, self.pipe.vae_scale_factor_spatial)

    def _decode(self, latents: torch.Tensor, generation: int) -> np.ndarray:
        self._check_current(generation)
        return decode_scaled(self.pipe.vae, latents)


@torch.no_grad()
def decode_scaled(vae: Any, latents: torch.Tensor) -> np.ndarray:
    """What the HunyuanVideo pipelines (1.0 and 1.5) do after their loop for output_type="np": divide by the
    VAE's scaling factor, one decode call; as uint8 frames."""
    video = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return to_uint8_frames(video)


@torch.no_grad()
def fit_scaled_preview_projection(pipe: Any) -> torch.Tensor:
    """Fit the (channels + 1, 3) linear map from diffusion latents (plus a bias) to RGB in [0, 1] by decoding one
    latent frame of noise with this very VAE and least squares against the RGB averaged over each latent pixel's
    footprint. Any checkpoint, no hand-made table; one small decode at load time."""
    vae = pipe.vae
    channels = vae.config.latent_channels
    noise = torch.randn(1, channels, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    device = next(vae.parameters()).device
    z = noise.to(device, vae.dtype) / vae.config.scaling_factor
    decoded = vae.decode(z, return_dict=False)[0][:, :, 0]
    return fit_rgb_projection(noise[0, :, 0], decoded, pipe.vae_scale_factor_spatial)
