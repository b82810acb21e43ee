"""tiny-random-hunyuan: the real diffusers HunyuanVideoPipeline at a tiny random-weight config, built offline.

Like tiny_wan and tiny_ltx: every component is the real class (a Llama text encoder and a CLIP text encoder, each
with an in-memory fast tokenizer, the HunyuanVideo VAE and transformer, the flow-matching Euler scheduler), at about
the sizes of diffusers' own HunyuanVideo tests, seeded so every build has the same weights. As in the real model, the
latents have 16 channels, the VAE compresses 4x in time and 8x in space and the transformer patches 2x2, so frame
counts follow 4k+1, sizes are multiples of 16, and a 64x64 clip of 9 frames has a 16x3x8x8 latent. For tests: the
output is noise.
"""

from __future__ import annotations

import re

import torch
from diffusers.models.autoencoders.autoencoder_kl_hunyuan_video import AutoencoderKLHunyuanVideo
from diffusers.models.transformers.transformer_hunyuan_video import HunyuanVideoTransformer3DModel
from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE, HunyuanVideoPipeline
from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel, PreTrainedTokenizerFast

from reelgen.domain.models import FrameRule, ModelSpec, Size
from reelgen.engines.hunyuan import HunyuanEngine
from reelgen.engines.tiny_wan import _WORDS

LLAMA_DIM = 16
CLIP_DIM = 8
# The pipeline hard-codes 77 tokens for CLIP, CLIP-L's context length.
CLIP_MAX_LENGTH = 77

TINY_RANDOM_HUNYUAN = ModelSpec(
    id="tiny-random-hunyuan",
    family="hunyuan",
    description=(
        "The real diffusers HunyuanVideoPipeline at a tiny random-weight config, built offline. For tests only."
    ),
    # Multiples of 16 (the pipeline's rule). No 128x128: the VAE decode is ~90% of a job and takes seconds there.
    sizes=(Size(64, 64), Size(96, 64), Size(64, 96)),
    default_size=Size(64, 64),
    fps=24,
    default_seconds=0.4,
    max_seconds=1.4,
    frame_rule=FrameRule(multiple=4, offset=1, min_frames=5, max_frames=33),
    default_steps=2,
    max_steps=50,
    # Embedded guidance, as the real (guidance-distilled) checkpoint: one transformer pass per step.
    default_guidance=6.0,
    inputs=("text",),
    negative_prompt=False,
)

# Llama 3's pre-tokenizer split (tokenizer.json of Meta-Llama-3-8B, which HunyuanVideo's LLaVA encoder uses).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<pad>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
_CLIP_SPECIALS = ["<|startoftext|>", "<|endoftext|>"]


def _byte_level_unigram(specials: list[str], texts: list[str]) -> Tokenizer:
    """A Unigram tokenizer that splits like Llama 3, then maps bytes to printable characters (GPT-2 style).

    Its pieces are the specials, every pre-token of `texts` (whole words, preferred; `texts` hold no specials) and
    the 256 byte characters, so no text ever needs an unknown token: a word missing from the vocabulary is spelled
    out byte by byte, and different prompts always get different ids."""
    pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    words = dict.fromkeys(piece for text in texts for piece, _ in pre_tokenizer.pre_tokenize_str(text))
    pieces = [(special, 0.0) for special in specials] + [(word, -5.0) for word in words]
    # Sorted: the alphabet comes out of a hash set, and token ids must not change between processes.
    pieces += [(byte, -10.0) for byte in sorted(pre_tokenizers.ByteLevel.alphabet()) if byte not in words]
    tokenizer = Tokenizer(Unigram(pieces, unk_id=None, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    # Matched before pre-tokenization, so "<|eot_id|>" in a template is one token, never spelled out.
    tokenizer.add_special_tokens(specials)
    return tokenizer


def _build_llama_tokenizer() -> PreTrainedTokenizerFast:
    """Llama 3 style: case-sensitive, <|begin_of_text|> in front and nothing at the end, padded with <pad>.

    Every pre-token of diffusers' default prompt template is one piece, as in the real Llama 3 vocabulary, so the
    template's system prompt is 95 tokens with the BOS: the pipeline's hard-coded crop_start=95 removes exactly
    the system prompt and keeps the user prompt (and a template without crop_start computes 95 too)."""
    # Each word alone (the first of a prompt) and after a space, in lower and title case.
    words = [f"{word} {word} {word.title()} {word.title()}" for word in _WORDS]
    template = re.split("|".join(map(re.escape, _LLAMA_SPECIALS)), str(DEFAULT_PROMPT_TEMPLATE["template"]))
    tokenizer = _byte_level_unigram(_LLAMA_SPECIALS, [*template, *words])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        special_tokens=[("<|begin_of_text|>", tokenizer.token_to_id("<|begin_of_text|>"))],
    )
    # No model_max_length, like Llama 3's: the pipeline pads to max_sequence_length + crop_start itself.
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>", pad_token="<pad>"
    )


