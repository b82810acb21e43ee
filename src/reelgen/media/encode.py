"""Streaming H.264 encoder: uint8 RGB frames in, a web-ready mp4 (yuv420p, BT.709, faststart) out, with an
optional AAC soundtrack muxed alongside.

Where the time goes, and why the writer is built this way (numbers in benchmarks/README.md):
- x264 is about 95% of it. It runs with the ffmpeg command line's threading (thread count auto, frame
  threads). PyAV's own default is slice threads, which here compressed about 8% worse at the same crf.
- RGB -> YUV 4:2:0 is done by swscale (SIMD, ~4.5 ms per 1080p frame; numpy is an order of magnitude
  slower) on the caller's thread, while a background thread feeds x264. So conversion overlaps with
  encoding, the caller's array is read in place, and it may be reused as soon as `write()` returns.
- A soundtrack is cheap next to that (AAC encodes seconds of sound in milliseconds). After each chunk the
  sound up to the video's current end goes to the same encoder thread (the only one touching the container),
  so packets of both streams arrive in time order and the mp4 is interleaved for progressive playback.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol

import av
import numpy as np
from av.codec.context import ThreadType
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

from reelgen.media.previews import SPRITE_MAX_TILES, FrameSampler, Previews

# x264's own balance of speed and compression; encoding is seconds next to minutes of generation.
DEFAULT_PRESET: Final = "medium"
# Visually transparent for generated footage at a size that still streams well.
DEFAULT_CRF: Final = 20
X264_PRESETS: Final = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
# AVCOL_PRI_BT709, AVCOL_TRC_BT709 and AVCOL_SPC_BT709 are all 1 in libavutil/pixfmt.h.
_AVCOL_BT709: Final = 1
# A few frames absorb jitter between producer and encoder; x264 keeps its own lookahead anyway.
_QUEUE_FRAMES: Final = 8
# Sound: telephone quality up to studio rates; mono or stereo (what AAC-LC players all handle).
MIN_SAMPLE_RATE: Final = 8000
MAX_SAMPLE_RATE: Final = 96000
_AUDIO_LAYOUTS: Final = {1: "mono", 2: "stereo"}


class AudioSamples(Protocol):
    """What `VideoWriter(audio=...)` reads: float samples in [-1, 1], shape (channels, samples) or (samples,)
    for mono, starting with the first frame. The engines' AudioTrack is one (media does not import engines)."""

    @property
    def samples(self) -> np.ndarray: ...

    @property
    def sample_rate(self) -> int: ...


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """An audio stream as written (or found by `probe`): its sample rate, channels and length."""

    sample_rate: int
    channels: int
    seconds: float


@dataclass(frozen=True, slots=True)
class EncodedVideo:
    path: Path
    num_frames: int
    width: int
    height: int
    fps: Fraction
    bytes: int
    sha256: str
    # The soundtrack as stored (None: a silent video, with no audio stream at all).
    audio: AudioInfo | None = None


