"""Helpers shared by the engine tests: a sink that records steps (and can cancel), one torch CPU thread, a loaded
engine for a module's tests, a job's parameters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

from reelgen.domain.errors import JobCancelled
from reelgen.domain.models import ModelSpec
from reelgen.domain.params import GenerationParams, ParamLimits, validate_params
from reelgen.engines.diffusers_engine import DiffusersEngine


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


def loaded(create: Callable[[], DiffusersEngine[Any]]) -> Iterator[DiffusersEngine[Any]]:
    """The body of an `engine` fixture: the engine `create` makes, loaded for the tests, unloaded after them."""
    built = create()
    built.load()
    yield built
    built.unload()


def job_params(spec: ModelSpec, default_prompt: str, **kw: object) -> GenerationParams:
    """A job's validated parameters: the spec's defaults (seed 42, `default_prompt`) and what `kw` changes."""
    kw.setdefault("prompt", default_prompt)
    kw.setdefault("seed", 42)
    return validate_params(spec, ParamLimits(), **kw)  # type: ignore[arg-type]
