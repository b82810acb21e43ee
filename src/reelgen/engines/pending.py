"""The factory of models whose family engine is not written yet (issue 4 lands them one family at a time).

Registering them anyway lets `reelgen models` and /v1/models show the whole catalog with an honest status
(the registry reports these as not runnable, see `Registry.availability`), and a job that reaches a worker
fails at once, before any loading, with this message instead of an ImportError.
"""

from __future__ import annotations

from typing import Any

from reelgen.domain.errors import ReelgenError
from reelgen.domain.models import ModelSpec
from reelgen.engines.base import Engine


class EngineNotImplemented(ReelgenError, ValueError):
    """Permanent (a ValueError: the worker does not retry it)."""

    code = "model_not_supported"


def create_engine(spec: ModelSpec, device: str | None = None, **options: Any) -> Engine:
    source = options.get("source", "its weights")
    raise EngineNotImplemented(
        f"model {spec.id} ({spec.family} family, {source}) is in the catalog, but this version of reelgen has no "
        f"{spec.family} engine yet",
        param="model",
    )
