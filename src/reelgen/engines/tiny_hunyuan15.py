"""tiny-random-hunyuan15: the real diffusers HunyuanVideo15Pipeline at a tiny random-weight config, built offline.

Like tiny_hunyuan: every component is the real class (a Qwen2.5-VL text model with an in-memory Qwen2-style fast
tokenizer and chat template, a T5 encoder with the real ByT5 tokenizer for quoted glyph text, the HunyuanVideo 1.5
VAE and transformer, the flow-matching Euler scheduler and the classifier-free-guidance guider), seeded so every
build has the same weights. As in the real model, the latents have 32 channels, the VAE compresses 4x in time and
16x in space and the transformer does not patchify (1x1), so frame counts follow 4k+1, sizes are multiples of 16,
and a 64x64 clip of 9 frames has a 32x3x4x4 latent. For tests: the output is noise.
"""

from __future__ import annotations

import inspect

import torch
from diffusers.guiders.classifier_free_guidance import ClassifierFreeGuidance
from diffusers.models.autoencoders.autoencoder_kl_hunyuanvideo15 import AutoencoderKLHunyuanVideo15
from diffusers.models.transformers.transformer_hunyuan_video15 import HunyuanVideo15Transformer3DModel
from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5 import HunyuanVideo15Pipeline
from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler
from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import Unigram
from transformers import ByT5Tokenizer, PreTrainedTokenizerFast, Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel

from reelgen.domain.models import FrameRule, ModelSpec, Size
from reelgen.engines.hunyuan15 import HunyuanVideo15Engine
from reelgen.engines.tiny_wan import _WORDS, build_tiny_t5

QWEN_DIM = 16
BYT5_DIM = 16
LATENT_CHANNELS = 32

TINY_RANDOM_HUNYUAN15 = ModelSpec(
    id="tiny-random-hunyuan15",
    family="hunyuan",
    description=(
        "The real diffusers HunyuanVideo15Pipeline at a tiny random-weight config, built offline. For tests only."
    ),
    # Multiples of 16 (the VAE's 16x, no transformer patching).
    sizes=(Size(64, 64), Size(96, 64), Size(64, 96)),
    default_size=Size(64, 64),
    fps=24,
    default_seconds=0.4,
    max_seconds=1.4,
    frame_rule=FrameRule(multiple=4, offset=1, min_frames=5, max_frames=33),
    default_steps=2,
    max_steps=50,
    # Real classifier-free guidance through the pipeline's guider, as the real checkpoints (two passes a step).
    default_guidance=6.0,
    inputs=("text",),
)

# Qwen2's pre-tokenizer split (tokenizer.json of Qwen2.5-VL): like Llama 3's, but digits one by one.
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen2.5's chat template, text messages only: a default system message when the first message is not one.
_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _system_message() -> str:
    """The system message the pipeline puts in front of every prompt (its encoder's default argument)."""
    default = inspect.signature(HunyuanVideo15Pipeline._get_mllm_prompt_embeds).parameters["system_message"].default
    assert isinstance(default, str)
    return default


