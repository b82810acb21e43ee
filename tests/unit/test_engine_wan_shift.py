"""Per-size scheduler shift for Wan (2.1 checkpoints ship shift 3, right at 480p; 720p wants 5)."""

from __future__ import annotations

import numpy as np
import torch

from reelgen.domain.params import ParamLimits, validate_params
from reelgen.engines.base import StageRequest
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.engines.open_catalog import OPEN_MODELS
from reelgen.engines.tiny_wan import MAX_SEQUENCE_LENGTH, build_tiny_wan_pipeline
from reelgen.engines.wan import WanEngine


class Sink:
    def step(self, step: int, total: int, preview: object = None) -> None:
        pass


def test_a_listed_size_runs_with_its_shift_and_other_sizes_with_the_shipped_one() -> None:
    torch.set_num_threads(1)
    shifted = WanEngine(
        TINY_RANDOM_WAN,
        build_tiny_wan_pipeline,
        "cpu",
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        flow_shift={"64x64": 5.0},
    )
    plain = WanEngine(TINY_RANDOM_WAN, build_tiny_wan_pipeline, "cpu", max_sequence_length=MAX_SEQUENCE_LENGTH)

    def run(engine: WanEngine, size: str) -> np.ndarray:
        p = validate_params(TINY_RANDOM_WAN, ParamLimits(), prompt="a fox", seed=3, size=size, seconds=0.3, steps=2)
        return np.concatenate(list(engine.run(StageRequest(p), Sink()).chunks))

    assert not np.array_equal(run(shifted, "64x64"), run(plain, "64x64"))
    assert shifted._pipe is not None and shifted._pipe.scheduler.config.flow_shift == 5.0
    # Sizes not listed go back to the checkpoint's own shift (3.0 here), identical to an engine without the map.
    assert np.array_equal(run(shifted, "128x128"), run(plain, "128x128"))
    assert shifted._pipe.scheduler.config.flow_shift == 3.0


def test_wan21_720p_entries_ask_for_shift_5_and_480p_for_3() -> None:
    for spec, _, options in OPEN_MODELS:
        # The 4-step presets use the shift their LoRA was distilled at (tested with the catalog entries).
        if spec.id.startswith("wan2.1") and "distill_lora" not in options:
            shifts = options["flow_shift"]
            assert isinstance(shifts, dict)
            for size in spec.sizes:
                assert shifts[str(size)] == (5.0 if 720 in (size.width, size.height) else 3.0), (spec.id, size)
