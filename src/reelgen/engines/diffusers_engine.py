"""What every diffusers family engine shares: residency, the GPU memory plan, and one reported denoising call.

A family module (wan.py, ltx.py, cogvideox.py, hunyuan.py) subclasses `DiffusersEngine` and writes only what
differs between families: how its activation costs scale (`_profile`), how its latent->RGB preview map is
fitted (`_fit_preview`), what its pipeline would reject or silently round (`_check_request`), and `run`: which
pipeline to call with which arguments and how its latents are decoded. `run` hands the pipeline call to
`_denoise`, which reports every step to the sink with step times, applies the request's LoRA and speed preset
for that call only, and frees memory on the way out, also when the job fails or is cancelled.

Not re-entrant: one job at a time, and a VideoOutput's chunks must be consumed before the next `run`
(`_generation` lets a stale output raise instead of decoding with another job's state).
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import partial
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from diffusers.utils import deprecation_utils

from reelgen.domain.errors import InvalidParams
from reelgen.domain.models import ModelSpec, Size
from reelgen.engines.base import STAGE_GENERATE, AudioTrack, Engine, ProgressSink, StageRequest, VideoOutput
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
    largest_batch,
    measure_footprint,
    placement_for,
    plan_job,
    set_vae_tiling,
    with_vae_tiles,
)
from reelgen.engines.parallel import ContextParallel, enable_context_parallel
from reelgen.engines.presets import denoisers, speed_preset
from reelgen.engines.previews import Preview

FRAMES_PER_CHUNK = 16

# diffusers renamed from_pretrained's `torch_dtype` to `dtype` (huggingface/diffusers#14205) and warns on the
# old name; releases before that accept only `torch_dtype`.
DTYPE_KWARG = "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"

PipeT = TypeVar("PipeT")
# The pipeline's callback_on_step_end: (pipeline, step index, timestep, requested tensors) -> tensor overrides.
StepCallback = Callable[[Any, int, Any, dict[str, torch.Tensor]], dict]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    """bfloat16 on GPUs (what the open checkpoints are trained in), float32 on CPU (bf16 matmuls are slow there)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown torch dtype {dtype!r}")
    return resolved


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """(1, 3, t, H, W) in [-1, 1] -> (t, H, W, 3) uint8, the same arithmetic as diffusers' postprocess followed
    by round(x * 255). Converted on the device so only bytes cross to the host."""
    x = (video[0].float() / 2 + 0.5).clamp(0, 1)
    return (x * 255).round().to(torch.uint8).permute(1, 2, 3, 0).contiguous().cpu().numpy()


