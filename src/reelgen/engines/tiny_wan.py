"""tiny-random-wan: the real diffusers WanPipeline at a tiny random-weight config, built offline.

Every component is the real class (tokenizer, UMT5 text encoder, Wan VAE, Wan transformer, UniPC flow
scheduler), just small and randomly initialised from fixed seeds, like diffusers' own Wan tests. Nothing is
downloaded, and the same code always builds the same weights, so tests can compare videos bit for bit. The
output looks like coloured noise: this exercises every code path of a real Wan checkpoint in about a second.
"""

from __future__ import annotations

import string
from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel
from diffusers.pipelines.wan.pipeline_wan import WanPipeline
from diffusers.schedulers.scheduling_unipc_multistep import UniPCMultistepScheduler
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

from reelgen.domain.models import ModelSpec
from reelgen.engines.wan import WanEngine, default_device

# Real Wan pads prompts to 512 tokens; the tiny text encoder does not need that many.
MAX_SEQUENCE_LENGTH = 32
TEXT_DIM = 32

# Whole-word pieces for words common in video prompts; any other word is spelled out from single
# characters (as sentencepiece would), so different prompts always give different token ids.
_WORDS = """
a an the and or of in on at to from with by over under through into across along near behind above below
is are was walking running flying swimming dancing jumping sitting standing falling rising moving turning
cat cats dog dogs fox bird birds fish horse bear lion tiger wolf rabbit deer owl whale dolphin butterfly
man woman person people child children girl boy robot astronaut knight dragon car train boat ship plane
tree trees forest flower flowers grass field mountain mountains river lake sea ocean beach wave waves sky
cloud clouds rain snow storm sun sunset sunrise moon star stars night day light fire smoke water city
street road bridge house room kitchen window door garden park desert island space planet galaxy
red orange yellow green blue purple pink white black gray golden silver dark bright colorful
big small tall tiny huge old young beautiful slow fast calm cinematic realistic detailed
close up wide shot aerial view camera pan zoom tracking slow motion timelapse drone
""".split()  # noqa: SIM905 - a word list reads better as text


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A T5-style Unigram tokenizer over an in-memory vocabulary: <pad>=0, </s>=1, <unk>=2 as in UMT5."""
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -8.0)]
    pieces += [(f"▁{word}", -5.0) for word in dict.fromkeys(_WORDS)]
    pieces += [(ch, -10.0) for ch in string.ascii_lowercase + string.digits + string.punctuation]
    tokenizer = Tokenizer(Unigram(pieces, unk_id=2, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=MAX_SEQUENCE_LENGTH,
    )


def tiny_t5_config(vocab_size: int, d_model: int) -> dict[str, Any]:
    """Sizes of the 2-layer text encoder every tiny pipeline uses (UMT5 for Wan, T5 for LTX-Video and CogVideoX)."""
    return {
        "vocab_size": vocab_size,
        "d_model": d_model,
        "d_kv": 8,
        "d_ff": 64,
        "num_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
        "dropout_rate": 0.0,
    }


def build_tiny_t5(vocab_size: int, d_model: int) -> T5EncoderModel:
    """The T5 text encoder of the tiny LTX-Video and CogVideoX pipelines (both families use T5-XXL), in eval mode;
    seed torch first for the same weights every time."""
    return T5EncoderModel(T5Config(**tiny_t5_config(vocab_size, d_model))).eval()


def build_tiny_wan_pipeline() -> WanPipeline:
    """The whole pipeline on the CPU in float32, identical on every call. The global torch RNG is left as
    it was (a test seeding torch should not see its sequence shift because a model was built)."""
    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        text_encoder = UMT5EncoderModel(UMT5Config(**tiny_t5_config(len(tokenizer), TEXT_DIM))).eval()
        torch.manual_seed(0)
        vae = AutoencoderKLWan(
            base_dim=3,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        ).eval()
        torch.manual_seed(0)
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=16,
            out_channels=16,
            text_dim=TEXT_DIM,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            # diffusers' tests use 32, which caps the patch grid at 32 per axis (512 px); 832x480 needs 52.
            rope_max_seq_len=1024,
        ).eval()
    # The scheduler the Wan 2.1 480p checkpoints ship (flow matching, shift 3).
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0, num_train_timesteps=1000
    )
    return WanPipeline(
        # diffusers annotates this parameter as AutoTokenizer, a factory that no tokenizer is an instance of.
        tokenizer=tokenizer,  # type: ignore[arg-type]
        text_encoder=text_encoder,
        vae=vae,
        scheduler=scheduler,
        transformer=transformer,
    )


def create_engine(spec: ModelSpec, device: str | None = None) -> WanEngine:
    """Registry factory. float32 everywhere: the model is tiny and tests compare outputs exactly."""
    return WanEngine(
        spec,
        build_tiny_wan_pipeline,
        device or default_device(),
        torch.float32,
        max_sequence_length=MAX_SEQUENCE_LENGTH,
    )