class VideoWriter:
    """Encode frames as they arrive. Use as a context manager, or call `close()` (or `abort()`) yourself.

    `write()` takes an (H, W, 3) frame or a (T, H, W, 3) chunk of uint8 RGB. `close()` finishes the file
    and returns an `EncodedVideo`; it is idempotent, so `video = writer.close()` inside a `with` block is
    fine. Leaving the block with an exception deletes the partial file. `write_previews()` makes a
    thumbnail and a spritesheet from frames sampled on the way, at any time after the first frame.
    One producer thread only.

    `audio` adds an AAC soundtrack at the track's own sample rate (or the next rate AAC supports above it).
    Sound past the last frame is cut at close; a track shorter than the video is stored as it is (players
    play silence after it), rather than padded. Without `audio` there is no audio stream at all.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        fps: int | Fraction,
        *,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        expected_frames: int | None = None,
        preview_frames: int = SPRITE_MAX_TILES,
        audio: AudioSamples | None = None,
    ) -> None:
        _check_settings(width, height, fps, crf, preset)
        # Checked (and copied) before any file exists: bad sound leaves nothing behind.
        self._audio: np.ndarray | None = None
        self._audio_rate = 0
        if audio is not None:
            self._audio, self._audio_rate = _check_audio(audio.samples, audio.sample_rate)
        self._audio_written = 0
        self.path = Path(path)
        self.width = width
        self.height = height
        self.fps = Fraction(fps)
        self._sampler = FrameSampler(preview_frames, expected_frames)
        self._reformatter = VideoReformatter()
        self._count = 0
        self._result: EncodedVideo | None = None
        self._error: BaseException | None = None
        self._aborting = False

        self._container = av.open(str(self.path), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            self._stream = self._container.add_stream("libx264", rate=self.fps)
            self._stream.width = width
            self._stream.height = height
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"preset": preset, "crf": str(crf)}
            codec = self._stream.codec_context
            codec.thread_count = 0
            codec.thread_type = ThreadType.AUTO
            # Tag what we convert with, so players never have to guess (HD players guess BT.709, SD
            # players BT.601; an untagged stream looks different in different browsers).
            codec.colorspace = codec.color_primaries = codec.color_trc = _AVCOL_BT709
            codec.color_range = ColorRange.MPEG
            # Open now so a bad setting fails here, in the caller, not later in the encoder thread.
            codec.open()
            self._audio_stream = self._add_audio_stream() if self._audio is not None else None
        except BaseException:
            self._container.close()
            self.path.unlink(missing_ok=True)
            raise
        self._time_base = codec.time_base
        self._queue: queue.Queue[av.VideoFrame | av.AudioFrame | None] = queue.Queue(maxsize=_QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._encode_loop, name=f"x264 {self.path.name}", daemon=True)
        self._thread.start()

    @property
    def num_frames(self) -> int:
        return self._count

    def write(self, frames: np.ndarray) -> None:
        if self._result is not None or self._aborting:
            raise RuntimeError("VideoWriter is closed")
        chunk = self._check_chunk(frames)
        for frame in chunk:
            self._raise_encoder_error()
            self._sampler.offer(frame)
            self._queue.put(self._to_yuv(frame))
        self._queue_audio()

    def close(self) -> EncodedVideo:
        if self._result is not None:
            return self._result
        if self._aborting:
            raise RuntimeError("VideoWriter was aborted")
        self._queue_audio()  # the rest of the sound, up to the last frame's end
        self._queue.put(None)
        self._thread.join()
        try:
            self._raise_encoder_error()
            if self._count == 0:
                raise ValueError("no frames were written; an mp4 needs at least one")
            self._container.close()
        except BaseException:
            self._aborting = True
            self._close_quietly()
            raise
        self._result = EncodedVideo(
            path=self.path,
            num_frames=self._count,
            width=self.width,
            height=self.height,
            fps=self.fps,
            bytes=self.path.stat().st_size,
            sha256=_sha256(self.path),
            audio=self._audio_info(),
        )
        return self._result

    def abort(self) -> None:
        """Stop encoding and delete the partial file. Safe to call more than once."""
        if self._result is not None or self._aborting:
            return
        self._aborting = True
        self._queue.put(None)
        self._thread.join()
        self._close_quietly()

    def write_previews(
        self, thumbnail_path: str | os.PathLike[str], spritesheet_path: str | os.PathLike[str]
    ) -> Previews:
        """Thumbnail (WebP, middle frame) and spritesheet (JPEG grid) from the frames sampled so far."""
        return self._sampler.write_previews(thumbnail_path, spritesheet_path)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _check_chunk(self, frames: np.ndarray) -> np.ndarray:
        chunk = np.asarray(frames)
        if chunk.ndim == 3:
            chunk = chunk[np.newaxis]
        expected = (self.height, self.width, 3)
        if chunk.ndim != 4 or chunk.shape[1:] != expected:
            raise ValueError(f"expected frames of shape (T, {', '.join(map(str, expected))}), got {chunk.shape}")
        if chunk.dtype != np.uint8:
            raise ValueError(f"expected uint8 RGB frames, got {chunk.dtype}")
        return chunk

    def _add_audio_stream(self) -> av.AudioStream:
        assert self._audio is not None
        channels = self._audio.shape[0]
        rates = av.Codec("aac", "w").audio_rates or (self._audio_rate,)
        # The native AAC encoder takes 13 rates; between them, the next higher one keeps all of the sound.
        rate = min((r for r in rates if r >= self._audio_rate), default=max(rates))
        stream = self._container.add_stream("aac", rate=rate, layout=_AUDIO_LAYOUTS[channels])
        # PyAV resamples (only if `rate` differs) and cuts our frames into AAC's 1024-sample frames on encode.
        stream.codec_context.open()
        return stream

    def _queue_audio(self) -> None:
        """Hand the encoder thread the sound up to the end of the last frame written."""
        if self._audio is None:
            return
        video_end = int(Fraction(self._count) / self.fps * self._audio_rate)
        end = min(self._audio.shape[1], video_end)
        if end <= self._audio_written:
            return
        samples = np.ascontiguousarray(self._audio[:, self._audio_written : end])
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=_AUDIO_LAYOUTS[samples.shape[0]])
        frame.sample_rate = self._audio_rate
        frame.time_base = Fraction(1, self._audio_rate)
        frame.pts = self._audio_written
        self._audio_written = end
        self._queue.put(frame)

    def _audio_info(self) -> AudioInfo | None:
        if self._audio_stream is None:
            return None
        return AudioInfo(
            sample_rate=self._audio_stream.codec_context.sample_rate,
            channels=self._audio_stream.codec_context.channels,
            seconds=self._audio_written / self._audio_rate,
        )

    def _to_yuv(self, frame: np.ndarray) -> av.VideoFrame:
        if frame.strides[1:] != (3, 1):
            frame = np.ascontiguousarray(frame)
        # Wraps the caller's memory without a copy; swscale reads it before this method returns.
        rgb = av.VideoFrame.from_numpy_buffer(frame, format="rgb24")
        # One swscale thread: x264's threads already occupy the cores; slicing a few-ms job only adds sync.
        yuv = self._reformatter.reformat(
            rgb,
            format="yuv420p",
            dst_colorspace=Colorspace.ITU709,
            dst_color_range=ColorRange.MPEG,
            threads=1,
        )
        yuv.pts = self._count
        yuv.duration = 1
        yuv.time_base = self._time_base
        self._count += 1
        return yuv

    def _encode_loop(self) -> None:
        stopped = False
        try:
            while (frame := self._queue.get()) is not None:
                if self._aborting:
                    continue
                if isinstance(frame, av.AudioFrame):
                    assert self._audio_stream is not None
                    self._container.mux(self._audio_stream.encode(frame))
                else:
                    self._container.mux(self._stream.encode(frame))
            stopped = True
            if not self._aborting:
                self._container.mux(self._stream.encode(None))
                if self._audio_stream is not None:
                    self._container.mux(self._audio_stream.encode(None))
        except BaseException as error:
            self._error = error
            # Keep draining so a producer blocked on a full queue wakes up and sees the error.
            while not stopped:
                stopped = self._queue.get() is None

    def _raise_encoder_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"encoding {self.path} failed: {self._error}") from self._error

    def _close_quietly(self) -> None:
        # The file is deleted next; a failure to write its trailer is not worth reporting.
        with contextlib.suppress(Exception):
            self._container.close()
        self.path.unlink(missing_ok=True)


def _check_settings(width: int, height: int, fps: int | Fraction, crf: int, preset: str) -> None:
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"width and height must be positive and even for yuv420p, got {width}x{height}")
    if Fraction(fps) <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be between 0 and 51, got {crf}")
    if preset not in X264_PRESETS:
        raise ValueError(f"unknown x264 preset {preset!r}; one of {', '.join(X264_PRESETS)}")


def _check_audio(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """The track as contiguous float32 (channels, samples) and its rate, or ValueError naming what is wrong."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise ValueError(f"audio sample rate must be an integer number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(
            f"audio sample rate must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {sample_rate}"
        )
    if not isinstance(samples, np.ndarray) or samples.dtype not in (np.float32, np.float64):
        dtype = samples.dtype if isinstance(samples, np.ndarray) else type(samples).__name__
        raise ValueError(f"audio samples must be a float32 or float64 array, got {dtype}")
    if samples.ndim == 1:
        samples = samples[np.newaxis]
    if samples.ndim != 2 or samples.shape[0] not in _AUDIO_LAYOUTS:
        raise ValueError(
            f"audio samples must be of shape (samples,) or (channels, samples) with 1 or 2 channels, "
            f"got {samples.shape}"
        )
    if samples.shape[1] == 0:
        raise ValueError("audio has no samples")
    if not np.isfinite(samples).all():
        raise ValueError("audio samples must be finite (found NaN or infinity)")
    # A copy the caller cannot change under us. Tracks are small (20 s of 48 kHz stereo is 7.7 MB).
    return np.array(samples, dtype=np.float32, order="C"), int(sample_rate)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
