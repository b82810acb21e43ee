"""Reading media back: what a video file really contains, its frames, and user-supplied reference images."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import av
import numpy as np
from av.codec.context import ThreadType
from PIL import Image, ImageOps, UnidentifiedImageError

# A reference image is scaled to the video size (at most a few megapixels) anyway; 40 MP still admits
# any camera photo while a crafted header cannot make us allocate gigabytes.
MAX_IMAGE_PIXELS: Final = 40_000_000


@dataclass(frozen=True, slots=True)
class VideoInfo:
    num_frames: int
    width: int
    height: int
    fps: Fraction
    codec: str
    pix_fmt: str
    duration: float


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe the first video stream. `num_frames` comes from decoding: headers can be absent or wrong."""
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = ThreadType.AUTO
        num_frames = sum(1 for _ in container.decode(stream))
        codec = stream.codec_context
        fps = stream.average_rate or stream.guessed_rate
        if fps is None:
            raise ValueError(f"{path}: cannot tell the frame rate")
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = float(num_frames / fps)
        return VideoInfo(
            num_frames=num_frames,
            width=codec.width,
            height=codec.height,
            fps=Fraction(fps),
            codec=codec.name,
            pix_fmt=codec.pix_fmt or "",
            duration=duration,
        )


def decode_frames(path: str | os.PathLike[str]) -> np.ndarray:
    """All frames of the first video stream as (T, H, W, 3) uint8 RGB, honouring the stream's colour tags."""
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = ThreadType.AUTO
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    if not frames:
        raise ValueError(f"{path}: no video frames")
    return np.stack(frames)


def load_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an uploaded image to (H, W, 3) uint8 RGB, upright per its EXIF orientation.

    The size is checked from the header before any pixel is decoded, so a decompression bomb costs
    nothing. Raises ValueError for unreadable or oversized images.
    """
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise ValueError(f"image is too large ({error}); the limit is {max_pixels:,} pixels") from error
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"not a readable image: {error}") from error
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ValueError(
                f"image is {width}x{height} ({width * height:,} pixels); the limit is {max_pixels:,} pixels"
            )
        try:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        except (OSError, SyntaxError, Image.DecompressionBombError) as error:
            raise ValueError(f"not a readable image: {error}") from error
