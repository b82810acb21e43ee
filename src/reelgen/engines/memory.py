"""GPU memory policy: which placement a job runs with, chosen before it starts. Pure arithmetic, torch-free.

A worker asks `plan_memory` before every run. Given what the model weighs (`Footprint`, measured from the
loaded pipeline, or stated per catalog entry before download), what the job's activations will take
(`ActivationProfile` x the requested size and frame count), the device memory free for it and the operator's
override (REELGEN_MEMORY_MODE, REELGEN_VAE_TILING), it returns a frozen `MemoryPlan`: the cheapest placement
whose estimated peak fits, and whether the VAE decodes in tiles. When nothing fits, even sequential offload
with a tiled VAE, it raises `DoesNotFit` before any work, with the sizes / frame counts that would fit or the
memory the job needs: never an out-of-memory error half-way through a job.

Placements, fastest first (diffusers names):

- `none`: every component on the GPU.
- `model_offload` (`pipe.enable_model_cpu_offload()`): whole components move to the GPU when they run, one at a
  time: the peak is the biggest component (one Wan 2.2 expert) plus its activations.
- `group_offload` (`pipe.enable_group_offload(..., offload_type="leaf_level", use_stream=True)`): layers are
  fetched on a CUDA side stream while the previous ones compute; a few % of a component is on the GPU at once.
  CUDA only (it needs streams), and pinned host memory for the weights.
- `sequential` (`pipe.enable_sequential_cpu_offload()`): accelerate's per-layer hooks; the smallest peak and
  the slowest run.

The estimates (documented so they can be checked against measurements; "rough" means within ~30 %):

- latent tokens = ((frames - 1) // t + 1) * (H // (s * p)) * (W // (s * p)), with the VAE's temporal (t) and
  spatial (s) compression and the transformer's patch (p).
- transformer activations = tokens * hidden * 2 bytes * 16 * cfg_batch: ~16 live bf16 copies of the hidden state
  at a block's peak (residual, norms, q/k/v/out, the ~4x FFN intermediate) with memory-efficient attention;
  cfg_batch is 2 where the pipeline batches the conditional and unconditional passes (LTX), 1 where it runs
  them one after the other (Wan).
- VAE decode, untiled = decoded pixels at once * bytes per pixel + the output video (H * W * frames * 3 * 4).
  Wan's causal decoder holds 4 frames at a time (one latent frame), ~1.5 KB per pixel (96 fp32 channels, ~4
  live tensors); LTX decodes the whole clip at once, ~0.5 KB per pixel (128 bf16 channels, ~2 live tensors).
  Tiled: the same for one tile (Wan 256x256 px; LTX 512x512 px x 16 frames, decoded frame-wise).
- 10 % of the free memory is kept back for the allocator's fragmentation and kernels' workspaces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from reelgen.domain.errors import ReelgenError
from reelgen.domain.models import ModelSpec, Size

MemoryMode = Literal["none", "model_offload", "group_offload", "sequential"]
# Fastest first: auto takes the first that fits.
MODES: tuple[MemoryMode, ...] = ("none", "model_offload", "group_offload", "sequential")
MODE_SETTINGS = ("auto", *MODES)
TILING_SETTINGS = ("auto", "on", "off")

GIB = 1024**3
# Share of a component on the device at once under group offload (layers in flight + the prefetched ones) and
# sequential offload (one layer).
GROUP_RESIDENT = 0.06
SEQUENTIAL_RESIDENT = 0.02
ACTIVATION_COPIES = 16
HEADROOM = 0.10


class DoesNotFit(ReelgenError, ValueError):
    """The job cannot fit in the device memory here under any placement. A ValueError, so the worker fails the
    job at once instead of retrying it; the message says what would fit."""

    code = "insufficient_gpu_memory"


@dataclass(frozen=True)
class Footprint:
    """Bytes of weights per component, as they sit in memory (parameters + buffers, in the loaded dtype)."""

    # One entry per denoiser: Wan 2.2 A14B has two experts, run one after the other.
    transformers: tuple[int, ...]
    text_encoder: int = 0
    vae: int = 0
    # Image encoder (Wan 2.1 I2V's CLIP) and anything else with weights.
    other: int = 0

    @property
    def total(self) -> int:
        return sum(self.transformers) + self.text_encoder + self.vae + self.other

    @property
    def largest(self) -> int:
        return max((*self.transformers, self.text_encoder, self.vae, self.other))

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> Footprint | None:
        """The catalog's stated figures (GB = 1e9 bytes), or None when the spec states none."""
        f = spec.footprint
        if f is None:
            return None
        return cls(
            transformers=(int(f.transformer_gb * 1e9),) * f.experts,
            text_encoder=int(f.text_encoder_gb * 1e9),
            vae=int(f.vae_gb * 1e9),
            other=int(f.image_encoder_gb * 1e9),
        )


