"""FastAPI application factory. The full OpenAI Videos API lands with the API issue; this is its skeleton."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from reelgen import __version__
from reelgen.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    from reelgen.engines.registry import list_specs

    app = FastAPI(title="reelgen", version=__version__)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": s.id,
                    "object": "model",
                    "owned_by": s.owned_by,
                    "sizes": [str(z) for z in s.sizes],
                    "max_seconds": s.max_seconds,
                    "inputs": list(s.inputs),
                }
                for s in list_specs()
            ],
        }

    return app
