"""A tiny random-weight LTX-Video pipeline built offline: the real diffusers classes at toy sizes.

Like tiny_wan: real T5 text encoder (with an in-memory tokenizer), real LTX VAE (timestep-conditioned, as in
LTX 0.9.1+), real LTX transformer and flow-matching scheduler, seeded so every build has the same weights.
The VAE compresses 8x in space and in time (real LTX: 32x and 8x), so frame counts follow LTX's 8k+1 rule and
64x64 clips have an 8x8 latent. For tests: the output is noise.
"""

from __future__ import annotations

import torch
from diffusers.models.autoencoders.autoencoder_kl_ltx import AutoencoderKLLTXVideo
from diffusers.models.transformers.transformer_ltx import LTXVideoTransformer3DModel
from diffusers.pipelines.ltx.pipeline_ltx import LTXPipeline
from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler

from reelgen.domain.models import FrameRule, ModelSpec, Size
from reelgen.engines.ltx import LTXEngine
from reelgen.engines.tiny_wan import build_tiny_t5, build_tiny_tokenizer

MAX_SEQUENCE_LENGTH = 16
TEXT_DIM = 32

TINY_RANDOM_LTX = ModelSpec(
    id="tiny-random-ltx",
    family="ltx",
    description="The real diffusers LTXPipeline at a tiny random-weight config, built offline. For tests only.",
    sizes=(Size(64, 64), Size(96, 64), Size(64, 96), Size(128, 128)),
    default_size=Size(64, 64),
    fps=24,
    default_seconds=0.4,
    max_seconds=2.0,
    frame_rule=FrameRule(multiple=8, offset=1, min_frames=9, max_frames=49),
    default_steps=2,
    max_steps=50,
    default_guidance=3.0,
    inputs=("text", "image"),
)


def build_tiny_ltx_pipeline() -> LTXPipeline:
    """The whole pipeline on the CPU in float32, identical on every call; the global torch RNG is left as it was."""
    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        text_encoder = build_tiny_t5(len(tokenizer), TEXT_DIM)
        torch.manual_seed(0)
        vae = AutoencoderKLLTXVideo(
            latent_channels=8,
            block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, True, False),
            decoder_spatio_temporal_scaling=(True, True, True, False),
            decoder_inject_noise=(False, False, False, False, False),
            timestep_conditioning=True,
            patch_size=1,
            patch_size_t=1,
            encoder_causal=True,
            decoder_causal=False,
        ).eval()
        torch.manual_seed(0)
        transformer = LTXVideoTransformer3DModel(
            in_channels=8,
            out_channels=8,
            patch_size=1,
            patch_size_t=1,
            num_attention_heads=4,
            attention_head_dim=8,
            cross_attention_dim=32,
            num_layers=1,
            caption_channels=TEXT_DIM,
        ).eval()
    return LTXPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        # diffusers annotates T5TokenizerFast; any fast T5-style tokenizer works.
        tokenizer=tokenizer,  # type: ignore[arg-type]
        transformer=transformer,
    )


def create_engine(spec: ModelSpec = TINY_RANDOM_LTX, device: str | None = None) -> LTXEngine:
    """Registry factory. float32 on the CPU: tests compare outputs exactly. Decodes like LTX 0.9.1+."""
    return LTXEngine(
        spec,
        build_tiny_ltx_pipeline,
        device or "cpu",
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        decode_timestep=0.05,
        decode_noise_scale=0.025,
    )
