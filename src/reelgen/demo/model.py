"""The reelgen-demo model: a tiny Wan 2.1-architecture text-to-video pipeline over the demo world's vocabulary.

Every component is the real diffusers / transformers class, so the trained model is saved with
``save_pretrained`` and served by ``reelgen.engines.wan.load_wan_pipeline`` exactly like a Wan checkpoint:

- tokenizer: a word-level ``PreTrainedTokenizerFast`` over ``demo.captions.VOCABULARY`` (<pad>=0, </s>=1,
  <unk>=2 as in UMT5), splitting text the way ``captions.tokenize`` does;
- text encoder: a 2-layer ``UMT5EncoderModel``, trained jointly with the transformer;
- VAE: ``AutoencoderKLWan`` (4x space, no time compression, 16 latent channels), trained on rendered clips;
- transformer: ``WanTransformer3DModel`` with 1x4x4 patches (a 17-frame 64x64 clip is 17x4x4 = 272 tokens), as
  ``demo.transformer.DemoWanTransformer3DModel``: the same class plus a learned absolute position per token;
- scheduler: ``UniPCMultistepScheduler`` with flow sigmas and shift 3, the one the Wan 2.1 checkpoints ship.

This module only builds and assembles components; ``demo.train`` trains them and ``demo.evaluate`` scores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from diffusers.pipelines.wan.pipeline_wan import WanPipeline
from diffusers.schedulers.scheduling_unipc_multistep import UniPCMultistepScheduler
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from reelgen.demo.captions import SYNONYM_PHRASES, VOCABULARY

# Imported here so every process that touches the demo model has the transformer's module loaded: diffusers
# resolves model_index.json's ["reelgen.demo.transformer", ...] only from modules already imported.
from reelgen.demo.transformer import DemoWanTransformer3DModel

# The clip the model is trained on and makes: 17 frames (2 s at 8 fps) at 64x64, shown at 128x128 (UPSCALE).
# 64x64 is what makes training fit in two hours on two CPU cores: 80 transformer tokens train ~7x faster than
# the 320 of a 128x128 latent grid, and a 4x VAE learns flat shapes far sooner than an 8x one (benchmarks/README.md).
NUM_FRAMES = 17
SIZE = 64
UPSCALE = 2
DISPLAY_SIZE = SIZE * UPSCALE
FPS = 8
# The longest training caption is 19 words + </s>; a few spare positions for users' extra words.
MAX_SEQUENCE_LENGTH = 24
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
# The scheduler's shift, used both for sampling and for drawing training noise levels.
FLOW_SHIFT = 3.0

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the three networks. The defaults are what ``reelgen train-demo`` trains."""

    text_dim: int = 64
    text_layers: int = 2
    text_heads: int = 4
    vae_base_dim: int = 16
    vae_dim_mult: tuple[int, ...] = (1, 2, 2)
    # One entry per downsample: every stage halves height and width, the True ones also halve time. None: a
    # latent frame per frame. With 4x time compression four frames of a moving shape squeezed into one 16-channel
    # latent frame came back soft (the checker read the right shape 30% of the time), while single frames came
    # back sharp; the transformer pays with 17 latent frames instead of 5 (benchmarks/README.md).
    vae_temporal: tuple[bool, ...] = (False, False)
    # The decoder is this many times wider than the encoder. At 1x (sessions 1-8) round trips of held-out clips
    # kept the asked shape 60% of the time (stars blurred into circles, crosses into diamonds); a 2x decoder
    # trained against the frozen 1x encoder kept it 90% of the time (benchmarks/README.md).
    vae_decoder_scale: int = 2
    z_dim: int = 16
    patch: tuple[int, int, int] = (1, 4, 4)
    heads: int = 4
    head_dim: int = 32
    ffn_dim: int = 256
    layers: int = 6
    # What the transformer's output head predicts: "sample" (the clean latent; demo.transformer explains why a
    # model this narrow needs it) or "velocity" (Wan's own; session 1-5 weights).
    prediction: str = "sample"
    # The prompt's mean token embedding, and a vector per token position, also modulate every block
    # (demo.transformer.DemoConditioning).
    pooled_text: bool = True
    position_modulation: bool = True


