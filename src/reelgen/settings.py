"""The ONLY place that reads environment variables. Everything else receives a Settings object."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

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

    default_model: str = "tiny-random-wan"
    """Model used when a request names none."""

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
        )

    @cached_property
    def accepted_models(self) -> tuple[str, ...] | None:
        if not self.worker_models:
            return None
        return tuple(m.strip() for m in self.worker_models.split(",") if m.strip())
