"""Plain ASGI middleware (no BaseHTTPMiddleware: it costs a task per request and breaks streaming).

- every response gets `X-Content-Type-Options: nosniff`;
- request bodies are capped while they stream in, so a huge upload is refused before it fills a disk;
- in single-owner mode the API has no keys, so two browser attacks on a loopback server are shut here:
  a page on another site posting a form to it (cross-site request: refused when `Origin` is foreign) and
  DNS rebinding (a foreign name resolving to 127.0.0.1: refused by checking `Host`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelgen.api.errors import APIError


class _BodyTooLarge(APIError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit:,} bytes", code="payload_too_large")


class GuardMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, trusted_hosts: Iterable[str] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.trusted_hosts = {h.lower() for h in trusted_hosts} if trusted_hosts is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get("host", "")
        if self.trusted_hosts is not None and _hostname(host) not in self.trusted_hosts:
            await _reject(send, 403, f"host {host!r} is not served here", "untrusted_host")
            return
        origin = headers.get("origin")
        if origin is not None and origin != "null" and urlsplit(origin).netloc.lower() != host.lower():
            await _reject(send, 403, "cross-origin requests are not accepted", "cross_origin")
            return
        if origin == "null":
            await _reject(send, 403, "requests from opaque origins are not accepted", "cross_origin")
            return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await _reject(send, 413, f"request body is larger than {self.max_body_bytes:,} bytes", "payload_too_large")
            return

        received = 0
        limit = self.max_body_bytes

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]
            await send(message)

        await self.app(scope, counted_receive, send_with_headers)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host


async def _reject(send: Send, status: int, message: str, code: str) -> None:
    body = json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"x-should-retry", b"false"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