class DiffusersEngine(Engine, Generic[PipeT]):
    """One diffusers pipeline, built on first `load` and kept resident until `unload`.

    `pipeline_loader` returns the pipeline on the CPU with its weights already in their dtype (from_pretrained's
    dtype argument keeps the modules a family needs in float32; a later `.to(dtype)` would not). `load` places it
    on `device` as the memory plan says: whole, or offloaded.
    """

    def __init__(
        self,
        spec: ModelSpec,
        pipeline_loader: Callable[[], PipeT],
        device: str = "cpu",
        *,
        frames_per_chunk: int = FRAMES_PER_CHUNK,
        upscale: int = 1,
    ) -> None:
        self.spec = spec
        self.device = device
        self.frames_per_chunk = frames_per_chunk
        # Models trained below their display size (reelgen-demo: 64x64 shown at 128x128) generate at
        # size / upscale and return frames enlarged by this integer factor.
        self.upscale = upscale
        self._loader = pipeline_loader
        self._load_lock = threading.Lock()
        self._pipe: PipeT | None = None
        self._preview_projection: torch.Tensor | None = None
        self._load_seconds = 0.0
        # Bumped by every run/unload so a VideoOutput from an earlier run knows it may no longer decode.
        self._generation = 0
        # Per-request LoRAs (engines/lora.py): loaded once each, switched on and off without reloading the model.
        self.adapters = AdapterCache()
        # A diffusers attention backend for the transformers (REELGEN_ATTENTION_BACKEND); None: diffusers' default.
        self.attention_backend: str | None = None
        # Regional torch.compile of the transformers' repeated blocks at load (REELGEN_COMPILE=blocks).
        self.compile_blocks = False
        # Transformer weights stored in float8, computed layer by layer in their dtype (REELGEN_FP8_WEIGHTS).
        self.fp8_weights = False
        # Keyword arguments for torch.compile (tests pass backend="eager": traced by dynamo, no code generated).
        self.compile_options: dict[str, Any] = {}
        # GPU memory (engines/memory.py): the worker sets the policy from settings; `load` places the weights
        # (the placement holds for the largest job the model accepts when it can), `run` plans every job first.
        self.memory_policy = MemoryPolicy()
        # enable_tiling() keyword arguments (tile sizes); tests set small tiles for tiny VAEs.
        self.vae_tile_options: dict[str, Any] = {}
        self.memory_plan: MemoryPlan | None = None
        # One video across the GPUs of a torchrun job (engines/parallel.py; `reelgen worker --context-parallel`).
        self.context_parallel: ContextParallel | None = None
        self._placement: MemoryMode = "none"
        self._footprint: Footprint | None = None
        self._free_at_load: int | None = None

    # Whether this family's run_batch makes several variations in one denoising pass (else one per call).
    batches_variations = False

    # -- what a family says ------------------------------------------------------------------------------

    @abstractmethod
    def _profile(self, pipe: PipeT) -> ActivationProfile:
        """Activation costs of this checkpoint (engines/memory.py), from its real configuration and tile size."""

    @abstractmethod
    def _fit_preview(self, pipe: PipeT) -> torch.Tensor:
        """The latent->RGB preview map (engines/previews.py), fitted with the pipeline's VAE on the device."""

    def _transformer_profile(
        self, family: str, pipe: Any, *, spatial: int, temporal: int, patch: int
    ) -> ActivationProfile:
        """`_profile` for a pipeline with one `transformer`: the family's activation costs at this checkpoint's
        compression, patch size and width, with the VAE tile size in use."""
        config = pipe.transformer.config
        hidden = config.num_attention_heads * config.attention_head_dim
        profile = family_profile(family, spatial=spatial, temporal=temporal, patch=patch, hidden=hidden)
        return with_vae_tiles(profile, pipe.vae, self.vae_tile_options)

    def _on_load(self, pipe: PipeT) -> None:
        """Called once the pipeline is placed, before it becomes the engine's (e.g. to build an image mode)."""

    def _on_unload(self) -> None:
        """Drop whatever `_on_load` built."""

    # -- residency ---------------------------------------------------------------------------------------

    @property
    def pipe(self) -> PipeT:
        """The loaded pipeline (load() first)."""
        if self._pipe is None:
            raise RuntimeError(f"model {self.spec.id} is not loaded")
        return self._pipe

    def load(self, placement: MemoryMode | None = None) -> None:
        with self._load_lock:
            if self._pipe is not None:
                return
            started = time.perf_counter()
            # Measured before this model's weights arrive (the worker unloaded the previous model already).
            self._free_at_load = device_free_bytes(self.device)
            pipe: Any = self._loader()
            if self.fp8_weights:
                store_weights_in_fp8(pipe)  # before measuring: the memory plan sees the smaller weights
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
            if self.context_parallel is not None and self._placement != "none":
                raise ValueError(
                    f"context parallel keeps the whole of {self.spec.id} on every GPU, and here it would need "
                    f"{self._placement} offloading; use GPUs with more memory or a worker without --context-parallel"
                )
            # The sink reports progress; diffusers' tqdm bars would only clutter worker logs.
            pipe.set_progress_bar_config(disable=True)
            if self._placement != "none":
                # Offload hooks leave parameters off the device: fit the preview map first, with only the VAE
                # (small next to the rest, and on the device for decoding anyway) briefly on the device.
                pipe.vae.to(self.device)
                self._preview_projection = self._fit_preview(pipe)
                pipe.vae.to("cpu")
            apply_placement(pipe, self._placement, self.device)
            if self.context_parallel is not None:
                enable_context_parallel(pipe, self.context_parallel, self.spec.family)
            if self.compile_blocks:
                compile_repeated_blocks(pipe, **self.compile_options)
            if self._placement == "none":
                self._preview_projection = self._fit_preview(pipe)
            self._on_load(pipe)
            self._pipe = pipe
            self._load_seconds = time.perf_counter() - started

    def unload(self) -> None:
        with self._load_lock:
            self._generation += 1
            self._pipe = None
            self._preview_projection = None
            self._on_unload()
        self._free_memory()

    def _free_memory(self, *, collect: bool = True) -> None:
        """Return freed tensors' memory to the device. A full gc pass costs ~0.2 s in a process holding
        torch + transformers, so it runs only when reference cycles may hold tensors (after an exception,
        on unload); on the normal path refcounting has already freed them."""
        if collect:
            gc.collect()
        if self.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()

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
            Size(params.size.width // self.upscale, params.size.height // self.upscale),
            params.num_frames,
            loaded=self._placement,
            free_bytes=self._free_at_load,
            policy=self.memory_policy,
            streams=self.device.startswith("cuda"),
        )
        if reload:
            self.unload()
            self.load(plan.mode)
        set_vae_tiling(self.pipe.vae, plan.vae_tiling, **self.vae_tile_options)  # type: ignore[attr-defined]
        self.memory_plan = plan

    def max_batch(self, request: StageRequest) -> int:
        """Variations per denoising pass for families whose `run_batch` batches (`batches_variations`): as many
        of `request.count` as the job's memory plan leaves room for."""
        if not self.batches_variations or request.count <= 1:
            return 1
        try:
            self.load()
            self._plan_memory(request)
        except ValueError:  # the job's own error comes from run_batch, where the family checks it first
            return 1
        assert self._pipe is not None and self._footprint is not None and self.memory_plan is not None
        params = request.params
        return largest_batch(
            self._footprint,
            self._profile(self._pipe),
            Size(params.size.width // self.upscale, params.size.height // self.upscale),
            params.num_frames,
            self.memory_plan,
            free_bytes=self._free_at_load,
            policy=self.memory_policy,
            limit=request.count,
        )

    # -- checks every family makes -----------------------------------------------------------------------

    def _check_stage(self, request: StageRequest, *, takes_image: bool) -> None:
        """Only "generate" from text (and an image where the model takes one) runs today."""
        if request.stage != STAGE_GENERATE:
            raise InvalidParams(f"model {self.spec.id} cannot run stage {request.stage!r}", param="stage")
        if request.init_frames is not None:
            raise InvalidParams(f"model {self.spec.id} cannot continue a video yet", param="input_reference")
        image = request.input_image
        if image is None:
            return
        if not takes_image:
            raise InvalidParams(f"model {self.spec.id} is text-to-video only", param="input_reference")
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise InvalidParams("the input image must be uint8 RGB (H, W, 3)", param="input_reference")

    def _check_grid(self, request: StageRequest, *, multiple: int, temporal: int) -> None:
        """Refuse sizes and frame counts the pipeline would reject late or silently round."""
        params = request.params
        if params.size.width % multiple or params.size.height % multiple:
            raise InvalidParams(f"width and height must be multiples of {multiple}; got {params.size}", param="size")
        if params.num_frames < 1 or (params.num_frames - 1) % temporal:
            raise InvalidParams(f"{self.spec.id} makes {temporal}k+1 frames; got {params.num_frames}", param="seconds")

    # -- one denoising call ------------------------------------------------------------------------------

    def _denoise(
        self,
        request: StageRequest,
        sink: ProgressSink,
        call: Callable[[StepCallback], Any],
        preview: Callable[[torch.Tensor], Preview | None],
    ) -> tuple[Any, dict[str, float]]:
        """Run `call(on_step_end)` (the family's pipeline call, with `callback_on_step_end=on_step_end` and
        `callback_on_step_end_tensor_inputs=["latents"]`) with the request's LoRA and speed preset on; return
        its result and the job's timing stats. JobCancelled from the sink propagates after cleanup."""
        self._generation += 1
        params = request.params
        stats: dict[str, float] = {"load_seconds": self._load_seconds}
        step_seconds: list[float] = []
        mark = time.perf_counter()

        def on_step_end(pipeline: Any, i: int, t: Any, tensors: dict[str, torch.Tensor]) -> dict:
            nonlocal mark
            # Time spent in the sink (database writes, previews) is not model time: keep it out of the ETA.
            step_seconds.append(time.perf_counter() - mark)
            sink.step(i + 1, pipeline.num_timesteps, preview(tensors["latents"]))
            mark = time.perf_counter()
            return {}

        started = time.perf_counter()
        failed = True
        # The request's LoRA and speed preset, on for this call only (removed in the finally below). Image modes
        # share the loaded pipeline's transformers, so adapters and caches set through it serve them too.
        tuning = ExitStack()
        try:
            tuning.enter_context(self.adapters.applied(self.pipe, request.lora))
            tuning.enter_context(
                speed_preset(
                    self.pipe, self.spec.family, params.preset, params.steps, attention_backend=self.attention_backend
                )
            )
            result = call(on_step_end)
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
        return result, stats

    # -- decoding ----------------------------------------------------------------------------------------

    def _lazy_chunks(self, decode: Callable[[], np.ndarray], stats: dict[str, float]) -> Iterator[np.ndarray]:
        """For VAEs that decode a clip in one call: decode on the first `next()` (so the worker's encoder is
        ready), record `decode_seconds`, then yield uint8 (t, H, W, 3) chunks of `frames_per_chunk` frames."""
        started = time.perf_counter()
        frames = decode()
        del decode  # its closure holds the latents
        stats["decode_seconds"] = time.perf_counter() - started
        for start in range(0, len(frames), self.frames_per_chunk):
            yield frames[start : start + self.frames_per_chunk]

    def _video_output(
        self,
        request: StageRequest,
        chunks: Iterator[np.ndarray],
        stats: dict[str, float],
        *,
        audio: AudioTrack | None = None,
    ) -> VideoOutput:
        """The VideoOutput of a job: the requested size, rate and length, with the family's chunks (and sound)."""
        params = request.params
        return VideoOutput(
            width=params.size.width,
            height=params.size.height,
            fps=params.fps,
            num_frames=params.num_frames,
            chunks=chunks,
            stats=stats,
            audio=audio,
        )

    # -- variations in one pass (families with `batches_variations`) ------------------------------------

    def _one_variation(self, request: StageRequest, sink: ProgressSink) -> VideoOutput:
        """`run` of a family that batches: a single variation is a batch of one."""
        if request.count != 1:
            raise ValueError("run makes one variation; use run_batch for several")
        return self.run_batch(request, sink)[0]

    def _batch_outputs(
        self,
        request: StageRequest,
        stats: dict[str, float],
        decode: Callable[[int], np.ndarray],
        soundtrack: Callable[[int], AudioTrack] | None = None,
    ) -> list[VideoOutput]:
        """One VideoOutput per variation of a pass, each decoding its own clip (`decode(i)`) when it is read, one
        after another (decode times are per clip). A family that makes sound decodes each clip's soundtrack
        (`soundtrack(i)`) at once: it is small, and the writer needs it before the first frame."""
        outputs = []
        for i in range(request.count):
            own = dict(stats)
            audio = None
            if soundtrack is not None:
                started = time.perf_counter()
                audio = soundtrack(i)
                own["audio_decode_seconds"] = time.perf_counter() - started
            outputs.append(self._video_output(request, self._lazy_chunks(partial(decode, i), own), own, audio=audio))
        return outputs

    def _check_current(self, generation: int) -> None:
        if self._pipe is None or generation != self._generation:
            raise RuntimeError("this engine ran another job (or unloaded) before this video was decoded")


def store_weights_in_fp8(pipe: Any) -> int:
    """Layerwise casting: each transformer layer's weights are kept in float8 e4m3 and upcast to the model's dtype
    just for its forward (diffusers skips norms, embeddings and output projections by default). Returns how
    many transformers were cast."""
    cast = 0
    for model in denoisers(pipe):
        model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=model.dtype)
        cast += 1
    return cast


