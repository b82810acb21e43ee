"""A real `reelgen serve` (API + one embedded worker running the tiny Wan model) on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("reelgen-home")
    with running_server(home, "--workers", "1", env={"REELGEN_DEFAULT_MODEL": "tiny-random-wan"}) as url:
        yield url


@contextmanager
def running_server(home: Path, *serve_args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real `reelgen serve` subprocess on a free port with REELGEN_HOME=home; yields its base URL."""
    log_path = home / "serve.log"
    port = _free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("REELGEN_")}
    full_env.update({"REELGEN_HOME": str(home), **(env or {})})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reelgen.cli", "serve", "--port", str(port), *serve_args],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log_path)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"reelgen serve exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"reelgen serve did not become healthy:\n{log_path.read_text()}")
