"""EvalResult's tallies on real checker results (rendered clips, no model)."""

from __future__ import annotations

import dataclasses

import numpy as np

from reelgen.demo.checker import check
from reelgen.demo.evaluate import EvalResult
from reelgen.demo.model import NUM_FRAMES, SIZE, UPSCALE
from reelgen.demo.world import render, sample_spec


def test_misread_names_what_the_wrong_shapes_were_read_as() -> None:
    spec = sample_spec(np.random.default_rng(5), "train")
    circle = dataclasses.replace(spec, objects=(dataclasses.replace(spec.primary, shape="circle", size=0.2),))
    clip = render(circle, NUM_FRAMES, SIZE, SIZE, seed=0).repeat(UPSCALE, 1).repeat(UPSCALE, 2)
    result = EvalResult()
    for asked in ("star", "star", "circle"):
        wanted = dataclasses.replace(circle, objects=(dataclasses.replace(circle.primary, shape=asked),))
        result.record(check(clip, wanted), wanted)
    assert result.per_asked("shape") == {"circle": (1, 1), "star": (0, 2)}
    assert result.misread("shape") == "star as circle 2"
