"""Quotas through the official `openai` SDK against a real `reelgen serve` with a real API key: a create over
the user's budget is the SDK's RateLimitError (429) with the message and Retry-After; lifting the limit
(`reelgen users limits`) lets the same key create again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openai
import pytest

from reelgen.jobs import open_job_store
from tests.e2e.conftest import running_server


def test_over_budget_is_a_rate_limit_error_in_the_sdk(tmp_path: Path) -> None:
    store = open_job_store(f"sqlite:///{tmp_path / 'reelgen.db'}")
    try:
        alice, key = store.accounts.add_user("alice")
        store.set_user_limits(alice.id, gpu_seconds=0.01, period="month")
    finally:
        store.close()
    with running_server(tmp_path, "--no-worker") as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.RateLimitError) as caught:
            client.videos.create(model="tiny-random-wan", prompt="a red fox", size="64x64", seconds="4")  # type: ignore[arg-type]
        assert caught.value.status_code == 429
        assert "GPU-time budget exceeded" in caught.value.message and "this month (UTC)" in caught.value.message
        assert int(caught.value.response.headers["retry-after"]) > 0
        lifted = subprocess.run(
            [sys.executable, "-m", "reelgen.cli", "users", "limits", "alice", "--gpu-seconds", "none"],
            env={"REELGEN_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        assert "budget: unlimited" in lifted.stdout
        video = client.videos.create(model="tiny-random-wan", prompt="a red fox", size="64x64", seconds="4")  # type: ignore[arg-type]
        assert video.status == "queued"