def _build_clip_tokenizer() -> PreTrainedTokenizerFast:
    """CLIP style: lowercased, <|startoftext|> ... <|endoftext|>, padded with <|endoftext|> to 77 tokens.

    The two specials take the last ids, as in CLIP-L (49406, 49407), so CLIPTextModel pools at the end-of-text
    token whether it looks for the first eos_token_id or (configs older than transformers 4.31) the largest id."""
    tokenizer = _byte_level_unigram([], [f"{word} {word}" for word in _WORDS])
    tokenizer.add_special_tokens(_CLIP_SPECIALS)
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    start, end = (tokenizer.token_to_id(token) for token in _CLIP_SPECIALS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", start), ("<|endoftext|>", end)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=CLIP_MAX_LENGTH,
    )


def build_tiny_hunyuan_pipeline() -> HunyuanVideoPipeline:
    """The whole pipeline on the CPU in float32, identical on every call; the global torch RNG is left as it was."""
    tokenizer = _build_llama_tokenizer()
    tokenizer_2 = _build_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        text_encoder = LlamaModel(
            LlamaConfig(
                vocab_size=len(tokenizer),
                hidden_size=LLAMA_DIM,
                intermediate_size=37,
                num_attention_heads=4,
                # The pipeline takes the hidden states 2 layers before the last (the real encoder has 32 layers);
                # with diffusers' test value of 2 that would be the embeddings, and no layer would ever run.
                num_hidden_layers=3,
                hidden_act="gelu",
                rms_norm_eps=1e-05,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        ).eval()
        torch.manual_seed(0)
        text_encoder_2 = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer_2),
                hidden_size=CLIP_DIM,
                intermediate_size=37,
                num_attention_heads=4,
                num_hidden_layers=2,
                max_position_embeddings=CLIP_MAX_LENGTH,
                hidden_act="gelu",
                layer_norm_eps=1e-05,
                bos_token_id=tokenizer_2.bos_token_id,
                eos_token_id=tokenizer_2.eos_token_id,
                pad_token_id=tokenizer_2.pad_token_id,
            )
        ).eval()
        torch.manual_seed(0)
        vae = AutoencoderKLHunyuanVideo(
            latent_channels=16,
            block_out_channels=(8, 8, 8, 8),
            layers_per_block=1,
            norm_num_groups=4,
            spatial_compression_ratio=8,
            temporal_compression_ratio=4,
        ).eval()
        torch.manual_seed(0)
        transformer = HunyuanVideoTransformer3DModel(
            in_channels=16,
            out_channels=16,
            num_attention_heads=2,
            attention_head_dim=10,
            num_layers=1,
            num_single_layers=1,
            num_refiner_layers=1,
            patch_size=2,
            patch_size_t=1,
            guidance_embeds=True,
            text_embed_dim=LLAMA_DIM,
            # The pipeline feeds CLIP's pooler output, which has the hidden size (not projection_dim).
            pooled_projection_dim=CLIP_DIM,
            rope_axes_dim=(2, 4, 4),
        ).eval()
    return HunyuanVideoPipeline(
        # The shift of HunyuanVideo's scheduler config.
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        vae=vae,
        text_encoder=text_encoder,
        # diffusers annotates LlamaTokenizerFast and CLIPTokenizer; any fast tokenizer of the same shape works.
        tokenizer=tokenizer,  # type: ignore[arg-type]
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,  # type: ignore[arg-type]
        transformer=transformer,
    )


def create_engine(spec: ModelSpec = TINY_RANDOM_HUNYUAN, device: str | None = None) -> HunyuanEngine:
    """Registry factory. float32 on the CPU: tests compare outputs exactly."""
    return HunyuanEngine(spec, build_tiny_hunyuan_pipeline, device or "cpu")
