"""tiny-random-ltx2: the real diffusers LTX2Pipeline at a tiny random-weight config, built offline.

Every component is the real class: a Gemma 3 text model (with its tiny vision tower, which the class carries;
LTX-2 reads only the text layers) behind an in-memory T5-style tokenizer, LTX-2's text connectors, video VAE,
audio VAE, vocoder and audio-video transformer, and the flow-matching Euler scheduler, seeded so every build has
the same weights. The video VAE compresses 8x in space and in time (real LTX-2: 32x and 8x), so frame counts
follow 8k+1 and a 64x64 clip has an 8x8 latent. The audio path is real LTX-2's arithmetic at a small scale: 16 kHz
audio, mel frames every 160 samples, and a vocoder that upsamples each mel frame back to 160 samples, so the
soundtrack lasts as long as the clip. For tests: the picture and the sound are noise.
"""

from __future__ import annotations

import torch
from diffusers.models.autoencoders.autoencoder_kl_ltx2 import AutoencoderKLLTX2Video
from diffusers.models.autoencoders.autoencoder_kl_ltx2_audio import AutoencoderKLLTX2Audio
from diffusers.models.transformers.transformer_ltx2 import LTX2VideoTransformer3DModel
from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
from diffusers.pipelines.ltx2.pipeline_ltx2 import LTX2Pipeline
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler
from transformers import Gemma3Config, Gemma3ForConditionalGeneration

from reelgen.domain.models import FrameRule, ModelSpec, Size
from reelgen.engines.ltx2 import LTX2Engine
from reelgen.engines.tiny_wan import build_tiny_tokenizer

MAX_SEQUENCE_LENGTH = 16
TEXT_DIM = 16
TEXT_LAYERS = 2
SAMPLE_RATE = 16_000
# The pipeline's guidance terms besides the job's CFG scale, off: one transformer pass per step (two with CFG),
# as diffusers' own fast tests run it.
GUIDANCE = {
    "stg_scale": 0.0,
    "audio_stg_scale": 0.0,
    "modality_scale": 1.0,
    "audio_modality_scale": 1.0,
    "guidance_rescale": 0.0,
    "audio_guidance_rescale": 0.0,
    "spatio_temporal_guidance_blocks": None,
}

TINY_RANDOM_LTX2 = ModelSpec(
    id="tiny-random-ltx2",
    family="ltx2",
    description="The real diffusers LTX2Pipeline (video with sound) at a tiny random-weight config, built offline. "
    "For tests only.",
    sizes=(Size(64, 64), Size(96, 64), Size(64, 96)),
    default_size=Size(64, 64),
    fps=24,
    default_seconds=0.4,
    max_seconds=1.4,
    frame_rule=FrameRule(multiple=8, offset=1, min_frames=9, max_frames=33),
    default_steps=2,
    max_steps=50,
    default_guidance=3.0,
    inputs=("text", "image"),
)


def _gemma3(vocab_size: int) -> Gemma3ForConditionalGeneration:
    # The last three ids stand for Gemma's image markers; prompts never contain them.
    config = Gemma3Config(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": TEXT_DIM,
            "intermediate_size": 32,
            "num_hidden_layers": TEXT_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 8,
            "max_position_embeddings": 64,
            "sliding_window": 16,
        },
        vision_config={
            "hidden_size": 8,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 8,
            "patch_size": 4,
        },
        mm_tokens_per_image=4,
        image_token_index=vocab_size - 1,
        boi_token_index=vocab_size - 2,
        eoi_token_index=vocab_size - 3,
    )
    return Gemma3ForConditionalGeneration(config).eval()


