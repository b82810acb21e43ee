"""The demo model's synthetic world: simple shapes moving over simple backgrounds, rendered procedurally.

Everything here is numpy + Pillow so the renderer (training data) and the checker (evaluation) run anywhere,
including the HTTP process, without torch.

Geometry is resolution independent: positions are fractions of the frame's width and height, sizes are
fractions of ``min(width, height)``, and motion is defined over normalised clip time ``t`` in [0, 1], so the
same spec gives the same scene at any frame count or resolution. A spec sampled for a square frame stays fully
inside any wider or taller frame too, because an object's extent as a fraction of either side can only shrink.

Rules of the world (the sampler enforces them; ``render`` draws whatever it is given):

- An object's colour must stand out from every pixel of its background by at least ``MIN_CONTRAST`` (RGB
  distance), so white is never drawn on white or on the sky, green never on grass, cyan never on the sky
  (``visible``). Colours and backgrounds use fixed, well-separated values.
- Shapes keep a fixed orientation (triangles and stars point up, the diamond is a square on its corner): a
  rotated square *is* a diamond, so rotation would make the shape words ambiguous.
- Objects stay fully inside the frame, with a margin, for the whole clip; a bounce reverses once, between 35% and
  65% of the clip, so both legs are clearly visible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

_T = TypeVar("_T")

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "ring", "cross")

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "green": (40, 190, 50),
    "blue": (35, 75, 235),
    "yellow": (250, 228, 50),
    "white": (245, 245, 245),
    "purple": (145, 50, 200),
    "orange": (255, 130, 0),
    "cyan": (40, 215, 225),
    "pink": (255, 90, 180),
}

# Direction motions map to a unit vector in image coordinates (y grows downwards).
DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "up-left": (-math.sqrt(0.5), -math.sqrt(0.5)),
    "up-right": (math.sqrt(0.5), -math.sqrt(0.5)),
    "down-left": (-math.sqrt(0.5), math.sqrt(0.5)),
    "down-right": (math.sqrt(0.5), math.sqrt(0.5)),
}
MOTIONS: tuple[str, ...] = (*DIRECTIONS, "bounce", "grow", "shrink", "still")

# Backgrounds are vertical gradients (top colour, bottom colour); plain ones have both ends equal.
BACKGROUNDS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "black": ((12, 12, 16), (12, 12, 16)),
    "white": ((250, 250, 250), (250, 250, 250)),
    "gray": ((128, 128, 128), (128, 128, 128)),
    "sky": ((120, 175, 235), (200, 225, 250)),
    "grass": ((75, 155, 60), (45, 110, 40)),
}
# Grass gets a faint static texture so it reads as grass; small enough to never approach MIN_CONTRAST.
_TEXTURE = {"grass": 5.0}

MIN_CONTRAST = 100.0
SUPERSAMPLE = 4
# Objects keep at least this gap (fraction of the frame) to the border, so the border pixels the checker
# reads as background are background.
MARGIN = 0.04

# Proportions of each shape relative to its size ``s`` (the half-extent of its bounding square), tuned so the
# shapes look about equally heavy and each is unmistakable at ~10 px radius.
_SQUARE_HALF = 0.85
_STAR_INNER = 0.45
_RING_INNER = 0.55
_CROSS_ARM = 0.34


@dataclass(frozen=True)
class ObjectSpec:
    """One object and its trajectory.

    ``size`` is the half-extent at t=0 (fraction of ``min(W, H)``); ``x``, ``y`` the centre at t=0 (fractions of
    W and H). ``speed`` is the distance travelled over the whole clip (fraction of the frame; for ``bounce``
    the path length including the reflection). ``growth`` is the end/start size ratio (grow > 1, shrink < 1).
    ``heading`` is the initial horizontal direction of a bounce (+1 right, -1 left).
    """

    shape: str
    colour: str
    motion: str
    size: float = 0.14
    x: float = 0.5
    y: float = 0.5
    speed: float = 0.0
    growth: float = 1.0
    heading: int = 1

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.shape, SHAPES, "shape"),
            (self.colour, COLOURS, "colour"),
            (self.motion, MOTIONS, "motion"),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
        if not (0.0 < self.size < 0.5 and self.growth > 0.0 and self.speed >= 0.0 and self.heading in (-1, 1)):
            raise ValueError(f"out-of-range geometry in {self!r}")

    def state(self, t: float, aspect: float = 1.0) -> tuple[float, float, float]:
        """Centre (x, y as fractions of W, H) and size at clip time ``t`` in [0, 1].

        ``aspect`` is W / H; it only matters for where a bounce meets the wall.
        """
        if self.motion in DIRECTIONS:
            dx, dy = DIRECTIONS[self.motion]
            return self.x + dx * self.speed * t, self.y + dy * self.speed * t, self.size
        if self.motion == "bounce":
            # Reflect the unfolded straight path into the interval where the object touches neither wall.
            half = self.size * min(1.0, 1.0 / aspect) + MARGIN
            lo, hi = half, 1.0 - half
            u = self.x - lo + self.heading * self.speed * t
            span = hi - lo
            u = u % (2 * span)
            return lo + (u if u <= span else 2 * span - u), self.y, self.size
        if self.motion in ("grow", "shrink"):
            # Geometric interpolation so the growth looks steady (a constant ratio per frame).
            return self.x, self.y, self.size * self.growth**t
        return self.x, self.y, self.size


@dataclass(frozen=True)
class SceneSpec:
    """A scene: objects drawn in order over a background. The sampler produces one object for now."""

    objects: tuple[ObjectSpec, ...]
    background: str = "black"

    def __post_init__(self) -> None:
        if not self.objects:
            raise ValueError("a scene needs at least one object")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"unknown background {self.background!r}; expected one of {', '.join(BACKGROUNDS)}")

    @property
    def primary(self) -> ObjectSpec:
        return self.objects[0]

    # Single-object scenes are the common case; these read the first object so callers stay short.
    @property
    def shape(self) -> str:
        return self.primary.shape

    @property
    def colour(self) -> str:
        return self.primary.colour

    @property
    def motion(self) -> str:
        return self.primary.motion


@cache
def _background_range(background: str) -> tuple[np.ndarray, np.ndarray]:
    top, bottom = (np.array(c, dtype=np.float32) for c in BACKGROUNDS[background])
    amp = _TEXTURE.get(background, 0.0)
    return np.minimum(top, bottom) - amp, np.maximum(top, bottom) + amp


def contrast(colour: str, background: str) -> float:
    """Smallest RGB distance between the colour and any pixel its background can have."""
    lo, hi = _background_range(background)
    c = np.array(COLOURS[colour], dtype=np.float32)
    nearest = np.clip(c, lo, hi)  # the background's colours lie inside this box (a gradient plus texture)
    return float(np.linalg.norm(c - nearest))


def visible(colour: str, background: str) -> bool:
    """Whether the world allows this colour on this background (see the module docstring)."""
    return contrast(colour, background) >= MIN_CONTRAST


def background_image(background: str, width: int, height: int, seed: int = 0) -> np.ndarray:
    """The background as a float32 (H, W, 3) array in 0..255."""
    top, bottom = (np.array(c, dtype=np.float32) for c in BACKGROUNDS[background])
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(top + (bottom - top) * ramp, (height, width, 3)).copy()
    amp = _TEXTURE.get(background, 0.0)
    if amp:
        rng = np.random.default_rng(seed)
        # One grey-level texture for all channels keeps the hue of the grass.
        img += rng.uniform(-amp, amp, size=(height, width, 1)).astype(np.float32)
    return img


def _shape_outline(shape: str, s: float) -> list[tuple[float, float]] | None:
    """Polygon vertices around (0, 0) for polygonal shapes; None for shapes drawn from ellipses/rectangles."""
    if shape == "square":
        h = s * _SQUARE_HALF
        return [(-h, -h), (h, -h), (h, h), (-h, h)]
    if shape == "triangle":
        # Circumradius s around the centroid, apex up: the tracked centroid is the geometric centre.
        return [(s * math.cos(a), s * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "star":
        pts = []
        for k in range(10):
            r = s if k % 2 == 0 else s * _STAR_INNER
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((r * math.cos(a), r * math.sin(a)))
        return pts
    if shape == "diamond":
        return [(0.0, -s), (s, 0.0), (0.0, s), (-s, 0.0)]
    return None


def coverage_patch(
    shape: str, cx: float, cy: float, s: float, width: int, height: int
) -> tuple[np.ndarray, int, int] | None:
    """Anti-aliased coverage of one shape centred at pixel (cx, cy) with half-extent s px.

    Returns (alpha, top, left): alpha is float32 in 0..1 for the part of the frame the shape's bounding box
    covers, or None when the shape is entirely outside. Drawn at SUPERSAMPLE x resolution in a patch around the
    object and box-filtered down: exact area coverage at the edges, at a cost independent of the frame size.
    """
    x0, y0 = math.floor(cx - s) - 1, math.floor(cy - s) - 1
    x1, y1 = math.ceil(cx + s) + 1, math.ceil(cy + s) + 1
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return None
    k = SUPERSAMPLE
    pw, ph = x1 - x0, y1 - y0
    im = Image.new("L", (pw * k, ph * k), 0)
    draw = ImageDraw.Draw(im)
    # Supersampled pixel j covers [j, j+1) in its own grid; shift so continuous coordinates map exactly.
    ox, oy = (cx - x0) * k, (cy - y0) * k
    sk = s * k
    poly = _shape_outline(shape, sk)
    if poly is not None:
        draw.polygon([(ox + px, oy + py) for px, py in poly], fill=255)
    elif shape in ("circle", "ring"):
        draw.ellipse((ox - sk, oy - sk, ox + sk, oy + sk), fill=255)
        if shape == "ring":
            ri = sk * _RING_INNER
            draw.ellipse((ox - ri, oy - ri, ox + ri, oy + ri), fill=0)
    elif shape == "cross":
        a, w = sk, sk * _CROSS_ARM
        draw.rectangle((ox - a, oy - w, ox + a, oy + w), fill=255)
        draw.rectangle((ox - w, oy - a, ox + w, oy + a), fill=255)
    else:  # pragma: no cover - guarded by ObjectSpec validation
        raise ValueError(shape)
    patch = np.asarray(im.resize((pw, ph), Image.Resampling.BOX), dtype=np.float32) / 255.0
    # Only the part inside the frame is returned: objects partly outside are allowed.
    top, left = max(0, y0), max(0, x0)
    patch = patch[top - y0 : min(height, y1) - y0, left - x0 : min(width, x1) - x0]
    return patch, top, left


def shape_mask(shape: str, cx: float, cy: float, s: float, width: int, height: int) -> np.ndarray:
    """Coverage of one shape as a full (H, W) float32 frame; see coverage_patch."""
    out = np.zeros((height, width), dtype=np.float32)
    got = coverage_patch(shape, cx, cy, s, width, height)
    if got is not None:
        patch, top, left = got
        out[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return out


def render(spec: SceneSpec, num_frames: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """Render the scene as a (T, H, W, 3) uint8 clip. A pure function of its arguments.

    ``seed`` only drives the background's static texture, so two clips of one spec differ no more than two
    photos of the same lawn.
    """
    if num_frames < 1 or width < 8 or height < 8:
        raise ValueError("need at least one frame of at least 8x8 pixels")
    bg = background_image(spec.background, width, height, seed)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    frames[:] = np.clip(bg + 0.5, 0, 255).astype(np.uint8)
    unit = min(width, height)
    aspect = width / height
    for i in range(num_frames):
        t = i / (num_frames - 1) if num_frames > 1 else 0.0
        for obj in spec.objects:
            x, y, s = obj.state(t, aspect)
            got = coverage_patch(obj.shape, x * width, y * height, s * unit, width, height)
            if got is None:
                continue
            # Blend only inside the object's box; objects drawn earlier show through partial coverage.
            alpha, top, left = got
            alpha = alpha[..., None]
            sl = np.s_[i, top : top + alpha.shape[0], left : left + alpha.shape[1]]
            under = frames[sl].astype(np.float32)
            colour = np.array(COLOURS[obj.colour], dtype=np.float32)
            frames[sl] = (under + (colour - under) * alpha + 0.5).astype(np.uint8)
    return frames


def degrade(
    clip: np.ndarray,
    rng: np.random.Generator,
    blur: tuple[float, float] = (0.5, 1.2),
    noise: tuple[float, float] = (3.0, 8.0),
    gain: float = 0.1,
    offset: float = 12.0,
) -> np.ndarray:
    """A copy of a clip with the flaws of a generated one: Gaussian blur, a colour cast, sensor-like noise.

    Ranges are sampled once per clip (blur radius in px, noise sigma in levels, per-channel gain 1 +- gain and
    offset +- offset levels); used to check that the checker does not depend on pixel-perfect renders.
    """
    radius = float(rng.uniform(*blur))
    t, h, w, _ = clip.shape
    # One tall image blurs in one call; the rows it mixes across frame boundaries are background.
    tall = Image.fromarray(np.ascontiguousarray(clip).reshape(t * h, w, 3)).filter(ImageFilter.BoxBlur(radius))
    # Colour cast through a per-channel lookup table (Pillow applies it in C).
    g = rng.uniform(1 - gain, 1 + gain, size=3)
    o = rng.uniform(-offset, offset, size=3)
    lut = np.clip(np.arange(256)[None, :] * g[:, None] + o[:, None] + 0.5, 0, 255).astype(np.uint8)
    cast = np.asarray(tall.point(lut.ravel().tolist())).reshape(clip.shape).astype(np.int16)
    # The sum of two uniform bytes is triangular noise: close enough to Gaussian here and several times cheaper
    # to draw. Its standard deviation is 255 * sqrt(2 / 12) ~ 104.1, rescaled in 1/128 steps.
    sigma = float(rng.uniform(*noise))
    pair = np.frombuffer(rng.bytes(2 * clip.size), dtype=np.uint8).reshape(2, *clip.shape)
    scaled = pair[0].astype(np.int16)
    scaled += pair[1]
    scaled -= 255
    scaled *= round(sigma / 104.1 * 128)
    scaled >>= 7
    cast += scaled
    return np.clip(cast, 0, 255).astype(np.uint8)


# --- sampling ---------------------------------------------------------------------------------------------------

# (colour, shape, motion) triples never shown in training: each colour twice, each shape two or three times, every
# motion at least once, and every pair inside a triple still appears in training with some other third attribute,
# so the held-out set measures composition, not new words. The README examples ("a red square moving to the right",
# "a red ball rolls to the left") stay in training on purpose.
HELD_OUT: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("red", "triangle", "up"),
        ("red", "star", "shrink"),
        ("green", "circle", "down-right"),
        ("green", "diamond", "bounce"),
        ("blue", "square", "left"),
        ("blue", "cross", "grow"),
        ("yellow", "star", "up-left"),
        ("yellow", "ring", "still"),
        ("white", "triangle", "down"),
        ("white", "circle", "grow"),
        ("purple", "square", "bounce"),
        ("purple", "star", "right"),
        ("orange", "diamond", "up-right"),
        ("orange", "cross", "left"),
        ("cyan", "ring", "down-left"),
        ("cyan", "triangle", "shrink"),
        ("pink", "circle", "up"),
        ("pink", "square", "still"),
    }
)


def is_held_out(spec: SceneSpec) -> bool:
    """True if any object in the scene is a held-out (colour, shape, motion) combination."""
    return any((o.colour, o.shape, o.motion) in HELD_OUT for o in spec.objects)


@dataclass(frozen=True)
class SamplingRanges:
    """Ranges ``sample_object`` draws from: sizes and speeds as in ObjectSpec, growth as the end/start ratio.

    Sizes stay big enough (>= 9 px half-extent at 128 px) that a shape survives a VAE's 8x downsampling.
    """

    moving: tuple[float, float] = (0.11, 0.18)
    small_start: tuple[float, float] = (0.07, 0.095)  # grow starts here
    large_start: tuple[float, float] = (0.17, 0.22)  # shrink starts here
    max_size: float = 0.23
    growth: tuple[float, float] = (1.8, 2.4)
    speed: tuple[float, float] = (0.30, 0.50)
    bounce_speed: tuple[float, float] = (0.60, 1.0)
    # Paths are centred on the frame, give or take this much (None: anywhere they fit). Centred, where the object
    # is in a frame follows from the words and the frame's time alone; a model as small as reelgen-demo learns
    # that long before it learns to make frames agree with each other, which placing the object anywhere needs
    # (trained on uncentred paths it drew each frame's object wherever that frame's noise put it).
    jitter: float | None = 0.06


DEFAULT_RANGES = SamplingRanges()


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def sample_object(
    rng: np.random.Generator, shape: str, colour: str, motion: str, ranges: SamplingRanges = DEFAULT_RANGES
) -> ObjectSpec:
    """Sample a trajectory for the given attributes that keeps the object inside the frame with a margin."""
    if motion == "grow":
        s0 = _uniform(rng, *ranges.small_start)
        g = _uniform(rng, ranges.growth[0], min(ranges.growth[1], ranges.max_size / s0))
        ext = s0 * g
    elif motion == "shrink":
        s0 = _uniform(rng, *ranges.large_start)
        g = 1.0 / _uniform(rng, *ranges.growth)
        ext = s0
    else:
        s0, g = _uniform(rng, *ranges.moving), 1.0
        ext = s0
    lo, hi = ext + MARGIN, 1.0 - ext - MARGIN

    def place(start_lo: float, start_hi: float, travel: float = 0.0) -> float:
        """A start coordinate in [start_lo, start_hi]: anywhere, or with the path's middle near the centre."""
        if ranges.jitter is None:
            return _uniform(rng, start_lo, start_hi)
        return min(start_hi, max(start_lo, 0.5 - travel / 2 + _uniform(rng, -ranges.jitter, ranges.jitter)))

    if motion in DIRECTIONS:
        dx, dy = DIRECTIONS[motion]
        speed = _uniform(rng, *ranges.speed)
        # Start where the end point is still inside [lo, hi] on both axes.
        x = place(lo - min(0.0, dx * speed), hi - max(0.0, dx * speed), dx * speed)
        y = place(lo - min(0.0, dy * speed), hi - max(0.0, dy * speed), dy * speed)
        return ObjectSpec(shape, colour, motion, s0, x, y, speed)
    if motion == "bounce":
        heading = 1 if rng.random() < 0.5 else -1
        t_hit = _uniform(rng, 0.35, 0.65)
        span = hi - lo
        speed = _uniform(rng, ranges.bounce_speed[0], min(ranges.bounce_speed[1], span / max(t_hit, 1 - t_hit)))
        wall = hi if heading > 0 else lo
        x = wall - heading * speed * t_hit
        return ObjectSpec(shape, colour, motion, s0, x, place(lo, hi), speed, heading=heading)
    return ObjectSpec(shape, colour, motion, s0, place(lo, hi), place(lo, hi), growth=g)


