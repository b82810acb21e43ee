"""Every error leaves the API in OpenAI's envelope {"error": {"message", "type", "param", "code"}}, with the
status codes the SDK maps to its exception classes (400 BadRequestError, 404 NotFoundError, 409 ConflictError...).

The SDK retries 408, 409, 429 and 5xx on its own unless told otherwise; a request that is wrong stays wrong,
so client errors carry `x-should-retry: false` (except where retrying is the right move, e.g. a 409 while a
delete waits for a running job to stop).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelgen.domain.errors import (
    Conflict,
    Forbidden,
    InvalidParams,
    NotFound,
    QuotaExceeded,
    ReelgenError,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("reelgen.api")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    416: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class APIError(Exception):
    """An error answered as-is: status, message, and the envelope fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
        retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = dict(headers or {})
        # None: the default for the status (no retry for 4xx other than 408/429).
        self.retry = retry


def bad_request(message: str, *, param: str | None = None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def error_response(err: APIError) -> JSONResponse:
    headers = dict(err.headers)
    retry = err.retry
    if retry is None:
        retry = err.status >= 500 or err.status in (408, 429)
    headers["x-should-retry"] = "true" if retry else "false"
    body: dict[str, Any] = {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}
    return JSONResponse(body, status_code=err.status, headers=headers)


def from_domain(exc: ReelgenError) -> APIError:
    if isinstance(exc, InvalidParams):
        return APIError(400, exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, NotFound):
        return APIError(404, exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, Conflict):
        return APIError(409, exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, Unauthenticated):
        return APIError(401, exc.message, code=exc.code, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, Forbidden):
        return APIError(403, exc.message, code=exc.code)
    if isinstance(exc, QuotaExceeded | Unavailable):
        status = 429 if isinstance(exc, QuotaExceeded) else 503
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else {}
        return APIError(status, exc.message, param=exc.param, code=exc.code, headers=headers)
    log.error("unexpected %s: %s", type(exc).__name__, exc.message)
    return APIError(500, "internal error", code=exc.code)


def from_validation(errors: list[Any], *, prefix: tuple[str, ...] = ()) -> APIError:
    """A pydantic/FastAPI validation failure as one 400 naming the first offending parameter.

    Unknown fields are reported together ("unknown parameter(s): a, b"), since that is usually a typo or a
    client that expects a different API."""
    unknown = [_param(e["loc"], prefix) for e in errors if e.get("type") == "extra_forbidden"]
    if unknown:
        names = ", ".join(unknown)
        return APIError(400, f"unknown parameter(s): {names}", param=unknown[0], code="unknown_parameter")
    first = errors[0]
    param = _param(first["loc"], prefix)
    if first.get("type") == "missing":
        return APIError(400, f"missing required parameter: {param}", param=param, code="missing_required_parameter")
    return APIError(400, f"{param}: {first.get('msg', 'invalid value')}", param=param, code="invalid_value")


def _param(loc: Any, prefix: tuple[str, ...]) -> str:
    # FastAPI prefixes locations with "body"/"query"/"path"; clients know parameters by name only.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    parts = [p for p in parts if p not in prefix] or [str(p) for p in loc]
    name = parts[0]
    for p in parts[1:]:
        name += f"[{p}]"
    return name


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, APIError)
        return error_response(exc)

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ReelgenError)
        return error_response(from_domain(exc))

    async def request_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError | ValidationError)
        return error_response(from_validation(list(exc.errors())))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404:
            message = f"no route for {request.method} {request.url.path}"
        return error_response(APIError(exc.status_code, message, headers=dict(exc.headers or {})))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(APIError(500, "internal server error", code="internal_error"))

    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(ReelgenError, domain_error)
    app.add_exception_handler(RequestValidationError, request_validation)
    app.add_exception_handler(ValidationError, request_validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
