"""Classical-vision checker: does a clip show what its caption says?

No learned parts, so it can judge the demo model without sharing its mistakes. For a (T, H, W, 3) uint8 clip:

1. Background: each row's median over the left and right border bands of all frames (the world's backgrounds
   vary only vertically and objects keep off the border), smoothed over neighbouring rows.
2. Object: pixels whose colour distance from the background exceeds half the clip's object contrast, cleaned
   of speckles, largest connected blob per frame; a soft coverage (distance / contrast) gives sub-pixel
   centroids and areas.
3. Colour: median of the blob's core pixels, nearest palette colour in CIELAB with lightness down-weighted, so
   a darker or tinted rendering of a colour keeps its name.
4. Shape: the coverage inside the blob's bounding box, resampled to a fixed grid and averaged over the frames
   where the object is largest, matched to templates made by running this same pipeline on rendered shapes.
5. Motion: the centroid track and the size trend: a big size change with little travel is grow/shrink, an
   interior turning point in x with two long legs is a bounce, little travel is still, otherwise the direction
   of travel in eight 45-degree sectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np
from PIL import Image

from reelgen.demo.captions import parse_caption
from reelgen.demo.world import BACKGROUNDS, COLOURS, SHAPES, ObjectSpec, SceneSpec, render

SIGNATURE = 20  # side of the grid a blob's coverage is resampled to for shape matching
# Motion thresholds, as fractions of the frame (travel) or ratios (size); GT clips sit far from all of them.
STILL_TRAVEL = 0.06
SCALE_CHANGE = 1.35
SCALE_MAX_TRAVEL = 0.12
BOUNCE_LEG = 0.08


class Attributes(Protocol):
    """Anything that names the expected attributes: a SceneSpec or a ParsedCaption."""

    @property
    def shape(self) -> str | None: ...
    @property
    def colour(self) -> str | None: ...
    @property
    def motion(self) -> str | None: ...
    @property
    def background(self) -> str | None: ...


@dataclass(frozen=True)
class ClipAnalysis:
    """What the checker sees in a clip, independent of any caption."""

    colour: str | None
    shape: str | None
    motion: str | None
    background: str
    object_rgb: tuple[int, int, int] | None
    # Per frame: (x, y, size) with x, y fractions of W, H and size sqrt(area) / min(W, H); None where no object.
    track: tuple[tuple[float, float, float] | None, ...]
    # Template distance per shape, best first (small gaps mean an uncertain shape).
    shape_distances: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class CheckResult:
    """Predicted attributes and whether each matches the expectation (None where nothing was expected)."""

    colour: str | None
    shape: str | None
    motion: str | None
    background: str
    colour_ok: bool | None
    shape_ok: bool | None
    motion_ok: bool | None
    background_ok: bool | None
    analysis: ClipAnalysis

    @property
    def ok(self) -> bool:
        """All stated attributes match."""
        return all(v is not False for v in (self.colour_ok, self.shape_ok, self.motion_ok, self.background_ok))


def check(clip: np.ndarray, expected: Attributes | str) -> CheckResult:
    """Score a clip against a caption (free text), a ParsedCaption or a SceneSpec."""
    want: Attributes = parse_caption(expected) if isinstance(expected, str) else expected
    a = analyse(clip)

    def match(predicted: str | None, wanted: str | None) -> bool | None:
        return None if wanted is None else predicted == wanted

    return CheckResult(
        colour=a.colour,
        shape=a.shape,
        motion=a.motion,
        background=a.background,
        colour_ok=match(a.colour, want.colour),
        shape_ok=match(a.shape, want.shape),
        motion_ok=match(a.motion, want.motion),
        background_ok=match(a.background, want.background),
        analysis=a,
    )


# --- background and segmentation -------------------------------------------------------------------------------


def estimate_background(clip: np.ndarray) -> np.ndarray:
    """Per-row background colour, float32 (H, 3)."""
    h, w = clip.shape[1:3]
    band = max(2, w // 48)
    border = np.concatenate([clip[:, :, :band], clip[:, :, w - band :]], axis=2)  # (T, H, 2b, 3)
    rows = np.median(border.transpose(1, 0, 2, 3).reshape(h, -1, 3), axis=1)
    # A 5-row running median irons out rows where an object did touch the border.
    padded = np.pad(rows, ((2, 2), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 5, axis=0)  # (H, 3, 5)
    return np.median(windows, axis=2).astype(np.float32)


def classify_background(rows: np.ndarray) -> str:
    """Nearest world background to an estimated per-row background (compares top and bottom bands)."""
    k = max(1, rows.shape[0] // 8)
    top, bottom = rows[:k].mean(axis=0), rows[-k:].mean(axis=0)

    def dist(name: str) -> float:
        t, b = (np.array(c, dtype=np.float32) for c in BACKGROUNDS[name])
        return float(np.linalg.norm(top - t) + np.linalg.norm(bottom - b))

    return min(BACKGROUNDS, key=dist)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected blob of a boolean (H, W) mask, via union-find over horizontal runs."""
    m = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    m[:, 1:-1] = mask
    edges = np.diff(m, axis=1)
    starts, ends = np.argwhere(edges == 1), np.argwhere(edges == -1)  # same order: row-major
    n = len(starts)
    if n <= 1:
        return mask.copy()
    row, s, e = starts[:, 0], starts[:, 1], ends[:, 1]  # run covers columns [s, e)
    # The usual case, one convex-ish blob: one run per row, consecutive rows, each touching the next.
    if (np.diff(row) == 1).all() and (s[1:] <= e[:-1]).all() and (s[:-1] <= e[1:]).all():
        return mask.copy()
    # Runs of adjacent rows touch (8-connected) when their column ranges, widened by one, overlap.
    if n <= 512:
        touching = (row[:, None] + 1 == row[None, :]) & (s[:, None] <= e[None, :]) & (s[None, :] <= e[:, None])
        pairs = np.argwhere(touching).tolist()
    else:  # a very noisy mask: walk row by row instead of building an n x n table
        pairs = [
            [i, j]
            for i in range(n)
            for j in range(np.searchsorted(row, row[i] + 1), np.searchsorted(row, row[i] + 2))
            if s[i] <= e[j] and s[j] <= e[i]
        ]
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        pi, pj = find(i), find(j)
        if pi != pj:
            parent[pi] = pj
    roots = np.array([find(i) for i in range(n)])
    sizes = np.bincount(roots, weights=e - s, minlength=n)
    keep = roots == int(np.argmax(sizes))
    # Paint the kept runs: +1 where a run starts, -1 where it ends, running sum along the row.
    paint = np.zeros((mask.shape[0], mask.shape[1] + 1), dtype=np.int16)
    np.add.at(paint, (row[keep], s[keep]), 1)
    np.add.at(paint, (row[keep], e[keep]), -1)
    return np.cumsum(paint, axis=1)[:, :-1] > 0


