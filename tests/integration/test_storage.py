"""ArtifactStore contract, run against both backends: a local folder and a real S3-compatible HTTP server.

The S3 server is moto's standalone server on a free port, so requests go through boto3's real HTTP,
signing, retry and transfer code, not through an in-process mock.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from reelgen.storage import ArtifactStore, LocalArtifactStore, open_store
from reelgen.storage import local as local_module
from reelgen.storage.base import Staged
from reelgen.storage.s3 import S3ArtifactStore

# ---------------------------------------------------------------------------------------------------------
# storage fixtures
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    # Imported here so collecting this file (e.g. with -k filters) does not pay for importing moto.
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials through the normal boto3 chain, and nothing from the developer's real AWS setup."""
    for var in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def s3_bucket(s3_endpoint: str, aws_env: None) -> str:
    """A fresh bucket per test: isolation without restarting the server."""
    bucket = f"reelgen-test-{uuid.uuid4().hex[:16]}"
    S3ArtifactStore(bucket, endpoint_url=s3_endpoint).client.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def s3_store(s3_endpoint: str, s3_bucket: str) -> S3ArtifactStore:
    # A non-empty prefix, so every test also checks that keys are mapped into it and back out.
    return S3ArtifactStore(s3_bucket, "deploy/one", endpoint_url=s3_endpoint)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "store")
    s3: ArtifactStore = request.getfixturevalue("s3_store")
    return s3


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[[bytes], Path]:
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def make(data: bytes) -> Path:
        path = scratch / f"{uuid.uuid4().hex}.mp4"
        path.write_bytes(data)
        return path

    return make


DATA = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable modulo 256

BAD_KEYS = ["../x", "/abs", "a//b", "a/../b", "a/./b", ".", "..", "a/", "", "a\\b"]


# ---------------------------------------------------------------------------------------------------------
# contract: both backends
# ---------------------------------------------------------------------------------------------------------


def test_staged_file_is_invisible_until_commit(store: ArtifactStore, make_file: Callable[[bytes], Path]) -> None:
    src = make_file(DATA)
    staged = store.stage(src, "tmp/job1-a1/video.mp4")

    assert staged == Staged(temp_key="tmp/job1-a1/video.mp4", size=len(DATA))
    assert not src.exists(), "stage has move semantics: the store owns the file afterwards"
    assert not store.exists("videos/job1/1/video.mp4")
    assert store.list("videos/") == []
    with pytest.raises(FileNotFoundError):
        store.size("videos/job1/1/video.mp4")

    store.commit(staged, "videos/job1/1/video.mp4")

    assert store.exists("videos/job1/1/video.mp4")
    assert store.size("videos/job1/1/video.mp4") == len(DATA)
    assert store.read_bytes("videos/job1/1/video.mp4") == DATA
    assert not store.exists("tmp/job1-a1/video.mp4")
    assert store.list("") == ["videos/job1/1/video.mp4"]


def test_commit_replaces_existing_object(store: ArtifactStore, make_file: Callable[[bytes], Path]) -> None:
    store.put_bytes("videos/v/1/video.mp4", b"old contents, longer than the new ones")
    store.commit(store.stage(make_file(b"new"), "tmp/v"), "videos/v/1/video.mp4")
    assert store.read_bytes("videos/v/1/video.mp4") == b"new"
    assert store.list("") == ["videos/v/1/video.mp4"]


def test_discard_is_idempotent_and_commit_after_discard_fails(
    store: ArtifactStore, make_file: Callable[[bytes], Path]
) -> None:
    staged = store.stage(make_file(DATA), "tmp/job2/video.mp4")
    store.discard(staged)
    store.discard(staged)
    assert store.list("") == []
    with pytest.raises(FileNotFoundError):
        store.commit(staged, "videos/job2/1/video.mp4")
    assert not store.exists("videos/job2/1/video.mp4")


def test_commit_twice_fails_the_second_time(store: ArtifactStore, make_file: Callable[[bytes], Path]) -> None:
    staged = store.stage(make_file(DATA), "tmp/job3")
    store.commit(staged, "videos/job3/1/video.mp4")
    with pytest.raises(FileNotFoundError):
        store.commit(staged, "videos/job3/2/video.mp4")


