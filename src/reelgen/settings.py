"""The ONLY place that reads environment variables. Everything else receives a Settings object."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from reelgen.domain.params import ParamLimits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REELGEN_", extra="ignore", frozen=True)

    home: Path = Field(default_factory=lambda: Path(user_data_dir("reelgen")))
    """Data folder: the SQLite database, videos and wake-up sockets live here unless configured elsewhere."""

    database_url: str | None = None
    """`sqlite:///path.db` (default: $REELGEN_HOME/reelgen.db) or `postgresql://…` for workers on several machines."""

    storage_url: str | None = None
    """A folder (default: $REELGEN_HOME/videos) or `s3://bucket/prefix` for S3-compatible storage."""

    s3_endpoint_url: str | None = None
    """Endpoint of an S3-compatible server (MinIO, R2, …); credentials come from the usual AWS variables."""

    default_model: str = "reelgen-demo"
    """Model used when a request names none: the shipped demo model, which runs on any CPU."""

    job_lease_seconds: float = 60.0
    """How long a silent worker keeps a job before it is requeued with attempt+1."""

    heartbeat_seconds: float | None = None
    """How often a worker renews its lease (default: a third of the lease)."""

    max_attempts: int = 3
    """How many times a job is tried (crashed worker, engine error) before it fails for good."""

    retry_backoff_seconds: float = 2.0
    """Delay before attempt k+1 is claimable: backoff * 2**(k-1), capped at 5 minutes."""

    max_prompt_chars: int = 2000
    """Longest prompt accepted."""

    max_steps: int = 100
    """Most denoising steps a request may ask for."""

    max_n: int = 4
    """Most variations per request."""

    max_seconds: float = 20.0
    """Longest clip a request may ask for (models may allow less)."""

    device: str | None = None
    """Torch device for workers (`cuda`, `cuda:1`, `cpu`); default: cuda when available."""

    worker_models: str | None = None
    """Comma-separated model ids a worker accepts (default: every model that can run on it)."""

    memory_mode: Literal["auto", "none", "model_offload", "group_offload", "sequential"] = "auto"
    """Where a worker keeps model weights: `auto` picks the fastest placement whose estimated peak fits the free
    GPU memory (reelgen.engines.memory); `none` (all on the GPU), `model_offload` (whole components moved in when
    they run), `group_offload` (layers streamed in on a CUDA side stream) or `sequential` (layer by layer, the
    least memory, the slowest) force one. A job estimated not to fit fails before it starts either way."""

    vae_tiling: Literal["auto", "on", "off"] = "auto"
    """Tiled VAE decoding: `auto` turns it on for jobs whose untiled decode would not fit; `on` / `off` force it."""

    compile: Literal["off", "blocks"] = "off"
    """`blocks`: regional torch.compile of the video transformer's repeated blocks when a worker loads a model
    (diffusers' compile_repeated_blocks; the first job at each new size pays the compile). Same math with fused
    kernels. Off by default until measured on GPUs (benchmarks/gpu_bench.py --compile)."""

    fp8_weights: bool = False
    """Store the video transformers' weights in float8 (e4m3) and compute each layer in the model's own dtype
    (diffusers' layerwise casting; norms and embeddings stay as they are): about half the transformer memory of
    bfloat16, so a larger model fits without offloading, at a small cost in quality. The memory plan counts it."""

    gpu_memory_gb: float | None = None
    """Most GPU memory (GiB) a worker plans with, e.g. to leave room for another process on the same GPU; the
    free memory the driver reports still applies. `reelgen models` uses it to flag models too large for the GPU."""

    default_preset: Literal["quality", "balanced", "fast"] = "quality"
    """Speed preset of requests that name none: `quality` (exact math), `balanced` or `fast` (diffusers step
    caches; jobs of 8 steps or fewer always run exact)."""

    model_dir: Path | None = None
    """Folder of local model copies: `<model_dir>/<model id>/` (a diffusers pipeline folder, e.g. from
    `hf download <repo> --local-dir <model_dir>/<model id>`) is loaded instead of the model's Hugging Face repo."""

    lora_dir: Path | None = None
    """Folder of LoRA adapters requests may name (`lora`): `<name>.safetensors` files or `<name>/` folders with
    one safetensors file. Unset: requests naming a LoRA are refused."""

    lora_cache_size: int = 4
    """How many LoRA adapters a worker keeps loaded next to its model (least recently used one dropped first)."""

    attention_backend: (
        Literal[
            "native",
            "_native_cudnn",
            "_native_efficient",
            "_native_flash",
            "_native_math",
            "flash",
            "flash_varlen",
            "_flash_3",
            "_flash_varlen_3",
            "flex",
            "xformers",
        ]
        | None
    ) = None
    """Attention kernel of the workers' video transformers, a diffusers attention backend (`flash` needs the
    flash-attn package, `_flash_3` FlashAttention 3, `xformers` xformers); default: diffusers' own (PyTorch SDPA).
    Exact kernels only, so the `quality` preset stays exact math."""

    auth: Literal["auto", "on", "off"] = "auto"
    """Authentication: `auto` turns on as soon as a user exists (`reelgen users add`; disabled users count) and
    stays on for the life of the process; `on` always (every /v1 call needs a key or a studio session); `off`
    never (every caller is the single owner "local": only for one person on loopback)."""

    session_hours: float = 168.0
    """How long a studio login lasts (hours)."""

    session_cookie: str = "reelgen_session"
    """Name of the studio session cookie."""

    auth_cache_seconds: float = 5.0
    """How long the API remembers a checked key or session; a revoke or disable made in another process (the
    CLI) takes effect within this time, one made through the API in that process at once."""

    moderation_blocklist: str | None = None
    """Prompt blocklist, inline: words or phrases separated by commas or newlines, matched case-insensitively as
    whole words. Prefix an entry with `hold:` to hold a matching job for review instead of refusing it."""

    moderation_blocklist_file: Path | None = None
    """Prompt blocklist file: one word or phrase per line (`#` comments, `hold:` / `block:` prefixes)."""

    moderation_blocklist_action: Literal["block", "hold"] = "block"
    """What a blocklist match without a prefix does: `block` (400, code moderation_blocked) or `hold` (the job
    is accepted but waits for a moderator)."""

    moderation_prompt_check: str | None = None
    """A prompt-check plugin (`package.module:name`: an object with check(prompt) -> Verdict, or a callable
    taking the Settings and returning one) used instead of the blocklist."""

    moderation_frame_check: str | None = None
    """A frame-check plugin (`package.module:name`, check(frames) -> Verdict) run by workers on frames sampled
    from each finished video; a flagged video completes held for review. Default: none (everything passes)."""

    moderation_frame_samples: int = 8
    """How many frames, evenly spaced, the frame check sees per video."""

    fair_share_half_life_seconds: float = 3600.0
    """Fair scheduling: a user's GPU time counts half after this many seconds (exponential decay), so past use
    is forgiven gradually."""

    affinity_slack_seconds: float = 30.0
    """Model affinity: a worker prefers jobs for the model it has loaded when their owner's recent GPU time is
    within this many GPU-seconds of the fairest waiting owner's."""

    default_job_gpu_seconds: float = 60.0
    """GPU-seconds assumed for a job enqueued without an estimate (jobs created before quotas, direct store use)."""

    maintenance_retry_after_seconds: int = 300
    """Retry-After (seconds) sent with the 503 answers of maintenance mode."""

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'reelgen.db'}"

    @cached_property
    def resolved_storage_url(self) -> str:
        return self.storage_url or str(self.home / "videos")

    @cached_property
    def resolved_heartbeat_seconds(self) -> float:
        return self.heartbeat_seconds or max(self.job_lease_seconds / 3, 0.05)

    @cached_property
    def limits(self) -> ParamLimits:
        return ParamLimits(
            max_prompt_chars=self.max_prompt_chars,
            max_steps=self.max_steps,
            max_n=self.max_n,
            max_seconds=self.max_seconds,
            default_preset=self.default_preset,
        )

    @cached_property
    def accepted_models(self) -> tuple[str, ...] | None:
        if not self.worker_models:
            return None
        return tuple(m.strip() for m in self.worker_models.split(",") if m.strip())