def _neighbour_count(mask: np.ndarray) -> np.ndarray:
    """Number of set pixels in each pixel's 3x3 neighbourhood, for a (..., H, W) boolean stack."""
    p = np.pad(mask.astype(np.uint8), [(0, 0)] * (mask.ndim - 2) + [(1, 1), (1, 1)])
    w = mask.shape[-1]
    rows = p[..., :-2, :] + p[..., 1:-1, :] + p[..., 2:, :]
    return rows[..., :, :w] + rows[..., :, 1 : w + 1] + rows[..., :, 2:]


def _frames_with_several_blobs(blobs: np.ndarray) -> np.ndarray:
    """Frames whose mask may not be one simple blob (more than one run in a row, or runs that do not touch).

    A cheap, whole-clip test so the exact labelling only runs where it can change something.
    """
    m = np.zeros((*blobs.shape[:2], blobs.shape[2] + 2), dtype=np.int8)
    m[..., 1:-1] = blobs
    edges = np.diff(m, axis=2)
    starts, ends = np.argwhere(edges == 1), np.argwhere(edges == -1)
    t, r, s, e = starts[:, 0], starts[:, 1], starts[:, 2], ends[:, 2]
    same = t[1:] == t[:-1]
    touching = (r[1:] == r[:-1] + 1) & (s[1:] <= e[:-1]) & (s[:-1] <= e[1:])
    return np.unique(t[1:][same & ~touching])


@dataclass(frozen=True)
class _Segmentation:
    found: np.ndarray  # (T,) bool
    area: np.ndarray  # (T,) soft area in pixels
    cx: np.ndarray  # (T,) centroid, pixels
    cy: np.ndarray
    alpha: np.ndarray  # (T, H, W) soft coverage of the object
    blobs: np.ndarray  # (T, H, W) the object's pixels (hard mask)
    core_rgb: np.ndarray  # (N, 3) pixels of the object's solid interior, all frames

    def crop(self, i: int) -> np.ndarray:
        """Coverage inside frame i's bounding box of the object."""
        ys, xs = np.flatnonzero(self.blobs[i].any(axis=1)), np.flatnonzero(self.blobs[i].any(axis=0))
        return self.alpha[i, ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]


