"""Group commit for creates: concurrent POST /v1/videos requests share one database transaction.

A durable commit costs an fsync (about a millisecond on an ordinary SSD, SQLite in WAL mode with
synchronous=FULL), and SQLite commits one writer at a time, so one commit per create caps creates near
1/fsync per second. Here creates that arrive while a commit is in flight wait for it to finish and then go
together in the next one (`JobStore.create_many`). Nothing is delayed on purpose: a lone create is committed
at once, and each caller is answered only after the commit that holds its job is durable, so durability is
exactly that of one transaction per create.

The batch function runs in a worker thread and gets the whole batch, so whatever follows the insert (the
response rendering) is paid once per batch where it can be, not once per create.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from anyio import to_thread

from reelgen.jobs.store import NewJob

R = TypeVar("R")

MAX_BATCH = 128


class CreateBatcher(Generic[R]):
    """`commit(batch)` creates every job of the batch in one transaction and returns one result per job: a
    result, or the exception that job's caller gets (a quota refusal) while the others succeed."""

    def __init__(
        self, commit: Callable[[list[NewJob]], Sequence[R | BaseException]], *, max_batch: int = MAX_BATCH
    ) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._pending: list[tuple[NewJob, asyncio.Future[R]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def create(self, new: NewJob) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        # Mark a failure as seen even if its caller is gone, so asyncio does not log it as never retrieved.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pending.append((new, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_pending())
        # A caller that goes away (client disconnect) cancels only its own future; the commit goes on for the
        # others (its job may still be created: an Idempotency-Key makes the retry safe).
        return await future

    async def _commit_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                results = await to_thread.run_sync(self._commit, [new for new, _ in batch])
            except BaseException as e:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                if isinstance(e, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def aclose(self) -> None:
        if self._committer is not None:
            with contextlib.suppress(BaseException):
                await self._committer
