"""tiny-random-cogvideox-i2v: the real diffusers CogVideoXImageToVideoPipeline at a tiny random-weight config.

Same tokenizer, T5 text encoder, VAE and scheduler as tiny-random-cogvideox, plus what the image-to-video
checkpoints change: a transformer that takes the noise latents concatenated on channels with the encoded image
(4 + 4 = 8 input channels). By default it is shaped like CogVideoX1.5-5B-I2V (rotary positions, time patchified 2x,
the `ofs` embedding); `build_tiny_cogvideox_i2v_pipeline(layout="5b")` gives CogVideoX-5b-I2V's (no time patching,
rotary plus a learned position table for one size and length: 64x64, 9 frames here). For tests: the output is noise.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import torch
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXTransformer3DModel
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import CogVideoXImageToVideoPipeline

from reelgen.domain.models import ModelSpec
from reelgen.engines.cogvideox import CogVideoXEngine
from reelgen.engines.tiny_cogvideox import (
    MAX_SEQUENCE_LENGTH,
    TEXT_DIM,
    TINY_RANDOM_COGVIDEOX,
    build_tiny_cogvideox_pipeline,
)

TIME_DIM = 8

TINY_RANDOM_COGVIDEOX_I2V = replace(
    TINY_RANDOM_COGVIDEOX,
    id="tiny-random-cogvideox-i2v",
    description=(
        "The real diffusers CogVideoXImageToVideoPipeline at a tiny random-weight config, built offline. "
        "For tests only."
    ),
    inputs=("text", "image"),
    requires_image=True,
)


def build_tiny_cogvideox_i2v_pipeline(layout: Literal["1.5", "5b"] = "1.5") -> CogVideoXImageToVideoPipeline:
    """The whole pipeline on the CPU in float32, identical on every call; the global torch RNG is left as it was."""
    text_to_video = build_tiny_cogvideox_pipeline()
    latent_channels = text_to_video.vae.config.latent_channels
    one_five = layout == "1.5"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=2,
            attention_head_dim=16,
            # The noise and the image latents (first frame, then zero frames), concatenated on channels.
            in_channels=2 * latent_channels,
            out_channels=latent_channels,
            time_embed_dim=TIME_DIM,
            # 1.5 I2V adds the "ofs" embedding to the time embedding, so it has the same width.
            ofs_embed_dim=TIME_DIM if one_five else None,
            text_embed_dim=TEXT_DIM,
            num_layers=1,
            # 1.5: the RoPE grid the sizes are sliced from (latent pixels). 5B: the one size (and length) of the
            # learned position table, 64x64 and 9 frames.
            sample_width=32 if one_five else 8,
            sample_height=32 if one_five else 8,
            sample_frames=9,
            patch_size=2,
            patch_size_t=2 if one_five else None,
            temporal_compression_ratio=4,
            max_text_seq_length=MAX_SEQUENCE_LENGTH,
            use_rotary_positional_embeddings=True,
            use_learned_positional_embeddings=not one_five,
        ).eval()
    return CogVideoXImageToVideoPipeline(
        tokenizer=text_to_video.tokenizer,
        text_encoder=text_to_video.text_encoder,
        vae=text_to_video.vae,
        transformer=transformer,
        scheduler=text_to_video.scheduler,
    )


def create_engine(spec: ModelSpec = TINY_RANDOM_COGVIDEOX_I2V, device: str | None = None) -> CogVideoXEngine:
    """Registry factory. float32 on the CPU: tests compare outputs exactly."""
    return CogVideoXEngine(
        spec,
        build_tiny_cogvideox_i2v_pipeline,
        device or "cpu",
        max_sequence_length=MAX_SEQUENCE_LENGTH,
    )