def _choice(rng: np.random.Generator, options: Sequence[_T]) -> _T:
    return options[int(rng.integers(len(options)))]


def sample_spec(rng: np.random.Generator, split: str = "train", ranges: SamplingRanges = DEFAULT_RANGES) -> SceneSpec:
    """A random one-object scene. ``train`` never yields a held-out triple; ``heldout`` only yields those.

    Attributes are drawn uniformly and independently (then the background among those the colour is visible
    on), so every word is seen about equally often.
    """
    if split == "train":
        while True:
            shape, colour, motion = _choice(rng, SHAPES), _choice(rng, tuple(COLOURS)), _choice(rng, MOTIONS)
            if (colour, shape, motion) not in HELD_OUT:
                break
    elif split == "heldout":
        colour, shape, motion = _choice(rng, _HELD_OUT_SORTED)
    else:
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    background = _choice(rng, _VISIBLE_ON[colour])
    return SceneSpec((sample_object(rng, shape, colour, motion, ranges),), background)


_HELD_OUT_SORTED: list[tuple[str, str, str]] = sorted(HELD_OUT)  # sets have no stable order across runs
_VISIBLE_ON: dict[str, tuple[str, ...]] = {c: tuple(b for b in BACKGROUNDS if visible(c, b)) for c in COLOURS}

# (colour, background) pairs the world never draws, derived from MIN_CONTRAST rather than listed by hand.
EXCLUDED: tuple[tuple[str, str], ...] = tuple((c, b) for c in COLOURS for b in BACKGROUNDS if not visible(c, b))