def _build_qwen_tokenizer() -> PreTrainedTokenizerFast:
    """Qwen2 style: byte-level, no BOS, the chat specials as added tokens at the end of the vocabulary, padded on
    the right with <|endoftext|> (the pipeline crops a fixed number of tokens from the left).

    Its Unigram pieces are every pre-token of the chat template's fixed parts and of the tiny word list (whole
    words, preferred) plus the 256 byte characters, so no text needs an unknown token and different prompts get
    different ids. With one token per pre-token, as in the real Qwen vocabulary, "<|im_start|>system\\n{system
    message}<|im_end|>\\n<|im_start|>user\\n" is 108 tokens: the pipeline's hard-coded crop_start=108 removes
    exactly the system part and keeps the user prompt."""
    pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    # Each word alone (the first of a prompt) and after a space, in lower and title case.
    texts = [f"system\n{_system_message()}", "user\nassistant\nYou are a helpful assistant.\n "]
    texts += [f"{word} {word} {word.title()} {word.title()}" for word in _WORDS]
    words = dict.fromkeys(piece for text in texts for piece, _ in pre_tokenizer.pre_tokenize_str(text))
    pieces = [(word, -5.0) for word in words]
    # Sorted: the alphabet comes out of a hash set, and token ids must not change between processes.
    pieces += [(byte, -10.0) for byte in sorted(pre_tokenizers.ByteLevel.alphabet()) if byte not in words]
    tokenizer = Tokenizer(Unigram(pieces, unk_id=None, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    # Matched before pre-tokenization, so "<|im_start|>" in the template is one token, never spelled out.
    tokenizer.add_special_tokens(_QWEN_SPECIALS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="right",
        chat_template=_CHAT_TEMPLATE,
    )


def build_tiny_hunyuan15_pipeline() -> HunyuanVideo15Pipeline:
    """The whole pipeline on the CPU in float32, identical on every call; the global torch RNG is left as it was."""
    tokenizer = _build_qwen_tokenizer()
    tokenizer_2 = ByT5Tokenizer()  # bytes: needs no vocabulary file
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        text_encoder = Qwen2_5_VLTextModel(
            Qwen2_5_VLTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=QWEN_DIM,
                intermediate_size=37,
                # The pipeline takes the hidden states 2 layers before the last (the real encoder has 28 layers);
                # with 2 layers that would be the embeddings, and no layer would ever run.
                num_hidden_layers=3,
                num_attention_heads=2,
                num_key_value_heads=2,
                # Multimodal rotary positions: time, height, width sections of the 4 frequencies of a head.
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [1, 1, 2]},
                # Qwen's ids: <|endoftext|> begins (and pads), <|im_end|> ends.
                bos_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        ).eval()
        torch.manual_seed(0)
        text_encoder_2 = build_tiny_t5(len(tokenizer_2), BYT5_DIM)
        torch.manual_seed(0)
        vae = AutoencoderKLHunyuanVideo15(
            latent_channels=LATENT_CHANNELS,
            block_out_channels=(8, 8, 16, 32, 64),
            layers_per_block=1,
            spatial_compression_ratio=16,
            temporal_compression_ratio=4,
        ).eval()
        torch.manual_seed(0)
        transformer = HunyuanVideo15Transformer3DModel(
            # Noisy latents, the (zero) image-condition latents and their mask, concatenated.
            in_channels=2 * LATENT_CHANNELS + 1,
            out_channels=LATENT_CHANNELS,
            num_attention_heads=2,
            attention_head_dim=8,
            num_layers=1,
            num_refiner_layers=1,
            mlp_ratio=2.0,
            patch_size=1,
            patch_size_t=1,
            text_embed_dim=QWEN_DIM,
            text_embed_2_dim=BYT5_DIM,
            image_embed_dim=8,
            rope_axes_dim=(2, 2, 4),
            target_size=64,
            task_type="t2v",
        ).eval()
    return HunyuanVideo15Pipeline(
        text_encoder=text_encoder,
        # diffusers annotates Qwen2Tokenizer; any fast tokenizer with a chat template of the same shape works.
        tokenizer=tokenizer,  # type: ignore[arg-type]
        transformer=transformer,
        vae=vae,
        # The shift Tencent recommends for the 480p text-to-video checkpoint.
        scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        # The real checkpoints' guider: classifier-free guidance at 6.0 (the engine sets each job's scale).
        guider=ClassifierFreeGuidance(guidance_scale=6.0),
    )


def create_engine(spec: ModelSpec = TINY_RANDOM_HUNYUAN15, device: str | None = None) -> HunyuanVideo15Engine:
    """Registry factory. float32 on the CPU: tests compare outputs exactly."""
    return HunyuanVideo15Engine(spec, build_tiny_hunyuan15_pipeline, device or "cpu")
