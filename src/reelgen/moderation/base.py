"""The moderation plugin interface. A plugin is any object with a `check` method; it never raises for content
it dislikes, it answers a Verdict."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from reelgen.domain.errors import InvalidParams

if TYPE_CHECKING:  # the API process (prompt checks) never imports numpy
    import numpy as np


class VerdictKind(enum.StrEnum):
    ALLOW = "allow"
    HOLD = "hold"  # accept, but a moderator must release it (prompt: before it runs; frames: before it is shown)
    BLOCK = "block"  # refuse (prompt: 400 at create; frames: treated as hold, the video already exists)


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    reason: str = ""

    @classmethod
    def allow(cls) -> Verdict:
        return cls(VerdictKind.ALLOW)

    @classmethod
    def hold(cls, reason: str) -> Verdict:
        return cls(VerdictKind.HOLD, reason)

    @classmethod
    def block(cls, reason: str) -> Verdict:
        return cls(VerdictKind.BLOCK, reason)

    @property
    def allowed(self) -> bool:
        return self.kind is VerdictKind.ALLOW


@runtime_checkable
class PromptCheck(Protocol):
    """Runs in the API process before a job is enqueued (keep it fast, or batch it behind a service)."""

    def check(self, prompt: str) -> Verdict: ...


@runtime_checkable
class FrameCheck(Protocol):
    """Runs in the worker after generation, on frames sampled evenly from the main video:
    `frames` is uint8 (count, height, width, 3) RGB."""

    def check(self, frames: np.ndarray) -> Verdict: ...


class AllowAllFrames:
    """The default frame check: allows everything (the hook point, ready for a classifier plugin)."""

    def check(self, frames: np.ndarray) -> Verdict:
        return Verdict.allow()


class ModerationBlocked(InvalidParams):
    """The prompt check refused a prompt: 400 naming `prompt`, code moderation_blocked."""

    code = "moderation_blocked"