def build_tiny_ltx2_pipeline() -> LTX2Pipeline:
    """The whole pipeline on the CPU in float32, identical on every call; the global torch RNG is left as it was."""
    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        text_encoder = _gemma3(len(tokenizer))
        torch.manual_seed(0)
        # The connectors read every hidden state of the text model (its layers and the embeddings), and their
        # attention width must equal the text model's (2 heads x 8 = TEXT_DIM).
        connectors = LTX2TextConnectors(
            caption_channels=TEXT_DIM,
            text_proj_in_factor=TEXT_LAYERS + 1,
            video_connector_num_attention_heads=2,
            video_connector_attention_head_dim=8,
            video_connector_num_layers=1,
            video_connector_num_learnable_registers=None,
            audio_connector_num_attention_heads=2,
            audio_connector_attention_head_dim=8,
            audio_connector_num_layers=1,
            audio_connector_num_learnable_registers=None,
            connector_rope_base_seq_len=32,
            rope_theta=10000.0,
            rope_double_precision=False,
            causal_temporal_positioning=False,
            rope_type="split",
        ).eval()
        torch.manual_seed(0)
        transformer = LTX2VideoTransformer3DModel(
            in_channels=8,
            out_channels=8,
            patch_size=1,
            patch_size_t=1,
            num_attention_heads=2,
            attention_head_dim=8,
            cross_attention_dim=16,
            audio_in_channels=4,
            audio_out_channels=4,
            audio_num_attention_heads=2,
            audio_attention_head_dim=4,
            audio_cross_attention_dim=8,
            num_layers=1,
            qk_norm="rms_norm_across_heads",
            caption_channels=TEXT_DIM,
            rope_double_precision=False,
            rope_type="split",
        ).eval()
        torch.manual_seed(0)
        vae = AutoencoderKLLTX2Video(
            in_channels=3,
            out_channels=3,
            latent_channels=8,
            block_out_channels=(8, 8, 8),
            decoder_block_out_channels=(8, 8, 8),
            layers_per_block=(1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, True),
            decoder_spatio_temporal_scaling=(True, True, True),
            decoder_inject_noise=(False, False, False, False),
            downsample_type=("spatiotemporal", "spatiotemporal", "spatiotemporal"),
            upsample_residual=(False, False, False),
            upsample_factor=(1, 1, 1),
            timestep_conditioning=False,
            patch_size=1,
            patch_size_t=1,
            encoder_causal=True,
            decoder_causal=False,
        ).eval()
        torch.manual_seed(0)
        audio_vae = AutoencoderKLLTX2Audio(
            base_channels=4,
            output_channels=2,
            ch_mult=(1,),
            num_res_blocks=1,
            attn_resolutions=None,
            in_channels=2,
            resolution=32,
            latent_channels=2,
            norm_type="pixel",
            causality_axis="height",
            dropout=0.0,
            mid_block_add_attention=False,
            sample_rate=SAMPLE_RATE,
            mel_hop_length=160,
            is_causal=True,
            mel_bins=8,
        ).eval()
        torch.manual_seed(0)
        # 4 x 4 x 10 = 160 samples per mel frame: the hop length, so the waveform is SAMPLE_RATE samples a second.
        vocoder = LTX2Vocoder(
            in_channels=2 * 8,
            hidden_channels=32,
            out_channels=2,
            upsample_kernel_sizes=[8, 8, 20],
            upsample_factors=[4, 4, 10],
            resnet_kernel_sizes=[3],
            resnet_dilations=[[1, 3, 5]],
            leaky_relu_negative_slope=0.1,
            output_sampling_rate=SAMPLE_RATE,
        ).eval()
    return LTX2Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        audio_vae=audio_vae,
        text_encoder=text_encoder,
        # diffusers annotates Gemma's tokenizers; any fast tokenizer with a pad or eos token works.
        tokenizer=tokenizer,  # type: ignore[arg-type]
        connectors=connectors,
        transformer=transformer,
        vocoder=vocoder,
    )


def create_engine(spec: ModelSpec = TINY_RANDOM_LTX2, device: str | None = None) -> LTX2Engine:
    """Registry factory. float32 on the CPU: tests compare outputs exactly."""
    return LTX2Engine(
        spec, build_tiny_ltx2_pipeline, device or "cpu", max_sequence_length=MAX_SEQUENCE_LENGTH, guidance=GUIDANCE
    )
