"""Wan 2.x text-to-video through diffusers' WanPipeline, and image-to-video through WanImageToVideoPipeline.

Reading order: how a pipeline is loaded (`load_wan_pipeline`, `create_engine`), then `WanEngine.run`, which
calls the real pipeline's `__call__` with `output_type="latent"`, reports every step to the sink (with a
cheap latent->RGB preview), and returns a VideoOutput whose chunks are decoded by the pipeline's VAE lazily,
latent frame by latent frame, while the worker encodes the previous chunk.

An image-to-video checkpoint (Wan 2.1 I2V, Wan 2.2 I2V A14B) loads as WanImageToVideoPipeline and needs
`request.input_image`; a text-to-video one loads as WanPipeline and refuses an image, except Wan 2.2 TI2V 5B
(`expand_timesteps`), which does both: its components also run as WanImageToVideoPipeline when an image comes.
All return plain video latents, so previews and decoding are shared.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

# Imported from their modules, not `from diffusers import ...`: the package's TYPE_CHECKING branch star-imports
# placeholder "dummy" classes first, so type checkers would see attribute-less stand-ins.
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from diffusers.pipelines.wan.pipeline_wan import WanPipeline
from diffusers.pipelines.wan.pipeline_wan_i2v import WanImageToVideoPipeline

from reelgen.domain.errors import InvalidParams
from reelgen.domain.models import ModelSpec
from reelgen.engines.alignment import align_weights
from reelgen.engines.base import ProgressSink, StageRequest, VideoOutput
from reelgen.engines.diffusers_engine import (
    DTYPE_KWARG,
    FRAMES_PER_CHUNK,
    DiffusersEngine,
    StepCallback,
    default_device,
    resolve_dtype,
    to_uint8_frames,
    variation_generators,
)
from reelgen.engines.memory import ActivationProfile
from reelgen.engines.previews import Preview, fit_rgb_projection, middle_frame_preview
from reelgen.engines.weights import is_repo_id, require_file, require_weights
from reelgen.media.resize import upscale_frames

# Re-exported: older imports of these names from this module keep working.
__all__ = ["WanEngine", "create_engine", "default_device", "load_wan_i2v_pipeline", "load_wan_pipeline"]

AnyWanPipeline = WanPipeline | WanImageToVideoPipeline


class _DeliberateFrameCount(logging.Filter):
    """Drops WanPipeline's 'rounding' warning for temporal factor 1: pipeline_num_frames asks for one frame fewer
    on purpose, and the warning would tell every user of reelgen-demo about a rounding that does not happen."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "has to be divisible by 1." not in record.getMessage()


logging.getLogger("diffusers.pipelines.wan.pipeline_wan").addFilter(_DeliberateFrameCount())


def pipeline_num_frames(pipe: Any, num_frames: int) -> int:
    """The ``num_frames`` to pass WanPipeline for a clip of ``num_frames`` frames.

    The pipeline "rounds" any count with ``num_frames % temporal != 1`` to ``k * temporal + 1``; a VAE without time
    compression (temporal 1, as reelgen-demo's) fails that test for every count and would get one frame more.
    """
    return num_frames - 1 if pipe.vae_scale_factor_temporal == 1 else num_frames


def load_wan_pipeline(source: str | Path, *, dtype: torch.dtype, device: str) -> WanPipeline:
    """Load a Wan pipeline from a Hub repo id or a local folder in diffusers layout (model_index.json).

    This is the path every real checkpoint takes. The VAE is loaded in float32 whatever `dtype` is: Wan's
    VAE is numerically fragile in half precision and small next to the transformer. Honours HF_HUB_OFFLINE.
    """
    vae = AutoencoderKLWan.from_pretrained(source, subfolder="vae", **{DTYPE_KWARG: torch.float32})
    pipe = WanPipeline.from_pretrained(source, vae=vae, **{DTYPE_KWARG: dtype})
    return align_weights(pipe.to(device))


