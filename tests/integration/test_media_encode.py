"""VideoWriter and probe against real libx264 / libavformat (through PyAV)."""

from __future__ import annotations

import hashlib
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelgen.engines.base import AudioTrack
from reelgen.media import VideoWriter, decode_audio, decode_frames, probe

# Tests care about correctness, not compression: the fastest preset keeps the whole file to seconds.
FAST = {"preset": "ultrafast", "crf": 18}


def gray_ramp(count: int, height: int = 64, width: int = 96) -> np.ndarray:
    """Frame i is a flat gray of level 20 + 10 * i: order and count can be read back from the pixels."""
    levels = 20 + 10 * np.arange(count, dtype=np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, height, width, 3)).copy()


def tones(seconds: float, rate: int = 48000, hz: tuple[float, ...] = (440.0, 880.0)) -> np.ndarray:
    """One sine per channel (channel c at hz[c]), amplitude 0.5, as float32 (channels, samples)."""
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in hz]).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def top_level_boxes(path: Path) -> list[str]:
    names, data, offset = [], path.read_bytes(), 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        names.append(kind.decode("latin-1"))
        if size == 0:
            break
        offset += size
    return names


@pytest.mark.parametrize("fps", [24, 16, Fraction(30000, 1001)])
def test_round_trip_reads_back_exactly_what_was_asked(tmp_path: Path, fps: int | Fraction) -> None:
    path = tmp_path / "out.mp4"
    frames = gray_ramp(21, height=96, width=128)
    with VideoWriter(path, 128, 96, fps, expected_frames=21, **FAST) as writer:
        writer.write(frames)
    video = writer.close()

    assert (video.path, video.num_frames, video.width, video.height, video.fps) == (path, 21, 128, 96, fps)
    assert video.bytes == path.stat().st_size
    assert video.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    info = probe(path)
    assert (info.num_frames, info.width, info.height) == (21, 128, 96)
    assert info.fps == fps
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.duration == pytest.approx(float(21 / Fraction(fps)), abs=1e-3)


def test_moov_atom_comes_before_mdat_for_progressive_playback(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with VideoWriter(path, 96, 64, 24, **FAST) as writer:
        writer.write(gray_ramp(5))
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat")


def test_chunks_of_any_size_stream_in_order(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    frames = gray_ramp(20)
    with VideoWriter(path, 96, 64, 24, **FAST) as writer:
        writer.write(frames[0:1])
        writer.write(frames[1:8])
        writer.write(frames[8])  # a single (H, W, 3) frame
        writer.write(frames[9:9])  # an empty chunk is a no-op
        writer.write(frames[9:20])
    decoded = decode_frames(path)
    assert decoded.shape == (20, 64, 96, 3)
    np.testing.assert_allclose(decoded.mean(axis=(1, 2, 3)), frames.mean(axis=(1, 2, 3)), atol=2)


def test_caller_may_reuse_its_buffer_once_write_returns(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    buffer = np.empty((64, 96, 3), np.uint8)
    with VideoWriter(path, 96, 64, 24, **FAST) as writer:
        for level in (30, 130, 230):
            buffer[:] = level
            writer.write(buffer)
    np.testing.assert_allclose(decode_frames(path).mean(axis=(1, 2, 3)), [30, 130, 230], atol=2)


def test_non_contiguous_frames_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    wide = gray_ramp(3, height=64, width=192)
    with VideoWriter(path, 96, 64, 24, **FAST) as writer:
        writer.write(wide[:, :, ::2])
    assert probe(path).num_frames == 3


COLOURS = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "gray": (128, 128, 128),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "skin": (224, 172, 105),
}


def test_colours_survive_the_round_trip(tmp_path: Path) -> None:
    # A mismatch between the matrix we convert with and the one the stream is tagged with shows up as
    # errors of 20+ on saturated colours; rounding and 4:2:0 on flat fields stay within a few levels.
    path = tmp_path / "out.mp4"
    frames = np.stack([np.full((64, 96, 3), rgb, np.uint8) for rgb in COLOURS.values()])
    with VideoWriter(path, 96, 64, 24, **FAST) as writer:
        writer.write(frames)
    decoded = decode_frames(path)
    for i, (name, rgb) in enumerate(COLOURS.items()):
        centre = decoded[i, 16:48, 24:72].reshape(-1, 3).astype(int)
        error = np.abs(centre - np.array(rgb)).max()
        assert error <= 6, f"{name}: decoded {centre.mean(axis=0).round(1)}, wrote {rgb}"


def test_previews_come_from_sampled_frames(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    frames = gray_ramp(20, height=400, width=704)
    with VideoWriter(path, 704, 400, 24, expected_frames=20, **FAST) as writer:
        writer.write(frames)
    previews = writer.write_previews(tmp_path / "thumb.webp", tmp_path / "sprite.jpg")

    with Image.open(previews.thumbnail) as thumb:
        assert thumb.format == "WEBP"
        assert thumb.size == (640, 364)
        assert abs(np.asarray(thumb.convert("RGB")).mean() - (20 + 10 * 10)) <= 3  # the middle frame
    sheet = previews.spritesheet
    assert (sheet.columns, sheet.rows, sheet.tile_width, sheet.tile_height) == (4, 4, 160, 91)
    with Image.open(sheet.path) as image:
        assert image.format == "JPEG"
        assert image.size == (4 * 160, 4 * 91)
    indices = previews.frame_indices
    assert (len(indices), indices[0], indices[-1]) == (16, 0, 19)
    assert set(np.diff(indices).tolist()) <= {1, 2}


@pytest.mark.parametrize(("width", "height"), [(97, 64), (96, 63), (0, 64)])
def test_odd_or_empty_sizes_are_rejected(tmp_path: Path, width: int, height: int) -> None:
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "out.mp4", width, height, 24)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("settings", [{"preset": "warp9"}, {"crf": 60}, {"fps": 0}], ids=["preset", "crf", "fps"])
def test_bad_settings_are_rejected_before_any_file_exists(tmp_path: Path, settings: dict[str, object]) -> None:
    kwargs: dict[str, object] = {"fps": 24, **settings}
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "out.mp4", 96, 64, **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 64, 96, 4), np.uint8), np.zeros((2, 32, 96, 3), np.uint8), np.zeros((2, 64, 96, 3), np.float32)],
    ids=["rgba", "wrong-size", "float"],
)
def test_frames_of_the_wrong_shape_or_dtype_are_rejected(tmp_path: Path, bad: np.ndarray) -> None:
    with VideoWriter(tmp_path / "out.mp4", 96, 64, 24, **FAST) as writer:
        with pytest.raises(ValueError):
            writer.write(bad)
        writer.write(gray_ramp(1))


