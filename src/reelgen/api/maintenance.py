"""Maintenance mode at the door: while an admin has it on (POST /v1/admin/maintenance, `reelgen maintenance on`),
every write under /v1 (POST, PUT, PATCH, DELETE) answers 503 with Retry-After and a clear message; reads keep
working, /v1/admin stays open (to switch it off), and workers keep finishing running jobs.

The switch lives in the database (so every API process sees it); each process re-reads it at most once a
second, and at once after a change made through itself.
"""

from __future__ import annotations

import time

from anyio import to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from reelgen.api.errors import APIError, error_response
from reelgen.jobs.store import JobStore

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REFRESH_SECONDS = 1.0


class MaintenanceState:
    def __init__(self, store: JobStore, *, retry_after: int, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._store = store
        self.retry_after = retry_after
        self._refresh = refresh_seconds
        self._on = False
        self._read_at = -1e18

    def known(self, on: bool) -> None:
        """A change made through this process: effective at once."""
        self._on, self._read_at = on, time.monotonic()

    async def on(self) -> bool:
        if time.monotonic() - self._read_at >= self._refresh:
            self.known(await to_thread.run_sync(self._store.maintenance))
        return self._on


class MaintenanceMiddleware:
    def __init__(self, app: ASGIApp, state: MaintenanceState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in WRITE_METHODS
            and scope["path"].startswith("/v1/")
            and not scope["path"].startswith("/v1/admin/")
            and await self.state.on()
        ):
            err = APIError(
                503,
                "reelgen is in maintenance mode: new videos and other changes are refused for now (reading "
                "and downloading still work, and running jobs finish); try again later",
                code="maintenance",
                headers={"Retry-After": str(self.state.retry_after)},
            )
            await error_response(err)(scope, receive, send)
            return
        await self.app(scope, receive, send)