def load_wan_i2v_pipeline(source: str | Path, *, dtype: torch.dtype, device: str) -> WanImageToVideoPipeline:
    """`load_wan_pipeline` for image-to-video checkpoints (Wan 2.1 I2V with its CLIP image encoder, Wan 2.2 I2V
    A14B without one): the same float32 VAE, loaded as WanImageToVideoPipeline."""
    vae = AutoencoderKLWan.from_pretrained(source, subfolder="vae", **{DTYPE_KWARG: torch.float32})
    pipe = WanImageToVideoPipeline.from_pretrained(source, vae=vae, **{DTYPE_KWARG: dtype})
    return align_weights(pipe.to(device))


def fuse_lora_file(pipe: Any, source: str, filename: str, scale: float = 1.0) -> None:
    """Merge one LoRA (a safetensors file of a Hub repo, through the HF cache, or of a local folder) into the
    transformer's weights for good, and drop the adapter: the model is then the distilled one, with no LoRA layers
    left to slow it down or to collide with a job's own LoRA."""
    if is_repo_id(source):
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(source, filename))
    else:
        path = Path(source).expanduser() / filename
    pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="distill", use_safetensors=True)
    pipe.fuse_lora(components=["transformer"], lora_scale=scale, adapter_names=["distill"])
    pipe.unload_lora_weights()


def create_engine(
    spec: ModelSpec,
    device: str | None = None,
    *,
    source: str,
    dtype: str | None = None,
    max_sequence_length: int = 512,
    image_to_video: bool = False,
    flow_shift: Mapping[str, float] | None = None,
    distill_lora: Mapping[str, Any] | None = None,
) -> WanEngine:
    """Registry factory for real Wan checkpoints: `register(spec, "reelgen.engines.wan:create_engine",
    options={"source": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"})`; add `"image_to_video": True` for I2V checkpoints
    and `"flow_shift": {"1280x720": 5.0}` where a size needs another scheduler shift than the checkpoint ships.
    `distill_lora` (`{"source": repo or folder, "file": "x.safetensors", "scale": 1.0}`) makes a few-step model of
    the checkpoint: that LoRA (a step- and guidance-distilled one such as LightX2V's) is fused into the weights at
    load, and jobs LoRAs of their own still apply on top.

    Fails here, before any job work, when the weights are missing and cannot be downloaded (HF_HUB_OFFLINE)."""
    require_weights(source)
    if distill_lora is not None:
        require_file(str(distill_lora["source"]), str(distill_lora["file"]))
    device = device or default_device()
    torch_dtype = resolve_dtype(dtype, device)
    base = load_wan_i2v_pipeline if image_to_video else load_wan_pipeline

    def loader(source: str | Path, *, dtype: torch.dtype, device: str) -> AnyWanPipeline:
        pipe = base(source, dtype=dtype, device=device)
        if distill_lora is not None:
            fuse_lora_file(pipe, str(distill_lora["source"]), str(distill_lora["file"]), distill_lora.get("scale", 1.0))
        return pipe

    return WanEngine(
        spec,
        # Loaded on the CPU: the engine places it on `device` as its memory plan says (whole, or offloaded).
        lambda: loader(source, dtype=torch_dtype, device="cpu"),
        device,
        torch_dtype,
        max_sequence_length=max_sequence_length,
        flow_shift=flow_shift,
    )


