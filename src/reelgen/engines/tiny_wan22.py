"""A tiny random-weight Wan 2.2 TI2V 5B-style pipeline built offline (real diffusers classes, toy sizes).

What makes it Wan 2.2 5B rather than 2.1: the high-compression VAE (48 latent channels, 2x2 patchified pixels,
16x spatial compression) and `expand_timesteps` (per-token timesteps, which let the first latent frame stay
the clean image in image-to-video). One checkpoint does text-to-video (WanPipeline) and image-to-video
(WanImageToVideoPipeline on the same components). Tokenizer and text encoder are tiny-random-wan's.
For tests only: the output is noise.
"""

from __future__ import annotations

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel
from diffusers.pipelines.wan.pipeline_wan import WanPipeline

from reelgen.domain.models import ModelSpec
from reelgen.engines.tiny_wan import MAX_SEQUENCE_LENGTH, TEXT_DIM, build_tiny_wan_pipeline
from reelgen.engines.wan import WanEngine


def build_tiny_wan22_pipeline() -> WanPipeline:
    """The whole pipeline on the CPU in float32, identical on every call; the global torch RNG is left as it was."""
    wan21 = build_tiny_wan_pipeline()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vae = AutoencoderKLWan(
            base_dim=3,
            z_dim=48,
            in_channels=12,
            out_channels=12,
            is_residual=True,
            patch_size=2,
            latents_mean=[0.0] * 48,
            latents_std=[1.0] * 48,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            scale_factor_spatial=16,
            scale_factor_temporal=4,
            temperal_downsample=[False, True, True],
        ).eval()
        torch.manual_seed(0)
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=48,
            out_channels=48,
            text_dim=TEXT_DIM,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=1024,
        ).eval()
    return WanPipeline(
        tokenizer=wan21.tokenizer,
        text_encoder=wan21.text_encoder,
        vae=vae,
        scheduler=wan21.scheduler,
        transformer=transformer,
        expand_timesteps=True,
    )


def create_engine(spec: ModelSpec, device: str | None = None) -> WanEngine:
    """Registry factory. float32 on the CPU: tests compare outputs exactly."""
    return WanEngine(
        spec, build_tiny_wan22_pipeline, device or "cpu", torch.float32, max_sequence_length=MAX_SEQUENCE_LENGTH
    )
