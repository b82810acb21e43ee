"""Reading media back: what a video file really contains, its frames and sound, and user-supplied reference
images."""

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

from reelgen.media.encode import AudioInfo

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
    # The first audio stream (None: the file has none).
    audio: AudioInfo | None = None


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe the first video stream and the first audio stream, if any. `num_frames` and the audio's
    `seconds` come from decoding: headers can be absent or wrong."""
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = ThreadType.AUTO
        sound = container.streams.audio[0] if container.streams.audio else None
        num_frames = num_samples = 0
        for packet in container.demux(*(s for s in (stream, sound) if s is not None)):
            for frame in packet.decode():
                if isinstance(frame, av.AudioFrame):
                    num_samples += frame.samples
                else:
                    num_frames += 1
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
        audio = None
        if sound is not None:
            rate, channels = sound.codec_context.sample_rate, sound.codec_context.channels
            audio = AudioInfo(sample_rate=rate, channels=channels, seconds=num_samples / rate)
        return VideoInfo(
            num_frames=num_frames,
            width=codec.width,
            height=codec.height,
            fps=Fraction(fps),
            codec=codec.name,
            pix_fmt=codec.pix_fmt or "",
            duration=duration,
            audio=audio,
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


def decode_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int] | None:
    """The first audio stream as float32 (channels, samples) and its sample rate; None for a silent file."""
    with av.open(os.fspath(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
        # Planar float whatever the codec decodes to (AAC already is; PCM or MP3 may be packed or integer).
        planar = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=rate)
        blocks = [out.to_ndarray() for frame in container.decode(stream) for out in planar.resample(frame)]
        blocks += [out.to_ndarray() for out in planar.resample(None)]
    if not blocks:
        return np.zeros((channels, 0), np.float32), rate
    return np.concatenate(blocks, axis=1).astype(np.float32, copy=False), rate


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
