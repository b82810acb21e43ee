"""ArtifactStore on an S3-compatible bucket (AWS S3, MinIO, R2, Ceph, ...): keys live under `prefix`.

Credentials and region come from the normal boto3 chain (AWS_* variables, ~/.aws, instance roles); only
the endpoint is ours to configure, for servers other than AWS.
"""

from __future__ import annotations

import errno
import mimetypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from reelgen.storage.base import ArtifactStore, Staged, validate_key, validate_prefix, validate_range

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class S3ArtifactStore(ArtifactStore):
    # CopyObject handles sources up to 5 GiB; bigger ones need a multipart copy. Class attributes so tests
    # can exercise the large-object paths with small objects.
    max_single_copy_bytes = 5 * 1024**3
    # DeleteObjects accepts at most 1000 keys per request.
    delete_batch_size = 1000
    list_page_size = 1000

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any | None = None,
        *,
        transfer_config: TransferConfig | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3 bucket name is empty")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        if client is None:
            options: dict[str, Any] = {"retries": {"mode": "standard"}}
            if endpoint_url:
                # Self-hosted servers are usually reached by a plain host name where `bucket.host` does not
                # resolve, so virtual-hosted addressing would fail; path style works everywhere.
                options["s3"] = {"addressing_style": "path"}
            client = boto3.client("s3", endpoint_url=endpoint_url, config=Config(**options))
        self.client = client
        # upload_file switches to parallel multipart uploads above the threshold on its own.
        self.transfer_config = transfer_config or TransferConfig()

    def __repr__(self) -> str:
        return f"S3ArtifactStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    # -- writes -------------------------------------------------------------------------------------------

    def stage(self, local_path: Path, temp_key: str) -> Staged:
        key = self._key(temp_key)
        src = Path(local_path)
        size = src.stat().st_size
        self.client.upload_file(
            str(src),
            self.bucket,
            key,
            ExtraArgs={"ContentType": _content_type(temp_key)},
            Config=self.transfer_config,
        )
        # Move semantics, as documented on ArtifactStore.stage, so both backends leave the same state behind.
        src.unlink(missing_ok=True)
        return Staged(temp_key=temp_key, size=size)

    def commit(self, staged: Staged, final_key: str) -> None:
        src = self._key(staged.temp_key)
        dest = self._key(final_key)
        try:
            if staged.size < self.max_single_copy_bytes:
                # One server-side request. The Content-Type follows the final key: temp keys need not carry
                # the file extension.
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=dest,
                    CopySource={"Bucket": self.bucket, "Key": src},
                    MetadataDirective="REPLACE",
                    ContentType=_content_type(final_key),
                )
            else:
                self.client.copy(
                    {"Bucket": self.bucket, "Key": src},
                    self.bucket,
                    dest,
                    ExtraArgs={"ContentType": _content_type(final_key)},
                    Config=self.transfer_config,
                )
        except ClientError as e:
            if _is_not_found(e):
                raise FileNotFoundError(errno.ENOENT, "staged object is gone", staged.temp_key) from e
            raise
        # If this delete fails, the artifact is committed anyway; the temp object is just garbage under tmp/.
        self.client.delete_object(Bucket=self.bucket, Key=src)

    def discard(self, staged: Staged) -> None:
        self.delete(staged.temp_key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=_content_type(key))

    def delete(self, key: str) -> None:
        # S3 answers 204 for a missing key too, which is exactly "missing is fine".
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix, folder=True)
        count = 0
        batch: list[dict[str, str]] = []
        # Deleting while paginating is safe: continuation tokens are positions in key order, not offsets.
        for full_key in self._iter_keys(self.prefix + prefix):
            batch.append({"Key": full_key})
            if len(batch) >= self.delete_batch_size:
                count += self._delete_batch(batch)
                batch = []
        if batch:
            count += self._delete_batch(batch)
        return count

    def _delete_batch(self, batch: list[dict[str, str]]) -> int:
        resp = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        # DeleteObjects reports per-key failures in a 200 response; they must not pass silently.
        errors = resp.get("Errors") or []
        if errors:
            first = errors[0]
            raise OSError(
                f"S3 delete failed for {len(errors)} of {len(batch)} keys in s3://{self.bucket}, "
                f"first {first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
            )
        return len(batch)

    # -- reads --------------------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as e:
            if _is_not_found(e):
                return False
            raise
        return True

    def size(self, key: str) -> int:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as e:
            if _is_not_found(e):
                raise FileNotFoundError(errno.ENOENT, "no such storage key", key) from e
            raise
        return int(resp["ContentLength"])

    def read_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        validate_range(start, end)
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            resp = self.client.get_object(**kwargs)
        except ClientError as e:
            if _is_not_found(e):
                raise FileNotFoundError(errno.ENOENT, "no such storage key", key) from e
            if _error_code(e) == "InvalidRange":
                # 416: start is past the last byte; the base contract says that yields nothing.
                return iter(())
            raise
        return _iter_body(resp["Body"], chunk_size)

    def list(self, prefix: str) -> list[str]:
        validate_prefix(prefix)
        strip = len(self.prefix)
        return sorted(k[strip:] for k in self._iter_keys(self.prefix + prefix))

    def local_path(self, key: str) -> Path | None:
        self._key(key)  # a bad key is a bug in the caller on every backend, not only on the local one
        return None

    # -- helpers ------------------------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _iter_keys(self, full_prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=full_prefix, PaginationConfig={"PageSize": self.list_page_size}
        )
        for page in pages:
            for obj in page.get("Contents", ()):
                yield obj["Key"]


def _iter_body(body: Any, chunk_size: int) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        # Returns the connection to the pool even when the reader stops early (client went away).
        body.close()


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def _error_code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _is_not_found(e: ClientError) -> bool:
    status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _error_code(e) in _NOT_FOUND_CODES or (status == 404 and _error_code(e) != "NoSuchBucket")
