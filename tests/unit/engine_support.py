"""Helpers shared by the engine tests: a sink that records steps (and can cancel), one torch CPU thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from reelgen.domain.errors import JobCancelled


class RecordingSink:
    def __init__(self, cancel_at: int | None = None) -> None:
        self.steps: list[tuple[int, int]] = []
        self.previews: list[Callable[[], np.ndarray] | None] = []
        self.cancel_at = cancel_at

    def step(self, step: int, total: int, preview: Callable[[], np.ndarray] | None = None) -> None:
        self.steps.append((step, total))
        self.previews.append(preview)
        if step == self.cancel_at:
            raise JobCancelled("cancelled by request")


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread() -> Iterator[None]:
    # Two OpenMP threads on this shared 2-core box can be far slower than one when another process is busy.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
