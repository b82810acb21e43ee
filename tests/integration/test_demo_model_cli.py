"""`reelgen train-demo` and `reelgen eval-demo` wired end to end at the real model size, for one step of each
stage (about 15 s on one CPU thread): a run folder with a resumable checkpoint and an exported pipeline that
eval-demo scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reelgen.cli import main


@pytest.mark.slow
def test_train_then_resume_then_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    common = ["train-demo", "--run-dir", str(run), "--checkpoint-every", "1"]
    fresh = ["--vae-image-steps", "1", "--vae-steps", "1", "--cache-size", "2", "--batch", "2"]
    assert main([*common, *fresh, "--steps", "1"]) == 0
    assert main([*common, "--steps", "2"]) == 2  # the folder holds a run: refuse without --resume
    assert main([*common, "--steps", "2", "--resume"]) == 0
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["stage"] == "checkpoint"] == [1, 2]
    assert json.loads((run / "train_config.json").read_text())["vae_steps"] == 1

    capsys.readouterr()
    assert main(["eval-demo", "--weights", str(run / "pipeline"), "--n", "1", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "n=1: colour" in out and "shape" in out and "motion" in out