def module_bytes(module: Any) -> int:
    """Parameters + buffers of a torch module, in bytes (duck-typed: no torch import)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def measure_footprint(components: Mapping[str, Any]) -> Footprint:
    """The footprint of a loaded pipeline from its `components` (measured on the weights actually loaded)."""
    transformers: list[int] = []
    text = vae = other = 0
    for name, component in components.items():
        if component is None or not callable(getattr(component, "parameters", None)):
            continue  # tokenizers, schedulers, config values
        size = module_bytes(component)
        if name.startswith("transformer"):
            transformers.append(size)
        elif name.startswith("text_encoder"):
            text += size
        elif name == "vae":
            vae = size
        else:
            other += size
    return Footprint(tuple(transformers) or (0,), text, vae, other)


@dataclass(frozen=True)
class ActivationProfile:
    """What one latent token and one decoded pixel cost a model family (see the module docstring)."""

    spatial: int  # VAE spatial compression
    temporal: int  # VAE temporal compression
    patch: int  # transformer spatial patch
    hidden: int  # transformer width (heads x head dim)
    cfg_batch: int = 1
    # Decoding: bytes per decoded pixel held at once, and how many frames are decoded at once (0: the whole clip).
    decode_bytes_per_pixel: int = 1536
    decode_frames: int = 4
    tile: tuple[int, int, int] = (256, 256, 4)  # tiled decode: height, width, frames per tile

    def tokens(self, size: Size, frames: int) -> int:
        cell = self.spatial * self.patch
        return ((frames - 1) // self.temporal + 1) * (size.height // cell) * (size.width // cell)

    def transformer_bytes(self, size: Size, frames: int) -> int:
        return self.tokens(size, frames) * self.hidden * 2 * ACTIVATION_COPIES * self.cfg_batch

    def decode_bytes(self, size: Size, frames: int, *, tiled: bool) -> int:
        output = size.width * size.height * frames * 3 * 4
        at_once = self.decode_frames or frames
        if tiled:
            pixels = min(size.height, self.tile[0]) * min(size.width, self.tile[1]) * min(frames, self.tile[2])
        else:
            pixels = size.height * size.width * min(frames, at_once)
        return pixels * self.decode_bytes_per_pixel + output


# Per family: compressions, CFG batching and decoder costs; `hidden` comes from the spec or the loaded model.
_FAMILIES: dict[str, ActivationProfile] = {
    "wan": ActivationProfile(spatial=8, temporal=4, patch=2, hidden=1536),
    "ltx": ActivationProfile(
        spatial=32,
        temporal=8,
        patch=1,
        hidden=2048,
        cfg_batch=2,
        decode_bytes_per_pixel=512,
        decode_frames=0,
        tile=(512, 512, 16),
    ),
    # LTX-2: LTX's video VAE and CFG batch; the audio stream's tokens (25 a second) are few next to the video's.
    "ltx2": ActivationProfile(
        spatial=32,
        temporal=8,
        patch=1,
        hidden=4096,
        cfg_batch=2,
        decode_bytes_per_pixel=512,
        decode_frames=0,
        tile=(512, 512, 16),
    ),
    "hunyuan": ActivationProfile(spatial=8, temporal=4, patch=2, hidden=3072, decode_bytes_per_pixel=512),
    "cogvideox": ActivationProfile(
        spatial=8, temporal=4, patch=2, hidden=3072, cfg_batch=2, decode_bytes_per_pixel=512, decode_frames=0
    ),
}


def family_profile(family: str, **overrides: int) -> ActivationProfile:
    """The family's profile (Wan's for unknown families), with measured values (hidden, spatial...) on top."""
    base = _FAMILIES.get(family, _FAMILIES["wan"])
    changes: dict[str, Any] = {k: v for k, v in overrides.items() if v}
    return replace(base, **changes)


def with_vae_tiles(profile: ActivationProfile, vae: Any, options: Mapping[str, Any]) -> ActivationProfile:
    """`profile` with the tile size this VAE will decode with: `options` (what the engine passes to
    enable_tiling), else the VAE's own settings, else the family's."""
    tile = list(profile.tile)
    names = ("tile_sample_min_height", "tile_sample_min_width", "tile_sample_min_num_frames")
    for i, name in enumerate(names):
        value = options.get(name) or getattr(vae, name, None)
        if isinstance(value, int) and value > 0:
            tile[i] = value
    return replace(profile, tile=(tile[0], tile[1], tile[2]))


def spec_profile(spec: ModelSpec) -> ActivationProfile:
    return family_profile(spec.family, hidden=spec.footprint.hidden if spec.footprint else 0)


@dataclass(frozen=True)
class MemoryPolicy:
    """The operator's choices (REELGEN_MEMORY_MODE, REELGEN_VAE_TILING, REELGEN_GPU_MEMORY_GB)."""

    mode: str = "auto"
    vae_tiling: str = "auto"
    # Most device memory a worker plans with (bytes); None: what the device reports free.
    budget_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODE_SETTINGS:
            raise ValueError(f"memory mode must be one of {', '.join(MODE_SETTINGS)}; got {self.mode!r}")
        if self.vae_tiling not in TILING_SETTINGS:
            raise ValueError(f"VAE tiling must be one of {', '.join(TILING_SETTINGS)}; got {self.vae_tiling!r}")

    def budget(self, free_bytes: int | None) -> int | None:
        """What to plan with: the free device memory, capped by the configured budget (either may be unknown)."""
        known = [b for b in (free_bytes, self.budget_bytes) if b is not None]
        return min(known) if known else None