class WanEngine(DiffusersEngine[AnyWanPipeline]):
    """One Wan pipeline (engines/diffusers_engine.py: residency, memory plan, reported denoising).

    `dtype` is the transformer's: from_pretrained's dtype argument keeps the modules Wan needs in float32
    (norms, time embedding, RoPE). Decoding uses the VAE's causal cache, so a VideoOutput's chunks must be
    consumed before the next `run` (a stale output raises instead of returning a corrupted clip).
    """

    def __init__(
        self,
        spec: ModelSpec,
        pipeline_loader: Callable[[], AnyWanPipeline],
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        max_sequence_length: int = 512,
        frames_per_chunk: int = FRAMES_PER_CHUNK,
        flow_shift: Mapping[str, float] | None = None,
        upscale: int = 1,
    ) -> None:
        super().__init__(spec, pipeline_loader, device, frames_per_chunk=frames_per_chunk, upscale=upscale)
        self.dtype = dtype
        self.max_sequence_length = max_sequence_length
        # Scheduler shift per size ("WIDTHxHEIGHT"), where it differs from the checkpoint's scheduler config:
        # Wan 2.1 ships shift 3 (right for 480p) and wants 5 at 720p. Sizes not listed use the shipped value.
        self.flow_shift = dict(flow_shift or {})
        # Wan 2.2 TI2V only: the same components as an image-to-video pipeline (no second copy of the weights).
        self._image_pipe: WanImageToVideoPipeline | None = None
        self._shipped_shift: float | None = None
        # Which clip's decoding owns the VAE's causal cache now.
        self._decoding: object | None = None

    # -- what differs from other families ----------------------------------------------------------------

    def _profile(self, pipe: AnyWanPipeline) -> ActivationProfile:
        return self._transformer_profile(
            "wan",
            pipe,
            spatial=pipe.vae_scale_factor_spatial,
            temporal=pipe.vae_scale_factor_temporal,
            patch=pipe.transformer.config.patch_size[1],
        )

    def _fit_preview(self, pipe: AnyWanPipeline) -> torch.Tensor:
        return _fit_preview_projection(pipe.vae, pipe.vae_scale_factor_spatial)

    def _on_load(self, pipe: AnyWanPipeline) -> None:
        self._image_pipe = _image_mode_of(pipe)
        self._shipped_shift = _flow_shift_of(pipe)

    def _on_unload(self) -> None:
        self._image_pipe = None

    def _pipeline_for(self, request: StageRequest) -> AnyWanPipeline:
        """A TI2V checkpoint given an image runs its image-to-video mode; otherwise the loaded pipeline."""
        if self._image_pipe is not None and request.input_image is not None:
            return self._image_pipe
        return self.pipe

    # -- one job -----------------------------------------------------------------------------------------

    batches_variations = True

    def run(self, request: StageRequest, sink: ProgressSink) -> VideoOutput:
        return self._one_variation(request, sink)

    def run_batch(self, request: StageRequest, sink: ProgressSink) -> list[VideoOutput]:
        """`request.count` variations in one denoising pass: each its own generator (seed + i, the noise a call
        of its own would draw) through the pipeline's num_videos_per_prompt; decoded one after another."""
        self.load()
        self._check_request(self._pipeline_for(request), request)
        self._plan_memory(request)  # may reload the pipeline with more offloading
        pipe = self._pipeline_for(request)
        params = request.params
        _set_flow_shift(pipe, self.flow_shift.get(str(params.size), self._shipped_shift))
        # Image-to-video: the reference image, resized by the pipeline to the requested size. diffusers 0.42's
        # WanImageToVideoPipeline repeats the image embedding per prompt, not per video (num_videos_per_prompt > 1
        # fails there), so its batch is the prompt once per variation.
        image_input: dict[str, Any] = {}
        copies, per_prompt = 1, request.count
        if isinstance(pipe, WanImageToVideoPipeline):
            assert request.input_image is not None
            image_input["image"] = PIL.Image.fromarray(np.ascontiguousarray(request.input_image), mode="RGB")
            copies, per_prompt = request.count, 1

        def call(on_step_end: StepCallback) -> torch.Tensor:
            return pipe(
                **image_input,
                prompt=[params.prompt] * copies,
                negative_prompt=[params.negative_prompt] * copies if params.negative_prompt else None,
                height=params.size.height // self.upscale,
                width=params.size.width // self.upscale,
                num_frames=pipeline_num_frames(pipe, params.num_frames),
                num_inference_steps=params.steps,
                guidance_scale=params.guidance_scale,
                num_videos_per_prompt=per_prompt,
                generator=variation_generators(request),
                output_type="latent",
                return_dict=False,
                callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=["latents"],
                max_sequence_length=self.max_sequence_length,
            )[0]

        latents, stats = self._denoise(request, sink, call, self._preview)
        outputs = []
        for i in range(request.count):
            own = dict(stats)  # decode_seconds is per clip
            outputs.append(self._video_output(request, self._decode(latents[i : i + 1], own, self._generation), own))
        return outputs

    def _check_request(self, pipe: AnyWanPipeline, request: StageRequest) -> None:
        """Refuse what the pipeline would silently 'fix' (it rounds sizes and frame counts down)."""
        image_to_video = isinstance(pipe, WanImageToVideoPipeline)
        self._check_stage(request, takes_image=image_to_video)
        if image_to_video and request.input_image is None:
            raise InvalidParams(
                f"model {self.spec.id} animates an image: send input_reference", param="input_reference"
            )
        self._check_grid(
            request,
            multiple=pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1] * self.upscale,
            temporal=pipe.vae_scale_factor_temporal,
        )

    # -- previews ----------------------------------------------------------------------------------------

    def _preview(self, latents: torch.Tensor) -> Preview:
        return middle_frame_preview(latents, self._preview_projection, max_upscale=4)

    # -- decoding ----------------------------------------------------------------------------------------

    def _decode(self, latents: torch.Tensor, stats: dict[str, float], generation: int) -> Iterator[np.ndarray]:
        """Yield uint8 (t, H, W, 3) chunks of `frames_per_chunk` frames; records `decode_seconds` (time spent
        decoding, not time the consumer spent between chunks) once the last chunk is out."""
        busy = 0.0
        resumed = time.perf_counter()
        decoded = self._decode_latent_frames(latents, generation)
        finished = False
        try:
            pending: list[np.ndarray] = []
            buffered = 0
            for frames in decoded:
                frames = upscale_frames(frames, self.upscale)
                pending.append(frames)
                buffered += len(frames)
                while buffered >= self.frames_per_chunk:
                    joined = np.concatenate(pending)
                    pending, buffered = [joined[self.frames_per_chunk :]], buffered - self.frames_per_chunk
                    busy += time.perf_counter() - resumed
                    yield joined[: self.frames_per_chunk]
                    resumed = time.perf_counter()
            if buffered:
                busy += time.perf_counter() - resumed
                yield np.concatenate(pending)
            stats["decode_seconds"] = busy
            finished = True
        finally:
            # Close the inner generator now, not whenever it is garbage collected: its cleanup touches the
            # VAE's shared cache.
            decoded.close()
            del latents, decoded
            self._free_memory(collect=not finished)

    def _decode_latent_frames(self, latents: torch.Tensor, generation: int) -> Generator[np.ndarray, None, None]:
        self._check_current(generation)
        vae = self.pipe.vae
        z = denormalize_latents(vae, latents.to(device=self.device, dtype=vae.dtype))
        if not _can_stream(vae):
            yield to_uint8_frames(_decode_all(vae, z))
            return
        # Exactly AutoencoderKLWan._decode, one latent frame per resume: its decoder is causal in time and
        # carries state between frames in the VAE's feature cache, so frame-by-frame output is bit-identical
        # to decoding the whole clip (tested against diffusers' own output).
        vae.clear_cache()
        # The VAE's cache holds one clip: the clips of a batch decode one after another, never interleaved.
        owner = self._decoding = object()
        try:
            x = _post_quant_conv(vae, z)
            for i in range(x.shape[2]):
                if generation != self._generation:
                    raise RuntimeError("this engine ran another job (or unloaded) before this video was decoded")
                if self._decoding is not owner:
                    raise RuntimeError("another clip of this batch started decoding before this one finished")
                yield to_uint8_frames(_decode_latent_frame(vae, x, i))
        finally:
            if generation == self._generation and self._decoding is owner:  # else the cache is another clip's
                vae.clear_cache()


