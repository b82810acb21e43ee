"""ArtifactStore on a local folder: keys are relative paths under `root`.

Durability: a committed artifact survives a power cut. File data is fsynced when staged; commit, put_bytes
and every folder creation then fsync the folder that changed, since on most filesystems a rename or a new
entry is only durable once its folder is.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from reelgen.storage.base import ArtifactStore, Staged, validate_key, validate_prefix, validate_range

# Writes that must appear atomically (put_bytes, cross-filesystem stage) are assembled here first. It sits
# inside root so the final os.replace never crosses a filesystem, and it is hidden from keys so readers and
# list() never see a half-written file. Leftovers after a crash are safe to delete.
PARTIAL_DIR = ".reelgen-partial"

# A concurrent delete may prune a directory between our mkdir and our rename; retrying a few times is
# cheaper than a lock shared by every process using the folder.
_RENAME_ATTEMPTS = 5


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path | str) -> None:
        root = Path(root).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self._partial_dir = self.root / PARTIAL_DIR

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"

    # -- writes -------------------------------------------------------------------------------------------

    def stage(self, local_path: Path, temp_key: str) -> Staged:
        dest = self._path(temp_key)
        src = Path(local_path)
        st = src.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"can only stage regular files, not {src}")
        if src.is_symlink():
            # Renaming would store the link itself, pointing outside root; store the content instead.
            self._stage_by_copy(src, dest)
        else:
            try:
                self._replace(src, dest)
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                self._stage_by_copy(src, dest)
        # The producer may not have fsynced; commit relies on the data being on disk before the rename.
        _fsync_path(dest)
        return Staged(temp_key=temp_key, size=st.st_size)

    def _stage_by_copy(self, src: Path, dest: Path) -> None:
        part = self._new_partial()
        try:
            with open(src, "rb") as fin, open(part, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
                fout.flush()
                os.fsync(fout.fileno())
            self._replace(part, dest)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        src.unlink(missing_ok=True)

    def commit(self, staged: Staged, final_key: str) -> None:
        src = self._path(staged.temp_key)
        dest = self._path(final_key)
        self._replace(src, dest)
        _fsync_dir(dest.parent)
        self._prune(src.parent)

    def discard(self, staged: Staged) -> None:
        self.delete(staged.temp_key)

    def put_bytes(self, key: str, data: bytes) -> None:
        dest = self._path(key)
        part = self._new_partial()
        try:
            with open(part, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self._replace(part, dest)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        _fsync_dir(dest.parent)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError):
            # A directory is not an object (S3 has none), so "delete" of one is a delete of nothing.
            return
        self._prune(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix, folder=True)
        top = self._path(prefix[:-1])
        if not top.is_dir() or top.is_symlink():
            return 0
        count = 0
        # Bottom-up by hand rather than shutil.rmtree so the count is exact and a concurrent delete of the
        # same tree does not abort half way.
        for dirpath, dirnames, filenames in os.walk(top, topdown=False):
            for name in filenames:
                try:
                    os.unlink(os.path.join(dirpath, name))
                    count += 1
                except FileNotFoundError:
                    pass
            for name in dirnames:
                sub = os.path.join(dirpath, name)
                try:
                    if os.path.islink(sub):
                        os.unlink(sub)
                    else:
                        os.rmdir(sub)
                except FileNotFoundError:
                    pass
        with contextlib.suppress(FileNotFoundError):
            top.rmdir()
        self._prune(top.parent)
        return count

    # -- reads --------------------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        path = self._path(key)
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(errno.ENOENT, "no such storage key", key)
        return st.st_size

    def read_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        validate_range(start, end)
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        path = self._path(key)
        # Opened now, not on first next(), so a missing key fails the call itself (see the base docstring).
        # The open handle also keeps serving the same bytes if the key is replaced or deleted meanwhile.
        try:
            f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by _iter_file
        except IsADirectoryError:
            raise FileNotFoundError(errno.ENOENT, "no such storage key", key) from None
        return _iter_file(f, start, end, chunk_size)

    def list(self, prefix: str) -> list[str]:
        validate_prefix(prefix)
        # Only the folder named by the prefix up to its last '/' can hold matches; walk just that one.
        folder, _, name_start = prefix.rpartition("/")
        base = self._path(folder) if folder else self.root
        key_base = f"{folder}/" if folder else ""
        keys: list[str] = []
        try:
            entries = list(os.scandir(base))
        except (FileNotFoundError, NotADirectoryError):
            return []
        for entry in entries:
            if not entry.name.startswith(name_start) or (base == self.root and entry.name == PARTIAL_DIR):
                continue
            if entry.is_dir(follow_symlinks=False):
                keys.extend(_walk_keys(entry.path, key_base + entry.name + "/"))
            elif entry.is_file():
                keys.append(key_base + entry.name)
        keys.sort()
        return keys

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    # -- helpers ------------------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        validate_key(key)
        if key == PARTIAL_DIR or key.startswith(PARTIAL_DIR + "/"):
            raise ValueError(f"invalid storage key {key!r}: {PARTIAL_DIR}/ is reserved")
        path = self.root / key
        # validate_key stops '..' in the key; this stops a symlink inside root leading out of it.
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"invalid storage key {key!r}: resolves outside {self.root}")
        return path

    def _new_partial(self) -> Path:
        _makedirs_durable(self._partial_dir)
        path = self._partial_dir / f"part-{uuid.uuid4().hex}"
        # Not mkstemp: its 0600 mode would make artifacts unreadable to a server running as another user;
        # 0666 filtered by the umask gives the permissions of any other file the process creates.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        return path

    def _replace(self, src: Path, dest: Path) -> None:
        for attempt in range(_RENAME_ATTEMPTS):
            _makedirs_durable(dest.parent)
            try:
                os.replace(src, dest)
                return
            except FileNotFoundError:
                # Either the source is gone (a real error for the caller) or a concurrent _prune removed
                # the destination folder after we created it (retry).
                if attempt == _RENAME_ATTEMPTS - 1 or not os.path.lexists(src):
                    raise

    def _prune(self, folder: Path) -> None:
        """Remove now-empty folders up to root, so per-job temp folders do not pile up."""
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or already gone / in use): nothing more to prune above it
            folder = folder.parent


def _iter_file(f: BinaryIO, start: int, end: int | None, chunk_size: int) -> Iterator[bytes]:
    with f:
        f.seek(start)
        remaining = None if end is None else end - start + 1
        while remaining is None or remaining > 0:
            data = f.read(chunk_size if remaining is None else min(chunk_size, remaining))
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data


def _walk_keys(folder: str, key_prefix: str) -> Iterator[str]:
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_keys(entry.path, key_prefix + entry.name + "/")
        elif entry.is_file():
            yield key_prefix + entry.name


def _makedirs_durable(folder: Path) -> None:
    missing: list[Path] = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        # FileExistsError: a concurrent writer made it; if it is a file, the following rename reports it.
        with contextlib.suppress(FileExistsError):
            d.mkdir()
        _fsync_dir(d.parent)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
