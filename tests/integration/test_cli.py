"""The CLI as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from reelgen.media.probe import probe


def run_cli(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGEN_")}
    env["REELGEN_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "reelgen.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_generate_writes_a_playable_mp4(tmp_path: Path) -> None:
    out = tmp_path / "fox.mp4"
    result = run_cli(
        "generate",
        "a red fox in the snow",
        "-o",
        str(out),
        "--model",
        "tiny-random-wan",
        "--size",
        "128x128",
        "--seconds",
        "1",
        "--seed",
        "3",
        "--steps",
        "2",
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    info = probe(out)
    assert (info.width, info.height, info.num_frames, float(info.fps)) == (128, 128, 17, 16.0)
    assert "step" in result.stderr  # the progress bar


def test_generate_rejects_bad_input_naming_the_field(tmp_path: Path) -> None:
    result = run_cli(
        "generate",
        "a fox",
        "-o",
        str(tmp_path / "x.mp4"),
        "--model",
        "tiny-random-wan",
        "--size",
        "1920x1080",
        home=tmp_path / "home",
    )
    assert result.returncode == 2 and "error (size)" in result.stderr and "832x480" in result.stderr
    assert not (tmp_path / "x.mp4").exists()
    result = run_cli("generate", "a fox", "--model", "nope", home=tmp_path / "home")
    assert result.returncode == 2 and "error (model)" in result.stderr


def test_models_lists_each_model_and_whether_it_runs_here(tmp_path: Path) -> None:
    result = run_cli("models", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("tiny-random-wan"))
    assert line.rstrip().endswith("ready")
