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


class Unauthenticated(ReelgenError):
    """No valid credentials (missing, unknown, revoked or disabled key / session). HTTP 401."""

    code = "invalid_api_key"


class Forbidden(ReelgenError):
    """Authenticated, but the role does not allow this operation (admin / moderator endpoints). HTTP 403.
    Never used for another user's objects: those answer NotFound, exactly like missing ones."""

    code = "insufficient_permissions"


class QuotaExceeded(ReelgenError):
    """A quota, concurrency cap or queue-depth cap would be exceeded. HTTP 429 with Retry-After."""

    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.retry_after = retry_after


class Unavailable(ReelgenError):
    """The service refuses new work for now (maintenance mode). HTTP 503 with Retry-After."""

    code = "service_unavailable"
