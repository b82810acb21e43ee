"""Pure types and rules. Imports no other reelgen layer, no torch, no web framework."""

from reelgen.domain.errors import (
    Conflict,
    InvalidParams,
    JobCancelled,
    NotFound,
    ReelgenError,
    StaleAttempt,
)
from reelgen.domain.jobs import Artifact, Claim, Job, JobError, JobStatus, check_transition
from reelgen.domain.models import FrameRule, ModelSpec, Size
from reelgen.domain.params import GenerationParams, ParamLimits, validate_params

__all__ = [
    "Artifact",
    "Claim",
    "Conflict",
    "FrameRule",
    "GenerationParams",
    "InvalidParams",
    "Job",
    "JobCancelled",
    "JobError",
    "JobStatus",
    "ModelSpec",
    "NotFound",
    "ParamLimits",
    "ReelgenError",
    "Size",
    "StaleAttempt",
    "check_transition",
    "validate_params",
]