def build_tokenizer(max_length: int = MAX_SEQUENCE_LENGTH) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over the demo vocabulary; unknown words map to <unk>, the text ends with </s>."""
    vocab = {tok: i for i, tok in enumerate((*SPECIAL_TOKENS, *VOCABULARY))}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    # Synonyms become their canonical words before the split (see captions.SYNONYM_PHRASES); runs of
    # non-letters become one space first, so a phrase matches however the text was punctuated.
    synonyms = [normalizers.Replace(Regex(rf"\b{phrase}\b"), canonical) for phrase, canonical in SYNONYM_PHRASES]
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Lowercase(), normalizers.Replace(Regex("[^a-z]+"), " "), *synonyms]
    )
    # Words are runs of letters; everything else separates them (as captions.tokenize does).
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("[^a-z]+"), behavior="removed")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def build_text_encoder(config: ModelConfig, vocab_size: int) -> UMT5EncoderModel:
    return UMT5EncoderModel(
        UMT5Config(
            vocab_size=vocab_size,
            d_model=config.text_dim,
            d_kv=config.text_dim // config.text_heads,
            d_ff=config.text_dim * 2,
            num_layers=config.text_layers,
            num_heads=config.text_heads,
            relative_attention_num_buckets=16,
            relative_attention_max_distance=32,
            dropout_rate=0.0,
        )
    )


def build_vae(config: ModelConfig) -> AutoencoderKLWan:
    # Two spatial downsamples (4x space); time is compressed only where config.vae_temporal says so.
    return AutoencoderKLWan(
        base_dim=config.vae_base_dim,
        decoder_base_dim=config.vae_base_dim * config.vae_decoder_scale,
        z_dim=config.z_dim,
        dim_mult=list(config.vae_dim_mult),
        num_res_blocks=1,
        attn_scales=[],
        temperal_downsample=list(config.vae_temporal),
        # WanPipeline reads the scale factors from the config (its defaults are the real Wan VAE's 8x / 4x).
        scale_factor_spatial=2 ** len(config.vae_temporal),
        scale_factor_temporal=2 ** sum(config.vae_temporal),
        dropout=0.0,
    )


def build_transformer(config: ModelConfig) -> DemoWanTransformer3DModel:
    p_t, p_h, p_w = config.patch
    latent = SIZE // 2 ** len(config.vae_temporal)
    frames = (NUM_FRAMES - 1) // 2 ** sum(config.vae_temporal) + 1
    return DemoWanTransformer3DModel(
        patch_size=config.patch,
        num_attention_heads=config.heads,
        attention_head_dim=config.head_dim,
        in_channels=config.z_dim,
        out_channels=config.z_dim,
        text_dim=config.text_dim,
        freq_dim=64,
        ffn_dim=config.ffn_dim,
        num_layers=config.layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        rope_max_seq_len=64,
        position_grid=(frames // p_t, latent // p_h, latent // p_w),
        prediction=config.prediction,
        pooled_text=config.pooled_text,
        position_modulation=config.position_modulation,
    )


def build_scheduler() -> UniPCMultistepScheduler:
    return UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=FLOW_SHIFT, num_train_timesteps=1000
    )


def build_pipeline(config: ModelConfig | None = None, seed: int = 0) -> WanPipeline:
    """A freshly initialised (untrained) demo pipeline, identical for the same config and seed."""
    config = config or ModelConfig()
    tokenizer = build_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = build_text_encoder(config, len(tokenizer))
        vae = build_vae(config)
        transformer = build_transformer(config)
    return WanPipeline(
        tokenizer=tokenizer,  # type: ignore[arg-type]  # annotated as AutoTokenizer, a factory
        text_encoder=text_encoder,
        vae=vae,
        scheduler=build_scheduler(),  # type: ignore[arg-type]  # any flow-matching scheduler works
        transformer=transformer,
    )


def decoder_width(vae: AutoencoderKLWan) -> int:
    return int(vae.config["decoder_base_dim"] or vae.config["base_dim"])


def widen_decoder(
    trained: AutoencoderKLWan, width: int, noise: float = 0.01, generator: torch.Generator | None = None
) -> AutoencoderKLWan:
    """``trained`` with a decoder of base width ``width`` (a multiple of its own) that decodes as it did.

    Net2Net widening: every decoder channel copies channel ``c % old`` of ``trained``, input weights are divided by
    the number of copies, and the attention queries by the square root of it (the logits are scaled by the
    channel count). RMS norms see each channel repeated and normalise to the same values. ``noise`` (relative to
    each widened weight's spread) breaks the symmetry so the copies can learn different things.
    """
    old = decoder_width(trained)
    if width % old:
        raise ValueError(f"decoder width {width} is not a multiple of {old}")
    config = {k: v for k, v in trained.config.items() if not k.startswith("_")}
    wide = AutoencoderKLWan(**{**config, "decoder_base_dim": width})
    src, state = trained.state_dict(), wide.state_dict()
    for name, target in state.items():
        value = src[name]
        if name.startswith("decoder.") and target.shape != value.shape:
            if name.endswith(("to_qkv.weight", "to_qkv.bias")):  # [q | k | v] along the output channels
                per_third = (target.shape[0] // 3, *target.shape[1:])
                thirds = _repeat_channels(value.reshape(3, -1, *value.shape[1:]), per_third, first=1)
                thirds[0] /= (target.shape[0] / value.shape[0]) ** 0.5
                value = thirds.reshape(target.shape)
            else:
                value = _repeat_channels(value, target.shape, first=0)
            if noise and value.dim() > 1:
                value = value + noise * value.std() * torch.randn(value.shape, generator=generator)
        state[name] = value.clone()
    wide.load_state_dict(state)
    return wide


def _repeat_channels(value: torch.Tensor, shape: tuple[int, ...], first: int) -> torch.Tensor:
    """Tile the output (dim ``first``) and input (``first + 1``) channels of ``value`` up to ``shape`` (the
    target's sizes from dim ``first`` on)."""
    for dim in (first, first + 1):
        if dim < value.dim() and value.shape[dim] != shape[dim - first]:
            copies = shape[dim - first] // value.shape[dim]
            value = value.repeat(*(copies if d == dim else 1 for d in range(value.dim())))
            if dim == first + 1:
                value = value / copies
    return value


def widen_latents(trained: AutoencoderKLWan, wide: AutoencoderKLWan) -> None:
    """Load ``trained`` into ``wide``, a VAE with the same layers but as many or more latent channels.

    Layers ``wide`` lacks are left out: the time convolutions of stages that compress time in ``trained`` and not
    in ``wide`` (its single-frame path, which the first frame of every clip takes, carries over unchanged). The old
    latent channels keep their weights; the new ones start as fresh encoder outputs with a tiny posterior
    variance that the decoder ignores (zero input weights), so the widened VAE reconstructs exactly as the
    trained one did and training adds detail through the new channels from there.
    """
    old, new = trained.config["z_dim"], wide.config["z_dim"]
    if new < old:
        raise ValueError(f"cannot narrow the latent from {old} to {new} channels")
    src = trained.state_dict()
    state = wide.state_dict()
    for name, value in src.items():
        if name in state and state[name].shape == value.shape:
            state[name] = value.clone()
    # Encoder output and quant_conv: channels [mu (z) | logvar (z)].
    with torch.no_grad():
        for half in (0, 1):
            o, n = half * old, half * new
            for part in ("weight", "bias"):
                head = f"encoder.conv_out.{part}"
                state[head][n : n + old] = src[head][o : o + old]
        state["encoder.conv_out.bias"][new + old :] = -8.0  # logvar of the new channels: almost deterministic
        quant = torch.zeros_like(state["quant_conv.weight"])
        for i in range(2 * new):
            quant[i, i] = 1.0
        for a in (0, 1):
            for b in (0, 1):
                quant[a * new : a * new + old, b * new : b * new + old] = src["quant_conv.weight"][
                    a * old : (a + 1) * old, b * old : (b + 1) * old
                ]
        bias = torch.zeros_like(state["quant_conv.bias"])
        bias[:old], bias[new : new + old] = src["quant_conv.bias"][:old], src["quant_conv.bias"][old:]
        state["quant_conv.weight"], state["quant_conv.bias"] = quant, bias
        post = torch.zeros_like(state["post_quant_conv.weight"])
        for i in range(new):
            post[i, i] = 1.0
        post[:old, :old] = src["post_quant_conv.weight"]
        state["post_quant_conv.weight"] = post
        state["post_quant_conv.bias"] = torch.cat([src["post_quant_conv.bias"], torch.zeros(new - old)])
        conv_in = torch.zeros_like(state["decoder.conv_in.weight"])
        conv_in[:, :old] = src["decoder.conv_in.weight"]
        state["decoder.conv_in.weight"] = conv_in
    wide.load_state_dict(state)


def set_latent_stats(vae: AutoencoderKLWan, mean: list[float], std: list[float]) -> None:
    """Record the per-channel latent statistics WanPipeline normalises with (saved in the VAE's config)."""
    vae.register_to_config(latents_mean=[float(m) for m in mean], latents_std=[float(s) for s in std])


def encode_prompts(
    pipe: WanPipeline, prompts: list[str], max_sequence_length: int = MAX_SEQUENCE_LENGTH
) -> torch.Tensor:
    """Prompt embeddings exactly as WanPipeline computes them at inference (with gradients when enabled)."""
    return pipe._get_t5_prompt_embeds(
        prompts, max_sequence_length=max_sequence_length, device=pipe.text_encoder.device, dtype=torch.float32
    )


def normalize_latents(vae: AutoencoderKLWan, z: torch.Tensor) -> torch.Tensor:
    """VAE latents -> diffusion latents: (z - mean) / std per channel, as WanPipeline inverts before decoding."""
    shape = (1, vae.config["z_dim"], 1, 1, 1)
    mean = torch.tensor(vae.config["latents_mean"]).view(shape).to(z)
    std = torch.tensor(vae.config["latents_std"]).view(shape).to(z)
    return (z - mean) / std


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
