"""Wiring: turn Settings into the store, the artifact store and workers. Used by the CLI (and the API server)."""

from __future__ import annotations

from pathlib import Path

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


def build_worker(
    settings: Settings,
    store: JobStore,
    artifacts: ArtifactStore,
    *,
    worker_id: str | None = None,
    on_step=None,
):  # type: ignore[no-untyped-def]
    """A Worker with its own resident-engine cache (engines import torch: only worker processes call this)."""
    from reelgen.engines.registry import create_engine
    from reelgen.worker.engine_cache import EngineCache
    from reelgen.worker.runner import Worker, WorkerConfig, default_worker_id

    config = WorkerConfig(
        worker_id=worker_id or default_worker_id(),
        heartbeat_seconds=settings.resolved_heartbeat_seconds,
        models=settings.accepted_models,
    )
    cache = EngineCache(lambda model_id: create_engine(model_id, device=settings.device))
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
