"""Wake idle workers on one host within milliseconds of a new job, without polling the database.

Each waiting process binds a Linux abstract-namespace datagram socket and registers its name as an empty file in
a folder next to the database; a creator sends one byte to every registered name. Abstract names avoid the
108-byte limit on socket paths and vanish with the process; a name that refuses delivery is stale and its file
is removed. Postgres deployments use LISTEN/NOTIFY instead (see postgres.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import socket
from pathlib import Path


class SocketWakeup:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sock: socket.socket | None = None
        self._name: str | None = None

    def _listener(self) -> socket.socket:
        if self._sock is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"reelgen-{os.getpid()}-{secrets.token_hex(8)}"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind("\0" + name)
            sock.setblocking(False)
            (self.folder / name).touch()
            self._sock, self._name = sock, name
        return self._sock

    def prepare(self) -> None:
        """Register now, so a notify sent before the first wait() is not missed."""
        self._listener()

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds for a notification; True if one arrived."""
        sock = self._listener()
        ready, _, _ = select.select([sock], [], [], max(timeout, 0.0))
        woke = bool(ready)
        while True:  # drain so one burst of creates costs one wake-up
            try:
                sock.recv(64)
            except BlockingIOError:
                break
        return woke

    def notify(self) -> None:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setblocking(False)
        try:
            for name in names:
                try:
                    sender.sendto(b"!", "\0" + name)
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(FileNotFoundError):
                        (self.folder / name).unlink()
                except (BlockingIOError, OSError):
                    pass  # its buffer is full: it is already awake
        finally:
            sender.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            if self._name:
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / self._name).unlink()
            self._sock = self._name = None
