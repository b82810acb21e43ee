"""The scheduling policy: who runs next. Pure functions; the SQL stores feed them a summary of the line.

1. Priority tiers first: an owner's tier is set by admins (user_limits.priority, 0 without limits) and
   stamped on their jobs at enqueue (and on their waiting jobs when it changes); the waiting job with the
   highest priority always goes first. Within an owner's line: priority, then FIFO.
2. Within a tier, weighted fair share: the owner with the least recent GPU time goes next. An owner's usage is
   the GPU-seconds granted to their jobs, decayed exponentially with a half-life (so old use is forgiven).
   A job's estimate is added to its owner's usage when it is claimed (so one owner's parallel jobs do not all
   win while they run) and corrected to the measured time when it completes. Ties go to the owner served
   least recently.
3. An owner whose line was empty rejoins at no less than the scheduler's floor (the usage of the owner served
   last): idling banks no credit beyond what decay forgives, and a newcomer is served at the next free worker,
   not after a catch-up burst.
4. Owners at their concurrency cap are skipped; their jobs wait.
5. Model affinity: if the fairest owner's next job is for another model than the one the worker has loaded,
   the worker takes the next job of its loaded model from the fairest owner (in rank order) whose usage is
   within `affinity_slack_seconds` of the fairest owner's, same tier. Affinity can thus cost the fairest owner
   at most the slack in GPU-seconds, never a whole queue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FairPolicy:
    half_life_seconds: float = 3600.0
    affinity_slack_seconds: float = 30.0
    # GPU-seconds assumed for a job enqueued without an estimate (older rows, direct store use).
    default_job_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class Owner:
    """An owner with jobs in line, as the scheduler ranks them."""

    name: str
    tier: int  # the priority of the owner's next job: their tier (user_limits.priority) at enqueue
    usage: float  # decayed GPU-seconds now
    last_claim_at: float | None

    def rank(self) -> tuple[int, float, float]:
        """Sort key, best first: higher tier, then less usage, then served least recently."""
        last = self.last_claim_at if self.last_claim_at is not None else -math.inf
        return (-self.tier, self.usage, last)


def decayed(value: float, at: float, now: float, half_life: float) -> float:
    """`value` recorded at time `at`, decayed to `now`."""
    if half_life <= 0 or value == 0:
        return value
    return value * math.pow(0.5, max(now - at, 0.0) / half_life)
