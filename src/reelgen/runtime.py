"""Wiring: turn Settings into the store, the artifact store and workers. Used by the CLI (and the API server)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from reelgen.engines.memory import GIB, MemoryPolicy  # torch-free
from reelgen.jobs import JobStore, QueuePolicy, open_job_store
from reelgen.jobs.scheduling import FairPolicy
from reelgen.settings import Settings
from reelgen.storage import open_store
from reelgen.storage.base import ArtifactStore

if TYPE_CHECKING:  # engines import torch: the API process never does
    from reelgen.engines.base import Engine
    from reelgen.engines.parallel import ContextParallel
    from reelgen.worker.engine_cache import EngineCache

log = logging.getLogger("reelgen.worker")


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


def engine_factory(settings: Settings, context_parallel: ContextParallel | None = None) -> Callable[[str], Engine]:
    """Engines configured from settings (engines import torch: only worker processes call this)."""
    from reelgen.engines.registry import create_engine

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
            engine.context_parallel = context_parallel
        elif context_parallel is not None:
            raise ValueError(f"{model_id} is not a diffusers model: it cannot run on a context-parallel worker")
        if hasattr(engine, "memory_policy"):  # engines that plan GPU memory (reelgen.engines.memory)
            engine.memory_policy = memory_policy(settings)
        return engine

    return build_engine


def build_worker(
    settings: Settings,
    store: JobStore,
    artifacts: ArtifactStore,
    *,
    worker_id: str | None = None,
    on_step=None,
    engines: EngineCache | None = None,
):  # type: ignore[no-untyped-def]
    """A Worker with its own resident-engine cache (engines import torch: only worker processes call this)."""
    from reelgen.worker.engine_cache import EngineCache
    from reelgen.worker.runner import Worker, WorkerConfig, default_worker_id

    config = WorkerConfig(
        worker_id=worker_id or default_worker_id(),
        heartbeat_seconds=settings.resolved_heartbeat_seconds,
        models=settings.accepted_models,
        lora_dir=settings.lora_dir,
    )
    cache = engines or EngineCache(engine_factory(settings))
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


def run_context_parallel_worker(settings: Settings, kind: str, stop: threading.Event) -> None:
    """`reelgen worker --context-parallel KIND` under torchrun: rank 0 is the worker the queue sees, the other
    ranks follow it (reelgen.worker.lockstep) and every job's transformer is split across all of them."""
    import torch
    import torch.distributed as dist

    from reelgen.engines.parallel import ContextParallel
    from reelgen.worker.engine_cache import EngineCache
    from reelgen.worker.lockstep import LeaderEngineCache, Lockstep, follow

    if not dist.is_torchelastic_launched():
        raise SystemExit("--context-parallel runs under torchrun: torchrun --nproc-per-node N -m reelgen worker ...")
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    try:
        rank = dist.get_rank()
        cp = ContextParallel(kind, dist.get_world_size())
        if torch.cuda.is_available():
            device = f"cuda:{rank % torch.cuda.device_count()}"
            torch.cuda.set_device(device)
            settings = settings.model_copy(update={"device": device})
        lockstep = Lockstep()
        factory = engine_factory(settings, context_parallel=cp)
        if lockstep.leader:
            engines = LeaderEngineCache(factory, lockstep)
            store, artifacts = open_job_store_from(settings), open_artifacts_from(settings)
            worker = build_worker(settings, store, artifacts, engines=engines)
            log.info("context-parallel worker: %s over %d ranks", kind, cp.degree)
            try:
                worker.run_forever(stop)
            finally:
                engines.close()  # tells the followers to stop
                store.close()
        else:
            follow(lockstep, EngineCache(factory))
    finally:
        dist.destroy_process_group()
