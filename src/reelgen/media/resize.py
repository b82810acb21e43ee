"""Integer upscaling of decoded frames, for models trained below the size they are shown at."""

from __future__ import annotations

import numpy as np
from PIL import Image


def upscale_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H * factor, W * factor, 3) uint8, bilinear."""
    if factor == 1:
        return frames
    if factor < 1 or frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError("upscale_frames takes (T, H, W, 3) uint8 frames and an integer factor >= 1")
    t, h, w, _ = frames.shape
    out = np.empty((t, h * factor, w * factor, 3), dtype=np.uint8)
    for i in range(t):
        img = Image.fromarray(np.ascontiguousarray(frames[i]), mode="RGB")
        out[i] = np.asarray(img.resize((w * factor, h * factor), Image.Resampling.BILINEAR))
    return out
