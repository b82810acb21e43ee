"""LTX-2 (Lightricks) through diffusers' LTX2Pipeline: a video and its soundtrack from one denoising pass, and
LTX2ImageToVideoPipeline for an input image.

Reading order: `load_ltx2_pipeline` and `create_engine` (how a checkpoint is found and loaded), then
`LTX2Engine.run`, which calls the real pipeline with `output_type="latent"`, reports every step to the sink (with
a cheap latent->RGB preview of the picture), decodes the sound at once (audio VAE, then vocoder: small next to
the picture) and returns a VideoOutput whose frames come from the pipeline's own decode arithmetic, run when the
worker asks for the first chunk, with the sound as its `audio`.

What differs from LTX-Video (ltx.py): the transformer denoises video and audio latents together, each block
returning both streams; guidance has more terms than classifier-free guidance (spatio-temporal guidance, modality
isolation, rescaling, and separate audio scales). The job's guidance scale is the video CFG scale; the other
terms come from the registry entry (`guidance`), defaulting to the pipeline's. diffusers' step caches know only
blocks that return (video, text): `_describe_blocks` tells them an LTX-2 block returns (video, audio), so the
`balanced` and `fast` presets (FirstBlockCache) skip whole steps of both streams together.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

# Imported from their modules, not `from diffusers import ...`, so type checkers see the real classes.
from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
from diffusers.models.transformers.transformer_ltx2 import LTX2VideoTransformerBlock
from diffusers.pipelines.ltx2.pipeline_ltx2 import LTX2Pipeline
from diffusers.pipelines.ltx2.pipeline_ltx2_image2video import LTX2ImageToVideoPipeline
from diffusers.utils.torch_utils import randn_tensor

from reelgen.domain.models import ModelSpec
from reelgen.engines.alignment import align_weights
from reelgen.engines.base import AudioTrack, ProgressSink, StageRequest, VideoOutput
from reelgen.engines.diffusers_engine import (
    DTYPE_KWARG,
    FRAMES_PER_CHUNK,
    DiffusersEngine,
    StepCallback,
    default_device,
    pipeline_generator,
    resolve_dtype,
    seed_generators,
    to_uint8_frames,
)
from reelgen.engines.ltx import fit_ltx_preview_projection, latent_shape, packed_preview
from reelgen.engines.memory import ActivationProfile
from reelgen.engines.previews import Preview
from reelgen.engines.weights import require_weights

# LTX-2's prompts are encoded at up to 1024 Gemma tokens (the pipeline's default).
MAX_SEQUENCE_LENGTH = 1024


def load_ltx2_pipeline(source: str | Path, *, dtype: torch.dtype, device: str) -> LTX2Pipeline:
    """Load an LTX-2 pipeline from a Hub repo id or a local diffusers folder (model_index.json). Honours
    HF_HUB_OFFLINE."""
    pipe = LTX2Pipeline.from_pretrained(source, **{DTYPE_KWARG: dtype})
    return align_weights(pipe.to(device))


def create_engine(
    spec: ModelSpec,
    device: str | None = None,
    *,
    source: str,
    dtype: str | None = None,
    max_sequence_length: int = MAX_SEQUENCE_LENGTH,
    guidance: dict[str, Any] | None = None,
    decode_timestep: float = 0.0,
    decode_noise_scale: float | None = None,
) -> LTX2Engine:
    """Registry factory: `register(spec, "reelgen.engines.ltx2:create_engine", options={"source": "..."})`.
    `guidance`: pipeline arguments for the guidance terms besides the job's CFG scale (e.g. a distilled
    checkpoint's `{"audio_guidance_scale": 1.0, "stg_scale": 0.0, ...}`).

    Fails here, before any job work, when the weights are missing and cannot be downloaded (HF_HUB_OFFLINE)."""
    require_weights(source)
    device = device or default_device()
    torch_dtype = resolve_dtype(dtype, device)
    return LTX2Engine(
        spec,
        # Loaded on the CPU: the engine places it on `device` as its memory plan says (whole, or offloaded).
        lambda: load_ltx2_pipeline(source, dtype=torch_dtype, device="cpu"),
        device,
        max_sequence_length=max_sequence_length,
        guidance=guidance,
        decode_timestep=decode_timestep,
        decode_noise_scale=decode_noise_scale,
    )


class LTX2Engine(DiffusersEngine[LTX2Pipeline]):
    """One LTX-2 pipeline (engines/diffusers_engine.py: residency, memory plan, reported denoising). With
    `request.input_image` the same components (no second copy of the weights) run as LTX2ImageToVideoPipeline,
    which keeps the image as the first frame."""

    def __init__(
        self,
        spec: ModelSpec,
        pipeline_loader: Callable[[], LTX2Pipeline],
        device: str = "cpu",
        *,
        max_sequence_length: int = MAX_SEQUENCE_LENGTH,
        guidance: dict[str, Any] | None = None,
        decode_timestep: float = 0.0,
        decode_noise_scale: float | None = None,
        frames_per_chunk: int = FRAMES_PER_CHUNK,
    ) -> None:
        super().__init__(spec, pipeline_loader, device, frames_per_chunk=frames_per_chunk)
        self.max_sequence_length = max_sequence_length
        self.guidance = dict(guidance or {})
        self.decode_timestep = decode_timestep
        # diffusers' rule: no explicit noise scale means "the decode timestep".
        self.decode_noise_scale = decode_timestep if decode_noise_scale is None else decode_noise_scale
        self._image_pipe: LTX2ImageToVideoPipeline | None = None

    # -- what differs from other families ----------------------------------------------------------------

    def _profile(self, pipe: LTX2Pipeline) -> ActivationProfile:
        return self._transformer_profile(
            "ltx2",
            pipe,
            spatial=pipe.vae_spatial_compression_ratio,
            temporal=pipe.vae_temporal_compression_ratio,
            patch=pipe.transformer_spatial_patch_size,
        )

    def _fit_preview(self, pipe: LTX2Pipeline) -> torch.Tensor:
        return fit_ltx_preview_projection(pipe, self.decode_timestep)

    def _on_load(self, pipe: LTX2Pipeline) -> None:
        _describe_blocks()
        self._image_pipe = LTX2ImageToVideoPipeline(**pipe.components)
        self._image_pipe.set_progress_bar_config(disable=True)

    def _on_unload(self) -> None:
        self._image_pipe = None

    # -- one job -----------------------------------------------------------------------------------------

    batches_variations = True

    def run(self, request: StageRequest, sink: ProgressSink) -> VideoOutput:
        return self._one_variation(request, sink)

    def max_batch(self, request: StageRequest) -> int:
        # LTX2ImageToVideoPipeline re-compresses its image (image_crf) only as a single PIL image, and encodes a
        # single image with the first generator only: image-to-video variations go one pass each.
        return 1 if request.input_image is not None else super().max_batch(request)

    def run_batch(self, request: StageRequest, sink: ProgressSink) -> list[VideoOutput]:
        """`request.count` variations in one denoising pass: each its own generator (seed + i: the noise, sound
        noise and decode noise a call of its own would draw) through num_videos_per_prompt; each clip's sound is
        decoded at once, its frames when the worker reads them, one clip after another."""
        self.load()
        self._check_request(self.pipe, request)
        if request.input_image is not None and request.count > 1:
            raise ValueError("LTX-2 makes image-to-video variations one pass each (see max_batch)")
        self._plan_memory(request)  # may reload the pipeline with more offloading
        pipe, image_pipe = self.pipe, self._image_pipe
        assert image_pipe is not None
        params = request.params
        shape = latent_shape(pipe, params.num_frames, params.size.height, params.size.width)
        # The same generators then draw the decode noise, exactly as the pipeline would after its last step.
        generators = seed_generators(request)

        def call(on_step_end: StepCallback) -> tuple[torch.Tensor, torch.Tensor]:
            arguments: dict[str, Any] = {
                **self.guidance,
                "prompt": params.prompt,
                "negative_prompt": params.negative_prompt or None,
                "height": params.size.height,
                "width": params.size.width,
                "num_frames": params.num_frames,
                # RoPE positions and the soundtrack's length both follow the rate the video will play at.
                "frame_rate": float(params.fps),
                "num_inference_steps": params.steps,
                "guidance_scale": params.guidance_scale,
                "num_videos_per_prompt": request.count,
                "generator": pipeline_generator(generators),
                "output_type": "latent",
                "return_dict": False,
                "callback_on_step_end": on_step_end,
                "callback_on_step_end_tensor_inputs": ["latents"],
                "max_sequence_length": self.max_sequence_length,
            }
            if request.input_image is not None:
                image = PIL.Image.fromarray(np.ascontiguousarray(request.input_image), mode="RGB")
                video, audio = image_pipe(image=image, **arguments)
            else:
                video, audio = pipe(**arguments)
            return video, audio

        (latents, audio_latents), stats = self._denoise(
            request, sink, call, lambda packed: self._preview(packed, shape)
        )
        generation = self._generation
        return self._batch_outputs(
            request,
            stats,
            lambda i: self._decode(latents[i : i + 1], generators[i], generation),
            soundtrack=lambda i: self._decode_audio(audio_latents[i : i + 1]),
        )

    def _check_request(self, pipe: LTX2Pipeline, request: StageRequest) -> None:
        """Refuse what the pipeline would reject late or silently round (sizes, frame counts)."""
        self._check_stage(request, takes_image=True)
        # LTX2Pipeline.check_inputs demands multiples of 32 whatever the VAE's compression.
        self._check_grid(request, multiple=32, temporal=pipe.vae_temporal_compression_ratio)

    # -- previews and decoding ---------------------------------------------------------------------------

    def _preview(self, packed: torch.Tensor, shape: tuple[int, int, int]) -> Preview:
        return packed_preview(self.pipe, packed, shape, self._preview_projection)

    @torch.no_grad()
    def _decode_audio(self, audio_latents: torch.Tensor) -> AudioTrack:
        """What the pipeline does with its audio latents for output_type="np": the audio VAE makes a mel
        spectrogram, the vocoder the waveform."""
        pipe = self.pipe
        mel = pipe.audio_vae.decode(audio_latents.to(pipe.audio_vae.dtype), return_dict=False)[0]
        waveform = pipe.vocoder(mel)[0]
        samples = waveform.float().clamp(-1, 1).cpu().numpy()
        return AudioTrack(samples=samples, sample_rate=int(pipe.vocoder.config.output_sampling_rate))

    @torch.no_grad()
    def _decode(self, latents: torch.Tensor, generator: torch.Generator, generation: int) -> np.ndarray:
        """What LTX2Pipeline.__call__ does after its loop for output_type="np", from the denormalised latents
        output_type="latent" returns, as uint8 frames.

        A timestep-conditioned VAE decodes latents mixed with noise. The pipeline mixes before denormalising
        (an affine map), so mixing after it with denormalised noise is the same sum: (1-s)·D(x) + s·D(n) =
        D((1-s)·x + s·n), equal up to float rounding."""
        self._check_current(generation)
        pipe = self.pipe
        vae = pipe.vae
        timestep: torch.Tensor | None = None
        if vae.config.timestep_conditioning:
            # The pipeline draws this noise on its execution device from the same generator.
            noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
            noise = pipe._denormalize_latents(noise, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
            timestep = torch.tensor([self.decode_timestep], device=latents.device, dtype=latents.dtype)
            scale = self.decode_noise_scale
            latents = (1 - scale) * latents + scale * noise
        video = vae.decode(latents.to(vae.dtype), timestep, return_dict=False)[0]
        return to_uint8_frames(video)


class _NamedSecondStream(TransformerBlockMetadata):
    """diffusers 0.42's FirstBlockCache asks a block for its second stream as "encoder_hidden_states" whatever
    `encoder_hidden_states_argument_name` says; this answers with the argument that name says."""

    def _get_parameter_from_args_kwargs(self, identifier: str, args: tuple = (), kwargs: dict | None = None) -> Any:
        if identifier == "encoder_hidden_states":
            identifier = self.encoder_hidden_states_argument_name
        return super()._get_parameter_from_args_kwargs(identifier, args, kwargs)


def _describe_blocks() -> None:
    """Tell diffusers' block hooks (FirstBlockCache: the `balanced` and `fast` presets) that an
    LTX2VideoTransformerBlock takes `hidden_states, audio_hidden_states, ...` and returns that pair. A skipped block
    then passes both streams through, and the cache adds both streams' residuals."""
    try:
        TransformerBlockRegistry.get(LTX2VideoTransformerBlock)
    except ValueError:
        TransformerBlockRegistry.register(
            LTX2VideoTransformerBlock,
            _NamedSecondStream(
                return_hidden_states_index=0,
                return_encoder_hidden_states_index=1,
                encoder_hidden_states_argument_name="audio_hidden_states",
            ),
        )
