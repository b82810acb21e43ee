"""reelgen-demo through the registry and WanEngine, from a pipeline folder on disk (a tiny untrained config:
this tests the serving path, not the weights' quality). A few seconds on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reelgen.demo.captions import VOCABULARY
from reelgen.demo.model import ModelConfig, build_pipeline
from reelgen.domain.models import Size
from reelgen.domain.params import ParamLimits, validate_params
from reelgen.engines.base import StageRequest
from reelgen.engines.catalog import DEMO_WEIGHTS, REELGEN_DEMO
from reelgen.engines.registry import Registry
from reelgen.engines.wan import WanEngine

TINY = ModelConfig(
    text_dim=16, text_layers=1, text_heads=2, vae_base_dim=4, vae_dim_mult=(1, 1, 1), z_dim=4, heads=2,
    head_dim=8, ffn_dim=16, layers=1,
)  # fmt: skip


class Sink:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def step(self, step: int, total: int, preview: object = None) -> None:
        self.steps.append(step)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pipe = build_pipeline(TINY, seed=1)
    pipe.vae.register_to_config(latents_mean=[0.0] * TINY.z_dim, latents_std=[1.0] * TINY.z_dim)
    out = tmp_path_factory.mktemp("demo") / "pipeline"
    pipe.save_pretrained(out)
    return out


def test_spec_describes_what_the_demo_model_can_draw() -> None:
    assert REELGEN_DEMO.vocabulary == VOCABULARY
    assert REELGEN_DEMO.default_size == Size(128, 128)
    assert REELGEN_DEMO.num_frames(REELGEN_DEMO.default_seconds) == 17
    assert REELGEN_DEMO.num_frames(REELGEN_DEMO.default_seconds) / REELGEN_DEMO.fps >= 2.0
    assert DEMO_WEIGHTS.name == "weights" and DEMO_WEIGHTS.parent.name == "demo"


def test_engine_runs_a_job_from_a_saved_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        registry = Registry()
        registry.register(REELGEN_DEMO, "reelgen.engines.demo:create_engine", options={"source": str(folder)})
        engine = registry.create_engine("reelgen-demo", device="cpu")
        assert isinstance(engine, WanEngine)
        params = validate_params(
            REELGEN_DEMO, ParamLimits(), prompt="a red square moving to the right", seed=3, steps=2
        )
        assert (params.size, params.num_frames, params.fps) == (Size(128, 128), 17, 8)
        runs = []
        for _ in range(2):
            sink = Sink()
            out = engine.run(StageRequest(params), sink)
            runs.append(np.concatenate(list(out.chunks)))
            assert sink.steps == [1, 2]
        assert runs[0].shape == (17, 128, 128, 3)
        assert np.array_equal(runs[0], runs[1])
    finally:
        torch.set_num_threads(threads)