def test_stage_missing_local_file(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.stage(tmp_path / "nope.mp4", "tmp/x")
    assert store.list("") == []


def test_stage_empty_file(store: ArtifactStore, make_file: Callable[[bytes], Path]) -> None:
    staged = store.stage(make_file(b""), "tmp/empty")
    assert staged.size == 0
    store.commit(staged, "videos/empty")
    assert store.size("videos/empty") == 0
    assert store.read_bytes("videos/empty") == b""
    assert b"".join(store.read_range("videos/empty", 0, 99)) == b""


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, None),
        (0, 0),
        (1, 1),
        (100, 5000),
        (5000, None),
        (10239, None),
        (10239, 10239),
        (0, 10239),
        (7, 20000),
    ],
)
def test_read_range(store: ArtifactStore, start: int, end: int | None) -> None:
    store.put_bytes("videos/r.mp4", DATA)
    chunks = list(store.read_range("videos/r.mp4", start, end, chunk_size=1000))
    expected = DATA[start : None if end is None else end + 1]
    assert b"".join(chunks) == expected
    assert all(0 < len(c) <= 1000 for c in chunks)


def test_read_range_start_past_the_end_yields_nothing(store: ArtifactStore) -> None:
    store.put_bytes("videos/r.mp4", DATA)
    assert b"".join(store.read_range("videos/r.mp4", len(DATA))) == b""
    assert b"".join(store.read_range("videos/r.mp4", len(DATA) + 10, len(DATA) + 20)) == b""


def test_read_range_rejects_invalid_ranges(store: ArtifactStore) -> None:
    store.put_bytes("videos/r.mp4", DATA)
    with pytest.raises(ValueError):
        store.read_range("videos/r.mp4", -1)
    with pytest.raises(ValueError):
        store.read_range("videos/r.mp4", 10, 9)


def test_read_range_can_stop_early(store: ArtifactStore) -> None:
    store.put_bytes("videos/r.mp4", DATA)
    it = store.read_range("videos/r.mp4", chunk_size=100)
    assert next(it) == DATA[:100]
    it.close()  # type: ignore[attr-defined]  # a client that disconnects mid-download
    assert store.read_bytes("videos/r.mp4") == DATA


def test_missing_key_errors(store: ArtifactStore) -> None:
    assert not store.exists("videos/missing.mp4")
    with pytest.raises(FileNotFoundError):
        store.size("videos/missing.mp4")
    # Raised by the call itself, before any iteration, so an HTTP handler can still answer 404.
    with pytest.raises(FileNotFoundError):
        store.read_range("videos/missing.mp4")
    with pytest.raises(FileNotFoundError):
        store.read_bytes("videos/missing.mp4")


def test_folder_like_key_is_not_an_object(store: ArtifactStore) -> None:
    store.put_bytes("videos/a/b.mp4", b"x")
    assert not store.exists("videos/a")
    with pytest.raises(FileNotFoundError):
        store.size("videos/a")
    with pytest.raises(FileNotFoundError):
        store.read_range("videos/a")
    store.delete("videos/a")
    assert store.list("") == ["videos/a/b.mp4"]


def test_put_bytes_overwrites(store: ArtifactStore) -> None:
    store.put_bytes("refs/img.png", b"one")
    store.put_bytes("refs/img.png", b"two!")
    assert store.read_bytes("refs/img.png") == b"two!"
    assert store.size("refs/img.png") == 4
    assert store.list("") == ["refs/img.png"]


def test_delete_is_idempotent(store: ArtifactStore) -> None:
    store.put_bytes("videos/d/1/video.mp4", b"x")
    store.put_bytes("videos/d/1/thumb.jpg", b"y")
    store.delete("videos/d/1/video.mp4")
    store.delete("videos/d/1/video.mp4")
    store.delete("never/existed")
    assert not store.exists("videos/d/1/video.mp4")
    assert store.list("") == ["videos/d/1/thumb.jpg"]


def test_delete_prefix(store: ArtifactStore) -> None:
    keys = [
        "videos/a/1/video.mp4",
        "videos/a/1/thumb.jpg",
        "videos/a/2/video.mp4",
        "videos/ab/1/video.mp4",  # shares the string prefix "videos/a" but not the folder
        "videos/b/1/video.mp4",
        "videos/a.mp4",
    ]
    for key in keys:
        store.put_bytes(key, key.encode())

    assert store.delete_prefix("videos/a/1/") == 2
    assert store.delete_prefix("videos/a/") == 1
    assert store.delete_prefix("videos/a/") == 0
    assert store.delete_prefix("nothing/here/") == 0
    assert store.list("") == ["videos/a.mp4", "videos/ab/1/video.mp4", "videos/b/1/video.mp4"]


