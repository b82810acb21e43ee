"""The demo world: deterministic rendering, every combination visible, sampler rules, captions round trip."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from reelgen.demo import captions as cap
from reelgen.demo import world
from reelgen.demo.world import (
    BACKGROUNDS,
    COLOURS,
    EXCLUDED,
    HELD_OUT,
    MARGIN,
    MIN_CONTRAST,
    MOTIONS,
    SHAPES,
    ObjectSpec,
    SceneSpec,
    is_held_out,
    render,
    sample_object,
    sample_spec,
    visible,
)


def _specs(n: int, seed: int = 0, split: str = "train") -> list[SceneSpec]:
    rng = np.random.default_rng(seed)
    return [sample_spec(rng, split) for _ in range(n)]


def test_render_is_deterministic_by_seed() -> None:
    spec = SceneSpec((ObjectSpec("star", "red", "up-right", 0.15, 0.3, 0.7, 0.4),), "grass")
    a, b = render(spec, 17, 128, 128, seed=3), render(spec, 17, 128, 128, seed=3)
    assert a.shape == (17, 128, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    # The seed only moves the faint grass texture, never the object.
    c = render(spec, 17, 128, 128, seed=4)
    assert not np.array_equal(a, c) and np.abs(a.astype(int) - c).max() <= 2 * 5 + 1
    plain = SceneSpec(spec.objects, "black")
    assert np.array_equal(render(plain, 5, 64, 64, seed=1), render(plain, 5, 64, 64, seed=2))


def test_render_is_anti_aliased_and_resolution_independent() -> None:
    spec = SceneSpec((ObjectSpec("circle", "white", "still", 0.2),), "black")
    frame = render(spec, 1, 128, 128)[0, :, :, 0]
    levels = np.unique(frame)
    assert len(levels) > 10, "edges should have intermediate coverage values"
    # Same scene at twice the resolution covers the same fraction of the frame.
    big = render(spec, 1, 256, 256)[0, :, :, 0]
    assert abs(frame.mean() / 255 - big.mean() / 255) < 0.002


def test_every_combination_renders_a_visible_object() -> None:
    rng = np.random.default_rng(1)
    for i, (shape, colour, motion) in enumerate(itertools.product(SHAPES, COLOURS, MOTIONS)):
        backgrounds = [b for b in BACKGROUNDS if visible(colour, b)]
        spec = SceneSpec((sample_object(rng, shape, colour, motion),), backgrounds[i % len(backgrounds)])
        clip = render(spec, 3, 64, 64).astype(np.float32)
        bg = world.background_image(spec.background, 64, 64)
        dist = np.linalg.norm(clip - bg, axis=-1)
        # Each frame shows a solid object (pixels at full contrast) and leaves the border untouched.
        solid = (dist > 0.9 * MIN_CONTRAST).sum(axis=(1, 2))
        assert (solid >= 12).all(), (spec, solid)
        border = np.concatenate(
            [dist[:, :2].ravel(), dist[:, -2:].ravel(), dist[:, :, :2].ravel(), dist[:, :, -2:].ravel()]
        )
        assert border.max() < 1.0, spec


def test_colour_background_rules() -> None:
    assert set(EXCLUDED) == {("green", "grass"), ("white", "white"), ("white", "sky"), ("cyan", "sky")}
    for colour, background in itertools.product(COLOURS, BACKGROUNDS):
        assert visible(colour, background) == ((colour, background) not in EXCLUDED)
    for spec in _specs(2000):
        assert visible(spec.colour, spec.background)
    # Palette colours are far apart from each other too.
    rgb = np.array(list(COLOURS.values()), dtype=float)
    gaps = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(len(rgb)) * 1e9
    assert gaps.min() > 100


def test_sampled_objects_stay_inside_the_frame() -> None:
    ts = np.linspace(0.0, 1.0, 33)
    for spec in _specs(3000, seed=2):
        obj = spec.primary
        for t in ts:
            x, y, s = obj.state(float(t))
            assert s >= 0.07 - 1e-9
            for c in (x, y):
                assert s + MARGIN - 1e-9 <= c <= 1 - s - MARGIN + 1e-9, (obj, t)


def test_motions_have_their_intended_trajectories() -> None:
    ts = np.linspace(0.0, 1.0, 101)
    for spec in _specs(3000, seed=3):
        obj = spec.primary
        track = np.array([obj.state(float(t)) for t in ts])
        x, y, s = track[:, 0], track[:, 1], track[:, 2]
        if obj.motion in world.DIRECTIONS:
            dx, dy = world.DIRECTIONS[obj.motion]
            assert np.allclose(np.hypot(x[-1] - x[0], y[-1] - y[0]), obj.speed) and obj.speed >= 0.3
            assert np.sign(x[-1] - x[0]) == np.sign(round(dx, 6)) and np.sign(y[-1] - y[0]) == np.sign(round(dy, 6))
        elif obj.motion == "bounce":
            steps = np.sign(np.diff(x))
            turns = np.flatnonzero(steps[1:] != steps[:-1])
            assert len(turns) == 1 and 0.33 <= ts[turns[0]] <= 0.67, obj
            assert np.ptp(y) == 0
        elif obj.motion in ("grow", "shrink"):
            assert (s[-1] / s[0] >= 1.8) if obj.motion == "grow" else (s[0] / s[-1] >= 1.8)
            assert np.ptp(x) == 0 and np.ptp(y) == 0
        else:
            assert np.ptp(track, axis=0).max() == 0


def test_held_out_triples_are_never_trained_on() -> None:
    assert len(HELD_OUT) == 18
    # Every word appears in the held-out set, and every pair inside a held-out triple is seen in training.
    assert {c for c, _, _ in HELD_OUT} == set(COLOURS)
    assert {s for _, s, _ in HELD_OUT} == set(SHAPES)
    assert {m for _, _, m in HELD_OUT} == set(MOTIONS)
    for c, s, m in HELD_OUT:
        assert any((c, s, other) not in HELD_OUT for other in MOTIONS if other != m)
        assert any((c, other, m) not in HELD_OUT for other in SHAPES if other != s)
        assert any((other, s, m) not in HELD_OUT for other in COLOURS if other != c)
    train = _specs(5000, seed=4)
    assert not any(is_held_out(s) for s in train)
    # The training sampler still covers everything else.
    seen = {(s.colour, s.shape, s.motion) for s in train}
    assert len(seen) > 0.95 * (len(COLOURS) * len(SHAPES) * len(MOTIONS) - len(HELD_OUT))
    held = _specs(500, seed=5, split="heldout")
    assert all(is_held_out(s) for s in held)
    assert {(s.colour, s.shape, s.motion) for s in held} == set(HELD_OUT)
    with pytest.raises(ValueError):
        sample_spec(np.random.default_rng(0), "test")


def test_sampling_is_deterministic_by_seed() -> None:
    assert _specs(50, seed=9) == _specs(50, seed=9)
    assert _specs(50, seed=9) != _specs(50, seed=10)


def test_specs_reject_unknown_words_and_are_ready_for_two_objects() -> None:
    with pytest.raises(ValueError, match="shape"):
        ObjectSpec("cat", "red", "left")
    with pytest.raises(ValueError, match="background"):
        SceneSpec((ObjectSpec("star", "red", "left"),), "beach")
    with pytest.raises(ValueError):
        SceneSpec(())
    two = SceneSpec((ObjectSpec("star", "red", "still", 0.1, 0.3), ObjectSpec("square", "blue", "still", 0.1, 0.7)))
    frame = render(two, 1, 64, 64)[0].astype(int)
    assert frame[32, 19].tolist() == list(COLOURS["red"]) and frame[32, 45].tolist() == list(COLOURS["blue"])


# --- captions ---------------------------------------------------------------------------------------------------


def test_caption_tables_cover_the_world() -> None:
    assert set(cap.SHAPE_WORDS) == set(SHAPES) and set(cap.COLOUR_WORDS) == set(COLOURS)
    assert set(cap.BACKGROUND_PHRASES) == set(BACKGROUNDS)
    assert list(cap.VOCABULARY) == sorted(set(cap.VOCABULARY))
    assert all(w.isalpha() and w.islower() for w in cap.VOCABULARY)
    assert len(cap.VOCABULARY) < 200


def test_random_captions_parse_back_to_their_scene() -> None:
    rng = np.random.default_rng(6)
    texts = set()
    for spec in _specs(3000, seed=7) + _specs(300, seed=8, split="heldout"):
        text = cap.caption(spec, rng)
        texts.add(text)
        parsed = cap.parse_caption(text)
        assert (parsed.shape, parsed.colour, parsed.motion) == (spec.shape, spec.colour, spec.motion), text
        assert parsed.background in (None, spec.background), text
        assert parsed.unknown == () and set(cap.tokenize(text)) <= set(cap.VOCABULARY), text
    assert len(texts) > 2900, "captions should rarely repeat"


def test_canonical_captions_round_trip_for_every_combination() -> None:
    rng = np.random.default_rng(0)
    for shape, colour, motion, background in itertools.product(SHAPES, COLOURS, MOTIONS, BACKGROUNDS):
        spec = SceneSpec((sample_object(rng, shape, colour, motion),), background)
        text = cap.caption(spec)
        assert cap.parse_caption(text) == cap.ParsedCaption(shape, colour, motion, background), text
    spec = SceneSpec((ObjectSpec("circle", "orange", "left"),), "black")
    assert cap.caption(spec) == "an orange circle moves to the left on a black background"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a red ball rolls to the left", ("circle", "red", "left", None)),
        ("Green square drifting upward on a white background.", ("square", "green", "up", "white")),
        ("a small blue star grows", ("star", "blue", "grow", None)),
        ("a blue star over green grass", ("star", "blue", None, "grass")),
        ("On white, a turquoise box falls to the right", ("square", "cyan", "down-right", "white")),
        ("violet donut bouncing from side to side in a blue sky", ("ring", "purple", "bounce", "sky")),
        ("a crimson plus that does not move, grey backdrop", ("cross", "red", "still", "gray")),
        ("magenta rhombus heading towards the upper left", ("diamond", "pink", "up-left", None)),
        ("a yellow triangle moving left and right", ("triangle", "yellow", None, None)),  # contradictory
        ("a cat", (None, None, None, None)),
    ],
)
def test_parse_free_text(text: str, expected: tuple[str | None, ...]) -> None:
    p = cap.parse_caption(text)
    assert (p.shape, p.colour, p.motion, p.background) == expected


def test_parse_reports_unknown_words_and_describes() -> None:
    p = cap.parse_caption("A fluffy cat chasing a tiny red ball to the right")
    assert p.unknown == ("fluffy", "cat", "chasing") and p.size == "small"
    assert p.complete
    assert p.describe() == "colour: red; shape: circle; motion: right; background: any; ignored: fluffy, cat, chasing"
    assert not cap.parse_caption("a red ball").complete


def test_demo_package_does_not_import_torch() -> None:
    code = "import sys, reelgen.demo; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
