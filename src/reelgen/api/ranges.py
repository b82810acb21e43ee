"""Byte ranges for downloads (RFC 9110 section 14): players seek in a video with `Range: bytes=a-b`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from reelgen.api.errors import APIError
from reelgen.storage.base import ArtifactStore

if TYPE_CHECKING:
    from reelgen.api.serving import ContentRef


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) asked for, or None to send the whole file.

    Raises APIError(416) when the range cannot be satisfied. Several ranges at once are answered with the
    whole file, which the RFC allows and every player handles."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not first and not last:
        return None
    if not (first.isdigit() or not first) or not (last.isdigit() or not last):
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - length, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: ignore the header
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(int(last) if last else size - 1, size - 1)


def _unsatisfiable(size: int) -> APIError:
    return APIError(
        416,
        f"requested range not satisfiable (size {size})",
        code="range_not_satisfiable",
        headers={"content-range": f"bytes */{size}"},
    )


def file_response(
    artifacts: ArtifactStore,
    key: str,
    *,
    size: int,
    media_type: str,
    filename: str,
    etag: str,
    range_header: str | None,
    if_range: str | None,
) -> Response:
    # If-Range: resume only if the file is still the one the client has; otherwise start over with 200.
    wanted = parse_range(range_header, size) if if_range is None or if_range == etag else None
    headers = {
        "accept-ranges": "bytes",
        "etag": etag,
        "content-disposition": f'inline; filename="{filename}"',
        # Content never changes under a key (new attempts write new keys), but may be deleted.
        "cache-control": "private, max-age=3600",
    }
    if wanted is None:
        start, end, status = 0, size - 1, 200
    else:
        (start, end), status = wanted, 206
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    headers["content-length"] = str(max(end - start + 1, 0))
    if size == 0:
        return Response(b"", status_code=200, media_type=media_type, headers=headers)
    # Opening happens here, not in the stream: a key that vanished is a 404, not a broken 200.
    chunks: Iterator[bytes] = artifacts.read_range(key, start, end)
    return StreamingResponse(chunks, status_code=status, media_type=media_type, headers=headers)


async def content_response(request: Request, artifacts: ArtifactStore, ref: ContentRef) -> Response:
    """`file_response` for an asset the service located, honouring the request's Range / If-Range (opening the
    file is blocking: done in a worker thread)."""
    return await run_in_threadpool(
        file_response,
        artifacts,
        ref.key,
        size=ref.size,
        media_type=ref.media_type,
        filename=ref.filename,
        etag=ref.etag,
        range_header=request.headers.get("range"),
        if_range=request.headers.get("if-range"),
    )