def _segment(clip: np.ndarray, dist: np.ndarray, contrast: float) -> _Segmentation:
    """Find the object in every frame given each pixel's distance from the background."""
    # A 3x3 majority vote removes isolated noise pixels before blobs are counted.
    blobs = _neighbour_count(dist > 0.5 * contrast) >= 5
    for i in _frames_with_several_blobs(blobs):
        rows_on, cols_on = np.flatnonzero(blobs[i].any(axis=1)), np.flatnonzero(blobs[i].any(axis=0))
        box = np.s_[rows_on[0] : rows_on[-1] + 1, cols_on[0] : cols_on[-1] + 1]
        keep = _largest_component(blobs[i][box])
        blobs[i] = False
        blobs[i][box] = keep
    # Widen by a pixel so the anti-aliased rim counts towards area and centroid.
    region = _neighbour_count(blobs) > 0
    alpha = np.clip(dist * (1.0 / contrast), 0.0, 1.0)
    alpha *= region
    area = alpha.sum(axis=(1, 2))
    found = blobs.sum(axis=(1, 2)) >= 6
    safe = np.maximum(area, 1e-6)
    cx = alpha.sum(axis=1) @ (np.arange(clip.shape[2], dtype=np.float32) + 0.5) / safe
    cy = alpha.sum(axis=2) @ (np.arange(clip.shape[1], dtype=np.float32) + 0.5) / safe
    core = blobs & (alpha > 0.85)
    core_rgb = clip[core] if core.sum() >= 3 else clip[blobs]
    return _Segmentation(found, area, cx, cy, alpha, blobs, core_rgb)


# --- colour -----------------------------------------------------------------------------------------------------


def _lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB 0..255 (..., 3) to CIELAB (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


_PALETTE_NAMES = tuple(COLOURS)
_PALETTE_LAB = _lab(np.array([COLOURS[c] for c in _PALETTE_NAMES]))
# Lightness shifts with exposure; hue and chroma are what a colour name is about.
_LAB_WEIGHTS = np.array([0.5, 1.0, 1.0])


def classify_colour(rgb: np.ndarray) -> str:
    """Nearest palette colour name for one RGB value."""
    d = np.linalg.norm((_PALETTE_LAB - _lab(rgb)) * _LAB_WEIGHTS, axis=1)
    return _PALETTE_NAMES[int(np.argmin(d))]


# --- shape ------------------------------------------------------------------------------------------------------


def _signature(crop: np.ndarray) -> np.ndarray:
    """A blob's coverage resampled to a fixed grid: scale-free, so one template serves every size."""
    img = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32))
    return np.asarray(img.resize((SIGNATURE, SIGNATURE), Image.Resampling.BILINEAR), dtype=np.float32)


@lru_cache(maxsize=1)
def _templates() -> tuple[np.ndarray, np.ndarray]:
    """Signatures of every shape rendered at the world's sizes, through the same pipeline as real clips.

    Returns (shape index per template, stacked signatures).
    """
    labels, signatures = [], []
    for k, shape in enumerate(SHAPES):
        for size in (0.07, 0.1, 0.14, 0.2):
            for offset in (0.0, 0.37):
                spec = SceneSpec((ObjectSpec(shape, "white", "still", size, 0.5 + offset / 128, 0.5),), "black")
                clip = render(spec, 1, 128, 128)
                dist = _distance(clip, estimate_background(clip))
                labels.append(k)
                signatures.append(_signature(_segment(clip, dist, float(dist.max())).crop(0)))
    return np.array(labels), np.stack(signatures)


def classify_shape(signature: np.ndarray) -> tuple[tuple[str, float], ...]:
    """Mean absolute distance to the nearest template of each shape, best first."""
    labels, signatures = _templates()
    d = np.abs(signatures - signature).mean(axis=(1, 2))
    best = np.full(len(SHAPES), np.inf)
    np.minimum.at(best, labels, d)
    return tuple(sorted(((SHAPES[k], float(best[k])) for k in range(len(SHAPES))), key=lambda kv: kv[1]))


# --- motion -----------------------------------------------------------------------------------------------------


