"""/v1/models: the models this deployment knows, what each accepts, and whether it can run here."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from reelgen.api.auth import Caller
from reelgen.api.protocol import ErrorResponse, ModelCard, ModelList
from reelgen.api.serving import VideoService

router = APIRouter(prefix="/v1", tags=["models"])


def _service(request: Request) -> VideoService:
    service: VideoService = request.app.state.service
    return service


@router.get("/models", response_model=ModelList, summary="List models")
async def list_models(request: Request, caller: Caller) -> Response:
    return Response((await _service(request).models()).model_dump_json(), media_type="application/json")


@router.get(
    "/models/{model_id}", response_model=ModelCard, responses={404: {"model": ErrorResponse}}, summary="One model"
)
async def get_model(request: Request, caller: Caller, model_id: str) -> Response:
    return Response((await _service(request).model(model_id)).model_dump_json(), media_type="application/json")