@dataclass(frozen=True)
class MemoryPlan:
    mode: MemoryMode
    vae_tiling: bool
    reason: str
    # Estimated peak device memory of the job (bytes).
    peak_bytes: int


def peak_bytes(
    footprint: Footprint, profile: ActivationProfile, size: Size, frames: int, mode: MemoryMode, tiling: bool
) -> int:
    """Estimated peak device memory of one job under `mode`: the worst of its three phases (prompt encoding,
    denoising, decoding), each = the weights on the device then + that phase's activations."""
    denoiser = max(footprint.transformers)
    act = profile.transformer_bytes(size, frames)
    decode = profile.decode_bytes(size, frames, tiled=tiling)
    if mode == "none":
        return footprint.total + max(act, decode)
    if mode == "model_offload":
        return max(footprint.text_encoder + footprint.other, denoiser + act, footprint.vae + decode)
    if mode == "group_offload":
        # The VAE stays on the device (decode calls bypass the offload hooks); the rest streams layer by layer.
        resident = footprint.vae + int(GROUP_RESIDENT * footprint.largest)
        return resident + max(act, decode)
    return int(SEQUENTIAL_RESIDENT * footprint.largest) + max(act, footprint.vae + decode)


def _candidates(policy: MemoryPolicy, streams: bool) -> list[tuple[MemoryMode, bool]]:
    if policy.mode != "auto":
        modes: tuple[MemoryMode, ...] = (policy.mode,)  # type: ignore[assignment]
    else:
        modes = tuple(m for m in MODES if streams or m != "group_offload")
    tilings = {"auto": (False, True), "on": (True,), "off": (False,)}[policy.vae_tiling]
    # Tiling costs less speed than a stronger offload: try it before moving down the list of modes.
    return [(mode, tiling) for mode in modes for tiling in tilings]


def plan_memory(
    footprint: Footprint,
    profile: ActivationProfile,
    size: Size,
    frames: int,
    *,
    free_bytes: int | None,
    policy: MemoryPolicy = MemoryPolicy(),
    streams: bool = True,
    spec: ModelSpec | None = None,
) -> MemoryPlan:
    """The placement for one job; raises DoesNotFit (listing what fits, from `spec`) when nothing does.

    `free_bytes`: device memory free for this model, with no model of this worker loaded (None: unknown, e.g. on
    a CPU: then nothing is refused and auto means `none`). `streams`: CUDA streams exist (group offload)."""
    candidates = _candidates(policy, streams)
    budget = policy.budget(free_bytes)
    if budget is None:
        mode, tiling = candidates[0]
        return MemoryPlan(
            mode,
            tiling,
            "device memory unknown: " + ("set by REELGEN_MEMORY_MODE" if policy.mode != "auto" else "no offload"),
            peak_bytes(footprint, profile, size, frames, mode, tiling),
        )
    usable = int(budget * (1 - HEADROOM))
    for mode, tiling in candidates:
        peak = peak_bytes(footprint, profile, size, frames, mode, tiling)
        if peak <= usable:
            why = "set by REELGEN_MEMORY_MODE" if policy.mode != "auto" else "the fastest placement that fits"
            return MemoryPlan(
                mode,
                tiling,
                f"{why}: ~{gib(peak)} of {gib(budget)} free at {size}, {frames} frames"
                + (" (VAE tiled)" if tiling else ""),
                peak,
            )
    raise DoesNotFit(_refusal(footprint, profile, size, frames, budget, policy, streams, spec), param="size")


