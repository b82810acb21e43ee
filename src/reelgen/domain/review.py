"""Publishing and moderation: a video's review state. The allowed transitions live here and nowhere else.

Nothing reaches the public gallery without a moderator's approval (the admin role counts as moderator):

  none ──owner submits──> pending ──moderator approves──> approved  (published_at set: in the gallery)
   ^  ^                    │   │                              │  │
   │  └──owner withdraws───┘   └─moderator rejects─> rejected │  └─moderator takes down (reason)─> rejected
   │                                  │                       │
   │                                  └─owner resubmits─> pending
   └──────────────────────owner unpublishes──────────────────┘

  none ──a moderation hook flags it──> held ──moderator releases──> none
                                         └───moderator rejects────> blocked  (for good; the owner may delete it)

`held` comes from the prompt check at enqueue (the job waits, unclaimable) or from the frame check after
generation (the completed video's content is withheld from its owner). A rejected held job that never ran is
cancelled; a rejected held video keeps its content withheld.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from reelgen.domain.errors import Conflict, InvalidParams

# Longest reason a moderator may give (stored, shown to the owner, written to the audit log).
MAX_REASON_CHARS = 500


class ReviewState(enum.StrEnum):
    NONE = "none"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    HELD = "held"
    BLOCKED = "blocked"


TRANSITIONS: dict[ReviewState, frozenset[ReviewState]] = {
    ReviewState.NONE: frozenset({ReviewState.PENDING, ReviewState.HELD}),
    ReviewState.PENDING: frozenset({ReviewState.APPROVED, ReviewState.REJECTED, ReviewState.NONE}),
    ReviewState.APPROVED: frozenset({ReviewState.NONE, ReviewState.REJECTED}),
    ReviewState.REJECTED: frozenset({ReviewState.PENDING}),
    ReviewState.HELD: frozenset({ReviewState.NONE, ReviewState.BLOCKED}),
    ReviewState.BLOCKED: frozenset(),
}

# The one transition that makes a video public, and who may make each move.
PUBLIC = ReviewState.APPROVED


class Actor(enum.StrEnum):
    OWNER = "owner"
    MODERATOR = "moderator"
    HOOK = "hook"  # a moderation hook (prompt or frame check)


# Who may take each transition: the state machine and the permission rule in one table.
ACTORS: dict[tuple[ReviewState, ReviewState], Actor] = {
    (ReviewState.NONE, ReviewState.PENDING): Actor.OWNER,
    (ReviewState.NONE, ReviewState.HELD): Actor.HOOK,
    (ReviewState.PENDING, ReviewState.APPROVED): Actor.MODERATOR,
    (ReviewState.PENDING, ReviewState.REJECTED): Actor.MODERATOR,
    (ReviewState.PENDING, ReviewState.NONE): Actor.OWNER,
    (ReviewState.APPROVED, ReviewState.NONE): Actor.OWNER,
    (ReviewState.APPROVED, ReviewState.REJECTED): Actor.MODERATOR,
    (ReviewState.REJECTED, ReviewState.PENDING): Actor.OWNER,
    (ReviewState.HELD, ReviewState.NONE): Actor.MODERATOR,
    (ReviewState.HELD, ReviewState.BLOCKED): Actor.MODERATOR,
}


# The audit log's action name for each transition.
AUDIT_ACTIONS: dict[tuple[ReviewState, ReviewState], str] = {
    (ReviewState.NONE, ReviewState.PENDING): "review.submit",
    (ReviewState.REJECTED, ReviewState.PENDING): "review.resubmit",
    (ReviewState.PENDING, ReviewState.APPROVED): "review.approve",
    (ReviewState.PENDING, ReviewState.REJECTED): "review.reject",
    (ReviewState.APPROVED, ReviewState.REJECTED): "review.take_down",
    (ReviewState.PENDING, ReviewState.NONE): "review.withdraw",
    (ReviewState.APPROVED, ReviewState.NONE): "review.unpublish",
    (ReviewState.NONE, ReviewState.HELD): "moderation.hold",
    (ReviewState.HELD, ReviewState.NONE): "moderation.release",
    (ReviewState.HELD, ReviewState.BLOCKED): "moderation.block",
}


def check_transition(old: ReviewState, new: ReviewState) -> None:
    """Raise Conflict unless old -> new is an allowed review transition."""
    if new not in TRANSITIONS[old]:
        raise Conflict(f"a video whose review is {old.value} cannot become {new.value}")


def clean_reason(reason: str | None, *, required: bool) -> str | None:
    """Trim a moderator's reason; raise InvalidParams when a required one is missing or any is too long."""
    text = (reason or "").strip()
    if not text:
        if required:
            raise InvalidParams("a reason is required", param="reason")
        return None
    if len(text) > MAX_REASON_CHARS:
        raise InvalidParams(f"reason must be at most {MAX_REASON_CHARS} characters", param="reason")
    return text


@dataclass(frozen=True, slots=True)
class Review:
    """A job's publication / moderation record (jobs columns from migration 0007)."""

    state: ReviewState = ReviewState.NONE
    reason: str | None = None  # why it was rejected, taken down or held
    reviewed_by: str | None = None  # user id of the moderator (or "hook:prompt" / "hook:frames")
    reviewed_at: float | None = None
    submitted_at: float | None = None  # when the owner last submitted it for publication (or it was held)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One record of the append-only audit log: who did what to which object."""

    seq: int
    actor: str
    action: str
    target: str | None
    data: dict[str, object]
    created_at: float
