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

import gc
import inspect
import logging
import threading
import time
import traceback
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import ExitStack
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
from diffusers.utils import deprecation_utils

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
from reelgen.engines.weights import require_weights
from reelgen.media.resize import upscale_frames

FRAMES_PER_CHUNK = 16
# Previews are upsampled from latent resolution (1/8 of the video) towards this long side, at most 4x.


AnyWanPipeline = WanPipeline | WanImageToVideoPipeline

# diffusers renamed from_pretrained's `torch_dtype` to `dtype` (huggingface/diffusers#14205) and warns on the
# old name; releases before that accept only `torch_dtype`.
_DTYPE_KWARG = "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    """bfloat16 on GPUs (what Wan checkpoints are trained in), float32 on CPU (bf16 matmuls are slow there)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown torch dtype {dtype!r}")
    return resolved


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
    vae = AutoencoderKLWan.from_pretrained(source, subfolder="vae", **{_DTYPE_KWARG: torch.float32})
    pipe = WanPipeline.from_pretrained(source, vae=vae, **{_DTYPE_KWARG: dtype})
    return align_weights(pipe.to(device))


def load_wan_i2v_pipeline(source: str | Path, *, dtype: torch.dtype, device: str) -> WanImageToVideoPipeline:
    """`load_wan_pipeline` for image-to-video checkpoints (Wan 2.1 I2V with its CLIP image encoder, Wan 2.2 I2V
    A14B without one): the same float32 VAE, loaded as WanImageToVideoPipeline."""
    vae = AutoencoderKLWan.from_pretrained(source, subfolder="vae", **{_DTYPE_KWARG: torch.float32})
    pipe = WanImageToVideoPipeline.from_pretrained(source, vae=vae, **{_DTYPE_KWARG: dtype})
    return align_weights(pipe.to(device))


def create_engine(
    spec: ModelSpec,
    device: str | None = None,
    *,
    source: str,
    dtype: str | None = None,
    max_sequence_length: int = 512,
    image_to_video: bool = False,
    flow_shift: Mapping[str, float] | None = None,
) -> WanEngine:
    """Registry factory for real Wan checkpoints: `register(spec, "reelgen.engines.wan:create_engine",
    options={"source": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"})`; add `"image_to_video": True` for I2V checkpoints
    and `"flow_shift": {"1280x720": 5.0}` where a size needs another scheduler shift than the checkpoint ships.

    Fails here, before any job work, when the weights are missing and cannot be downloaded (HF_HUB_OFFLINE)."""
    require_weights(source)
    device = device or default_device()
    torch_dtype = resolve_dtype(dtype, device)
    loader = load_wan_i2v_pipeline if image_to_video else load_wan_pipeline
    return WanEngine(
        spec,
        # Loaded on the CPU: the engine places it on `device` as its memory plan says (whole, or offloaded).
        lambda: loader(source, dtype=torch_dtype, device="cpu"),
        device,
        torch_dtype,
        max_sequence_length=max_sequence_length,
        flow_shift=flow_shift,
    )


