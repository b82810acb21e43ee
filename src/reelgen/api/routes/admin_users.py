"""/v1/admin/users and /v1/admin/keys (reelgen extension, admin role only): users, roles and API keys.

The same operations as `reelgen users …`. A revoke, disable or role change takes effect at once for this
server (its memory of checked keys and sessions is dropped).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelgen.api.auth import Admin, Authenticator
from reelgen.api.errors import from_validation
from reelgen.api.forms import read_body
from reelgen.api.protocol import ErrorResponse
from reelgen.domain.accounts import ApiKey, Role, User
from reelgen.jobs.store import JobStore

router = APIRouter(prefix="/v1/admin", tags=["admin"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No valid API key or session"},
    403: {"model": ErrorResponse, "description": "The caller is not an admin"},
    404: {"model": ErrorResponse, "description": "No such user or key"},
}
UserName = Annotated[str, Path(description="The user's name")]


class UserObject(BaseModel):
    object: Literal["user"] = "user"
    id: str
    name: str
    role: str
    disabled: bool
    created_at: int


class UserCreated(UserObject):
    api_key: str = Field(description="The user's first API key: shown only in this response")


class UserList(BaseModel):
    object: Literal["list"] = "list"
    data: list[UserObject]


class KeyObject(BaseModel):
    object: Literal["api_key"] = "api_key"
    id: str
    user_id: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyObject]


class RevokedKeys(BaseModel):
    object: Literal["api_key.revoked"] = "api_key.revoked"
    user_id: str
    revoked: int


class UserCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    role: Role = Role.USER
    password: str | None = None


class RoleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


def _user(u: User) -> UserObject:
    return UserObject(id=u.id, name=u.name, role=u.role.value, disabled=u.disabled, created_at=int(u.created_at))


def _key(k: ApiKey) -> KeyObject:
    return KeyObject(
        id=k.id,
        user_id=k.user_id,
        created_at=int(k.created_at),
        last_used_at=int(k.last_used_at) if k.last_used_at is not None else None,
        revoked_at=int(k.revoked_at) if k.revoked_at is not None else None,
    )


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.service.store
    return store


def _changed(request: Request) -> None:
    authenticator: Authenticator = request.app.state.authenticator
    authenticator.forget()


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], fields: dict[str, Any]) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as e:
        raise from_validation(list(e.errors())) from None


def _json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


@router.get("/users", response_model=UserList, responses=_ERRORS, summary="List users (admin)")
async def list_users(request: Request, admin: Admin) -> Response:
    users = await to_thread.run_sync(_store(request).accounts.list_users)
    return _json(UserList(data=[_user(u) for u in users]))


@router.post(
    "/users",
    response_model=UserCreated,
    responses={**_ERRORS, 400: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
    summary="Add a user with a first API key, returned once (admin)",
)
async def create_user(request: Request, admin: Admin) -> Response:
    body = await read_body(request)
    req = _parse(UserCreateRequest, body.fields)
    accounts = _store(request).accounts
    user, key = await to_thread.run_sync(lambda: accounts.add_user(req.name, req.role, req.password, actor=admin.name))
    _changed(request)
    return _json(UserCreated(**_user(user).model_dump(exclude={"object"}), api_key=key))


@router.post("/users/{name}/disable", response_model=UserObject, responses=_ERRORS, summary="Disable a user (admin)")
async def disable_user(request: Request, admin: Admin, name: UserName) -> Response:
    accounts = _store(request).accounts
    user = await to_thread.run_sync(lambda: accounts.disable_user(name, actor=admin.name))
    _changed(request)
    return _json(_user(user))


@router.post("/users/{name}/enable", response_model=UserObject, responses=_ERRORS, summary="Enable a user (admin)")
async def enable_user(request: Request, admin: Admin, name: UserName) -> Response:
    accounts = _store(request).accounts
    user = await to_thread.run_sync(lambda: accounts.enable_user(name, actor=admin.name))
    _changed(request)
    return _json(_user(user))


@router.post("/users/{name}/role", response_model=UserObject, responses=_ERRORS, summary="Change a role (admin)")
async def set_role(request: Request, admin: Admin, name: UserName) -> Response:
    body = await read_body(request)
    req = _parse(RoleRequest, body.fields)
    accounts = _store(request).accounts
    user = await to_thread.run_sync(lambda: accounts.set_role(name, req.role, actor=admin.name))
    _changed(request)
    return _json(_user(user))


@router.get("/users/{name}/keys", response_model=KeyList, responses=_ERRORS, summary="A user's API keys (admin)")
async def list_keys(request: Request, admin: Admin, name: UserName) -> Response:
    accounts = _store(request).accounts

    def keys() -> list[ApiKey]:
        return accounts.list_keys(accounts.require_user(name).id)

    return _json(KeyList(data=[_key(k) for k in await to_thread.run_sync(keys)]))


@router.post(
    "/users/{name}/revoke-keys",
    response_model=RevokedKeys,
    responses=_ERRORS,
    summary="Revoke every API key of a user (admin; an operator control)",
)
async def revoke_user_keys(request: Request, admin: Admin, name: UserName) -> Response:
    accounts = _store(request).accounts

    def revoke() -> RevokedKeys:
        user = accounts.require_user(name)
        return RevokedKeys(user_id=user.id, revoked=accounts.revoke_all_keys(user.id, actor=admin.name))

    result = await to_thread.run_sync(revoke)
    _changed(request)
    return _json(result)


@router.post("/keys/{key_id}/revoke", response_model=KeyObject, responses=_ERRORS, summary="Revoke one API key (admin)")
async def revoke_key(request: Request, admin: Admin, key_id: str) -> Response:
    accounts = _store(request).accounts
    key = await to_thread.run_sync(lambda: accounts.revoke_key(key_id, actor=admin.name))
    _changed(request)
    return _json(_key(key))
