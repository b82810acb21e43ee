"""Who is calling. Single-owner mode for now: the server is bound to loopback, no key is needed and any
Bearer token is accepted; every caller is the owner "local".

Every route takes the owner from `current_owner` and the service checks it on every object access, so when
accounts arrive only this function changes (look the key up, answer 401/403), not the routes or the service.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

LOCAL_OWNER = "local"


async def current_owner(request: Request) -> str:
    # async on purpose: FastAPI would run a plain function in a worker thread, a hop on every request.
    return LOCAL_OWNER


Owner = Annotated[str, Depends(current_owner)]
