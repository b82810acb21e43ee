"""Thumbnails and scrubbing spritesheets, made from frames kept while encoding (the mp4 is never decoded)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

THUMBNAIL_MAX_SIDE = 640
SPRITE_TILE_WIDTH = 160
SPRITE_COLUMNS = 4
SPRITE_MAX_TILES = 16


@dataclass(frozen=True, slots=True)
class SpriteSheet:
    """Geometry a player needs to map a hover position to a tile (tiles are row-major)."""

    path: Path
    columns: int
    rows: int
    tile_width: int
    tile_height: int


@dataclass(frozen=True, slots=True)
class Previews:
    thumbnail: Path
    spritesheet: SpriteSheet
    # Source frame index of each spritesheet tile, so a scrubber can seek to the right time.
    frame_indices: tuple[int, ...]


def write_thumbnail(frame: np.ndarray, path: str | os.PathLike[str], max_side: int = THUMBNAIL_MAX_SIDE) -> None:
    """Write `frame` (H, W, 3 uint8 RGB) as WebP, scaled down (never up) so its longer side <= `max_side`."""
    image = _to_image(frame)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    image.save(path, format="WEBP", quality=80, method=4)


def write_spritesheet(
    frames: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    columns: int = SPRITE_COLUMNS,
    tile_width: int = SPRITE_TILE_WIDTH,
) -> SpriteSheet:
    """Write `frames` as a JPEG grid of `tile_width`-wide tiles, left to right then top to bottom."""
    if not frames:
        raise ValueError("a spritesheet needs at least one frame")
    if columns < 1 or tile_width < 1:
        raise ValueError("columns and tile_width must be positive")
    first_h, first_w = frames[0].shape[:2]
    tile_height = max(1, round(tile_width * first_h / first_w))
    columns = min(columns, len(frames))
    rows = math.ceil(len(frames) / columns)
    sheet = Image.new("RGB", (columns * tile_width, rows * tile_height))
    for i, frame in enumerate(frames):
        tile = _to_image(frame).resize((tile_width, tile_height), Image.Resampling.LANCZOS, reducing_gap=2.0)
        sheet.paste(tile, ((i % columns) * tile_width, (i // columns) * tile_height))
    sheet.save(path, format="JPEG", quality=85)
    return SpriteSheet(Path(path), columns, rows, tile_width, tile_height)


class FrameSampler:
    """Keeps evenly spaced, downscaled copies of a frame stream in bounded memory.

    Frames whose index is a multiple of `stride` are kept. When more than `2 * max_samples` are held the
    stride doubles and every other copy is dropped, so the survivors stay evenly spaced however long the
    stream turns out to be. A known `expected_frames` sets the stride up front so that only about
    `max_samples` frames are ever downscaled.
    """

    def __init__(
        self,
        max_samples: int = SPRITE_MAX_TILES,
        expected_frames: int | None = None,
        max_side: int = THUMBNAIL_MAX_SIDE,
    ) -> None:
        if max_samples < 1:
            raise ValueError("max_samples must be positive")
        self.max_samples = max_samples
        self.max_side = max_side
        self._stride = max(1, expected_frames // max_samples) if expected_frames else 1
        self._kept: dict[int, np.ndarray] = {}
        self._seen = 0

    @property
    def frames_seen(self) -> int:
        return self._seen

    def offer(self, frame: np.ndarray) -> None:
        index = self._seen
        self._seen += 1
        if index % self._stride:
            return
        image = _to_image(frame)
        # reducing_gap=1 box-filters by the whole factor first (1080p -> 640 is exactly 3x): ~3 ms instead
        # of ~25 ms per frame, and this runs on the producer's thread while x264 wants the cores.
        image.thumbnail((self.max_side, self.max_side), Image.Resampling.LANCZOS, reducing_gap=1.0)
        self._kept[index] = np.asarray(image)
        if len(self._kept) > 2 * self.max_samples:
            self._stride *= 2
            self._kept = {i: f for i, f in self._kept.items() if i % self._stride == 0}

    def samples(self) -> list[tuple[int, np.ndarray]]:
        """Up to `max_samples` (frame index, downscaled frame) pairs, evenly spaced, in stream order."""
        kept = list(self._kept.items())
        if len(kept) <= self.max_samples:
            return kept
        last = len(kept) - 1
        picks = sorted({round(j * last / (self.max_samples - 1)) for j in range(self.max_samples)})
        return [kept[p] for p in picks]

    def middle(self) -> np.ndarray:
        """The kept frame closest to the middle of the stream: the start of a clip is often a fade-in."""
        if not self._kept:
            raise ValueError("no frames were written")
        target = self._seen // 2
        return self._kept[min(self._kept, key=lambda i: abs(i - target))]

    def write_previews(
        self, thumbnail_path: str | os.PathLike[str], spritesheet_path: str | os.PathLike[str]
    ) -> Previews:
        middle = self.middle()
        write_thumbnail(middle, thumbnail_path)
        samples = self.samples()
        sheet = write_spritesheet([frame for _, frame in samples], spritesheet_path)
        return Previews(Path(thumbnail_path), sheet, tuple(i for i, _ in samples))


def _to_image(frame: np.ndarray) -> Image.Image:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
    return Image.fromarray(frame)
