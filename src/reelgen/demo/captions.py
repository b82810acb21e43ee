"""Captions for the demo world: varied English descriptions of a scene, and a parser that maps them back.

One set of tables drives both directions, so every word the parser understands appears in training captions
(and therefore in ``VOCABULARY``, the words the demo model knows), and every training caption parses back to
the scene it describes (a unit test checks this on many random scenes).

Text is tokenised the same way everywhere (``tokenize``): lower case, split on anything that is not a letter,
so "up-left" is the two words "up" and "left" and punctuation never reaches the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from reelgen.demo.world import DIRECTIONS, MOTIONS, SHAPES, SceneSpec

# The first word of each entry is the canonical one (used by the deterministic caption).
SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "ball", "disc", "disk"),
    "square": ("square", "box", "block", "tile"),
    "triangle": ("triangle",),
    "star": ("star",),
    "diamond": ("diamond", "rhombus"),
    "ring": ("ring", "donut", "hoop"),
    "cross": ("cross", "plus"),
}
COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson"),
    "green": ("green",),
    "blue": ("blue",),
    "yellow": ("yellow",),
    "white": ("white",),
    "purple": ("purple", "violet"),
    "orange": ("orange",),
    "cyan": ("cyan", "turquoise"),
    "pink": ("pink", "magenta"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("small", "little", "tiny"), "large": ("big", "large")}
# Object sizes (world.ObjectSpec.size) below / above which a caption may call the object small / large.
SMALL_BELOW, LARGE_ABOVE = 0.13, 0.16

BACKGROUND_PHRASES: dict[str, tuple[str, ...]] = {
    "black": ("on a black background", "on black", "against a black backdrop", "on a dark background", "in the dark"),
    "white": ("on a white background", "on white", "against a white backdrop"),
    "gray": ("on a gray background", "on a grey background", "on gray", "against a grey backdrop"),
    "sky": ("in the sky", "in a blue sky", "against the sky", "across a clear sky", "on a sky background"),
    "grass": ("on the grass", "over green grass", "on a lawn", "above a grassy field", "on grass"),
}

# (finite, participle) verb pairs.
_MOVE_VERBS = (
    ("moves", "moving"),
    ("slides", "sliding"),
    ("drifts", "drifting"),
    ("travels", "travelling"),
    ("glides", "gliding"),
    ("goes", "going"),
    ("heads", "heading"),
)
_ROLL = ("rolls", "rolling")  # only balls and rings roll
_VERTICAL_VERBS = {
    "up": (("rises", "rising"), ("climbs", "climbing"), ("floats up", "floating up"), ("ascends", "ascending")),
    "down": (("falls", "falling"), ("sinks", "sinking"), ("drops", "dropping"), ("descends", "descending")),
}
_DIRECTION_PHRASES = {
    "left": ("left", "to the left", "leftward", "leftwards", "towards the left"),
    "right": ("right", "to the right", "rightward", "rightwards", "towards the right"),
    "up": ("up", "upward", "upwards", "towards the top"),
    "down": ("down", "downward", "downwards", "towards the bottom"),
}
_DIAGONAL_PHRASES = (
    "{v} and to the {h}",
    "{v} and {h}",
    "diagonally {v} and to the {h}",
    "towards the {vv} {h}",
    "to the {vv} {h}",
)
_OTHER_MOTION_PHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "bounce": (
        ("bounces back and forth", "bouncing back and forth"),
        ("bounces off the walls", "bouncing off the walls"),
        ("bounces from side to side", "bouncing from side to side"),
        ("bounces left and right", "bouncing left and right"),
        ("ricochets between the walls", "ricocheting between the walls"),
    ),
    "grow": (
        ("grows", "growing"),
        ("gets bigger", "getting bigger"),
        ("expands", "expanding"),
        ("grows larger", "growing larger"),
        ("swells", "swelling"),
        ("inflates", "inflating"),
    ),
    "shrink": (
        ("shrinks", "shrinking"),
        ("gets smaller", "getting smaller"),
        ("contracts", "contracting"),
        ("shrinks away", "shrinking away"),
        ("deflates", "deflating"),
    ),
    "still": (
        ("stays still", "staying still"),
        ("sits still", "sitting still"),
        ("stands still", "standing still"),
        ("does not move", "not moving"),
        ("stays in place", "staying in place"),
        ("rests", "resting"),
        ("remains motionless", "remaining motionless"),
        ("stays stationary", "staying stationary"),
    ),
}

# Templates: {s} subject noun phrase without article, {f} finite verb phrase, {p} participle phrase,
# {b} background phrase (or empty), {B} background phrase placed first.
_TEMPLATES = (
    "{a} {s} {f}{b}",
    "{a} {s} {f}{b}",
    "the {s} {f}{b}",
    "{s} {p}{b}",
    "{s} {p}{b}",
    "{a} {s} {p}{b}",
    "video of {a} {s} {p}{b}",
    "there is {a} {s} {p}{b}",
    "{B}, {a} {s} {f}",
)


def tokenize(text: str) -> list[str]:
    """The words of a text as the demo model sees them."""
    return re.findall(r"[a-z]+", text.lower())


def motion_phrases(motion: str, shape: str = "square") -> list[tuple[str, str]]:
    """Every (finite, participle) phrase that describes a motion; ``shape`` decides whether it may roll."""
    verbs = _MOVE_VERBS + ((_ROLL,) if shape in ("circle", "ring") else ())
    if motion in ("left", "right"):
        return [(f"{f} {d}", f"{p} {d}") for f, p in verbs for d in _DIRECTION_PHRASES[motion]]
    if motion in ("up", "down"):
        generic = [(f"{f} {d}", f"{p} {d}") for f, p in _MOVE_VERBS for d in _DIRECTION_PHRASES[motion]]
        return generic + list(_VERTICAL_VERBS[motion])
    if motion in DIRECTIONS:
        v, h = motion.split("-")
        vv = "upper" if v == "up" else "lower"
        generic = [(f"{f} {d}", f"{p} {d}") for f, p in _MOVE_VERBS for d in _DIAGONAL_PHRASES]
        # "rises to the left", "falls diagonally to the right"
        special = [
            (f"{f} {d}", f"{p} {d}")
            for f, p in _VERTICAL_VERBS[v]
            for d in ("to the {h}", "diagonally to the {h}", "and to the {h}")
        ]
        return [(f.format(v=v, vv=vv, h=h), p.format(v=v, vv=vv, h=h)) for f, p in generic + special]
    return list(_OTHER_MOTION_PHRASES[motion])


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(spec: SceneSpec, rng: np.random.Generator | None = None) -> str:
    """A caption for a one-object scene: random template and synonyms, or the canonical wording without rng.

    The canonical caption ("a red circle moves to the left on a black background") is what evaluation prompts
    and documentation use.
    """
    if len(spec.objects) != 1:
        raise ValueError("captions are defined for one-object scenes only (for now)")
    obj = spec.primary
    if rng is None:
        if obj.motion in _DIRECTION_PHRASES:
            verb = f"moves {_DIRECTION_PHRASES[obj.motion][1]}"
        elif obj.motion in DIRECTIONS:
            v, h = obj.motion.split("-")
            verb = f"moves {v} and to the {h}"
        else:
            verb = _OTHER_MOTION_PHRASES[obj.motion][0][0]
        noun = f"{obj.colour} {obj.shape}"
        return f"{_article(noun)} {noun} {verb} {BACKGROUND_PHRASES[spec.background][0]}"

    words = []
    size_word = "small" if obj.size < SMALL_BELOW else "large" if obj.size > LARGE_ABOVE else None
    if size_word and obj.motion not in ("grow", "shrink") and rng.random() < 0.4:
        words.append(_pick(rng, SIZE_WORDS[size_word]))
    words += [_pick(rng, COLOUR_WORDS[obj.colour]), _pick(rng, SHAPE_WORDS[obj.shape])]
    subject = " ".join(words)
    finite, participle = _pick_pair(rng, motion_phrases(obj.motion, obj.shape))
    template = _pick(rng, _TEMPLATES)
    bg = _pick(rng, BACKGROUND_PHRASES[spec.background])
    # A fifth of the captions leave the background out, so the model also follows prompts that do not name one.
    with_bg = "{B}" in template or rng.random() < 0.8
    return template.format(
        a=_article(subject), s=subject, f=finite, p=participle, b=f" {bg}" if with_bg else "", B=bg
    ).strip()


def _pick_pair(rng: np.random.Generator, options: list[tuple[str, str]]) -> tuple[str, str]:
    return options[int(rng.integers(len(options)))]


# --- parsing -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedCaption:
    """What a caption says about the scene, in canonical attribute names; None where it says nothing.

    ``unknown`` lists the words the demo model has never seen (they are ignored), for telling users.
    """

    shape: str | None = None
    colour: str | None = None
    motion: str | None = None
    background: str | None = None
    size: str | None = None
    unknown: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether shape, colour and motion are all known (what the checker needs to score a clip fully)."""
        return None not in (self.shape, self.colour, self.motion)

    def describe(self) -> str:
        """A one-line summary for users: what the model will draw."""
        parts = [
            f"{name}: {value or 'any'}"
            for name, value in (
                ("colour", self.colour),
                ("shape", self.shape),
                ("motion", self.motion),
                ("background", self.background),
            )
        ]
        if self.unknown:
            parts.append("ignored: " + ", ".join(self.unknown))
        return "; ".join(parts)


