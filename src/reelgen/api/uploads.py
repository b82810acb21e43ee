"""Reference images (`input_reference`): checked in the API before anything is stored or enqueued.

The type comes from the bytes, never from the file name or the client's content type. Dimensions are read
from the header and capped before a single pixel is decoded, so a small file that claims to be 100000x100000
(a decompression bomb) costs nothing; then the whole image is decoded once to catch truncated or corrupt
files here rather than in a worker minutes later.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass
from typing import Final

from reelgen.domain.errors import InvalidParams

MAX_REFERENCE_BYTES: Final = 20 * 1024 * 1024
"""Largest accepted upload; a reference is scaled down to the video size, so bigger buys nothing."""

MAX_REFERENCE_PIXELS: Final = 4096 * 4096
"""Largest accepted width*height (the worker's own decoder allows 40 MP; this is stricter)."""

PARAM = "input_reference"


@dataclass(frozen=True, slots=True)
class ReferenceImage:
    data: bytes
    format: str  # "png" | "jpeg" | "webp"
    width: int
    height: int

    @property
    def extension(self) -> str:
        return {"jpeg": "jpg"}.get(self.format, self.format)


def sniff(data: bytes) -> str | None:
    """The image format from the magic bytes, or None if it is none we accept."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def validate_reference_image(data: bytes) -> ReferenceImage:
    """Raise InvalidParams(param="input_reference") unless `data` is a sane png, jpeg or webp image."""
    if len(data) > MAX_REFERENCE_BYTES:
        raise InvalidParams(
            f"input_reference is {len(data):,} bytes; the limit is {MAX_REFERENCE_BYTES:,}", param=PARAM
        )
    fmt = sniff(data)
    if fmt is None:
        raise InvalidParams("input_reference must be a png, jpeg or webp image", param=PARAM)

    # Pillow is imported here: only requests with an image pay for it.
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; treat the warning as the error it is.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt.upper()]) as header:
                width, height = header.size
                _check_pixels(width, height)
                header.verify()
            with Image.open(io.BytesIO(data), formats=[fmt.upper()]) as image:
                image.load()
    except InvalidParams:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidParams(f"input_reference is larger than {MAX_REFERENCE_PIXELS:,} pixels", param=PARAM) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise InvalidParams(f"input_reference is not a readable {fmt} image ({e})", param=PARAM) from None
    return ReferenceImage(data=data, format=fmt, width=width, height=height)


def _check_pixels(width: int, height: int) -> None:
    if width < 1 or height < 1 or width * height > MAX_REFERENCE_PIXELS:
        raise InvalidParams(
            f"input_reference is {width}x{height} pixels; the limit is {MAX_REFERENCE_PIXELS:,} pixels", param=PARAM
        )


def decode_data_url(url: str) -> bytes:
    """The bytes of a base64 `data:` URL. Anything else is refused: the server never fetches remote URLs."""
    if not url.startswith("data:"):
        raise InvalidParams(
            "input_reference[image_url] must be a base64 data: URL; reelgen does not fetch remote URLs "
            "(upload the file as the input_reference part instead)",
            param=f"{PARAM}[image_url]",
        )
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise InvalidParams("input_reference[image_url] must be a base64 data: URL", param=f"{PARAM}[image_url]")
    # base64 inflates by 4/3: refuse before decoding an oversized payload.
    if len(payload) > MAX_REFERENCE_BYTES * 4 // 3 + 4:
        raise InvalidParams(f"input_reference is larger than {MAX_REFERENCE_BYTES:,} bytes", param=PARAM)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParams("input_reference[image_url] is not valid base64", param=f"{PARAM}[image_url]") from None
