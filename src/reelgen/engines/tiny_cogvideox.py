"""tiny-random-cogvideox: the real diffusers CogVideoXPipeline at a tiny random-weight config, built offline.

Like tiny_wan and tiny_ltx: real T5 text encoder (with an in-memory tokenizer), real CogVideoX VAE (8x in space,
4x in time) and transformer, CogVideoX's DPM scheduler, seeded so every build has the same weights. The transformer
is shaped like CogVideoX 1.5 (rotary positions, time patchified 2x), so an odd number of latent frames makes the
pipeline pad the latents, the path `cogvideox._video_latents` undoes; `build_tiny_cogvideox_pipeline(
patch_size_t=None)` gives the 5B layout. For tests: the output is noise.
"""

from __future__ import annotations

import torch
from diffusers.models.autoencoders.autoencoder_kl_cogvideox import AutoencoderKLCogVideoX
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXTransformer3DModel
from diffusers.pipelines.cogvideo.pipeline_cogvideox import CogVideoXPipeline
from diffusers.schedulers.scheduling_dpm_cogvideox import CogVideoXDPMScheduler

from reelgen.domain.models import FrameRule, ModelSpec, Size
from reelgen.engines.cogvideox import CogVideoXEngine
from reelgen.engines.tiny_wan import build_tiny_t5, build_tiny_tokenizer

# The transformer's text length is fixed (max_text_seq_length): prompts are padded to it.
MAX_SEQUENCE_LENGTH = 16
TEXT_DIM = 32

TINY_RANDOM_COGVIDEOX = ModelSpec(
    id="tiny-random-cogvideox",
    family="cogvideox",
    description="The real diffusers CogVideoXPipeline at a tiny random-weight config, built offline. For tests only.",
    # Multiples of 16: the VAE's 8x times the transformer's 2x2 patches.
    sizes=(Size(64, 64), Size(96, 64), Size(64, 96)),
    default_size=Size(64, 64),
    fps=8,
    default_seconds=1.0,
    max_seconds=4.0,
    frame_rule=FrameRule(multiple=4, offset=1, min_frames=5, max_frames=33),
    default_steps=2,
    max_steps=50,
    default_guidance=6.0,
    inputs=("text",),
)


def build_tiny_cogvideox_pipeline(patch_size_t: int | None = 2) -> CogVideoXPipeline:
    """The whole pipeline on the CPU in float32, identical on every call; the global torch RNG is left as it was."""
    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        text_encoder = build_tiny_t5(len(tokenizer), TEXT_DIM)
        torch.manual_seed(0)
        vae = AutoencoderKLCogVideoX(
            down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=4,
        ).eval()
        torch.manual_seed(0)
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=2,
            # Rotary positions split each head 1/4 time, 3/8 height, 3/8 width.
            attention_head_dim=16,
            in_channels=4,
            out_channels=4,
            time_embed_dim=8,
            text_embed_dim=TEXT_DIM,
            num_layers=1,
            # CogVideoX 1.5 slices its RoPE grid out of one this large (in latent pixels; real: 300x300), so it
            # caps the size; 5B-style models crop and scale to it.
            sample_width=32,
            sample_height=32,
            sample_frames=9,
            patch_size=2,
            patch_size_t=patch_size_t,
            temporal_compression_ratio=4,
            max_text_seq_length=MAX_SEQUENCE_LENGTH,
            use_rotary_positional_embeddings=True,
        ).eval()
    # CogVideoX 1.5's scheduler: v-prediction DPM with zero terminal SNR.
    scheduler = CogVideoXDPMScheduler(
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
        snr_shift_scale=1.0,
    )
    return CogVideoXPipeline(
        # diffusers annotates T5Tokenizer; any fast T5-style tokenizer works.
        tokenizer=tokenizer,  # type: ignore[arg-type]
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
    )


def create_engine(spec: ModelSpec = TINY_RANDOM_COGVIDEOX, device: str | None = None) -> CogVideoXEngine:
    """Registry factory. float32 on the CPU: tests compare outputs exactly."""
    return CogVideoXEngine(
        spec,
        build_tiny_cogvideox_pipeline,
        device or "cpu",
        max_sequence_length=MAX_SEQUENCE_LENGTH,
    )
