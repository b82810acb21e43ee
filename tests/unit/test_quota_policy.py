"""The pure parts of quotas and scheduling: UTC budget periods, decay, the owner ranking, and the GPU-second
estimate (measured timing vs the stated default)."""

from __future__ import annotations

import datetime as dt

import pytest

from reelgen.api.costs import DEFAULT_DECODE_STEPS, estimate_gpu_seconds
from reelgen.api.eta import ModelTiming, _Sample
from reelgen.domain.quotas import period_bounds
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.jobs.quota_store import actual_gpu_seconds
from reelgen.jobs.scheduling import Owner, decayed
from tests.conftest import make_params


def ts(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_periods_are_utc_calendar_days_and_months() -> None:
    assert period_bounds("day", ts(2026, 3, 5, 23, 59)) == (ts(2026, 3, 5), ts(2026, 3, 6))
    assert period_bounds("month", ts(2026, 3, 31, 12)) == (ts(2026, 3, 1), ts(2026, 4, 1))
    assert period_bounds("month", ts(2026, 12, 15)) == (ts(2026, 12, 1), ts(2027, 1, 1))


def test_decay_halves_usage_every_half_life() -> None:
    assert decayed(100.0, 0.0, 3600.0, 3600.0) == pytest.approx(50.0)
    assert decayed(100.0, 0.0, 7200.0, 3600.0) == pytest.approx(25.0)
    assert decayed(100.0, 10.0, 5.0, 3600.0) == 100.0  # never grows


def test_owners_rank_by_tier_then_usage_then_least_recently_served() -> None:
    owners = [
        Owner("busy", 0, 50.0, 100.0),
        Owner("new", 0, 10.0, None),
        Owner("vip", 1, 500.0, 99.0),
        Owner("recent", 0, 10.0, 200.0),
    ]
    assert [o.name for o in sorted(owners, key=Owner.rank)] == ["vip", "new", "recent", "busy"]


def test_estimate_uses_measured_timing_or_the_stated_default() -> None:
    params = make_params(steps=4, n=2)
    work = params.size.width * params.size.height * params.num_frames
    timing = ModelTiming(samples=(_Sample(work, 0.5, 1.0, 4.0, "w", 0.0),), active_workers=1)
    assert estimate_gpu_seconds(timing, TINY_RANDOM_WAN, params) == pytest.approx(0.5 * 4 * 2 + 1.0 * 2)
    default = estimate_gpu_seconds(None, TINY_RANDOM_WAN, params)
    assert default > 0
    one = estimate_gpu_seconds(None, TINY_RANDOM_WAN, make_params(steps=4, n=1))
    assert default == pytest.approx(2 * one, rel=1e-3)
    step = one / (4 + DEFAULT_DECODE_STEPS)
    assert estimate_gpu_seconds(None, TINY_RANDOM_WAN, make_params(steps=8, n=1)) == pytest.approx(
        step * (8 + DEFAULT_DECODE_STEPS), rel=1e-3
    )


def test_actual_time_is_denoise_plus_decode_per_variation_else_wall_time() -> None:
    from reelgen.domain import Artifact

    art = Artifact("k", None, None, 1, 9, 64, 64, 16, "0", extra={"stats": {"denoise_seconds": 3, "decode_seconds": 1}})
    assert actual_gpu_seconds(art, 2, 0.0, 100.0) == 8.0
    assert actual_gpu_seconds(None, 1, 90.0, 100.0) == 10.0