def _inverse(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {word: canonical for canonical, words in table.items() for word in words}


_SHAPE_OF = _inverse(SHAPE_WORDS)
_COLOUR_OF = _inverse(COLOUR_WORDS)
_SIZE_OF = _inverse(SIZE_WORDS)
# Colour-ish words that name a background rather than an object colour.
_BG_COLOUR_OF = {"black": "black", "dark": "black", "white": "white", "gray": "gray", "grey": "gray"}
_BG_COLOUR_OF |= {"blue": "sky", "green": "grass"}
_BG_WORD = "|".join(sorted(set(_BG_COLOUR_OF) | set(_COLOUR_OF)))
# Checked in order on the tokenised text; each match is removed before the object's own words are read, so
# "a blue star over green grass" is a blue star on grass, not a green one.
_BACKGROUND_PATTERNS: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"\b(?:blue |clear |open )?sky\b"), "sky"),
    (re.compile(r"\b(?:green )?(?:grassy field|grass|grassy|lawn|meadow|field)\b"), "grass"),
    (re.compile(r"\bin the dark\b"), "black"),
    (re.compile(rf"\b(?:a |an |the )?({_BG_WORD}) (?:background|backdrop)\b"), None),
    (re.compile(rf"\b(?:on|against|over) (?:a |an |the )?({_BG_WORD})\b"), None),
    (re.compile(r"\b(black|dark|gray|grey)\b"), None),  # never object colours
)

