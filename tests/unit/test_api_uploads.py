"""Reference image checks: type from the bytes, byte and pixel caps, decompression bombs, data URLs."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from reelgen.api import uploads
from reelgen.api.uploads import decode_data_url, sniff, validate_reference_image
from reelgen.domain.errors import InvalidParams


def encode(fmt: str, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 30, 60)).save(buf, format=fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny compressed row: a decompression bomb shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp")])
def test_accepts_png_jpeg_webp_and_sniffs_the_type(fmt: str, name: str) -> None:
    data = encode(fmt)
    ref = validate_reference_image(data)
    assert (ref.format, ref.width, ref.height) == (name, 32, 24)
    assert ref.extension == {"jpeg": "jpg"}.get(name, name)
    assert sniff(data) == name


def test_text_disguised_as_an_image_is_refused() -> None:
    with pytest.raises(InvalidParams) as e:
        validate_reference_image(b"hello, I am a png, honestly\n" * 10)
    assert e.value.param == "input_reference" and "png, jpeg or webp" in e.value.message


def test_png_magic_followed_by_garbage_is_refused() -> None:
    with pytest.raises(InvalidParams) as e:
        validate_reference_image(b"\x89PNG\r\n\x1a\n" + b"not really" * 20)
    assert e.value.param == "input_reference"


def test_truncated_image_is_refused() -> None:
    data = encode("PNG", (256, 256))
    with pytest.raises(InvalidParams):
        validate_reference_image(data[: len(data) // 2])


def test_other_formats_are_refused_even_when_pillow_reads_them() -> None:
    with pytest.raises(InvalidParams):
        validate_reference_image(encode("GIF"))


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (5000, 5000), (4097, 4096)])
def test_huge_dimensions_are_refused_before_decoding(width: int, height: int) -> None:
    data = png_header_only(width, height)
    assert len(data) < 200
    with pytest.raises(InvalidParams) as e:
        validate_reference_image(data)
    assert e.value.param == "input_reference" and "pixels" in e.value.message


def test_byte_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads, "MAX_REFERENCE_BYTES", 1000)
    with pytest.raises(InvalidParams) as e:
        validate_reference_image(encode("PNG", (64, 64)) + b"\0" * 1000)
    assert "bytes" in e.value.message


def test_data_urls() -> None:
    data = encode("PNG")
    assert decode_data_url("data:image/png;base64," + base64.b64encode(data).decode()) == data
    for bad in ("https://example.com/a.png", "data:image/png,rawbytes", "data:image/png;base64,@@@"):
        with pytest.raises(InvalidParams) as e:
            decode_data_url(bad)
        assert e.value.param == "input_reference[image_url]"