# -- helpers (pure functions of tensors) ------------------------------------------------------------------


def denormalize_latents(vae: AutoencoderKLWan, latents: torch.Tensor) -> torch.Tensor:
    """Diffusion latents -> VAE latents, as WanPipeline does before decoding: x * std + mean per channel."""
    shape = (1, vae.config["z_dim"], 1, 1, 1)
    mean = torch.tensor(vae.config["latents_mean"]).view(shape).to(latents.device, latents.dtype)
    # Written as WanPipeline writes it (divide by 1/std) so the result matches it bit for bit.
    inv_std = 1.0 / torch.tensor(vae.config["latents_std"]).view(shape).to(latents.device, latents.dtype)
    return latents / inv_std + mean


def _can_stream(vae: Any) -> bool:
    """Frame-by-frame decoding relies on AutoencoderKLWan internals; anything else decodes in one call."""
    decoder = getattr(vae, "decoder", None)
    return (
        type(vae) is AutoencoderKLWan
        and not vae.use_tiling
        and vae.config.patch_size is None
        and not hasattr(vae, "_hf_hook")  # cpu offload hooks wrap decode(), not the decoder
        and callable(getattr(vae, "clear_cache", None))
        and decoder is not None
        and "first_chunk" in inspect.signature(decoder.forward).parameters
    )


