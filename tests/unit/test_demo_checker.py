"""The classical-vision checker, validated on ground-truth renders (clean and degraded like generated clips)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from reelgen.demo.captions import caption, parse_caption
from reelgen.demo.checker import analyse, check, classify_colour, classify_motion
from reelgen.demo.world import COLOURS, ObjectSpec, SceneSpec, degrade, render, sample_spec

N = 300
FRAMES, SIZE = 17, 128


@pytest.fixture(scope="module")
def ground_truth() -> list[tuple[SceneSpec, np.ndarray]]:
    rng = np.random.default_rng(2024)
    specs = [sample_spec(rng, "heldout" if i % 10 == 0 else "train") for i in range(N)]
    return [(s, render(s, FRAMES, SIZE, SIZE, seed=i)) for i, s in enumerate(specs)]


def _accuracy(pairs: list[tuple[SceneSpec, np.ndarray]]) -> tuple[dict[str, float], Counter[tuple[str, ...]]]:
    hits: Counter[str] = Counter()
    confusions: Counter[tuple[str, ...]] = Counter()
    for spec, clip in pairs:
        result = check(clip, spec)
        for attr in ("colour", "shape", "motion", "background"):
            if getattr(result, f"{attr}_ok"):
                hits[attr] += 1
            else:
                confusions[(attr, getattr(spec, attr), str(getattr(result, attr)))] += 1
    return {attr: hits[attr] / len(pairs) for attr in ("colour", "shape", "motion", "background")}, confusions


def test_checker_is_accurate_on_clean_renders(ground_truth: list[tuple[SceneSpec, np.ndarray]]) -> None:
    acc, confusions = _accuracy(ground_truth)
    assert min(acc.values()) >= 0.98, (acc, confusions.most_common(10))


def test_checker_is_accurate_on_degraded_renders(ground_truth: list[tuple[SceneSpec, np.ndarray]]) -> None:
    rng = np.random.default_rng(7)
    degraded = [(spec, degrade(clip, rng)) for spec, clip in ground_truth]
    assert any(not np.array_equal(a, b) for (_, a), (_, b) in zip(ground_truth, degraded, strict=True))
    acc, confusions = _accuracy(degraded)
    assert min(acc.values()) >= 0.98, (acc, confusions.most_common(10))


@pytest.mark.parametrize(("frames", "width", "height"), [(9, 64, 64), (33, 160, 96)])
def test_checker_works_at_other_sizes_and_lengths(frames: int, width: int, height: int) -> None:
    rng = np.random.default_rng(frames)
    pairs = [(s, render(s, frames, width, height)) for s in (sample_spec(rng) for _ in range(40))]
    acc, confusions = _accuracy(pairs)
    assert min(acc.values()) >= 0.95, (acc, confusions.most_common(10))


def test_track_follows_the_ground_truth_centre() -> None:
    spec = SceneSpec((ObjectSpec("triangle", "pink", "down-left", 0.12, 0.7, 0.3, 0.45),), "sky")
    analysis = analyse(render(spec, FRAMES, SIZE, SIZE))
    for i, point in enumerate(analysis.track):
        assert point is not None
        x, y, _ = spec.primary.state(i / (FRAMES - 1))
        assert abs(point[0] - x) < 0.5 / SIZE and abs(point[1] - y) < 0.5 / SIZE


def test_check_accepts_text_and_partial_expectations() -> None:
    spec = SceneSpec((ObjectSpec("square", "red", "right", 0.14, 0.3, 0.5, 0.4),), "black")
    clip = render(spec, FRAMES, SIZE, SIZE)
    result = check(clip, "a red square moving to the right")
    assert (result.colour, result.shape, result.motion, result.background) == ("red", "square", "right", "black")
    assert result.ok and result.background_ok is None
    assert check(clip, caption(spec)).background_ok is True
    wrong = check(clip, parse_caption("a blue box rising"))
    assert (wrong.colour_ok, wrong.shape_ok, wrong.motion_ok, wrong.ok) == (False, True, False, False)
    assert check(clip, "something red").shape_ok is None


def test_empty_clip_matches_nothing() -> None:
    clip = np.full((FRAMES, SIZE, SIZE, 3), 128, dtype=np.uint8)
    clip += np.random.default_rng(0).integers(0, 4, size=clip.shape, dtype=np.uint8)
    result = check(clip, "a red circle moving left")
    assert (result.colour, result.shape, result.motion) == (None, None, None)
    assert result.background == "gray" and not result.ok


def test_a_smaller_distractor_blob_is_ignored() -> None:
    spec = SceneSpec((ObjectSpec("star", "yellow", "up", 0.15, 0.6, 0.7, 0.35),), "black")
    clip = render(spec, FRAMES, SIZE, SIZE)
    clip[:, 10:16, 10:16] = COLOURS["yellow"]  # a blotch a generated clip might have
    result = check(clip, spec)
    assert result.ok, result


def test_colour_names_survive_exposure_changes() -> None:
    for name, rgb in COLOURS.items():
        for scale in (0.8, 1.0, 1.1):
            assert classify_colour(np.clip(np.array(rgb) * scale, 0, 255)) == name, (name, scale)


@pytest.mark.parametrize(
    ("track", "motion"),
    [
        ([(0.5, 0.5, 0.1)] * 9, "still"),
        ([(0.3 + 0.05 * i, 0.5, 0.1) for i in range(9)], "right"),
        ([(0.5, 0.7 - 0.05 * i, 0.1) for i in range(9)], "up"),
        ([(0.7 - 0.04 * i, 0.3 + 0.04 * i, 0.1) for i in range(9)], "down-left"),
        ([(0.5, 0.5, 0.08 * 1.1**i) for i in range(9)], "grow"),
        ([(0.5, 0.5, 0.2 * 0.9**i) for i in range(9)], "shrink"),
        ([(0.3 + 0.08 * min(i, 8 - i), 0.5, 0.1) for i in range(9)], "bounce"),
        ([(0.5, 0.5, 0.1)] * 2, None),
    ],
)
def test_motion_classifier(track: list[tuple[float, float, float]], motion: str | None) -> None:
    assert classify_motion(track) == motion
