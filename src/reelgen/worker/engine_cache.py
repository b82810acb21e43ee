"""Keeps the last used engine resident between jobs; switching models unloads the previous one first so two
big models never share one GPU. Order matters for the memory plan (reelgen.engines.memory): the old engine's
`unload` frees its device memory (gc + torch.cuda.empty_cache) before the new engine's `load` measures what is
free and chooses its placement."""

from __future__ import annotations

import threading
from collections.abc import Callable

from reelgen.engines.base import Engine


class EngineCache:
    def __init__(self, factory: Callable[[str], Engine]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._model_id: str | None = None
        self._engine: Engine | None = None
        self.loads = 0

    @property
    def resident(self) -> str | None:
        return self._model_id

    def get(self, model_id: str) -> Engine:
        with self._lock:
            if self._engine is not None and self._model_id == model_id:
                return self._engine
            self._release()
            engine = self._factory(model_id)
            engine.load()
            self.loads += 1
            self._engine, self._model_id = engine, model_id
            return engine

    def close(self) -> None:
        with self._lock:
            self._release()

    def _release(self) -> None:
        if self._engine is not None:
            self._engine.unload()
        self._engine = self._model_id = None