@pytest.mark.parametrize("prefix", ["", "videos/a", "/", "videos//", "../", "videos/../"])
def test_delete_prefix_demands_a_folder_prefix(store: ArtifactStore, prefix: str) -> None:
    store.put_bytes("videos/a/1", b"x")
    with pytest.raises(ValueError):
        store.delete_prefix(prefix)
    assert store.list("") == ["videos/a/1"]


def test_list(store: ArtifactStore) -> None:
    keys = ["videos/b/2", "videos/a/1/video.mp4", "videos/ab", "refs/x.png", "videos/a/0", "tmp/s"]
    for key in keys:
        store.put_bytes(key, b"")

    assert store.list("") == sorted(keys)
    assert store.list("videos/") == ["videos/a/0", "videos/a/1/video.mp4", "videos/ab", "videos/b/2"]
    assert store.list("videos/a/") == ["videos/a/0", "videos/a/1/video.mp4"]
    # A plain string prefix, as in S3: also matches names that merely start with it.
    assert store.list("videos/a") == ["videos/a/0", "videos/a/1/video.mp4", "videos/ab"]
    assert store.list("videos/a/1/video.mp4") == ["videos/a/1/video.mp4"]
    assert store.list("v") == ["videos/a/0", "videos/a/1/video.mp4", "videos/ab", "videos/b/2"]
    assert store.list("nothing/") == []
    assert store.list("refs/x.png/") == []


