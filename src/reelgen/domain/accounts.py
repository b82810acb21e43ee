"""People: roles, the authenticated caller (Principal), users and API keys as records crossing layers.

Job ownership is a user id (`Job.owner`). With authentication off (a single person on loopback) every caller
is LOCAL, the one owner "local", who holds every role.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    MODERATOR = "moderator"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved once per request by api/auth.py, passed down to the service."""

    user_id: str
    name: str
    role: Role
    key_id: str | None = None  # the API key used, None for a studio session or auth off

    @property
    def sees_all(self) -> bool:
        """Moderators and admins see (and may act on) every user's videos; users only their own."""
        return self.role in (Role.MODERATOR, Role.ADMIN)

    def can_see(self, owner: str) -> bool:
        return self.sees_all or owner == self.user_id


LOCAL = Principal(user_id="local", name="local", role=Role.ADMIN)


@dataclass(frozen=True)
class User:
    id: str
    name: str
    role: Role
    disabled: bool
    created_at: float


@dataclass(frozen=True)
class ApiKey:
    """A key's public part. The secret is shown once at creation and stored only as a hash."""

    id: str
    user_id: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