@torch.no_grad()
def _decode_all(vae: AutoencoderKLWan, z: torch.Tensor) -> torch.Tensor:
    return vae.decode(z, return_dict=False)[0]


@torch.no_grad()
def _post_quant_conv(vae: AutoencoderKLWan, z: torch.Tensor) -> torch.Tensor:
    return vae.post_quant_conv(z)


@torch.no_grad()
def _decode_latent_frame(vae: AutoencoderKLWan, x: torch.Tensor, i: int) -> torch.Tensor:
    vae._conv_idx = [0]
    out = vae.decoder(x[:, :, i : i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=i == 0)
    return torch.clamp(out, min=-1.0, max=1.0)


@torch.no_grad()
def _fit_preview_projection(vae: AutoencoderKLWan, scale: int) -> torch.Tensor:
    """Fit the (z_dim + 1, 3) linear map from diffusion latents (plus a bias) to RGB in [0, 1] that the
    preview uses, by decoding one frame of random latents with this very VAE and solving least squares
    against the RGB averaged over each latent pixel's footprint. Works for any checkpoint without a
    hand-made table, and costs one small decode at load time."""
    z_dim = vae.config["z_dim"]
    noise = torch.randn(1, z_dim, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    device = next(vae.parameters()).device
    decoded = _decode_all(vae, denormalize_latents(vae, noise.to(device, vae.dtype)))[:, :, 0]
    return fit_rgb_projection(noise[0, :, 0], decoded, scale)


def _image_mode_of(pipe: AnyWanPipeline) -> WanImageToVideoPipeline | None:
    """Wan 2.2 TI2V's image-to-video pipeline over the loaded components, or None for other checkpoints.
    TI2V's image conditioning is the clean first latent frame held by per-token timesteps (expand_timesteps),
    so it needs no CLIP image encoder."""
    if not isinstance(pipe, WanPipeline) or not pipe.config.get("expand_timesteps", False):
        return None
    image_pipe = WanImageToVideoPipeline(
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        vae=pipe.vae,
        scheduler=pipe.scheduler,
        transformer=pipe.transformer,
        transformer_2=pipe.transformer_2,
        boundary_ratio=pipe.config.get("boundary_ratio"),
        expand_timesteps=True,
    )
    image_pipe.set_progress_bar_config(disable=True)
    return image_pipe


def _flow_shift_of(pipe: AnyWanPipeline) -> float | None:
    """The shift of the pipeline's flow-matching scheduler (UniPC calls it flow_shift, Euler shift)."""
    config = pipe.scheduler.config
    for key in ("flow_shift", "shift"):
        if key in config:
            return float(config[key])
    return None


def _set_flow_shift(pipe: AnyWanPipeline, shift: float | None) -> None:
    """Rebuild the scheduler with `shift` when it differs (a config copy: cheap, and schedulers hold no weights)."""
    current = _flow_shift_of(pipe)
    if shift is None or current is None or shift == current:
        return
    key = "flow_shift" if "flow_shift" in pipe.scheduler.config else "shift"
    pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, **{key: shift})
