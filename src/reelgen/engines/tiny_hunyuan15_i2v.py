"""tiny-random-hunyuan15-i2v: the real diffusers HunyuanVideo15ImageToVideoPipeline at a tiny random-weight config.

Same tokenizers, text encoders, VAE, scheduler and guider as tiny-random-hunyuan15, plus what the image-to-video
checkpoints add: a SigLIP vision encoder (the real checkpoints ship SigLIP so400m at 384 px: 729 tokens of 1152
features; here 32 px in 8 px patches: 16 tokens of 8) whose tokens join the text tokens through the transformer's
image projection (`image_embed_dim`), and the transformer's first-frame channels filled with the encoded image.

The pipeline takes no size: it makes the bucket (multiples of 16 around `target_size`, 64 here) nearest the image's
aspect ratio, so the spec's sizes are such buckets: 64x64, 80x48 and 48x64 (48x80 is not one: diffusers rounds its
ratio up and picks 48x64). For tests: the output is noise.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15Transformer3DModel
from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5_image2video import (
    HunyuanVideo15ImageToVideoPipeline,
)
from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

from reelgen.domain.models import ModelSpec, Size
from reelgen.engines.hunyuan15 import HunyuanVideo15Engine
from reelgen.engines.tiny_hunyuan15 import TINY_RANDOM_HUNYUAN15, build_tiny_hunyuan15_pipeline

IMAGE_DIM = 8
SIGLIP_SIZE = 32

TINY_RANDOM_HUNYUAN15_I2V = replace(
    TINY_RANDOM_HUNYUAN15,
    id="tiny-random-hunyuan15-i2v",
    description=(
        "The real diffusers HunyuanVideo15ImageToVideoPipeline at a tiny random-weight config, built offline. "
        "For tests only."
    ),
    sizes=(Size(64, 64), Size(80, 48), Size(48, 64)),
    inputs=("text", "image"),
    requires_image=True,
)


def build_tiny_hunyuan15_i2v_pipeline() -> HunyuanVideo15ImageToVideoPipeline:
    """The whole pipeline on the CPU in float32, identical on every call; the global torch RNG is left as it was."""
    text_to_video = build_tiny_hunyuan15_pipeline()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        # The text-to-video transformer's shape (it has the image projection too, fed zeros there).
        config = {**text_to_video.transformer.config, "image_embed_dim": IMAGE_DIM, "task_type": "i2v"}
        transformer = HunyuanVideo15Transformer3DModel.from_config(config).eval()
        torch.manual_seed(0)
        image_encoder = SiglipVisionModel(
            SiglipVisionConfig(
                hidden_size=IMAGE_DIM,
                intermediate_size=16,
                num_hidden_layers=1,
                num_attention_heads=2,
                image_size=SIGLIP_SIZE,
                patch_size=8,
            )
        ).eval()
    return HunyuanVideo15ImageToVideoPipeline(
        text_encoder=text_to_video.text_encoder,
        tokenizer=text_to_video.tokenizer,
        transformer=transformer,
        vae=text_to_video.vae,
        scheduler=text_to_video.scheduler,
        text_encoder_2=text_to_video.text_encoder_2,
        tokenizer_2=text_to_video.tokenizer_2,
        guider=text_to_video.guider,
        image_encoder=image_encoder,
        # SigLIP's preprocessing (resize, rescale, normalise to [-1, 1]) at the tiny encoder's size.
        feature_extractor=SiglipImageProcessor(size={"height": SIGLIP_SIZE, "width": SIGLIP_SIZE}),
    )


def create_engine(spec: ModelSpec = TINY_RANDOM_HUNYUAN15_I2V, device: str | None = None) -> HunyuanVideo15Engine:
    """Registry factory. float32 on the CPU: tests compare outputs exactly."""
    return HunyuanVideo15Engine(spec, build_tiny_hunyuan15_i2v_pipeline, device or "cpu")