def compile_repeated_blocks(pipe: Any, **options: Any) -> int:
    """Regional compilation: torch.compile each repeated transformer block instead of the whole model (the blocks
    are alike, so the compiled code is reused and compiling costs seconds, not minutes). Step caches and offload
    hooks patch the blocks' forward, which the compiled call still runs (with graph breaks where a cache branches on
    data). Returns how many transformers were compiled."""
    compiled = 0
    for model in denoisers(pipe):
        if getattr(model, "_repeated_blocks", None):
            model.compile_repeated_blocks(**options)
            compiled += 1
    return compiled


def cpu_generator(seed: int) -> torch.Generator:
    """Noise drawn on the CPU: the same seed gives the same video on any device."""
    return torch.Generator(device="cpu").manual_seed(seed)


def variation_generators(request: StageRequest) -> torch.Generator | list[torch.Generator]:
    """The pipeline's `generator` for a pass of `request.count` variations: one each (seed + i, the noise a call of
    its own would draw; diffusers draws a batch's noise sample by sample from such a list), one alone."""
    return pipeline_generator(seed_generators(request))


def seed_generators(request: StageRequest) -> list[torch.Generator]:
    """One CPU generator per variation of `request` (seed + i), for families that also draw decode noise from it."""
    return [cpu_generator(seed) for seed in request.seeds]


def pipeline_generator(generators: list[torch.Generator]) -> torch.Generator | list[torch.Generator]:
    """The pipeline's `generator` argument for these per-variation generators: the list, or the one alone."""
    return generators[0] if len(generators) == 1 else generators