class WanEngine(Engine):
    """One Wan pipeline, built on first `load` and kept resident until `unload`.

    `pipeline_loader` returns the pipeline with its weights already in `dtype`: from_pretrained's dtype
    argument keeps the transformer modules Wan needs in float32 (norms, time embedding, RoPE), a later
    `.to(dtype)` would not. The engine only moves the pipeline to `device`.

    Not re-entrant: one job at a time, and a VideoOutput's chunks must be consumed before the next `run`
    (decoding uses the VAE's causal cache; a stale output raises instead of returning a corrupted clip).
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
        self.spec = spec
        # Models trained below their display size (reelgen-demo: 64x64 shown at 128x128) generate at
        # size / upscale and return frames enlarged by this integer factor.
        self.upscale = upscale
        self.device = device
        self.dtype = dtype
        self.max_sequence_length = max_sequence_length
        # Scheduler shift per size ("WIDTHxHEIGHT"), where it differs from the checkpoint's scheduler config:
        # Wan 2.1 ships shift 3 (right for 480p) and wants 5 at 720p. Sizes not listed use the shipped value.
        self.flow_shift = dict(flow_shift or {})
        self.frames_per_chunk = frames_per_chunk
        self._loader = pipeline_loader
        self._load_lock = threading.Lock()
        self._pipe: AnyWanPipeline | None = None
        # Wan 2.2 TI2V only: the same components as an image-to-video pipeline (no second copy of the weights).
        self._image_pipe: WanImageToVideoPipeline | None = None
        self._preview_projection: torch.Tensor | None = None
        self._shipped_shift: float | None = None
        self._load_seconds = 0.0
        # Bumped by every run/unload so a VideoOutput from an earlier run knows it may no longer decode.
        self._generation = 0
        # Per-request LoRAs (engines/lora.py): loaded once each, switched on and off without reloading the model.
        self.adapters = AdapterCache()
        # A diffusers attention backend for the transformers (REELGEN_ATTENTION_BACKEND); None: diffusers' default.
        self.attention_backend: str | None = None
        # GPU memory (engines/memory.py): the worker sets the policy from settings; `load` places the weights
        # (the placement holds for the largest job the model accepts when it can), `run` plans every job first.
        self.memory_policy = MemoryPolicy()
        # enable_tiling() keyword arguments (tile sizes); tests set small tiles for tiny VAEs.
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
            # Measured before this model's weights arrive (the worker unloaded the previous model already).
            self._free_at_load = device_free_bytes(self.device)
            pipe = self._loader()
            self._footprint = measure_footprint(pipe.components)
            self._placement = placement or placement_for(
                self.spec,
                self._footprint,
                self._profile(pipe),
                self._free_at_load,
                self.memory_policy,
                streams=self.device.startswith("cuda"),
                upscale=self.upscale,
            )
            # The sink reports progress; diffusers' tqdm bars would only clutter worker logs.
            pipe.set_progress_bar_config(disable=True)
            if self._placement != "none":
                # Offload hooks leave parameters off the device: fit the preview map first, with only the VAE
                # (small next to the rest, and on the device for decoding anyway) briefly on the device.
                self._preview_projection = _fit_preview_projection(
                    pipe.vae.to(self.device), pipe.vae_scale_factor_spatial
                )
                pipe.vae.to("cpu")
            apply_placement(pipe, self._placement, self.device)
            if self._placement == "none":
                self._preview_projection = _fit_preview_projection(pipe.vae, pipe.vae_scale_factor_spatial)
            self._image_pipe = _image_mode_of(pipe)
            self._shipped_shift = _flow_shift_of(pipe)
            self._pipe = pipe
            self._load_seconds = time.perf_counter() - started

    def unload(self) -> None:
        with self._load_lock:
            self._generation += 1
            self._pipe = self._image_pipe = None
            self._preview_projection = None
        self._free_memory()

    def _free_memory(self, *, collect: bool = True) -> None:
        """Return freed tensors' memory to the device. A full gc pass costs ~0.2 s in a process holding
        torch + transformers, so it runs only when reference cycles may hold tensors (after an exception,
        on unload); on the normal path refcounting has already freed them."""
        if collect:
            gc.collect()
        if self.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _profile(self, pipe: AnyWanPipeline) -> ActivationProfile:
        """Activation costs of this checkpoint (engines/memory.py), from its real configuration and tile size."""
        config = pipe.transformer.config
        profile = family_profile(
            "wan",
            spatial=pipe.vae_scale_factor_spatial,
            temporal=pipe.vae_scale_factor_temporal,
            patch=config.patch_size[1],
            hidden=config.num_attention_heads * config.attention_head_dim,
        )
        return with_vae_tiles(profile, pipe.vae, self.vae_tile_options)

    def _plan_memory(self, request: StageRequest) -> None:
        """Plan this job's memory before any work: DoesNotFit (with what would fit) when it cannot run here;
        a reload with a placement that needs less memory when the loaded one would not hold it; VAE tiling on
        or off for this job."""
        assert self._pipe is not None and self._footprint is not None
        params = request.params
        plan, reload = plan_job(
            # The "what fits" list names the spec's sizes: only when they are the sizes generated.
            self.spec if self.upscale == 1 else None,
            self._footprint,
            self._profile(self._pipe),
            type(params.size)(params.size.width // self.upscale, params.size.height // self.upscale),
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

    # -- one job -----------------------------------------------------------------------------------------

    def run(self, request: StageRequest, sink: ProgressSink) -> VideoOutput:
        self.load()
        assert self._pipe is not None
        # A TI2V checkpoint given an image runs its image-to-video mode; otherwise the loaded pipeline.
        pipe = self._image_pipe if self._image_pipe is not None and request.input_image is not None else self._pipe
        self._check_request(pipe, request)
        self._plan_memory(request)  # may reload the pipeline with more offloading
        pipe = self._image_pipe if self._image_pipe is not None and request.input_image is not None else self._pipe
        assert pipe is not None
        params = request.params
        _set_flow_shift(pipe, self.flow_shift.get(str(params.size), self._shipped_shift))
        self._generation += 1
        stats: dict[str, float] = {"load_seconds": self._load_seconds}
        step_seconds: list[float] = []
        mark = time.perf_counter()

        def on_step_end(pipeline: AnyWanPipeline, i: int, t: Any, tensors: dict[str, torch.Tensor]) -> dict:
            nonlocal mark
            # Time spent in the sink (database writes, previews) is not model time: keep it out of the ETA.
            step_seconds.append(time.perf_counter() - mark)
            sink.step(i + 1, pipeline.num_timesteps, self._preview(tensors["latents"]))
            mark = time.perf_counter()
            return {}

        # Image-to-video: the reference image, resized by the pipeline to the requested size.
        image_input: dict[str, Any] = {}
        if isinstance(pipe, WanImageToVideoPipeline):
            assert request.input_image is not None
            image_input["image"] = PIL.Image.fromarray(np.ascontiguousarray(request.input_image), mode="RGB")
        started = time.perf_counter()
        failed = True
        # The request's LoRA and speed preset, on for this call only (removed in the finally below).
        tuning = ExitStack()
        try:
            tuning.enter_context(self.adapters.applied(self._pipe, request.lora))
            tuning.enter_context(
                speed_preset(
                    pipe, self.spec.family, params.preset, params.steps, attention_backend=self.attention_backend
                )
            )
            latents = pipe(
                **image_input,
                prompt=params.prompt,
                negative_prompt=params.negative_prompt or None,
                height=params.size.height // self.upscale,
                width=params.size.width // self.upscale,
                num_frames=pipeline_num_frames(pipe, params.num_frames),
                num_inference_steps=params.steps,
                guidance_scale=params.guidance_scale,
                # Noise drawn on the CPU: the same seed gives the same video on any device.
                generator=torch.Generator(device="cpu").manual_seed(request.seed),
                output_type="latent",
                return_dict=False,
                callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=["latents"],
                max_sequence_length=self.max_sequence_length,
            )[0]
            failed = False
        except BaseException as e:
            # The traceback keeps the pipeline's frames alive, and with them every intermediate tensor,
            # until the worker drops the exception; clearing their locals lets the finally below free them.
            traceback.clear_frames(e.__traceback__)
            raise
        finally:
            tuning.close()
            self._free_memory(collect=failed)

        stats["denoise_seconds"] = time.perf_counter() - started
        # The first step also pays for prompt encoding and setup; later steps are what an ETA needs.
        steady = step_seconds[1:] or step_seconds
        stats["mean_step_seconds"] = sum(steady) / len(steady)
        stats["first_step_seconds"] = step_seconds[0]
        return VideoOutput(
            width=params.size.width,
            height=params.size.height,
            fps=params.fps,
            num_frames=params.num_frames,
            chunks=self._decode(latents, stats, self._generation),
            stats=stats,
        )

    def _check_request(self, pipe: AnyWanPipeline, request: StageRequest) -> None:
        """Refuse what the pipeline would silently 'fix' (it rounds sizes and frame counts down)."""
        if request.stage != STAGE_GENERATE:
            raise InvalidParams(f"model {self.spec.id} cannot run stage {request.stage!r}", param="stage")
        if request.init_frames is not None:
            raise InvalidParams(f"model {self.spec.id} cannot continue a video yet", param="input_reference")
        image = request.input_image
        if isinstance(pipe, WanImageToVideoPipeline):
            if image is None:
                raise InvalidParams(
                    f"model {self.spec.id} animates an image: send input_reference", param="input_reference"
                )
            if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
                raise InvalidParams("the input image must be uint8 RGB (H, W, 3)", param="input_reference")
        elif image is not None:
            raise InvalidParams(f"model {self.spec.id} is text-to-video only", param="input_reference")
        params = request.params
        multiple = pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1] * self.upscale
        if params.size.width % multiple or params.size.height % multiple:
            raise InvalidParams(f"width and height must be multiples of {multiple}; got {params.size}", param="size")
        temporal = pipe.vae_scale_factor_temporal
        if params.num_frames < 1 or (params.num_frames - 1) % temporal:
            raise InvalidParams(f"{self.spec.id} makes {temporal}k+1 frames; got {params.num_frames}", param="seconds")

    # -- previews ----------------------------------------------------------------------------------------

    def _preview(self, latents: torch.Tensor) -> Callable[[], np.ndarray]:
        """A lazy preview of the middle frame: a linear latent->RGB map, no VAE. The sink decides whether
        to call it; the copy is one latent frame, so offering it every step is free."""
        projection = self._preview_projection
        assert projection is not None
        middle = latents[0, :, latents.shape[2] // 2].detach().clone()

        def render() -> np.ndarray:
            return project_to_rgb(middle, projection, max_upscale=4)

        return render

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
        pipe = self._pipe
        if pipe is None or generation != self._generation:
            raise RuntimeError("this engine ran another job (or unloaded) before this video was decoded")
        vae = pipe.vae
        z = _denormalize(vae, latents.to(device=self.device, dtype=vae.dtype))
        if not _can_stream(vae):
            yield _to_uint8_frames(_decode_all(vae, z))
            return
        # Exactly AutoencoderKLWan._decode, one latent frame per resume: its decoder is causal in time and
        # carries state between frames in the VAE's feature cache, so frame-by-frame output is bit-identical
        # to decoding the whole clip (tested against diffusers' own output).
        vae.clear_cache()
        try:
            x = _post_quant_conv(vae, z)
            for i in range(x.shape[2]):
                if generation != self._generation:
                    raise RuntimeError("this engine ran another job (or unloaded) before this video was decoded")
                yield _to_uint8_frames(_decode_latent_frame(vae, x, i))
        finally:
            if generation == self._generation:  # otherwise the cache belongs to a newer job now
                vae.clear_cache()


# -- helpers (pure functions of tensors) ------------------------------------------------------------------


def _denormalize(vae: AutoencoderKLWan, latents: torch.Tensor) -> torch.Tensor:
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


def _to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """(1, 3, t, H, W) in [-1, 1] -> (t, H, W, 3) uint8, the same arithmetic as diffusers' postprocess
    followed by round(x * 255). Converted on the device so only bytes cross to the host."""
    x = (video[0].float() / 2 + 0.5).clamp(0, 1)
    return (x * 255).round().to(torch.uint8).permute(1, 2, 3, 0).contiguous().cpu().numpy()


@torch.no_grad()
def _fit_preview_projection(vae: AutoencoderKLWan, scale: int) -> torch.Tensor:
    """Fit the (z_dim + 1, 3) linear map from diffusion latents (plus a bias) to RGB in [0, 1] that the
    preview uses, by decoding one frame of random latents with this very VAE and solving least squares
    against the RGB averaged over each latent pixel's footprint. Works for any checkpoint without a
    hand-made table, and costs one small decode at load time."""
    z_dim = vae.config["z_dim"]
    noise = torch.randn(1, z_dim, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    device = next(vae.parameters()).device
    decoded = _decode_all(vae, _denormalize(vae, noise.to(device, vae.dtype)))[:, :, 0]
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