def test_an_exception_in_the_block_deletes_the_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(KeyError), VideoWriter(path, 96, 64, 24, **FAST) as writer:
        writer.write(gray_ramp(10))
        raise KeyError("model crashed")
    assert not path.exists()
    with pytest.raises(RuntimeError):
        writer.write(gray_ramp(1))


def test_close_without_frames_fails_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    writer = VideoWriter(path, 96, 64, 24, **FAST)
    with pytest.raises(ValueError, match="no frames"):
        writer.close()
    assert not path.exists()


def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "out.mp4", 96, 64, 24, **FAST)
    writer.write(gray_ramp(2))
    assert writer.close() is writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(gray_ramp(1))


# AAC codes sound in frames of 1024 samples: the decoded track ends on a frame boundary (up to one frame long).
AAC_FRAME = 1024


@pytest.mark.parametrize(
    ("seconds", "rate", "hz", "stored_rate"),
    [
        (17 / 16, 48000, (440.0, 880.0), 48000),
        (0.5, 48000, (440.0,), 48000),  # mono, shorter than the video: stored as it is, not padded
        (17 / 16, 30000, (440.0, 880.0), 32000),  # not an AAC rate: resampled to the next one up
    ],
    ids=["stereo", "mono-short", "resampled"],
)
def test_a_soundtrack_decodes_back_at_its_rate_channels_length_and_pitch(
    tmp_path: Path, seconds: float, rate: int, hz: tuple[float, ...], stored_rate: int
) -> None:
    path = tmp_path / "out.mp4"
    sound = tones(seconds, rate, hz)
    if len(sound) == 1:
        sound = sound[0]  # mono may come as a plain (samples,) array
    with VideoWriter(path, 64, 64, 16, audio=AudioTrack(sound, rate), **FAST) as writer:
        writer.write(gray_ramp(17, height=64, width=64))
    video = writer.close()

    assert video.audio is not None
    assert (video.audio.sample_rate, video.audio.channels) == (stored_rate, len(hz))
    assert video.audio.seconds == pytest.approx(seconds)
    info = probe(path)
    assert info.num_frames == 17 and info.audio is not None
    assert (info.audio.sample_rate, info.audio.channels) == (stored_rate, len(hz))
    decoded = decode_audio(path)
    assert decoded is not None
    samples, decoded_rate = decoded
    assert decoded_rate == stored_rate and samples.dtype == np.float32 and samples.shape[0] == len(hz)
    assert 0 <= samples.shape[1] - seconds * stored_rate <= AAC_FRAME
    assert info.audio.seconds == pytest.approx(samples.shape[1] / stored_rate)
    for channel, expected in zip(samples, hz, strict=True):
        assert peak_hz(channel, stored_rate) == pytest.approx(expected, abs=2)
        # As loud as written (a sine of amplitude 0.5 has an RMS of 0.354); AAC keeps levels, not waveforms.
        assert np.sqrt(np.mean(channel**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


@pytest.mark.parametrize("rate", [48000, 30000])
def test_sound_starts_with_the_first_frame(tmp_path: Path, rate: int) -> None:
    """AAC's priming samples (and the resampler's delay) are skipped on decode: a tone that starts 0.25 s in
    is heard 0.25 s in."""
    path = tmp_path / "out.mp4"
    sound = tones(1.0, rate, (440.0,))
    sound[:, : rate // 4] = 0
    with VideoWriter(path, 64, 64, 16, audio=AudioTrack(sound, rate), **FAST) as writer:
        writer.write(gray_ramp(17, height=64, width=64))
    decoded = decode_audio(path)
    assert decoded is not None
    samples, stored_rate = decoded
    onset = np.argmax(np.abs(samples[0]) > 0.05) / stored_rate
    assert onset == pytest.approx(0.25, abs=0.002)


def test_sound_longer_than_the_video_is_cut_at_its_last_frame(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with VideoWriter(path, 64, 64, 16, audio=AudioTrack(tones(3.0), 48000), **FAST) as writer:
        writer.write(gray_ramp(17, height=64, width=64))
    video = writer.close()

    assert video.audio is not None and video.audio.seconds == 17 / 16
    decoded = decode_audio(path)
    assert decoded is not None
    assert 0 <= decoded[0].shape[1] - 17 / 16 * 48000 <= AAC_FRAME
    assert probe(path).num_frames == 17


def test_sound_is_interleaved_with_the_frames_for_progressive_playback(tmp_path: Path) -> None:
    # Longer than the 10 s libavformat buffers to interleave by itself: only sound written along with the
    # frames keeps the file interleaved (all of it at close steps back 1.7 s here).
    path = tmp_path / "out.mp4"
    with VideoWriter(path, 64, 64, 16, audio=AudioTrack(tones(12.0), 48000), **FAST) as writer:
        for _ in range(12):
            writer.write(gray_ramp(16, height=64, width=64))
    assert top_level_boxes(path).index("moov") < top_level_boxes(path).index("mdat")
    with av.open(str(path)) as container:
        packets = [
            (packet.pos, float(packet.dts * packet.time_base), packet.stream.type)
            for packet in container.demux()
            if packet.size and packet.dts is not None and packet.time_base is not None
        ]
    packets.sort()
    assert {kind for _, _, kind in packets} == {"video", "audio"}
    # In file order, time only ever steps back a little (a player reading from the start has both streams).
    times = np.array([t for _, t, _ in packets])
    assert (np.maximum.accumulate(times) - times).max() < 0.5


def test_a_silent_video_has_no_audio_stream_and_the_same_frames(tmp_path: Path) -> None:
    frames = gray_ramp(17, height=64, width=64)
    with VideoWriter(tmp_path / "silent.mp4", 64, 64, 16, **FAST) as writer:
        writer.write(frames)
    silent = writer.close()
    with VideoWriter(tmp_path / "sound.mp4", 64, 64, 16, audio=AudioTrack(tones(1.0), 48000), **FAST) as writer:
        writer.write(frames)

    assert silent.audio is None and probe(silent.path).audio is None and decode_audio(silent.path) is None
    with av.open(str(silent.path)) as container:
        assert [stream.type for stream in container.streams] == ["video"]
    # The sound changes nothing about the picture: the same H.264 bitstream, decoding to the same frames.
    video_packets = []
    for name in ("silent.mp4", "sound.mp4"):
        with av.open(str(tmp_path / name)) as container:
            video_packets.append([bytes(p) for p in container.demux(container.streams.video[0]) if p.size])
    assert video_packets[0] == video_packets[1]
    np.testing.assert_array_equal(decode_frames(silent.path), decode_frames(tmp_path / "sound.mp4"))


@pytest.mark.parametrize(
    ("samples", "rate", "problem"),
    [
        (np.array([[0.0, np.nan, 0.1]] * 2, np.float32), 48000, "finite"),
        (np.zeros((3, 4800), np.float32), 48000, "1 or 2 channels"),
        (np.zeros((4800, 2), np.float32), 48000, "1 or 2 channels"),  # (samples, channels): the wrong way round
        (np.zeros((2, 4800), np.float32), 1, "sample rate"),
        (np.zeros((2, 4800), np.int16), 48000, "float32 or float64"),
        (np.zeros((2, 0), np.float32), 48000, "no samples"),
    ],
    ids=["nan", "3-channels", "transposed", "1-hz", "int16", "empty"],
)
def test_bad_sound_is_rejected_before_any_file_exists(
    tmp_path: Path, samples: np.ndarray, rate: int, problem: str
) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match=problem):
        VideoWriter(path, 64, 64, 16, audio=AudioTrack(samples, rate), **FAST)
    assert not path.exists()


def test_an_exception_in_the_block_deletes_a_partial_file_with_sound(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with (
        pytest.raises(KeyError),
        VideoWriter(path, 64, 64, 16, audio=AudioTrack(tones(3.0), 48000), **FAST) as writer,
    ):
        writer.write(gray_ramp(16, height=64, width=64))
        raise KeyError("model crashed")
    assert not path.exists()
