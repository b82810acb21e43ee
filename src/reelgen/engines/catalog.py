"""The built-in models: their specs and the engine factories that build them. Torch-free.

The registry calls `register_builtin_models(register)` exactly as it calls a plugin's hook, so a built-in
model and a plugin model are declared the same way: a ModelSpec (what the API validates against) plus the
dotted path of a factory that only a worker ever imports.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
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


# Where `reelgen train-demo --export` writes the shipped weights (reelgen.demo.model.WEIGHTS_DIR, named here
# without importing torch).
DEMO_WEIGHTS = Path(__file__).resolve().parent.parent / "demo" / "weights"


def demo_vocabulary() -> tuple[str, ...]:
    """The words reelgen-demo knows: its tokenizer's vocabulary (a JSON file in the shipped weights), so the HTTP
    process can list them without importing reelgen.demo (numpy, Pillow). From the code when no weights are here."""
    try:
        data = json.loads((DEMO_WEIGHTS / "tokenizer" / "tokenizer.json").read_text())
    except FileNotFoundError:
        from reelgen.demo.captions import VOCABULARY

        return VOCABULARY
    special = {token["content"] for token in data.get("added_tokens", [])}
    vocab: dict[str, int] = data["model"]["vocab"]
    return tuple(word for word, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if word not in special)


@cache
def demo_spec() -> ModelSpec:
    """The `reelgen-demo` spec, built on first use (it reads the vocabulary from the weights' tokenizer)."""
    return ModelSpec(
        id="reelgen-demo",
        family="wan",
        description=(
            "reelgen's own tiny Wan-architecture model, trained on a synthetic world: one coloured shape (circle, "
            "square, triangle, star, diamond, ring, cross) moving, bouncing, growing, shrinking or staying still on "
            "a plain, sky or grass background. It only knows the words in its vocabulary. Runs on any CPU."
        ),
        sizes=(Size(128, 128),),
        default_size=Size(128, 128),
        # Trained on 17 frames shown at 8 fps (2 s); the clip's motion spans its whole length.
        fps=8,
        default_seconds=2.0,
        max_seconds=2.0,
        frame_rule=FrameRule(multiple=4, offset=1, min_frames=17, max_frames=17),
        default_steps=20,
        max_steps=50,
        default_guidance=4.0,
        vocabulary=demo_vocabulary(),
    )


def __getattr__(name: str) -> ModelSpec:
    if name == "REELGEN_DEMO":
        return demo_spec()
    raise AttributeError(name)


def register_builtin_models(register: RegisterFn) -> None:
    # The default model first (lists show it at the top); only once trained weights are in the package.
    if (DEMO_WEIGHTS / "model_index.json").is_file():
        register(demo_spec(), "reelgen.engines.demo:create_engine")
    register(TINY_RANDOM_WAN, "reelgen.engines.tiny_wan:create_engine")
    # The open-weights families (Wan, LTX-Video, HunyuanVideo, CogVideoX); their specs live in open_catalog.
    register_open_models(register)
