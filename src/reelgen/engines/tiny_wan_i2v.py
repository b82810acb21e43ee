"""A tiny random-weight Wan 2.1 image-to-video pipeline built offline (real diffusers/transformers classes).

Same tokenizer, text encoder and VAE as tiny-random-wan, plus what Wan 2.1 I2V adds: a CLIP vision encoder
whose penultimate hidden states condition the transformer (`image_dim`), and a transformer that takes the
noise latents concatenated with the encoded first frame and its mask (16 + 4 + 16 = 36 input channels).
For tests only: the output is noise.
"""

from __future__ import annotations

import torch
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel
from diffusers.pipelines.wan.pipeline_wan_i2v import WanImageToVideoPipeline
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

from reelgen.domain.models import ModelSpec
from reelgen.engines.tiny_wan import MAX_SEQUENCE_LENGTH, TEXT_DIM, build_tiny_wan_pipeline
from reelgen.engines.wan import WanEngine

IMAGE_DIM = 8
CLIP_SIZE = 32


def build_tiny_wan_i2v_pipeline() -> WanImageToVideoPipeline:
    """The whole pipeline on the CPU in float32, identical on every call; the global torch RNG is left as it was."""
    text_to_video = build_tiny_wan_pipeline()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=36,
            out_channels=16,
            text_dim=TEXT_DIM,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=1024,
            image_dim=IMAGE_DIM,
        ).eval()
        torch.manual_seed(0)
        image_encoder = CLIPVisionModel(
            CLIPVisionConfig(
                hidden_size=IMAGE_DIM,
                projection_dim=IMAGE_DIM,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=CLIP_SIZE,
                intermediate_size=16,
                patch_size=4,
            )
        ).eval()
    return WanImageToVideoPipeline(
        tokenizer=text_to_video.tokenizer,
        text_encoder=text_to_video.text_encoder,
        vae=text_to_video.vae,
        scheduler=text_to_video.scheduler,
        image_processor=CLIPImageProcessor(crop_size=CLIP_SIZE, size=CLIP_SIZE),
        image_encoder=image_encoder,
        transformer=transformer,
    )


def create_engine(spec: ModelSpec, device: str | None = None) -> WanEngine:
    """Registry factory. float32 on the CPU: tests compare outputs exactly."""
    return WanEngine(
        spec, build_tiny_wan_i2v_pipeline, device or "cpu", torch.float32, max_sequence_length=MAX_SEQUENCE_LENGTH
    )
