"""The context-parallel worker's pieces that need no process group: stage requests as control messages, the
option's validation, and families diffusers cannot split. The two-process run is in
tests/integration/test_worker_context_parallel.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reelgen.domain.params import validate_params
from reelgen.engines.base import StageRequest
from reelgen.engines.lora import LoraWeights
from reelgen.engines.parallel import ContextParallel, enable_context_parallel
from reelgen.engines.registry import get_spec
from reelgen.settings import Settings
from reelgen.worker.lockstep import request_from_message, request_message


def test_a_stage_request_crosses_the_channel_whole() -> None:
    params = validate_params(
        get_spec("tiny-random-wan"), Settings().limits, prompt='a fox, "quoted" ünïcode', size="128x128", seed=5
    )
    image = np.random.default_rng(0).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    request = StageRequest(
        params=params,
        input_image=image,
        variation=2,
        count=3,
        lora=LoraWeights(name="style", path=Path("/loras/style.safetensors"), scale=0.7),
    )
    message, blob = request_message(request)
    back = request_from_message(message, blob)
    assert back.params == params and back.variation == 2 and back.count == 3 and back.lora == request.lora
    assert back.input_image is not None and np.array_equal(back.input_image, image)
    plain = request_from_message(*request_message(StageRequest(params=params)))
    assert plain.input_image is None and plain.lora is None and plain.seeds == [5]


def test_the_option_is_checked() -> None:
    with pytest.raises(ValueError, match="kind"):
        ContextParallel("pipeline", 2)
    with pytest.raises(ValueError, match="at least 2"):
        ContextParallel("ulysses", 1)
    with pytest.raises(ValueError, match="on 2 ranks, not 4"):
        ContextParallel("cfg", 4)


def test_a_family_without_a_diffusers_plan_is_refused_by_name() -> None:
    from reelgen.engines.tiny_cogvideox import build_tiny_cogvideox_pipeline

    with pytest.raises(ValueError, match="CogVideoXTransformer3DModel has no context-parallel plan"):
        enable_context_parallel(build_tiny_cogvideox_pipeline(), ContextParallel("ulysses", 2), "cogvideox")
    from reelgen.engines.tiny_hunyuan import build_tiny_hunyuan_pipeline
    from reelgen.engines.tiny_ltx2 import build_tiny_ltx2_pipeline

    with pytest.raises(ValueError, match=r"LTX2VideoTransformer3DModel cannot split .* use --context-parallel cfg"):
        enable_context_parallel(build_tiny_ltx2_pipeline(), ContextParallel("ulysses", 2), "ltx2")
    from reelgen.engines.tiny_ltx import build_tiny_ltx_pipeline

    with pytest.raises(ValueError, match=r"LTXVideoTransformer3DModel cannot split .* attention mask"):
        enable_context_parallel(build_tiny_ltx_pipeline(), ContextParallel("ring", 2), "ltx")
    with pytest.raises(ValueError, match="HunyuanVideoTransformer3DModel is guidance-distilled"):
        enable_context_parallel(build_tiny_hunyuan_pipeline(), ContextParallel("cfg", 2), "hunyuan")
