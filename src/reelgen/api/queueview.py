"""Queue positions for many polled jobs from one snapshot of the line.

Counting the jobs ahead of one job costs time in proportion to the length of the line, on every poll of
every queued job. Instead a background thread lists the whole line in claim order now and then, and polls
read their position from that list. A position can thus be a little old (about a second; longer for very
long lines, see below), which a progress display tolerates. A job that is not in the snapshot (it joined
the line after the snapshot was taken) is counted exactly.

Listing a line of 100,000 jobs takes tens of milliseconds, so the refresh interval stretches with the cost
of a refresh: the thread never spends more than about a twentieth of the time refreshing, and the request
path never waits for it.
"""

from __future__ import annotations

import logging
import threading
import time

from reelgen.jobs.store import JobStore

log = logging.getLogger("reelgen.api")

REFRESH_SECONDS = 1.0
# A refresh may use at most 1/COST_RATIO of the refresher thread's time.
COST_RATIO = 20.0
SNAPSHOT_LIMIT = 1_000_000


class QueueView:
    def __init__(self, store: JobStore, *, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._store = store
        self._refresh = refresh_seconds
        self._positions: dict[str, int] = {}
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._supported = True

    def position(self, job_id: str) -> int | None:
        """1-based place of a queued job (blocking when it has to count: call it where store calls are allowed)."""
        if self._supported:
            self._ensure_thread()
            self._wanted.set()
            found = self._positions.get(job_id)
            if found is not None:
                return found
        return self._store.queue_position(job_id)

    def close(self) -> None:
        self._stop.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="reelgen-queue-view", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        # Refresh only while someone asks for positions: an idle server does not read its queue every second.
        while self._wanted.wait() and not self._stop.is_set():
            self._wanted.clear()
            started = time.monotonic()
            try:
                ids = self._store.queued_ids(SNAPSHOT_LIMIT)
            except NotImplementedError:
                self._supported = False
                return
            except Exception:  # the database blinked: answer by counting until the next refresh works
                log.exception("could not list the queue")
                self._positions = {}
                ids = None
            if ids is not None:
                self._positions = {job_id: i for i, job_id in enumerate(ids, start=1)}
            cost = time.monotonic() - started
            if self._stop.wait(max(self._refresh, cost * COST_RATIO) - cost):
                return
