"""The ProgressSink a worker hands to engines: writes progress to the store (throttled), turns a cancel
request or a lost lease into JobCancelled at the next step, and renews the lease from a heartbeat thread."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from reelgen.domain.errors import JobCancelled, StaleAttempt
from reelgen.domain.jobs import Claim
from reelgen.jobs.store import JobStore

if TYPE_CHECKING:
    import numpy as np


class LeaseLost(JobCancelled):
    """The store handed this job to another worker: stop and keep nothing."""

    code = "lease_lost"


class JobControl:
    """Shared state between the job thread, the heartbeat thread and the sink."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.lost = threading.Event()

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost("the lease on this job was lost; another worker owns it now")
        if self.cancel.is_set():
            raise JobCancelled("cancelled by request")


class Heartbeat:
    """Renews the lease every `interval` seconds while a job runs (so slow steps never lose the job)."""

    def __init__(self, store: JobStore, claim: Claim, control: JobControl, interval: float) -> None:
        self._store, self._claim, self._control, self._interval = store, claim, control, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{claim.job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._store.heartbeat(self._claim).cancel_requested:
                    self._control.cancel.set()
            except StaleAttempt:
                self._control.lost.set()
                return
            except Exception:  # a database blip: try again next beat; the lease has slack
                continue


class StoreProgressSink:
    def __init__(
        self,
        store: JobStore,
        claim: Claim,
        control: JobControl,
        *,
        min_interval: float = 0.1,
        preview_interval: float = 1.0,
        on_step: Callable[[int, int], None] | None = None,
    ) -> None:
        self._store, self._claim, self._control = store, claim, control
        self._min_interval, self._preview_interval = min_interval, preview_interval
        self._last_write = self._last_preview = 0.0
        self._on_step = on_step
        # Steps across the n variations add up to one progress bar: a step of a pass that makes `per_step`
        # variations together counts for each of them.
        self.offset = 0
        self.per_step = 1
        self.grand_total: int | None = None
        self.step_times: list[float] = []
        self._last_step_at: float | None = None

    def step(self, step: int, total: int, preview: Callable[[], np.ndarray] | None = None) -> None:
        now = time.monotonic()
        if self._last_step_at is not None:
            self.step_times.append(now - self._last_step_at)
        self._last_step_at = now
        grand_total = self.grand_total or total
        done = self.offset + step * self.per_step
        if self._on_step:
            self._on_step(done, grand_total)
        if now - self._last_write >= self._min_interval or done == grand_total:
            data_url = None
            if preview is not None and now - self._last_preview >= self._preview_interval:
                data_url = _jpeg_data_url(preview())
                self._last_preview = now
            try:
                result = self._store.report_progress(self._claim, done, grand_total, preview=data_url)
            except StaleAttempt:
                self._control.lost.set()
            else:
                if result.cancel_requested:
                    self._control.cancel.set()
            self._last_write = now
        self._control.check()

    def start_stage(self) -> None:
        """Forget the previous variation's timing so a decode pause is not counted as a step."""
        self._last_step_at = time.monotonic()


def _jpeg_data_url(image: np.ndarray, max_side: int = 256) -> str:
    from PIL import Image

    img = Image.fromarray(image)
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