_LEFT = {"left", "leftward", "leftwards"}
_RIGHT = {"right", "rightward", "rightwards"}
_UP = {"up", "upward", "upwards", "upper", "top", "rises", "rising", "rise", "climbs", "climbing", "climb"}
_UP |= {"ascends", "ascending", "ascend"}
_DOWN = {"down", "downward", "downwards", "lower", "bottom", "falls", "falling", "fall", "sinks", "sinking"}
_DOWN |= {"sink", "drops", "dropping", "drop", "descends", "descending", "descend"}
_BOUNCE = {"bounce", "bounces", "bouncing", "ricochet", "ricochets", "ricocheting"}
_GROW = {"grow", "grows", "growing", "expand", "expands", "expanding", "swell", "swells", "swelling", "inflate"}
_GROW |= {"inflates", "inflating", "bigger"}
_SHRINK = {"shrink", "shrinks", "shrinking", "contract", "contracts", "contracting", "deflate", "deflates"}
_SHRINK |= {"deflating", "smaller"}
_STILL = {"still", "motionless", "stationary", "rests", "resting", "static"}
_STILL_PHRASES = re.compile(r"\b(?:not move|not moving|doesn t move|in place)\b")
_BACK_AND_FORTH = re.compile(r"\b(?:back and forth|side to side|to and fro)\b")


