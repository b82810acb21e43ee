"""reelgen-demo: the project's own tiny Wan model, served exactly like a real Wan checkpoint.

The weights ship inside the package (``reelgen/demo/weights``, diffusers layout written by ``save_pretrained``);
this factory points ``load_wan_pipeline`` at that folder, or at ``source`` (e.g. a training run's ``pipeline``
folder). Everything after loading is ``WanEngine``: same denoising loop, previews and streamed VAE decode.
"""

from __future__ import annotations

from pathlib import Path

import torch

from reelgen.demo.model import MAX_SEQUENCE_LENGTH, UPSCALE, WEIGHTS_DIR
from reelgen.domain.models import ModelSpec
from reelgen.engines.wan import WanEngine, default_device, load_wan_pipeline


def create_engine(spec: ModelSpec, device: str | None = None, *, source: str | None = None) -> WanEngine:
    """Registry factory. float32 on every device: the model is tiny and was trained in float32."""
    folder = Path(source) if source else WEIGHTS_DIR
    device = device or default_device()
    return WanEngine(
        spec,
        lambda: load_wan_pipeline(folder, dtype=torch.float32, device=device),
        device,
        torch.float32,
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        upscale=UPSCALE,
    )
