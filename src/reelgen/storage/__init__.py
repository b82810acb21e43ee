"""Artifact storage: a local folder by default, S3-compatible for several machines."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from reelgen.storage.base import ArtifactStore, Staged, validate_key
from reelgen.storage.local import LocalArtifactStore

__all__ = ["ArtifactStore", "LocalArtifactStore", "Staged", "open_store"]

_SETTING = "REELGEN_STORAGE_URL"
_EXPECTED = "a folder path, file:///absolute/path or s3://bucket/optional/prefix"


def open_store(url: str, *, s3_endpoint_url: str | None = None) -> ArtifactStore:
    """The store named by a storage URL: a plain path or `file://` URL -> local folder, `s3://` -> S3.

    `s3_endpoint_url` points the S3 client at a non-AWS server (MinIO, R2, ...); credentials come from the
    usual AWS variables, never from the URL.
    """
    if not url or not url.strip():
        raise ValueError(f"{_SETTING} is empty; expected {_EXPECTED}")
    if "://" not in url:
        return LocalArtifactStore(Path(url).expanduser())
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment or not parts.path:
            raise ValueError(f"{_SETTING}={url!r} is not a local file URL; expected {_EXPECTED}")
        return LocalArtifactStore(Path(unquote(parts.path)))
    if scheme == "s3":
        if "@" in parts.netloc or ":" in parts.netloc:
            # Do not echo the URL: it may hold a secret.
            raise ValueError(
                f"{_SETTING} must not contain credentials or a port; set AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY and REELGEN_S3_ENDPOINT_URL instead"
            )
        # Only the one '/' after the bucket separates; "s3://b//x" is a typo, not the prefix "x".
        prefix = parts.path.removeprefix("/").rstrip("/")
        if not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"{_SETTING}={url!r} is not a valid S3 URL; expected {_EXPECTED}")
        if prefix:
            try:
                validate_key(prefix)
            except ValueError:
                raise ValueError(f"{_SETTING}={url!r} has an invalid S3 prefix {prefix!r}") from None
        # Imported here so that processes on the default local store never pay for importing boto3.
        from reelgen.storage.s3 import S3ArtifactStore

        return S3ArtifactStore(parts.netloc, prefix, endpoint_url=s3_endpoint_url)
    raise ValueError(f"{_SETTING}={url!r} has an unsupported scheme {parts.scheme!r}; expected {_EXPECTED}")
