"""Jobs and their lifecycle. The allowed status transitions live here and nowhere else.

queued ──claim──> in_progress ──> completed
  │  ^                │  │
  │  └─lease expired──┘  └──> failed     (engine error after max_attempts, or lease expired too often)
  │     / retryable error     └──> cancelled  (cancel requested; the worker stops at its next step)
  └──> cancelled  (cancel while queued: at once)
  └──> failed     (never claimed within its attempts, e.g. no worker can run the model)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from reelgen.domain.errors import Conflict
from reelgen.domain.params import GenerationParams
from reelgen.domain.review import Review


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.IN_PROGRESS, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.IN_PROGRESS: frozenset({JobStatus.QUEUED, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def check_transition(old: JobStatus, new: JobStatus) -> None:
    """Raise Conflict unless old -> new is an allowed transition."""
    if new not in TRANSITIONS[old]:
        raise Conflict(f"a {old.value} job cannot become {new.value}")


@dataclass(frozen=True, slots=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Artifact:
    """The committed output of a job: storage keys plus what a client needs to serve it."""

    video_key: str
    thumbnail_key: str | None
    spritesheet_key: str | None
    bytes: int
    num_frames: int
    width: int
    height: int
    fps: int
    sha256: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_key": self.video_key,
            "thumbnail_key": self.thumbnail_key,
            "spritesheet_key": self.spritesheet_key,
            "bytes": self.bytes,
            "num_frames": self.num_frames,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "sha256": self.sha256,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Artifact:
        return cls(**d)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    owner: str
    status: JobStatus
    params: GenerationParams
    created_at: float
    progress: int = 0
    step: int = 0
    total_steps: int = 0
    attempt: int = 0
    max_attempts: int = 3
    started_at: float | None = None
    finished_at: float | None = None
    lease_expires_at: float | None = None
    not_before: float | None = None
    worker_id: str | None = None
    cancel_requested: bool = False
    error: JobError | None = None
    artifact: Artifact | None = None
    idempotency_key: str | None = None
    remixed_from: str | None = None
    # When the owner published it in the gallery (None: not published); only completed jobs are published.
    published_at: float | None = None
    # Publication review and moderation holds (reelgen/domain/review.py).
    review: Review = field(default_factory=Review)

    @property
    def model(self) -> str:
        return self.params.model


@dataclass(frozen=True, slots=True)
class Claim:
    """What a worker holds while it runs a job: every write it makes is fenced on (job.id, attempt)."""

    job: Job
    attempt: int
    worker_id: str
    lease_expires_at: float

    @property
    def job_id(self) -> str:
        return self.job.id


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry in a job's event log (status changes, progress); `seq` orders them for resumable streams."""

    seq: int
    job_id: str
    kind: str
    data: dict[str, Any]
    created_at: float