def classify_motion(track: list[tuple[float, float, float]]) -> str | None:
    """Motion name from a list of (x, y, size) for the frames where the object was found, in order."""
    n = len(track)
    if n < 3:
        return None
    arr = np.array(track)
    q = max(1, n // 4)
    start, end = np.median(arr[:q], axis=0), np.median(arr[-q:], axis=0)
    dx, dy = end[0] - start[0], end[1] - start[1]
    travel = math.hypot(dx, dy)
    ratio = end[2] / max(start[2], 1e-6)
    if max(ratio, 1 / max(ratio, 1e-6)) >= SCALE_CHANGE and travel < SCALE_MAX_TRAVEL:
        return "grow" if ratio > 1 else "shrink"
    # A bounce turns around inside the clip: an interior extreme of x far from both ends.
    x = arr[:, 0]
    if n >= 5:
        x = np.median(np.lib.stride_tricks.sliding_window_view(np.pad(x, 1, mode="edge"), 3), axis=1)
    for i in (int(np.argmax(x)), int(np.argmin(x))):
        if q <= i < n - q and min(abs(x[i] - start[0]), abs(x[i] - end[0])) >= BOUNCE_LEG:
            return "bounce"
    if travel < STILL_TRAVEL:
        return "still"
    sector = round(math.degrees(math.atan2(-dy, dx)) / 45.0) % 8
    return ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")[sector]


# --- whole clip -------------------------------------------------------------------------------------------------


def _distance(clip: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each pixel's RGB distance from the background, float32 (T, H, W)."""
    sq = clip.astype(np.float32)
    sq -= rows[None, :, None, :]
    sq *= sq
    dist = sq[..., 0] + sq[..., 1] + sq[..., 2]
    return np.sqrt(dist, out=dist)


def analyse(clip: np.ndarray) -> ClipAnalysis:
    """Estimate background, object colour, shape and motion of a (T, H, W, 3) uint8 clip."""
    if clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"expected a (T, H, W, 3) clip, got shape {clip.shape}")
    t, h, w, _ = clip.shape
    rows = estimate_background(clip)
    background = classify_background(rows)
    # Statistics and the object's whereabouts from every other pixel (objects are far wider than 2 px), then
    # exact measurements only inside the box the object visits: most of a clip is background.
    coarse = _distance(clip[:, ::2, ::2], rows[::2])
    # Noise level from the typical (background) pixel; object contrast from the pixels well above it.
    floor = max(25.0, 4.0 * float(np.median(coarse[:, ::2, ::2])))
    strong = coarse[coarse > floor]
    if strong.size < 4:
        return ClipAnalysis(None, None, None, background, None, (None,) * t, ())
    contrast = float(np.percentile(strong, 90))
    hit = coarse > 0.5 * contrast
    ys, xs = np.flatnonzero(hit.any(axis=(0, 2))), np.flatnonzero(hit.any(axis=(0, 1)))
    y0, y1 = max(0, 2 * int(ys[0]) - 4), min(h, 2 * int(ys[-1]) + 6)
    x0, x1 = max(0, 2 * int(xs[0]) - 4), min(w, 2 * int(xs[-1]) + 6)
    box = clip[:, y0:y1, x0:x1]
    seg = _segment(box, _distance(box, rows[y0:y1]), contrast)
    unit = min(h, w)
    track = tuple(
        ((float(seg.cx[i]) + x0) / w, (float(seg.cy[i]) + y0) / h, math.sqrt(float(seg.area[i])) / unit)
        if seg.found[i]
        else None
        for i in range(t)
    )
    if not seg.found.any():
        return ClipAnalysis(None, None, None, background, None, track, ())
    # A few thousand pixels pin the median down as well as all of them.
    rgb = np.median(seg.core_rgb[:: max(1, len(seg.core_rgb) // 4096)], axis=0)
    biggest = seg.area[seg.found].max()
    # Average the shape over frames where it is largest (most pixels, least blur relative to size), spread over
    # the clip so one bad frame cannot decide; six frames are as good as all of them and cost a third.
    large = np.flatnonzero(seg.found & (seg.area >= 0.6 * biggest))
    chosen = large[np.unique(np.linspace(0, len(large) - 1, min(6, len(large))).round().astype(int))]
    signature = np.mean([_signature(seg.crop(int(i))) for i in chosen], axis=0)
    distances = classify_shape(signature)
    return ClipAnalysis(
        colour=classify_colour(rgb),
        shape=distances[0][0],
        motion=classify_motion([p for p in track if p is not None]),
        background=background,
        object_rgb=(int(rgb[0]), int(rgb[1]), int(rgb[2])),
        track=track,
        shape_distances=distances,
    )
