"""ArtifactStore: where videos live. Writes go to a temporary key first and become visible only on commit.

Protocol used by workers (fencing): stage the files under a temp key -> commit them to final keys that include
the attempt number (so a stale attempt can never overwrite the current one) -> complete the job row, fenced on
(id, attempt). If the row update is rejected, the worker deletes what it committed.

Keys are '/'-separated relative names chosen by reelgen (never by users), e.g.
`videos/<id>/<attempt>/video.mp4`. Temporary keys live under `tmp/` by convention; the store does not
enforce it, it only honours the names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Staged:
    """A file uploaded under a temporary key, not yet visible under its final key."""

    temp_key: str
    size: int


class ArtifactStore(ABC):
    @abstractmethod
    def stage(self, local_path: Path, temp_key: str) -> Staged:
        """Move a local file to `temp_key` (not visible to readers of final keys).

        The store takes ownership of `local_path`: once `stage` returns, the file no longer exists at
        `local_path` in every backend (the local store renames it, or copies it and removes the original
        across filesystems; S3 uploads it and removes the original). Videos are large and written to a
        scratch file only to be stored, so moving avoids a second full copy on disk. If `stage` raises,
        the local file is left where it was, so the caller can retry or clean up.
        """

    @abstractmethod
    def commit(self, staged: Staged, final_key: str) -> None:
        """Make a staged file visible under `final_key` (atomically where the backend allows).

        Replaces whatever was under `final_key`; the temp key is gone afterwards. Raises FileNotFoundError
        if the staged file no longer exists (already committed or discarded).
        """

    @abstractmethod
    def discard(self, staged: Staged) -> None:
        """Drop a staged file; missing is fine."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a small object directly (e.g. an uploaded reference image); never visible half-written."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes; raises FileNotFoundError if missing."""

    @abstractmethod
    def read_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        """Yield bytes [start, end] inclusive (end None = to the end); raises FileNotFoundError if missing.

        The missing-key error is raised by the call itself, before iteration, so an HTTP handler can answer
        404 before it starts a response. `end` past the last byte is clamped; `start` past the last byte
        yields nothing (range satisfiability is the HTTP layer's business, it knows `size`). A negative
        `start` or `end < start` is a ValueError. Iterate to the end, or close the iterator, to release the
        underlying file or connection promptly.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; missing is fine."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (a folder-like prefix ending in '/'); returns how many.

        A prefix without the trailing '/' (or an empty one) is a ValueError: `videos/ab` would also match
        `videos/abc/…`, and '' would wipe the whole store.
        """

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix`, sorted. `prefix` is a plain string prefix ('' lists everything)."""

    def local_path(self, key: str) -> Path | None:
        """A local file path for zero-copy serving, when the backend is a local folder and the key exists.

        None otherwise; callers then fall back to `size`/`read_range`, which report a missing key properly.
        """
        return None

    def read_bytes(self, key: str) -> bytes:
        return b"".join(self.read_range(key))


def validate_key(key: str) -> str:
    """Keys are built by reelgen, never by users; still refuse anything that could escape the root."""
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in key.split("/")):
        raise ValueError(f"invalid storage key {key!r}")
    return key


def validate_prefix(prefix: str, *, folder: bool = False) -> str:
    """A listing prefix: '' or a key, optionally ending in '/'. `folder=True` demands a non-empty 'x/'."""
    if folder and not prefix.endswith("/"):
        raise ValueError(f"storage prefix {prefix!r} must be a non-empty folder prefix ending in '/'")
    if prefix:
        validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def validate_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range start={start} end={end}")