def _parse_motion(tokens: list[str], text: str) -> str | None:
    words = set(tokens)
    if words & _BOUNCE or _BACK_AND_FORTH.search(text):
        return "bounce"
    if words & _GROW:
        return "grow"
    if words & _SHRINK:
        return "shrink"
    h = ("left" if words & _LEFT else "") + ("right" if words & _RIGHT else "")
    v = ("up" if words & _UP else "") + ("down" if words & _DOWN else "")
    if h in ("leftright",) or v in ("updown",):
        return None  # contradictory directions
    if h and v:
        return f"{v}-{h}"
    if h or v:
        return h or v
    if words & _STILL or _STILL_PHRASES.search(text):
        return "still"
    return None


def parse_caption(text: str) -> ParsedCaption:
    """Read the scene attributes out of free text (synonyms, any order, unknown words ignored)."""
    tokens = tokenize(text)
    rest = " ".join(tokens)
    background: str | None = None
    for pattern, fixed in _BACKGROUND_PATTERNS:
        m = pattern.search(rest)
        if m is None:
            continue
        if background is None:
            background = fixed or _BG_COLOUR_OF.get(m.group(1))
        # Blank it out but keep word boundaries so later patterns and the object words still see separate words.
        rest = rest[: m.start()] + " " + rest[m.end() :]
    words = rest.split()
    shape = next((_SHAPE_OF[w] for w in words if w in _SHAPE_OF), None)
    colour = next((_COLOUR_OF[w] for w in words if w in _COLOUR_OF), None)
    size = next((_SIZE_OF[w] for w in words if w in _SIZE_OF), None)
    unknown = tuple(dict.fromkeys(w for w in tokens if w not in _VOCABULARY_SET))
    return ParsedCaption(shape, colour, _parse_motion(words, rest), background, size, unknown)


def _all_caption_words() -> tuple[str, ...]:
    texts = [*_TEMPLATES, "a an"]
    texts += [
        w for table in (SHAPE_WORDS, COLOUR_WORDS, SIZE_WORDS, BACKGROUND_PHRASES) for v in table.values() for w in v
    ]
    texts += [p for m in MOTIONS for s in SHAPES for pair in motion_phrases(m, s) for p in pair]
    # Template placeholders like {a} are not words.
    return tuple(sorted({w for text in texts for w in tokenize(re.sub(r"\{\w\}", " ", text))}))


VOCABULARY: tuple[str, ...] = _all_caption_words()
"""Every word that can appear in a training caption, sorted; the demo text encoder's vocabulary."""
_VOCABULARY_SET = frozenset(VOCABULARY)


def _synonym_phrases() -> tuple[tuple[str, str], ...]:
    pairs: dict[str, str] = {}
    for table in (SHAPE_WORDS, COLOUR_WORDS):
        for words in table.values():
            pairs.update({w: words[0] for w in words[1:]})
    pairs.update(
        {w: small_or_large for small_or_large, words in SIZE_WORDS.items() for w in words if w != small_or_large}
    )
    for finite, participle in (*_MOVE_VERBS[1:], _ROLL):
        pairs[finite], pairs[participle] = "moves", "moving"
    for word, directions in _DIRECTION_PHRASES.items():
        pairs.update({p: word for p in directions if p != word})
    for direction, verbs in _VERTICAL_VERBS.items():
        for finite, participle in verbs:
            pairs[finite], pairs[participle] = f"moves {direction}", f"moving {direction}"
    pairs["towards the upper"], pairs["towards the lower"] = "to the upper", "to the lower"
    for motions in _OTHER_MOTION_PHRASES.values():
        (finite, participle), *others = motions
        for f, p in others:
            pairs[f], pairs[p] = finite, participle
    # Longest first, so "floats up" is replaced before any shorter phrase inside it could be.
    return tuple(sorted(pairs.items(), key=lambda kv: (-len(kv[0]), kv[0])))


SYNONYM_PHRASES: tuple[tuple[str, str], ...] = _synonym_phrases()
"""(phrase, canonical phrase) for object and motion words: the demo tokenizer gives synonyms the canonical
words' ids, so a small model trained on varied captions sees one spelling of each idea. Background phrases are
left as written (the model reads them reliably)."""


def canonical_words(text: str) -> list[str]:
    """The words of a text after synonyms are replaced, in the order the demo tokenizer replaces them."""
    joined = " ".join(tokenize(text))
    for phrase, canonical in SYNONYM_PHRASES:
        joined = re.sub(rf"\b{phrase}\b", canonical, joined)
    return joined.split()
