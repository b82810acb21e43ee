"""The built-in models: their specs and the engine factories that build them. Torch-free.

The registry calls `register_builtin_models(register)` exactly as it calls a plugin's hook, so a built-in
model and a plugin model are declared the same way: a ModelSpec (what the API validates against) plus the
dotted path of a factory that only a worker ever imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reelgen.domain.models import FrameRule, ModelSpec, Size
from reelgen.engines.open_catalog import register_open_models

if TYPE_CHECKING:
    from reelgen.engines.registry import RegisterFn

# Every size is a multiple of 16 (Wan's VAE downsamples 8x, the transformer patchifies 2x2). Landscape and
# portrait pairs of the usual Wan buckets, down to sizes small enough for tests on a laptop CPU.
_TINY_SIZES = tuple(
    Size(w, h)
    for w, h in [
        (832, 480),
        (480, 832),
        (640, 352),
        (352, 640),
        (512, 288),
        (288, 512),
        (256, 256),
        (256, 144),
        (144, 256),
        (128, 128),
        (64, 64),
    ]
)

TINY_RANDOM_WAN = ModelSpec(
    id="tiny-random-wan",
    family="wan",
    description=(
        "The real diffusers WanPipeline at a tiny random-weight config, built offline in a second. "
        "Random weights produce noise-like video: for tests and development only."
    ),
    sizes=_TINY_SIZES,
    # 128x128, 17 frames, 4 steps: about half a second on one CPU core, so tests and the studio stay snappy.
    default_size=Size(128, 128),
    fps=16,
    default_seconds=1.0,
    max_seconds=5.0,
    frame_rule=FrameRule(multiple=4, offset=1, min_frames=5, max_frames=81),
    default_steps=4,
    max_steps=50,
    # Classifier-free guidance (> 1) runs the transformer twice per step, exactly like real Wan checkpoints;
    # at this size the transformer is a few percent of a job (the VAE decode is ~90%), so the default exercises the
    # real code path for almost nothing.
    default_guidance=5.0,
)


def register_builtin_models(register: RegisterFn) -> None:
    register(TINY_RANDOM_WAN, "reelgen.engines.tiny_wan:create_engine")
    # The open-weights families (Wan, LTX-Video, HunyuanVideo, CogVideoX); their specs live in open_catalog.
    register_open_models(register)