def test_list_returns_a_real_sorted_list(store: ArtifactStore) -> None:
    for i in (3, 10, 1, 2):
        store.put_bytes(f"k/{i}", b"")
    assert store.list("k/") == ["k/1", "k/10", "k/2", "k/3"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_key_validation(store: ArtifactStore, make_file: Callable[[bytes], Path], key: str) -> None:
    src = make_file(b"x")
    operations: list[Callable[[], object]] = [
        lambda: store.stage(src, key),
        lambda: store.commit(Staged(temp_key=key, size=1), "videos/ok"),
        lambda: store.commit(Staged(temp_key="tmp/ok", size=1), key),
        lambda: store.discard(Staged(temp_key=key, size=1)),
        lambda: store.put_bytes(key, b"x"),
        lambda: store.exists(key),
        lambda: store.size(key),
        lambda: store.read_range(key),
        lambda: store.delete(key),
        lambda: store.local_path(key),
    ]
    for operation in operations:
        with pytest.raises(ValueError):
            operation()
    assert src.exists(), "a rejected stage must leave the caller's file alone"
    assert store.list("") == []


@pytest.mark.parametrize("prefix", ["../", "/abs", "a//", "a/../b"])
def test_list_validates_prefix(store: ArtifactStore, prefix: str) -> None:
    with pytest.raises(ValueError):
        store.list(prefix)


# ---------------------------------------------------------------------------------------------------------
# local folder specifics
# ---------------------------------------------------------------------------------------------------------


def test_local_path_is_the_real_file(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    store.put_bytes("videos/v/1/video.mp4", DATA)
    path = store.local_path("videos/v/1/video.mp4")
    assert path == tmp_path / "store" / "videos" / "v" / "1" / "video.mp4"
    assert path.read_bytes() == DATA
    assert store.local_path("videos/missing.mp4") is None


def test_local_stage_same_filesystem_is_a_rename(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    src = tmp_path / "out.mp4"
    src.write_bytes(DATA)
    inode = src.stat().st_ino
    store.stage(src, "tmp/v.mp4")
    path = store.local_path("tmp/v.mp4")
    assert path is not None
    assert path.stat().st_ino == inode, "no copy of a possibly multi-gigabyte video"


def test_local_stage_across_filesystems_copies_then_removes_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    src = tmp_path / "elsewhere" / "out.mp4"
    src.parent.mkdir()
    src.write_bytes(DATA)
    real_replace = os.replace

    def replace(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> None:
        # Pretend everything outside the store lives on another device.
        if not Path(a).is_relative_to(store.root):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(a, b)

    monkeypatch.setattr(local_module.os, "replace", replace)
    staged = store.stage(src, "tmp/v.mp4")
    store.commit(staged, "videos/v.mp4")

    assert not src.exists()
    assert store.read_bytes("videos/v.mp4") == DATA
    assert list((store.root / local_module.PARTIAL_DIR).iterdir()) == []


def test_local_stage_of_a_symlink_stores_the_content(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    target = tmp_path / "target.mp4"
    target.write_bytes(DATA)
    link = tmp_path / "link.mp4"
    link.symlink_to(target)
    store.stage(link, "tmp/v.mp4")
    path = store.local_path("tmp/v.mp4")
    assert path is not None
    assert not path.is_symlink()
    assert path.read_bytes() == DATA


def test_local_stage_refuses_a_directory(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError):
        store.stage(tmp_path / "d", "tmp/d")
    assert (tmp_path / "d").is_dir()


def test_local_rejects_symlink_escaping_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    store = LocalArtifactStore(tmp_path / "store")
    (store.root / "videos").symlink_to(outside)
    with pytest.raises(ValueError):
        store.read_range("videos/secret")
    with pytest.raises(ValueError):
        store.put_bytes("videos/new", b"x")
    with pytest.raises(ValueError):
        store.delete_prefix("videos/")
    assert (outside / "secret").exists()
    assert not (outside / "new").exists()


def test_local_internal_partial_dir_is_hidden_and_reserved(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    store.put_bytes("a", b"x")
    (store.root / local_module.PARTIAL_DIR / "leftover-from-a-crash").write_bytes(b"junk")
    assert store.list("") == ["a"]
    assert store.list(".reelgen") == []
    with pytest.raises(ValueError):
        store.put_bytes(f"{local_module.PARTIAL_DIR}/x", b"x")


def test_local_prunes_empty_folders(tmp_path: Path, make_file: Callable[[bytes], Path]) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    store.commit(store.stage(make_file(DATA), "tmp/job/attempt/video.mp4"), "videos/job/1/video.mp4")
    assert not (store.root / "tmp").exists(), "per-job temp folders must not pile up"
    store.delete("videos/job/1/video.mp4")
    assert not (store.root / "videos").exists()
    assert store.root.is_dir()


def test_local_commit_fsyncs_the_destination_folder(
    tmp_path: Path, make_file: Callable[[bytes], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    staged = store.stage(make_file(DATA), "tmp/v.mp4")
    synced: list[tuple[int, int]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((st.st_dev, st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(local_module.os, "fsync", fsync)
    store.commit(staged, "videos/v/1/video.mp4")
    folder = (store.root / "videos" / "v" / "1").stat()
    assert (folder.st_dev, folder.st_ino) in synced


# ---------------------------------------------------------------------------------------------------------
# S3 specifics
# ---------------------------------------------------------------------------------------------------------


def test_s3_keys_live_under_the_prefix(s3_store: S3ArtifactStore, s3_endpoint: str, s3_bucket: str) -> None:
    s3_store.put_bytes("videos/v.mp4", b"x")
    other = S3ArtifactStore(s3_bucket, "deploy/two", endpoint_url=s3_endpoint)
    other.put_bytes("videos/v.mp4", b"y")

    raw = s3_store.client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert sorted(o["Key"] for o in raw) == ["deploy/one/videos/v.mp4", "deploy/two/videos/v.mp4"]
    assert s3_store.list("") == ["videos/v.mp4"]
    assert s3_store.delete_prefix("videos/") == 1
    assert other.read_bytes("videos/v.mp4") == b"y"
    assert s3_store.local_path("videos/v.mp4") is None


def test_s3_content_type_follows_the_final_key(s3_store: S3ArtifactStore, make_file: Callable[[bytes], Path]) -> None:
    s3_store.commit(s3_store.stage(make_file(DATA), "tmp/job-attempt"), "videos/v/1/video.mp4")
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key="deploy/one/videos/v/1/video.mp4")
    assert head["ContentType"] == "video/mp4"


def test_s3_large_objects_use_multipart_upload_and_copy(
    s3_endpoint: str, s3_bucket: str, make_file: Callable[[bytes], Path]
) -> None:
    mib = 1024 * 1024
    # S3's smallest allowed part is 5 MiB, so this is the smallest object with several parts.
    config = TransferConfig(multipart_threshold=5 * mib, multipart_chunksize=5 * mib, max_concurrency=2)
    store = S3ArtifactStore(s3_bucket, "big", endpoint_url=s3_endpoint, transfer_config=config)
    store.max_single_copy_bytes = 5 * mib
    data = os.urandom(11 * mib)

    staged = store.stage(make_file(data), "tmp/big.mp4")
    raw_temp = store.client.head_object(Bucket=s3_bucket, Key="big/tmp/big.mp4")
    assert raw_temp["ETag"].strip('"').endswith("-3"), "expected a 3-part multipart upload"

    store.commit(staged, "videos/big/1/video.mp4")
    raw_final = store.client.head_object(Bucket=s3_bucket, Key="big/videos/big/1/video.mp4")
    assert raw_final["ETag"].strip('"').count("-") == 1, "expected a multipart copy"
    assert raw_final["ContentType"] == "video/mp4"
    assert store.list("") == ["videos/big/1/video.mp4"]
    assert store.read_bytes("videos/big/1/video.mp4") == data
    assert b"".join(store.read_range("videos/big/1/video.mp4", 6 * mib, 6 * mib + 99)) == data[6 * mib : 6 * mib + 100]


def test_s3_delete_prefix_and_list_span_pages_and_batches(s3_store: S3ArtifactStore) -> None:
    # The real limits are 1000; shrink them so a handful of objects crosses several pages and batches.
    s3_store.delete_batch_size = 3
    s3_store.list_page_size = 2
    keys = [f"videos/p/{i:02d}" for i in range(8)]
    for key in keys:
        s3_store.put_bytes(key, b"x")
    s3_store.put_bytes("videos/q/0", b"x")

    assert s3_store.list("videos/p/") == keys
    assert s3_store.delete_prefix("videos/p/") == 8
    assert s3_store.list("") == ["videos/q/0"]


def test_s3_missing_bucket_is_not_a_missing_key(s3_endpoint: str, aws_env: None) -> None:
    store = S3ArtifactStore(f"reelgen-absent-{uuid.uuid4().hex[:12]}", endpoint_url=s3_endpoint)
    with pytest.raises(Exception) as info:
        store.read_range("videos/v.mp4")
    assert not isinstance(info.value, FileNotFoundError), "a misconfigured bucket must not look like a 404"


# ---------------------------------------------------------------------------------------------------------
# open_store: parsing REELGEN_STORAGE_URL
# ---------------------------------------------------------------------------------------------------------


def test_open_store_plain_path(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "videos"))
    assert isinstance(store, LocalArtifactStore)
    assert store.root == (tmp_path / "videos").resolve()
    assert store.root.is_dir()


def test_open_store_relative_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    relative = open_store("rel/videos")
    assert isinstance(relative, LocalArtifactStore)
    assert relative.root == (tmp_path / "rel" / "videos").resolve()
    home = open_store("~/videos")
    assert isinstance(home, LocalArtifactStore)
    assert home.root == (tmp_path / "home" / "videos").resolve()


@pytest.mark.parametrize("form", ["file://{}", "file://localhost{}", "FILE://{}"])
def test_open_store_file_url(tmp_path: Path, form: str) -> None:
    folder = tmp_path / "with space"
    store = open_store(form.format(str(folder).replace(" ", "%20")))
    assert isinstance(store, LocalArtifactStore)
    assert store.root == folder.resolve()


@pytest.mark.parametrize(
    ("url", "prefix"),
    [
        ("s3://my-bucket", ""),
        ("s3://my-bucket/", ""),
        ("s3://my-bucket/reelgen", "reelgen/"),
        ("s3://my-bucket/a/b/", "a/b/"),
    ],
)
def test_open_store_s3(aws_env: None, url: str, prefix: str) -> None:
    store = open_store(url, s3_endpoint_url="http://127.0.0.1:9")
    assert isinstance(store, S3ArtifactStore)
    assert store.bucket == "my-bucket"
    assert store.prefix == prefix
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9"


def test_open_store_s3_uses_aws_by_default(aws_env: None) -> None:
    store = open_store("s3://my-bucket/x")
    assert isinstance(store, S3ArtifactStore)
    assert "amazonaws.com" in store.client.meta.endpoint_url


def test_open_store_against_the_server(s3_endpoint: str, s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}/p", s3_endpoint_url=s3_endpoint)
    store.put_bytes("k", b"v")
    assert store.read_bytes("k") == b"v"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "http://example.com/videos",
        "gs://bucket/x",
        "s3://",
        "s3:///prefix",
        "s3://bucket/a/../b",
        "s3://bucket//x",
        "s3://bucket/x?region=eu",
        "file://otherhost/videos",
        "file://",
    ],
)
def test_open_store_rejects(url: str) -> None:
    with pytest.raises(ValueError, match="REELGEN_STORAGE_URL"):
        open_store(url)


def test_open_store_does_not_echo_credentials() -> None:
    with pytest.raises(ValueError, match="REELGEN_STORAGE_URL") as info:
        open_store("s3://AKIAEXAMPLE:sup3rsecret@bucket/x")
    assert "sup3rsecret" not in str(info.value)
