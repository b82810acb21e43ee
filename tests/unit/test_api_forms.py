"""The fast path for small multipart bodies agrees with Starlette's full parser, and refuses (returns None
for) everything it does not fully understand."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.requests import Request

from reelgen.api.errors import APIError
from reelgen.api.forms import _fold, parse_simple_multipart, read_body

BOUNDARY = "a4b059b3981b0314740151e14f288cbd"
CT = f"multipart/form-data; boundary={BOUNDARY}"


def sdk_body(fields: dict[str, str]) -> bytes:
    """Byte for byte what the openai SDK sends for `client.videos.create(...)` without a file."""
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


def full_parse(body: bytes, content_type: str) -> list[tuple[str, str]]:
    async def parse() -> list[tuple[str, str]]:
        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-type", content_type.encode())]}
        form = await Request(scope, receive).form()
        return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]

    return asyncio.run(parse())


def httpx_body(data: dict[str, str], files: dict | None = None) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", data=data, files=files or {"_": (None, "")})
    return request.read(), request.headers["content-type"]


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": "a red fox", "size": "64x64", "seconds": "4"},
        {"prompt": 'ünïcødé 🦊 and "quotes" and\r\nnew lines', "seed": "7"},
        {"prompt": "x", "input_reference[image_url]": "data:image/png;base64,iVBORw0KGgo="},
        {"prompt": ""},
    ],
)
def test_sdk_bodies_parse_like_the_full_parser(fields: dict[str, str]) -> None:
    body = sdk_body(fields)
    assert parse_simple_multipart(body, CT) == full_parse(body, CT) == list(fields.items())


def test_httpx_bodies_parse_like_the_full_parser() -> None:
    body, content_type = httpx_body({"prompt": "a fox", "steps": "3"})
    fast = parse_simple_multipart(body, content_type)
    assert fast is not None and fast == full_parse(body, content_type)


@pytest.mark.parametrize(
    "body",
    [
        sdk_body({"prompt": "x"}).replace(b'name="prompt"', b'name="prompt"; filename="a.txt"'),  # a file
        b"preamble\r\n" + sdk_body({"prompt": "x"}),
        sdk_body({"prompt": "x"})[:-4],  # no closing delimiter
        sdk_body({"prompt": "x"}).replace(b"\r\n\r\nx", b"\r\nContent-Transfer-Encoding: base64\r\n\r\nx"),
        sdk_body({"prompt": "x"}).replace(b"\r\n\r\nx", b"\r\nContent-Type: image/png\r\n\r\nx"),
        sdk_body({"prompt": "x"}).replace(b"x\r\n--", b"\xff\xfe\r\n--"),  # not UTF-8
        b"",
    ],
)
def test_anything_unusual_goes_to_the_full_parser(body: bytes) -> None:
    assert parse_simple_multipart(body, CT) is None


def test_content_types_it_does_not_handle() -> None:
    body = sdk_body({"prompt": "x"})
    assert parse_simple_multipart(body, "multipart/form-data") is None  # no boundary
    assert parse_simple_multipart(body, f"multipart/mixed; boundary={BOUNDARY}") is None
    assert parse_simple_multipart(body, f'multipart/form-data; boundary="{BOUNDARY}"') == [("prompt", "x")]


def test_folding_nests_brackets_and_refuses_repeats() -> None:
    parsed = _fold([("prompt", "x"), ("input_reference[image_url]", "data:,")], {})
    assert parsed.fields == {"prompt": "x", "input_reference": {"image_url": "data:,"}} and parsed.is_form
    with pytest.raises(APIError) as e:
        _fold([("seed", "1"), ("seed", "2")], {})
    assert e.value.param == "seed"
    with pytest.raises(APIError):
        _fold([("input_reference", "x"), ("input_reference[image_url]", "y")], {})


def test_read_body_uses_the_full_parser_for_files() -> None:
    body, content_type = httpx_body({"prompt": "x"}, {"input_reference": ("a.png", b"\x89PNG...", "image/png")})

    async def parse() -> object:
        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        return await read_body(Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive))

    parsed = asyncio.run(parse())
    assert parsed.fields == {"prompt": "x"} and parsed.files == {"input_reference": b"\x89PNG..."}  # type: ignore[attr-defined]
