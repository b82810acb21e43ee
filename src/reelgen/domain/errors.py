"""Errors that cross layers. The API maps each to an HTTP status and the OpenAI error envelope."""

from __future__ import annotations


class ReelgenError(Exception):
    """Base class; `code` is the machine-readable error code clients see."""

    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidParams(ReelgenError):
    """A request field is invalid; `param` names the field."""

    code = "invalid_value"


class NotFound(ReelgenError):
    code = "not_found"


class Conflict(ReelgenError):
    """The object is not in a state that allows the operation (e.g. content of a queued job)."""

    code = "conflict"


class StaleAttempt(ReelgenError):
    """A worker wrote for an attempt that is no longer the job's current in-progress attempt (fencing)."""

    code = "stale_attempt"


class JobCancelled(ReelgenError):
    """Raised inside a running job when a cancel was requested; the worker stops and keeps nothing."""

    code = "cancelled"
