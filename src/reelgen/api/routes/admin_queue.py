"""/v1/admin quotas and operator controls (reelgen extension, admin role only): per-user limits and usage, pause
and resume the queue, workers and draining, maintenance mode. The same operations as `reelgen users limits`,
`reelgen queue`, `reelgen workers` and `reelgen maintenance`. Every change is written to the audit log."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelgen.api.auth import Admin
from reelgen.api.errors import from_validation
from reelgen.api.forms import read_body
from reelgen.api.protocol import ErrorResponse
from reelgen.domain.accounts import LOCAL
from reelgen.domain.errors import NotFound
from reelgen.domain.quotas import QueueStatus, UserLimits, UserUsage, WorkerInfo
from reelgen.jobs.store import JobStore

router = APIRouter(prefix="/v1/admin", tags=["admin"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No valid API key or session"},
    403: {"model": ErrorResponse, "description": "The caller is not an admin"},
}
_ERRORS_404: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": ErrorResponse, "description": "No such user or worker"},
}
UserId = Annotated[str, Path(description="The user's id (or name); `local` is the owner when authentication is off")]
WorkerId = Annotated[str, Path(description="The worker's id, as GET /v1/admin/workers lists it")]


class UsageObject(BaseModel):
    period_start: int
    period_end: int = Field(description="When the budget resets (UTC calendar day or month)")
    charged_seconds: float = Field(description="GPU-seconds counting against the budget this period")
    reserved_seconds: float = Field(description="Of which: estimates of jobs not finished yet")
    remaining_seconds: float | None
    queued: int
    running: int
    fair_share_usage: float = Field(description="Decayed GPU-seconds the scheduler compares between users")


class LimitsObject(BaseModel):
    object: Literal["user.limits"] = "user.limits"
    user_id: str
    gpu_seconds: float | None = Field(description="Budget per period; null: unlimited")
    period: Literal["day", "month"]
    max_concurrent: int | None = Field(description="Most jobs running at once; null: no cap")
    max_queued: int | None = Field(description="Most jobs waiting; null: no cap")
    priority: int = Field(description="Scheduling tier: higher tiers are always served first")
    usage: UsageObject


class LimitsRequest(BaseModel):
    """Only the fields given change; null removes a limit."""

    model_config = ConfigDict(extra="forbid")
    gpu_seconds: float | None = Field(default=None, ge=0)
    period: Literal["day", "month"] = "day"
    max_concurrent: int | None = Field(default=None, ge=0)
    max_queued: int | None = Field(default=None, ge=0)
    priority: int = 0


class OwnerQueueObject(BaseModel):
    user_id: str
    queued: int
    running: int


class QueueObject(BaseModel):
    object: Literal["queue"] = "queue"
    paused: bool
    maintenance: bool
    queued: int
    running: int
    users: list[OwnerQueueObject]


class WorkerObject(BaseModel):
    object: Literal["worker"] = "worker"
    id: str
    state: Literal["active", "draining", "drained"]
    model: str | None = Field(description="The model it has loaded")
    current_job: str | None
    started_at: int
    last_seen_at: int


class WorkerList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WorkerObject]


class MaintenanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on: bool


M = TypeVar("M", bound=BaseModel)


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.service.store
    return store


def _parse(model: type[M], fields: dict[str, Any]) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as e:
        raise from_validation(list(e.errors())) from None


def _json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


def _resolve_user(store: JobStore, user_id: str) -> str:
    """A user id, or a name turned into its id; `local` (the owner with authentication off) is always known."""
    if user_id == LOCAL.user_id:
        return user_id
    try:
        accounts = store.accounts
    except NotImplementedError:
        return user_id
    user = accounts.get_user(user_id) or accounts.get_user_by_name(user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}", param="user_id")
    return user.id


def _limits(limits: UserLimits, usage: UserUsage) -> LimitsObject:
    return LimitsObject(
        user_id=limits.user_id,
        gpu_seconds=limits.gpu_seconds,
        period=limits.period,
        max_concurrent=limits.max_concurrent,
        max_queued=limits.max_queued,
        priority=limits.priority,
        usage=UsageObject(
            period_start=int(usage.period_start),
            period_end=int(usage.period_end),
            charged_seconds=round(usage.charged_seconds, 3),
            reserved_seconds=round(usage.reserved_seconds, 3),
            remaining_seconds=None if usage.remaining_seconds is None else round(usage.remaining_seconds, 3),
            queued=usage.queued,
            running=usage.running,
            fair_share_usage=round(usage.fair_share_usage, 3),
        ),
    )


def _queue(status: QueueStatus) -> QueueObject:
    return QueueObject(
        paused=status.paused,
        maintenance=status.maintenance,
        queued=status.queued,
        running=status.running,
        users=[OwnerQueueObject(user_id=o.owner, queued=o.queued, running=o.running) for o in status.owners],
    )


def _worker(w: WorkerInfo) -> WorkerObject:
    return WorkerObject(
        id=w.id,
        state=w.state,
        model=w.model,
        current_job=w.current_job,
        started_at=int(w.started_at),
        last_seen_at=int(w.last_seen_at),
    )


@router.get("/users/{user_id}/limits", response_model=LimitsObject, responses=_ERRORS_404, summary="A user's limits")
async def get_limits(request: Request, admin: Admin, user_id: UserId) -> Response:
    store = _store(request)

    def read() -> LimitsObject:
        uid = _resolve_user(store, user_id)
        usage = store.user_usage(uid)
        return _limits(usage.limits, usage)

    return _json(await to_thread.run_sync(read))


@router.post(
    "/users/{user_id}/limits",
    response_model=LimitsObject,
    responses=_ERRORS_404,
    summary="Set a user's limits",
    description="Body: any of gpu_seconds, period (day|month, UTC calendar), max_concurrent, max_queued, "
    "priority. Fields left out keep their value; null removes a limit.",
)
async def set_limits(request: Request, admin: Admin, user_id: UserId) -> Response:
    body = await read_body(request)
    parsed = _parse(LimitsRequest, body.fields)
    changes = {name: getattr(parsed, name) for name in parsed.model_fields_set}
    store = _store(request)

    def write() -> LimitsObject:
        uid = _resolve_user(store, user_id)
        store.set_user_limits(uid, actor=admin.user_id, **changes)
        usage = store.user_usage(uid)
        return _limits(usage.limits, usage)

    return _json(await to_thread.run_sync(write))


@router.get("/queue", response_model=QueueObject, responses=_ERRORS, summary="Queue status")
async def queue_status(request: Request, admin: Admin) -> Response:
    return _json(_queue(await to_thread.run_sync(_store(request).queue_status)))


@router.post("/queue/pause", response_model=QueueObject, responses=_ERRORS, summary="Pause the queue")
async def pause_queue(request: Request, admin: Admin) -> Response:
    """Workers claim nothing until resumed; running jobs finish; creates are still accepted and queued."""
    store = _store(request)

    def pause() -> QueueStatus:
        store.pause_queue(actor=admin.user_id)
        return store.queue_status()

    return _json(_queue(await to_thread.run_sync(pause)))


@router.post("/queue/resume", response_model=QueueObject, responses=_ERRORS, summary="Resume the queue")
async def resume_queue(request: Request, admin: Admin) -> Response:
    store = _store(request)

    def resume() -> QueueStatus:
        store.resume_queue(actor=admin.user_id)
        return store.queue_status()

    return _json(_queue(await to_thread.run_sync(resume)))


@router.get("/workers", response_model=WorkerList, responses=_ERRORS, summary="Workers")
async def list_workers(request: Request, admin: Admin) -> Response:
    workers = await to_thread.run_sync(_store(request).workers)
    return _json(WorkerList(data=[_worker(w) for w in workers]))


@router.post("/workers/{worker_id}/drain", response_model=WorkerObject, responses=_ERRORS_404, summary="Drain a worker")
async def drain_worker(request: Request, admin: Admin, worker_id: WorkerId) -> Response:
    """The worker finishes its current job, claims nothing more and exits (it checks at its next claim)."""
    store = _store(request)
    return _json(_worker(await to_thread.run_sync(lambda: store.drain_worker(worker_id, actor=admin.user_id))))


@router.post("/maintenance", response_model=QueueObject, responses=_ERRORS, summary="Maintenance mode on or off")
async def maintenance(request: Request, admin: Admin) -> Response:
    """On: creates and other writes under /v1 answer 503 with Retry-After; reads keep working; workers keep
    finishing running jobs. Body: {"on": true|false}."""
    parsed = _parse(MaintenanceRequest, (await read_body(request)).fields)
    store = _store(request)

    def switch() -> QueueStatus:
        store.set_maintenance(parsed.on, actor=admin.user_id)
        return store.queue_status()

    status = await to_thread.run_sync(switch)
    guard = getattr(request.app.state, "maintenance", None)
    if guard is not None:
        guard.known(status.maintenance)
    return _json(_queue(status))
