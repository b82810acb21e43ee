"""The synthetic world behind the ``reelgen-demo`` model: renderer, captions and a classical-vision checker.

numpy + Pillow only (no torch), so the studio and the API can describe the model's vocabulary and the checker
can score clips anywhere.
"""

from reelgen.demo.captions import VOCABULARY, ParsedCaption, caption, parse_caption, tokenize
from reelgen.demo.checker import CheckResult, ClipAnalysis, analyse, check
from reelgen.demo.world import (
    BACKGROUNDS,
    COLOURS,
    EXCLUDED,
    HELD_OUT,
    MOTIONS,
    SHAPES,
    ObjectSpec,
    SceneSpec,
    degrade,
    is_held_out,
    render,
    sample_spec,
    visible,
)

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "EXCLUDED",
    "HELD_OUT",
    "MOTIONS",
    "SHAPES",
    "VOCABULARY",
    "CheckResult",
    "ClipAnalysis",
    "ObjectSpec",
    "ParsedCaption",
    "SceneSpec",
    "analyse",
    "caption",
    "check",
    "degrade",
    "is_held_out",
    "parse_caption",
    "render",
    "sample_spec",
    "tokenize",
    "visible",
]