def largest_batch(
    footprint: Footprint,
    profile: ActivationProfile,
    size: Size,
    frames: int,
    plan: MemoryPlan,
    *,
    free_bytes: int | None,
    policy: MemoryPolicy,
    limit: int,
) -> int:
    """How many variations of one job (at most `limit`) can denoise together under `plan`: the transformer's
    activations grow with the batch, decoding stays one clip at a time. All of them when memory is unknown."""
    budget = policy.budget(free_bytes)
    if budget is None:
        return max(1, limit)
    usable = int(budget * (1 - HEADROOM))
    best = 1
    for count in range(2, limit + 1):
        batched = replace(profile, cfg_batch=profile.cfg_batch * count)
        if peak_bytes(footprint, batched, size, frames, plan.mode, plan.vae_tiling) > usable:
            break
        best = count
    return best


def placement_for(
    spec: ModelSpec,
    footprint: Footprint,
    profile: ActivationProfile,
    free_bytes: int | None,
    policy: MemoryPolicy = MemoryPolicy(),
    *,
    streams: bool = True,
    upscale: int = 1,
) -> MemoryMode:
    """The placement to load a model with, so that it rarely changes between jobs: what the largest job the model
    accepts needs; failing that, what its default job needs; failing that too, the most frugal one (its jobs
    then fail their own plan, with what would fit). A later job that needs more offloading reloads the model."""
    largest = max(spec.sizes, key=lambda s: s.width * s.height)
    jobs = [
        (largest, spec.num_frames(spec.max_seconds)),
        (spec.default_size, spec.num_frames(spec.default_seconds)),
    ]
    for size, frames in jobs:
        generated = Size(size.width // upscale, size.height // upscale)
        try:
            return plan_memory(
                footprint, profile, generated, frames, free_bytes=free_bytes, policy=policy, streams=streams
            ).mode
        except DoesNotFit:
            continue
    return _candidates(policy, streams)[-1][0]


def fits_somewhere(
    footprint: Footprint, profile: ActivationProfile, size: Size, frames: int, budget: int, streams: bool = True
) -> bool:
    try:
        plan_memory(footprint, profile, size, frames, free_bytes=budget, streams=streams)
    except DoesNotFit:
        return False
    return True


def smallest_job(spec: ModelSpec) -> tuple[Size, int]:
    return min(spec.sizes, key=lambda s: s.width * s.height), spec.frame_rule.min_frames


def what_fits(
    spec: ModelSpec,
    footprint: Footprint,
    profile: ActivationProfile,
    budget: int,
    policy: MemoryPolicy = MemoryPolicy(),
    streams: bool = True,
) -> list[tuple[Size, int]]:
    """For each size the model makes, the most frames that fit in `budget` (sizes where nothing fits left out)."""
    rule = spec.frame_rule
    counts = [f for f in range(rule.min_frames, rule.max_frames + 1) if (f - rule.offset) % rule.multiple == 0]
    found = []
    for size in spec.sizes:
        best = None
        for frames in counts:  # estimates grow with frames: stop at the first that does not fit
            try:
                plan_memory(footprint, profile, size, frames, free_bytes=budget, policy=policy, streams=streams)
            except DoesNotFit:
                break
            best = frames
        if best is not None:
            found.append((size, best))
    return found


def _refusal(
    footprint: Footprint,
    profile: ActivationProfile,
    size: Size,
    frames: int,
    budget: int,
    policy: MemoryPolicy,
    streams: bool,
    spec: ModelSpec | None,
) -> str:
    mode, tiling = _candidates(policy, streams)[-1]
    needed = peak_bytes(footprint, profile, size, frames, mode, tiling)
    how = f"even with {_describe(mode, tiling)}"
    if policy.mode != "auto":
        how = f"with {_describe(mode, tiling)} (forced by REELGEN_MEMORY_MODE={policy.mode})"
    name = spec.id if spec else "this model"
    head = (
        f"{name} at {size} with {frames} frames needs about {gib(int(needed / (1 - HEADROOM)))} of GPU memory "
        f"{how}; {gib(budget)} is free here"
    )
    if spec is None:
        return head
    fits = what_fits(spec, footprint, profile, budget, policy, streams)
    if fits:
        listed = ", ".join(f"{s} up to {f} frames ({f / spec.fps:.1f} s)" for s, f in _dedupe(fits))
        return f"{head}. What fits: {listed}"
    small, few = smallest_job(spec)
    least = peak_bytes(footprint, profile, small, few, mode, tiling)
    return (
        f"{head}. Nothing {name} makes fits: its smallest job ({small}, {few} frames) needs about "
        f"{gib(int(least / (1 - HEADROOM)))} of free GPU memory"
    )


def _dedupe(fits: Iterable[tuple[Size, int]]) -> list[tuple[Size, int]]:
    seen: set[tuple[int, int]] = set()
    out = []
    for size, frames in fits:
        key = (size.width * size.height, frames)
        if key not in seen:  # landscape and portrait of one size fit alike: name the first
            seen.add(key)
            out.append((size, frames))
    return out


def _describe(mode: MemoryMode, tiling: bool) -> str:
    names = {
        "none": "no offload",
        "model_offload": "model CPU offload",
        "group_offload": "group offload",
        "sequential": "sequential CPU offload",
    }
    return names[mode] + (" and a tiled VAE" if tiling else "")


def gib(n: int) -> str:
    value = n / GIB
    return f"{value:.1f} GiB" if value >= 0.1 else f"{n / 1024**2:.1f} MiB"


# -- applying a plan (workers only: torch is imported inside these functions) ----------------------------------


def device_free_bytes(device: str) -> int | None:
    """Free memory on a CUDA device as the driver reports it (None on other devices: no figure to plan with)."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def apply_placement(pipe: Any, mode: MemoryMode, device: str) -> None:
    """Put a freshly loaded pipeline (all on the CPU, no hooks yet) on `device` the way `mode` says."""
    import torch

    if mode == "none" or not device.startswith("cuda"):
        # Offload hooks need an accelerator to onload to; on a CPU everything already is where it runs.
        pipe.to(device)
    elif mode == "model_offload":
        pipe.enable_model_cpu_offload(device=device)
    elif mode == "group_offload":
        pipe.enable_group_offload(
            onload_device=torch.device(device),
            offload_device=torch.device("cpu"),
            offload_type="leaf_level",
            use_stream=True,
            exclude_modules=["vae"],
        )
        # The engines call the VAE's decoder directly (streaming decode): keep it whole on the device.
        pipe.vae.to(device)
    elif mode == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:  # pragma: no cover - MemoryMode is closed
        raise ValueError(f"unknown memory mode {mode!r}")


def set_vae_tiling(vae: Any, on: bool, **tile_options: Any) -> None:
    """Switch tiled decoding on or off for this job (a flag on the VAE: no reload). LTX's VAE also decodes
    frame-wise in time when tiled (its decoder is not causal; whole long clips are its biggest peak)."""
    if not callable(getattr(vae, "enable_tiling", None)):
        return
    if on:
        vae.enable_tiling(**tile_options)
        if hasattr(vae, "use_framewise_decoding"):
            vae.use_framewise_decoding = True
    else:
        vae.disable_tiling()
        if hasattr(vae, "use_framewise_decoding"):
            vae.use_framewise_decoding = False


def too_large(spec: ModelSpec, device_bytes: int, *, streams: bool = True) -> str | None:
    """Why `spec` cannot run on a GPU of `device_bytes` at all (even its smallest job, with the most frugal
    placement), from its stated footprint; None when it can, or when the spec states no footprint."""
    footprint = Footprint.from_spec(spec)
    if footprint is None:
        return None
    profile = spec_profile(spec)
    size, frames = smallest_job(spec)
    if fits_somewhere(footprint, profile, size, frames, device_bytes, streams):
        return None
    mode, tiling = _candidates(MemoryPolicy(), streams)[-1]
    needed = int(peak_bytes(footprint, profile, size, frames, mode, tiling) / (1 - HEADROOM))
    return f"too large for this GPU (its smallest job needs ~{gib(needed)}; the GPU has {gib(device_bytes)})"


def plan_job(
    spec: ModelSpec | None,
    footprint: Footprint,
    profile: ActivationProfile,
    size: Size,
    frames: int,
    *,
    loaded: MemoryMode,
    free_bytes: int | None,
    policy: MemoryPolicy,
    streams: bool,
) -> tuple[MemoryPlan, bool]:
    """An engine's check before a job: (the plan it will run with, whether the model must be reloaded with
    `plan.mode` first). A loaded placement that needs less memory than the plan's is kept (reloading costs more
    than it saves); one that needs more is not. Raises DoesNotFit before any work."""
    plan = plan_memory(
        footprint, profile, size, frames, free_bytes=free_bytes, policy=policy, streams=streams, spec=spec
    )
    if MODES.index(plan.mode) > MODES.index(loaded):
        return plan, True
    if plan.mode != loaded:
        peak = peak_bytes(footprint, profile, size, frames, loaded, plan.vae_tiling)
        plan = MemoryPlan(loaded, plan.vae_tiling, f"{plan.reason}; {loaded} already loaded", peak)
    return plan, False
