"""Quotas, fair share and operator controls: the records that cross layers, and the calendar of budget periods.

Budgets are GPU-seconds per calendar period in UTC: a 'day' runs from 00:00 UTC, a 'month' from 00:00 UTC on
its first day. A job is charged its estimate when it is enqueued (atomically with the enqueue), to the period in
which it was enqueued; the charge is corrected to the measured time when it completes, and refunded when it
fails for good or is cancelled before it ran (a job cancelled while running pays the time it used).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

# Default of set_user_limits' arguments: "leave this limit as it is" (None means "no limit").
KEEP: Any = object()

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")


@dataclass(frozen=True, slots=True)
class UserLimits:
    """What an admin allows one user. None means unlimited; priority is the scheduling tier (higher first)."""

    user_id: str
    gpu_seconds: float | None = None
    period: Period = "day"
    max_concurrent: int | None = None
    max_queued: int | None = None
    priority: int = 0


@dataclass(frozen=True, slots=True)
class UserUsage:
    """One user's standing for reporting: budget use in the current period, unfinished jobs, fair-share usage."""

    user_id: str
    limits: UserLimits
    period_start: float
    period_end: float
    charged_seconds: float  # what counts against the budget this period (reserved estimates + settled actuals)
    reserved_seconds: float  # of which: estimates of jobs not finished yet
    queued: int
    running: int
    fair_share_usage: float  # decayed GPU-seconds the scheduler compares between users

    @property
    def remaining_seconds(self) -> float | None:
        if self.limits.gpu_seconds is None:
            return None
        return max(self.limits.gpu_seconds - self.charged_seconds, 0.0)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    job_id: str
    user_id: str
    period_start: float
    estimated: float
    actual: float | None
    charged: float
    state: Literal["reserved", "settled", "refunded"]
    created_at: float
    settled_at: float | None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker as the database last saw it (it checks in at every claim)."""

    id: str
    state: Literal["active", "draining", "drained"]
    model: str | None
    started_at: float
    last_seen_at: float
    current_job: str | None


@dataclass(frozen=True, slots=True)
class OwnerLine:
    owner: str
    queued: int
    running: int


@dataclass(frozen=True, slots=True)
class QueueStatus:
    paused: bool
    maintenance: bool
    queued: int
    running: int
    owners: tuple[OwnerLine, ...]


def period_bounds(period: Period, now: float) -> tuple[float, float]:
    """[start, end) of the calendar period (UTC) that contains `now`, as epoch seconds."""
    t = dt.datetime.fromtimestamp(now, dt.UTC)
    if period == "day":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(days=1)
    else:
        start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start.timestamp(), end.timestamp()
