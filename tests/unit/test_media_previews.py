"""Frame sampling, thumbnails, spritesheets and reference-image loading: numpy + Pillow only, no codec."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reelgen.media import FrameSampler, load_image, write_spritesheet, write_thumbnail


def numbered(index: int, height: int = 8, width: int = 12) -> np.ndarray:
    """A tiny frame that carries its own index (up to 65535) in its red and green channels."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 0], frame[..., 1] = index // 256, index % 256
    return frame


def index_of(frame: np.ndarray) -> int:
    return int(frame[0, 0, 0]) * 256 + int(frame[0, 0, 1])


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` but has no pixel data: what a decompression bomb looks like."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def encoded(image: Image.Image, format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


@pytest.mark.parametrize("count", [1, 5, 16, 17, 100, 1000, 4097])
def test_sampler_keeps_evenly_spaced_frames_of_a_stream_of_unknown_length(count: int) -> None:
    sampler = FrameSampler(max_samples=16)
    for i in range(count):
        sampler.offer(numbered(i))

    samples = sampler.samples()
    indices = [i for i, _ in samples]
    assert [index_of(frame) for _, frame in samples] == indices
    assert len(indices) == min(count, 16)
    assert indices[0] == 0
    gaps = set(np.diff(indices).tolist())
    assert max(gaps, default=0) - min(gaps, default=0) <= max(gaps, default=0) // 2  # evenly spaced
    assert indices[-1] >= (count - 1) * 0.75  # and covering the whole stream
    assert abs(index_of(sampler.middle()) - count // 2) <= max(1, count // 16)


def test_sampler_with_a_known_length_only_keeps_what_it_needs() -> None:
    sampler = FrameSampler(max_samples=16, expected_frames=240)
    for i in range(240):
        sampler.offer(numbered(i))
    assert [i for i, _ in sampler.samples()] == list(range(0, 240, 15))
    assert index_of(sampler.middle()) == 120


def test_sampler_downscales_what_it_keeps() -> None:
    sampler = FrameSampler(max_side=64)
    sampler.offer(np.zeros((90, 160, 3), np.uint8))
    assert sampler.middle().shape == (36, 64, 3)


def test_sampler_without_frames_has_no_middle() -> None:
    with pytest.raises(ValueError, match="no frames"):
        FrameSampler().middle()


def test_thumbnail_is_webp_scaled_down_keeping_aspect(tmp_path: Path) -> None:
    write_thumbnail(np.zeros((1080, 1920, 3), np.uint8), tmp_path / "big.webp")
    write_thumbnail(np.zeros((100, 60, 3), np.uint8), tmp_path / "small.webp")
    with Image.open(tmp_path / "big.webp") as big, Image.open(tmp_path / "small.webp") as small:
        assert (big.format, big.size) == ("WEBP", (640, 360))
        assert small.size == (60, 100)  # never scaled up


def test_spritesheet_is_a_jpeg_grid_in_frame_order(tmp_path: Path) -> None:
    frames = [np.full((90, 160, 3), 25 * i, np.uint8) for i in range(10)]
    sheet = write_spritesheet(frames, tmp_path / "sprite.jpg", columns=4, tile_width=80)
    assert (sheet.columns, sheet.rows, sheet.tile_width, sheet.tile_height) == (4, 3, 80, 45)
    with Image.open(sheet.path) as image:
        assert (image.format, image.size) == ("JPEG", (320, 135))
        pixels = np.asarray(image.convert("L"))
    tile_means = [
        pixels[r * 45 + 10 : r * 45 + 35, c * 80 + 10 : c * 80 + 70].mean() for r in range(3) for c in range(4)
    ]
    np.testing.assert_allclose(tile_means[:10], [25 * i for i in range(10)], atol=3)


def test_spritesheet_needs_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_spritesheet([], tmp_path / "sprite.jpg")


def test_load_image_returns_rgb_uint8() -> None:
    rgba = Image.new("RGBA", (30, 20), (10, 200, 30, 128))
    array = load_image(encoded(rgba, "PNG"))
    assert (array.shape, array.dtype) == ((20, 30, 3), np.uint8)
    assert tuple(array[0, 0]) == (10, 200, 30)


def test_load_image_applies_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    photo = encoded(Image.new("RGB", (40, 20), (90, 90, 90)), "JPEG", exif=exif.tobytes())
    assert load_image(photo).shape == (40, 20, 3)


@pytest.mark.parametrize(("width", "height"), [(10_000, 5_000), (50_000, 50_000)], ids=["ours", "pillows"])
def test_load_image_rejects_a_decompression_bomb_before_decoding(width: int, height: int) -> None:
    # 50 MP is over our limit only; 2.5 GP is over Pillow's own too, which fires inside Image.open.
    with pytest.raises(ValueError, match="the limit is"):
        load_image(png_header_only(width, height))


def test_load_image_limit_is_configurable() -> None:
    small = encoded(Image.new("RGB", (20, 20)), "PNG")
    assert load_image(small, max_pixels=400).shape == (20, 20, 3)
    with pytest.raises(ValueError, match="400 pixels"):
        load_image(encoded(Image.new("RGB", (21, 20)), "PNG"), max_pixels=400)


@pytest.mark.parametrize("data", [b"", b"not an image", png_header_only(10, 10)], ids=["empty", "text", "truncated"])
def test_load_image_rejects_unreadable_data(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(data)
