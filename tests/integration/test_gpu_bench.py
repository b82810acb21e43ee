"""benchmarks/gpu_bench.py at toy sizes on the CPU: both sides run and the table comes out (the GPU numbers
themselves come from a GPU machine; see benchmarks/README.md)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_bench"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_tiny_run_times_both_sides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load_bench()
    out = tmp_path / "results.json"
    models = "wan2.1-t2v-1.3b,ltx-video-0.9.1"
    assert bench.main(["--tiny", "--steps", "3", "--models", models, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == models.split(",")
    for r in rows:
        assert r["diffusers_step_s"] > 0 and r["reelgen_step_s"] > 0 and r["step_ratio"] > 0
    assert "| wan2.1-t2v-1.3b | 64x64, 9 | 3 |" in capsys.readouterr().out


def test_unknown_models_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load_bench()
    assert bench.main(["--tiny", "--models", "sora-2"]) == 2
    assert "unknown model(s) sora-2" in capsys.readouterr().err
