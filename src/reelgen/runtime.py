"""Wiring: turn Settings into the store, the artifact store and workers. Used by the CLI (and the API server)."""

from __future__ import annotations

from pathlib import Path

from reelgen.engines.memory import GIB, MemoryPolicy  # torch-free
from reelgen.jobs import JobStore, QueuePolicy, open_job_store
from reelgen.jobs.scheduling import FairPolicy
from reelgen.settings import Settings
from reelgen.storage import open_store
from reelgen.storage.base import ArtifactStore


def queue_policy(settings: Settings) -> QueuePolicy:
    return QueuePolicy(
        lease_seconds=settings.job_lease_seconds,
        max_attempts=settings.max_attempts,
        retry_backoff_seconds=settings.retry_backoff_seconds,
    )


def open_job_store_from(settings: Settings) -> JobStore:
    url = settings.resolved_database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    store = open_job_store(url, queue_policy(settings))
    store.fair = FairPolicy(  # scheduling knobs (reelgen.jobs.scheduling)
        half_life_seconds=settings.fair_share_half_life_seconds,
        affinity_slack_seconds=settings.affinity_slack_seconds,
        default_job_seconds=settings.default_job_gpu_seconds,
    )
    return store


def open_artifacts_from(settings: Settings) -> ArtifactStore:
    return open_store(settings.resolved_storage_url, s3_endpoint_url=settings.s3_endpoint_url)


def memory_policy(settings: Settings) -> MemoryPolicy:
    """REELGEN_MEMORY_MODE / REELGEN_VAE_TILING / REELGEN_GPU_MEMORY_GB as the engines' MemoryPolicy."""
    budget = None if settings.gpu_memory_gb is None else int(settings.gpu_memory_gb * GIB)
    return MemoryPolicy(mode=settings.memory_mode, vae_tiling=settings.vae_tiling, budget_bytes=budget)


def build_worker(
    settings: Settings,
    store: JobStore,
    artifacts: ArtifactStore,
    *,
    worker_id: str | None = None,
    on_step=None,
):  # type: ignore[no-untyped-def]
    """A Worker with its own resident-engine cache (engines import torch: only worker processes call this)."""
    from reelgen.engines.base import Engine
    from reelgen.engines.registry import create_engine
    from reelgen.worker.engine_cache import EngineCache
    from reelgen.worker.runner import Worker, WorkerConfig, default_worker_id

    config = WorkerConfig(
        worker_id=worker_id or default_worker_id(),
        heartbeat_seconds=settings.resolved_heartbeat_seconds,
        models=settings.accepted_models,
        lora_dir=settings.lora_dir,
    )

    def build_engine(model_id: str) -> Engine:
        engine = create_engine(model_id, device=settings.device)
        from reelgen.engines.diffusers_engine import DiffusersEngine  # torch: imported with the first model

        adapters = getattr(engine, "adapters", None)  # engines that take per-request LoRAs
        if adapters is not None:
            adapters.capacity = max(1, settings.lora_cache_size)
        if hasattr(engine, "attention_backend"):  # engines with speed presets (reelgen.engines.presets)
            engine.attention_backend = settings.attention_backend
        if isinstance(engine, DiffusersEngine):
            engine.compile_blocks = settings.compile == "blocks"
            engine.fp8_weights = settings.fp8_weights
        if hasattr(engine, "memory_policy"):  # engines that plan GPU memory (reelgen.engines.memory)
            engine.memory_policy = memory_policy(settings)
        return engine

    cache = EngineCache(build_engine)
    from reelgen.moderation import load_frame_check

    return Worker(
        store,
        artifacts,
        cache,
        config,
        on_step=on_step,
        frame_check=load_frame_check(settings) if settings.moderation_frame_check else None,
        frame_samples=settings.moderation_frame_samples,
    )
