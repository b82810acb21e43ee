"""VideoWriter and probe against real libx264 / libavformat (through PyAV)."""

from __future__ import annotations

import hashlib
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reelgen.media import VideoWriter, decode_frames, probe

# Tests care about correctness, not compression: the fastest preset keeps the whole file to seconds.
FAST = {"preset": "ultrafast", "crf": 18}


def gray_ramp(count: int, height: int = 64, width: int = 96) -> np.ndarray:
    """Frame i is a flat gray of level 20 + 10 * i: order and count can be read back from the pixels."""
    levels = 20 + 10 * np.arange(count, dtype=np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, height, width, 3)).copy()


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
