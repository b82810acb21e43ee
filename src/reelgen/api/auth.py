"""Who is calling. Every route takes the caller from `current_principal`; the service checks ownership on
every object access (`Principal.can_see`), answering 404 for another user's objects exactly as for missing ones.

Authentication off (the default for one person on loopback): every caller is LOCAL, the owner "local".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from reelgen.domain.accounts import LOCAL, Principal, Role
from reelgen.domain.errors import Forbidden

LOCAL_OWNER = LOCAL.user_id


async def current_principal(request: Request) -> Principal:
    # async on purpose: FastAPI would run a plain function in a worker thread, a hop on every request.
    return LOCAL


async def current_owner(request: Request) -> str:
    return (await current_principal(request)).user_id


def require_role(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that answers 403 unless the caller holds one of `roles` (admin always qualifies)."""
    allowed = {*roles, Role.ADMIN}

    async def check(request: Request) -> Principal:
        principal = await current_principal(request)
        if principal.role not in allowed:
            raise Forbidden(f"this endpoint needs the {' or '.join(sorted(r.value for r in allowed))} role")
        return principal

    return check


Caller = Annotated[Principal, Depends(current_principal)]
Owner = Annotated[str, Depends(current_owner)]
Moderator = Annotated[Principal, Depends(require_role(Role.MODERATOR))]
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
