"""Domain rules: parameter validation names the bad field, frame-count rules, status transitions."""

from __future__ import annotations

import pytest

from reelgen.domain import (
    Conflict,
    FrameRule,
    GenerationParams,
    InvalidParams,
    JobStatus,
    ParamLimits,
    Size,
    check_transition,
    validate_params,
)
from reelgen.engines.registry import get_spec

SPEC = get_spec("tiny-random-wan")
LIMITS = ParamLimits(max_prompt_chars=100, max_steps=30, max_n=2, max_seconds=4)


def test_defaults_are_filled_from_the_model() -> None:
    p = validate_params(SPEC, LIMITS, prompt="a fox")
    assert p.model == SPEC.id and p.size == SPEC.default_size and p.fps == SPEC.fps
    assert p.steps == SPEC.default_steps and p.num_frames == SPEC.num_frames(SPEC.default_seconds)
    assert 0 <= p.seed < 2**31 and p.n == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 101}, "prompt"),
        ({"negative_prompt": "x" * 101}, "negative_prompt"),
        ({"seconds": "0"}, "seconds"),
        ({"seconds": "-1"}, "seconds"),
        ({"seconds": "99"}, "seconds"),
        ({"seconds": "four"}, "seconds"),
        ({"seconds": "nan"}, "seconds"),
        ({"size": "1920x1080"}, "size"),
        ({"size": "big"}, "size"),
        ({"steps": 31}, "steps"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"guidance_scale": 100}, "guidance_scale"),
        ({"n": 3}, "n"),
        ({"seed": -1}, "seed"),
        ({"seed": "abc"}, "seed"),
        ({"fps": 0}, "fps"),
        ({"input_image": "inputs/x.png"}, "input_reference"),
    ],
)
def test_invalid_fields_are_named(kwargs: dict, field: str) -> None:
    kwargs.setdefault("prompt", "a fox")
    with pytest.raises(InvalidParams) as e:
        validate_params(SPEC, LIMITS, **kwargs)
    assert e.value.param == field


def test_size_error_lists_supported_sizes() -> None:
    with pytest.raises(InvalidParams, match=r"supported sizes: .*832x480"):
        validate_params(SPEC, LIMITS, prompt="a fox", size="1920x1080")


def test_unknown_model_is_named() -> None:
    with pytest.raises(InvalidParams) as e:
        get_spec("sora-2")
    assert e.value.param == "model" and "tiny-random-wan" in e.value.message


def test_large_seeds_survive_exactly() -> None:
    p = validate_params(SPEC, LIMITS, prompt="a fox", seed=2**62 + 1)
    assert p.seed == 2**62 + 1
    assert GenerationParams.from_dict(p.to_dict()) == p


@pytest.mark.parametrize(
    ("rule", "seconds", "fps", "frames"),
    [
        (FrameRule(4, 1, 5, 81), 1, 16, 17),
        (FrameRule(4, 1, 5, 81), 5, 16, 81),
        (FrameRule(4, 1, 5, 81), 0.1, 16, 5),
        (FrameRule(8, 1, 9, 257), 2, 24, 49),
        (FrameRule(1, 0, 1, 1000), 2.5, 10, 25),
    ],
)
def test_frame_rules(rule: FrameRule, seconds: float, fps: int, frames: int) -> None:
    got = rule.frames_for(seconds, fps)
    assert got == frames and (got - rule.offset) % rule.multiple == 0


def test_size_parsing() -> None:
    assert Size.parse("832x480") == Size(832, 480) and str(Size(832, 480)) == "832x480"
    with pytest.raises(ValueError):
        Size.parse("832*480")


def test_transitions_are_enforced_in_one_place() -> None:
    check_transition(JobStatus.QUEUED, JobStatus.IN_PROGRESS)
    check_transition(JobStatus.IN_PROGRESS, JobStatus.QUEUED)  # lease expired or retry
    for terminal in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        assert terminal.terminal
        for target in JobStatus:
            with pytest.raises(Conflict):
                check_transition(terminal, target)
    with pytest.raises(Conflict):
        check_transition(JobStatus.QUEUED, JobStatus.COMPLETED)


def test_every_status_update_in_the_store_sql_is_an_allowed_transition() -> None:
    """The SQL compare-and-set updates must agree with domain.jobs.TRANSITIONS."""
    import re

    from reelgen.jobs import queries

    checked = 0
    for name in dir(queries):
        sql = getattr(queries, name)
        if not isinstance(sql, str) or "SET status" not in sql:
            continue
        new = JobStatus(re.search(r"SET status = '(\w+)'", sql).group(1))  # type: ignore[union-attr]
        olds = re.findall(r"WHERE[\s\S]*?status = '(\w+)'", sql)
        assert olds, f"{name} updates status without naming the status it expects"
        check_transition(JobStatus(olds[0]), new)
        checked += 1
    assert checked >= 8


def test_every_review_state_update_in_the_store_sql_is_an_allowed_transition() -> None:
    """The review compare-and-set updates must agree with domain.review.TRANSITIONS, and only the approval
    may set published_at (no path into the gallery without a moderator)."""
    import re

    from reelgen.domain.review import TRANSITIONS as REVIEW_TRANSITIONS
    from reelgen.domain.review import ReviewState
    from reelgen.jobs import queries

    checked = 0
    for name in dir(queries):
        sql = getattr(queries, name)
        if not isinstance(sql, str) or "SET review_state" not in sql:
            continue
        new = ReviewState(re.search(r"SET review_state = '(\w+)'", sql).group(1))  # type: ignore[union-attr]
        where = sql[sql.index("WHERE") :]
        match = re.search(r"review_state = '(\w+)'|review_state IN \(([^)]*)\)", where)
        assert match, f"{name} updates review_state without naming the state it expects"
        olds = [match.group(1)] if match.group(1) else re.findall(r"'(\w+)'", match.group(2))
        for old in olds:
            assert new in REVIEW_TRANSITIONS[ReviewState(old)], f"{name}: {old} -> {new}"
        if new is ReviewState.APPROVED:
            assert olds == ["pending"]
        checked += 1
    assert checked >= 8
    for name in dir(queries):
        sql = getattr(queries, name)
        if isinstance(sql, str) and re.search(r"published_at = (?!NULL)", sql):
            assert name == "APPROVE", f"{name} sets published_at: only a moderator's approval may"
