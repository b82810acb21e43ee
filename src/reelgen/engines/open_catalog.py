"""The open-weights model families (Wan, LTX-Video, LTX-2, HunyuanVideo, HunyuanVideo 1.5, CogVideoX) as registry
entries. Torch-free.

`catalog.register_builtin_models` calls `register_open_models`; this file holds only specs and factory paths,
so the HTTP process can list and validate these models without importing torch. Each entry's `source` is the
Hugging Face repo (diffusers layout) the worker loads; `reelgen.engines.weights` says whether it is cached.

Where the numbers come from (diffusers 0.42 source, pipelines/*, and the model cards):
- sizes: the resolutions each checkpoint was trained at. Wan 2.1/2.2 A14B: 832x480 (480p) and 1280x720
  (720p); Wan 2.2 TI2V 5B: 1280x704 (its VAE compresses 16x and the transformer patchifies 2x2, so sides are
  multiples of 32); LTX-Video: multiples of 32, trained up to 1216x704; LTX-2: multiples of 32, up to 1080p;
  HunyuanVideo: 1280x720 and 960x544; HunyuanVideo 1.5: 848x480 (480p) and 1280x720 (720p), its image-to-video
  checkpoints the size buckets their pipeline picks from the image (below); CogVideoX 5B: 720x480 only (its I2V
  checkpoint: 720x480 and 49 frames only, a learned position table); CogVideoX 1.5: 1360x768.
- frame rules: the VAEs compress time 4x (Wan, Hunyuan, CogVideoX: 4k+1 frames) or 8x (LTX, LTX-2: 8k+1),
  keeping the first frame on its own. Maxima are the trained lengths: Wan 81 (2.2 5B: 121), LTX 257, Hunyuan
  129, CogVideoX 49 (1.5: 81).
- steps/guidance: the pipelines' defaults and the model cards' recommendations (Wan 50 / 5.0, Wan 2.2 A14B 40
  / 4.0 (T2V) and 3.5 (I2V), LTX 50 / 3.0 (0.9.1), 30 / 5.0 (0.9.7 dev), 8 / 1.0 (distilled, guidance
  distilled), LTX-2 30 / 3.0 (diffusers' example), Hunyuan 50 / 6.0 (embedded guidance), HunyuanVideo 1.5
  50 / 6.0 (real CFG), CogVideoX 50 / 6.0).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from reelgen.domain.models import Footprint, FrameRule, ModelSpec, Size

if TYPE_CHECKING:
    from reelgen.engines.registry import RegisterFn

WAN_FACTORY = "reelgen.engines.wan:create_engine"
LTX_FACTORY = "reelgen.engines.ltx:create_engine"
LTX2_FACTORY = "reelgen.engines.ltx2:create_engine"
HUNYUAN_FACTORY = "reelgen.engines.hunyuan:create_engine"
HUNYUAN15_FACTORY = "reelgen.engines.hunyuan15:create_engine"
COGVIDEOX_FACTORY = "reelgen.engines.cogvideox:create_engine"

# The latent upsampler of LTX 0.9.7's two-pass recipe (the engine's upscale stage; optional).
LTX_0_9_7_UPSAMPLER = "Lightricks/ltxv-spatial-upscaler-0.9.7"

TEXT = ("text",)
TEXT_IMAGE = ("text", "image")


# Stated memory needs before download (engines/memory.py plans with the measured figures once loaded): weights
# in GB as the worker loads them (transformer and text encoder bf16, parameters x 2 bytes; Wan's VAE float32) and
# the transformer width. UMT5-XXL encoder (Wan): 5.7B parameters; T5-XXL encoder (LTX, CogVideoX): 4.8B.
WAN_1_3B_WEIGHTS = Footprint(transformer_gb=2.8, text_encoder_gb=11.4, vae_gb=0.5, hidden=1536)
WAN_14B_WEIGHTS = Footprint(transformer_gb=28.6, text_encoder_gb=11.4, vae_gb=0.5, hidden=5120)
# Wan 2.1 I2V: image cross-attention layers on top of the 14B, and a CLIP ViT-H image encoder.
WAN_I2V_14B_WEIGHTS = Footprint(
    transformer_gb=32.8, text_encoder_gb=11.4, vae_gb=0.5, hidden=5120, image_encoder_gb=1.3
)
WAN_5B_WEIGHTS = Footprint(transformer_gb=10.0, text_encoder_gb=11.4, vae_gb=1.4, hidden=3072)
# Wan 2.2 A14B: two 14B experts (high noise, low noise); one runs at a time.
WAN_A14B_WEIGHTS = Footprint(transformer_gb=28.6, text_encoder_gb=11.4, vae_gb=0.5, hidden=5120, experts=2)
LTX_2B_WEIGHTS = Footprint(transformer_gb=3.8, text_encoder_gb=9.5, vae_gb=0.8, hidden=2048)
LTX_13B_WEIGHTS = Footprint(transformer_gb=26.0, text_encoder_gb=9.5, vae_gb=0.8, hidden=4096)
# LTX-2: a 19B audio-video transformer (14B video, 5B audio; 32 heads x 128), Gemma 3 12B as text encoder, the
# video and audio VAEs with the vocoder.
LTX2_WEIGHTS = Footprint(transformer_gb=38.0, text_encoder_gb=24.4, vae_gb=1.5, hidden=4096)
# HunyuanVideo: a LLaVA-Llama-3-8B text encoder plus CLIP-L.
HUNYUAN_WEIGHTS = Footprint(transformer_gb=25.6, text_encoder_gb=16.3, vae_gb=0.5, hidden=3072)
# HunyuanVideo 1.5, every component bf16: an 8.33B transformer (54 blocks, 16 heads x 128), the text model of
# Qwen2.5-VL-7B (7.07B) plus the glyph ByT5-small encoder (0.22B), and a 1.26B VAE. Parameter counts of diffusers
# 0.42's classes at their default (released) configs and of Qwen2.5-VL-7B's text config, not of the downloaded
# files, which were not reachable from here.
HUNYUAN15_WEIGHTS = Footprint(transformer_gb=16.7, text_encoder_gb=14.6, vae_gb=2.5, hidden=2048)
# HunyuanVideo 1.5 I2V: the same transformer and encoders, plus a SigLIP vision encoder. The pipeline expects 729
# image tokens of 1152 features (27x27 patches of 14 px at 384 px: SigLIP so400m-patch14-384, 0.43B parameters
# with diffusers 0.42's transformers classes at that config); not measured on the downloaded files.
HUNYUAN15_I2V_WEIGHTS = Footprint(
    transformer_gb=16.7, text_encoder_gb=14.6, vae_gb=2.5, hidden=2048, image_encoder_gb=0.9
)
COGVIDEOX_WEIGHTS = Footprint(transformer_gb=11.1, text_encoder_gb=9.5, vae_gb=0.4, hidden=3072)
# CogVideoX-5b-I2V: the 5B transformer with twice the input channels and a learned position table (0.05B values);
# 1.5 I2V's extra input channels and ofs embedding add less than 0.01B parameters, so it keeps the 5B figure.
COGVIDEOX_I2V_WEIGHTS = Footprint(transformer_gb=11.3, text_encoder_gb=9.5, vae_gb=0.4, hidden=3072)


def _both(width: int, height: int) -> tuple[Size, Size]:
    """Landscape and portrait of one resolution."""
    return Size(width, height), Size(height, width)


# -- Wan (Wan-AI) ---------------------------------------------------------------------------------------------

WAN_480P = _both(832, 480)
WAN_720P = _both(1280, 720)
WAN_21_FRAMES = FrameRule(multiple=4, offset=1, min_frames=5, max_frames=81)
# Wan 2.1's recommended scheduler shift: 3.0 at 480p, 5.0 at 720p (diffusers' Wan docs); WanEngine applies it
# per request size. Wan 2.2 checkpoints ship their own scheduler settings.
WAN_21_SHIFT = {str(s): 3.0 for s in WAN_480P} | {str(s): 5.0 for s in WAN_720P}

WAN21_T2V_1_3B = ModelSpec(
    id="wan2.1-t2v-1.3b",
    family="wan",
    description="Wan 2.1 text-to-video, 1.3B parameters, 480p. The small Wan: fits in ~8 GB of VRAM with offload.",
    sizes=WAN_480P,
    default_size=Size(832, 480),
    fps=16,
    default_seconds=5.0,
    max_seconds=5.0,
    frame_rule=WAN_21_FRAMES,
    default_steps=50,
    max_steps=100,
    default_guidance=5.0,
    inputs=TEXT,
    needs_gpu=True,
    owned_by="Wan-AI",
    footprint=WAN_1_3B_WEIGHTS,
)

WAN21_T2V_14B = ModelSpec(
    id="wan2.1-t2v-14b",
    family="wan",
    description="Wan 2.1 text-to-video, 14B parameters, 480p and 720p.",
    sizes=WAN_720P + WAN_480P,
    default_size=Size(1280, 720),
    fps=16,
    default_seconds=5.0,
    max_seconds=5.0,
    frame_rule=WAN_21_FRAMES,
    default_steps=50,
    max_steps=100,
    default_guidance=5.0,
    inputs=TEXT,
    needs_gpu=True,
    owned_by="Wan-AI",
    footprint=WAN_14B_WEIGHTS,
)

WAN21_I2V_14B_480P = ModelSpec(
    id="wan2.1-i2v-14b-480p",
    family="wan",
    description="Wan 2.1 image-to-video, 14B parameters, 480p: animates a reference image following the prompt.",
    sizes=WAN_480P,
    default_size=Size(832, 480),
    fps=16,
    default_seconds=5.0,
    max_seconds=5.0,
    frame_rule=WAN_21_FRAMES,
    default_steps=50,
    max_steps=100,
    default_guidance=5.0,
    inputs=TEXT_IMAGE,
    requires_image=True,
    needs_gpu=True,
    owned_by="Wan-AI",
    footprint=WAN_I2V_14B_WEIGHTS,
)

WAN21_I2V_14B_720P = ModelSpec(
    id="wan2.1-i2v-14b-720p",
    family="wan",
    description="Wan 2.1 image-to-video, 14B parameters, 720p: animates a reference image following the prompt.",
    sizes=WAN_720P,
    default_size=Size(1280, 720),
    fps=16,
    default_seconds=5.0,
    max_seconds=5.0,
    frame_rule=WAN_21_FRAMES,
    default_steps=50,
    max_steps=100,
    default_guidance=5.0,
    inputs=TEXT_IMAGE,
    requires_image=True,
    needs_gpu=True,
    owned_by="Wan-AI",
    footprint=WAN_I2V_14B_WEIGHTS,
)

# Few-step presets: the base checkpoint with LightX2V's step- and CFG-distillation LoRA fused at load (4 steps,
# guidance 1: one transformer pass a step instead of two, so about 25x fewer passes than 50 guided steps). Trained
# at timesteps 1000, 937.5, 833.3 and 625, which Wan's UniPC scheduler at flow shift 5 makes for 4 steps.
LIGHTX2V_LORAS = "lightx2v/Wan2.1-Distill-Loras"
LIGHTX2V_SHIFT = {str(s): 5.0 for s in WAN_720P + WAN_480P}


def _four_step(base: ModelSpec, model_id: str, description: str) -> ModelSpec:
    return replace(
        base,
        id=model_id,
        description=description,
        default_steps=4,
        max_steps=8,
        default_guidance=1.0,
        negative_prompt=False,  # guidance-distilled: no unguided pass for a negative prompt to go into
        owned_by="Wan-AI, LightX2V",
    )


WAN21_T2V_14B_4STEP = _four_step(
    WAN21_T2V_14B,
    "wan2.1-t2v-14b-lightx2v-4step",
    "Wan 2.1 text-to-video 14B as a 4-step model (LightX2V's distillation LoRA fused in): 480p and 720p in about a "
    "twentieth of the 50-step time.",
)
WAN21_I2V_14B_480P_4STEP = _four_step(
    WAN21_I2V_14B_480P,
    "wan2.1-i2v-14b-480p-lightx2v-4step",
    "Wan 2.1 image-to-video 14B 480p as a 4-step model (LightX2V's distillation LoRA fused in).",
)

WAN22_TI2V_5B = ModelSpec(
    id="wan2.2-ti2v-5b",
    family="wan",
    description=(
        "Wan 2.2 text/image-to-video, 5B parameters, 720p at 24 fps, with the high-compression Wan 2.2 VAE. "
        "Runs on a 24 GB GPU."
    ),
    sizes=_both(1280, 704),
    default_size=Size(1280, 704),
    fps=24,
    default_seconds=5.0,
    max_seconds=5.0,
    frame_rule=FrameRule(multiple=4, offset=1, min_frames=5, max_frames=121),
    default_steps=50,
    max_steps=100,
    default_guidance=5.0,
    # One checkpoint, both modes: WanEngine runs its components as WanImageToVideoPipeline when an image comes.
    inputs=TEXT_IMAGE,
    needs_gpu=True,
    owned_by="Wan-AI",
    footprint=WAN_5B_WEIGHTS,
)

WAN22_T2V_A14B = ModelSpec(
    id="wan2.2-t2v-a14b",
    family="wan",
    description=(
        "Wan 2.2 text-to-video, two 14B experts (high-noise then low-noise, switched at the checkpoint's boundary "
        "ratio), 480p and 720p."
    ),
    sizes=WAN_720P + WAN_480P,
    default_size=Size(1280, 720),
    fps=16,
    default_seconds=5.0,
    max_seconds=5.0,
    frame_rule=WAN_21_FRAMES,
    default_steps=40,
    max_steps=100,
    default_guidance=4.0,
    inputs=TEXT,
    needs_gpu=True,
    owned_by="Wan-AI",
    footprint=WAN_A14B_WEIGHTS,
)

WAN22_I2V_A14B = ModelSpec(
    id="wan2.2-i2v-a14b",
    family="wan",
    description="Wan 2.2 image-to-video, two 14B experts, 480p and 720p.",
    sizes=WAN_720P + WAN_480P,
    default_size=Size(1280, 720),
    fps=16,
    default_seconds=5.0,
    max_seconds=5.0,
    frame_rule=WAN_21_FRAMES,
    default_steps=40,
    max_steps=100,
    default_guidance=3.5,
    inputs=TEXT_IMAGE,
    requires_image=True,
    needs_gpu=True,
    owned_by="Wan-AI",
    footprint=WAN_A14B_WEIGHTS,
)

# -- LTX-Video (Lightricks) -----------------------------------------------------------------------------------

LTX_SIZES = _both(768, 512) + _both(704, 480) + _both(832, 480) + _both(1216, 704) + (Size(512, 512),)
LTX_FRAMES = FrameRule(multiple=8, offset=1, min_frames=9, max_frames=257)

LTX_VIDEO_0_9_1 = ModelSpec(
    id="ltx-video-0.9.1",
    family="ltx",
    description="LTX-Video 0.9.1, 2B parameters: fast, real-time-class video at 24 fps, up to 10 s.",
    sizes=LTX_SIZES,
    default_size=Size(704, 480),
    fps=24,
    default_seconds=5.0,
    max_seconds=10.0,
    frame_rule=LTX_FRAMES,
    default_steps=50,
    max_steps=100,
    default_guidance=3.0,
    inputs=TEXT_IMAGE,
    needs_gpu=True,
    owned_by="Lightricks",
    footprint=LTX_2B_WEIGHTS,
)

LTX_VIDEO_0_9_7_DEV = ModelSpec(
    id="ltx-video-0.9.7-dev",
    family="ltx",
    description="LTX-Video 0.9.7 dev, 13B parameters: the quality LTX, 24 fps, up to 10 s.",
    sizes=LTX_SIZES,
    default_size=Size(768, 512),
    fps=24,
    default_seconds=5.0,
    max_seconds=10.0,
    frame_rule=LTX_FRAMES,
    default_steps=30,
    max_steps=100,
    default_guidance=5.0,
    inputs=TEXT_IMAGE,
    needs_gpu=True,
    owned_by="Lightricks",
    footprint=LTX_13B_WEIGHTS,
)

LTX_VIDEO_0_9_7_DISTILLED = ModelSpec(
    id="ltx-video-0.9.7-distilled",
    family="ltx",
    description="LTX-Video 0.9.7 distilled, 13B parameters, guidance-distilled: 8 steps, no CFG.",
    sizes=LTX_SIZES,
    default_size=Size(768, 512),
    fps=24,
    default_seconds=5.0,
    max_seconds=10.0,
    frame_rule=LTX_FRAMES,
    default_steps=8,
    max_steps=50,
    default_guidance=1.0,
    inputs=TEXT_IMAGE,
    needs_gpu=True,
    owned_by="Lightricks",
    footprint=LTX_13B_WEIGHTS,
)

LTX_2 = ModelSpec(
    id="ltx-2",
    family="ltx2",
    description="LTX-2, 19B parameters: video with synchronised sound (speech, music, effects) in one pass, "
    "24 fps, up to 10 s, up to 1080p.",
    # Multiples of 32 (LTX2Pipeline.check_inputs); 768x512 is diffusers' example size.
    sizes=_both(768, 512) + _both(1280, 704) + _both(1920, 1088) + (Size(512, 512),),
    default_size=Size(768, 512),
    fps=24,
    default_seconds=5.0,
    max_seconds=10.0,
    frame_rule=LTX_FRAMES,
    default_steps=30,
    max_steps=100,
    default_guidance=3.0,
    inputs=TEXT_IMAGE,
    needs_gpu=True,
    owned_by="Lightricks",
    footprint=LTX2_WEIGHTS,
)

# -- HunyuanVideo (Tencent; diffusers weights from hunyuanvideo-community) -----------------------------------

HUNYUAN_VIDEO = ModelSpec(
    id="hunyuanvideo",
    family="hunyuan",
    description="HunyuanVideo, 13B parameters, 720p and 544p at 24 fps.",
    sizes=_both(1280, 720) + _both(960, 544),
    default_size=Size(1280, 720),
    fps=24,
    default_seconds=5.0,
    max_seconds=5.375,  # 129 frames
    frame_rule=FrameRule(multiple=4, offset=1, min_frames=5, max_frames=129),
    default_steps=50,
    max_steps=100,
    default_guidance=6.0,
    inputs=TEXT,
    negative_prompt=False,  # guidance-distilled (embedded guidance)
    needs_gpu=True,
    owned_by="tencent",
    footprint=HUNYUAN_WEIGHTS,
)

# -- HunyuanVideo 1.5 (Tencent; diffusers weights from hunyuanvideo-community) --------------------------------
#
# Sources: Tencent-Hunyuan/HunyuanVideo-1.5 README ("Optimal Inference Configurations": 480p and 720p T2V at CFG
# 6, 50 steps, flow shift 5 (480p) and 9 (720p); `--video_length` 121; its diffusers example exports at fps=24 and
# loads hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-720p_t2v), diffusers 0.42's HunyuanVideo15Pipeline
# (num_frames=121, num_inference_steps=50, sizes from its 16:9 buckets: 848x480 at target_size 640, 1280x720 at
# 960) and diffusers' HunyuanVideo-1.5 docs (the guider's guidance_scale 6.0). The 480p repo id: diffusers' docs
# example names "HunyuanVideo-1.5-Diffusers-480p_t2v", and SimpleTuner's and FastVideo's HunyuanVideo 1.5 support
# load it from hunyuanvideo-community. Not confirmed here: the shift each community repo's scheduler_config.json
# ships (the engine uses the shipped scheduler as is), and lengths past 121 frames (the model card says 5-10 s;
# only 121 is a documented default), so 121 is the maximum.

HUNYUAN15_FRAMES = FrameRule(multiple=4, offset=1, min_frames=5, max_frames=121)


def _hunyuan15_t2v(resolution: str, width: int, height: int) -> ModelSpec:
    """The two HunyuanVideo 1.5 text-to-video checkpoints differ only in their resolution."""
    return ModelSpec(
        id=f"hunyuanvideo1.5-t2v-{resolution}",
        family="hunyuan",
        description=(
            f"HunyuanVideo 1.5 text-to-video, 8.3B parameters, {resolution} at 24 fps, up to 5 s. Classifier-free "
            "guidance (negative prompts work); renders quoted text in the prompt."
        ),
        sizes=_both(width, height),
        default_size=Size(width, height),
        fps=24,
        default_seconds=5.0,
        max_seconds=5.0,  # 121 frames
        frame_rule=HUNYUAN15_FRAMES,
        default_steps=50,
        max_steps=100,
        default_guidance=6.0,
        inputs=TEXT,
        needs_gpu=True,
        owned_by="tencent",
        footprint=HUNYUAN15_WEIGHTS,
    )


HUNYUAN15_T2V_480P = _hunyuan15_t2v("480p", 848, 480)
HUNYUAN15_T2V_720P = _hunyuan15_t2v("720p", 1280, 720)

# The image-to-video checkpoints (hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-{480p,720p}_i2v; diffusers'
# docstring example, same settings as text to video: 121 frames, 50 steps, the guider's 6.0, 24 fps). Their pipeline
# takes no size: it centre-crops the image to the bucket (multiples of 16 around the transformer's target_size: 640
# at 480p, 960 at 720p) nearest its aspect ratio. The sizes are buckets that come out for an image of their own
# shape: landscape, square and portrait. Not 480x848 or 720x1280: diffusers 0.42 rounds those buckets' ratios up
# (HunyuanVideo15ImageProcessor.calculate_default_height_width), so an image of that shape gets 480x832 / 720x1248.


def _hunyuan15_i2v(resolution: str, sizes: tuple[Size, ...]) -> ModelSpec:
    """The two HunyuanVideo 1.5 image-to-video checkpoints differ only in their resolution."""
    return ModelSpec(
        id=f"hunyuanvideo1.5-i2v-{resolution}",
        family="hunyuan",
        description=(
            f"HunyuanVideo 1.5 image-to-video, 8.3B parameters, {resolution} at 24 fps, up to 5 s: animates a "
            "reference image following the prompt. Classifier-free guidance (negative prompts work)."
        ),
        sizes=sizes,
        default_size=sizes[0],
        fps=24,
        default_seconds=5.0,
        max_seconds=5.0,  # 121 frames
        frame_rule=HUNYUAN15_FRAMES,
        default_steps=50,
        max_steps=100,
        default_guidance=6.0,
        inputs=TEXT_IMAGE,
        requires_image=True,
        needs_gpu=True,
        owned_by="tencent",
        footprint=HUNYUAN15_I2V_WEIGHTS,
    )


HUNYUAN15_I2V_480P = _hunyuan15_i2v("480p", (Size(848, 480), Size(640, 640), Size(480, 832)))
HUNYUAN15_I2V_720P = _hunyuan15_i2v("720p", (Size(1280, 720), Size(960, 960), Size(720, 1248)))

# -- CogVideoX (THUDM / Zhipu AI) ------------------------------------------------------------------------------

COGVIDEOX_5B = ModelSpec(
    id="cogvideox-5b",
    family="cogvideox",
    description="CogVideoX 5B, 720x480, 6 s at 8 fps.",
    sizes=(Size(720, 480),),
    default_size=Size(720, 480),
    fps=8,
    default_seconds=6.0,
    max_seconds=6.0,
    frame_rule=FrameRule(multiple=4, offset=1, min_frames=9, max_frames=49),
    default_steps=50,
    max_steps=100,
    default_guidance=6.0,
    inputs=TEXT,
    needs_gpu=True,
    owned_by="THUDM",
    footprint=COGVIDEOX_WEIGHTS,
)

COGVIDEOX_1_5_5B = ModelSpec(
    id="cogvideox1.5-5b",
    family="cogvideox",
    description="CogVideoX 1.5 5B, 1360x768, 5 s at 16 fps.",
    sizes=(Size(1360, 768), Size(768, 1360)),
    default_size=Size(1360, 768),
    fps=16,
    default_seconds=5.0,
    max_seconds=5.0,
    frame_rule=FrameRule(multiple=4, offset=1, min_frames=9, max_frames=81),
    default_steps=50,
    max_steps=100,
    default_guidance=6.0,
    inputs=TEXT,
    needs_gpu=True,
    owned_by="THUDM",
    footprint=COGVIDEOX_WEIGHTS,
)

# Image to video (THUDM/CogVideoX-5b-I2V, THUDM/CogVideoX1.5-5B-I2V model cards: 50 steps, guidance 6 with dynamic
# CFG). The 5B I2V transformer adds a position table learned at 720x480 and 49 frames: other sizes fail in it, and
# diffusers replaces the table for other lengths, so it makes 6 s only. 1.5 I2V accepts other sizes (the short
# side 768, the long one up to 1360, multiples of 16); the catalog keeps the card's default.

COGVIDEOX_5B_I2V = ModelSpec(
    id="cogvideox-5b-i2v",
    family="cogvideox",
    description="CogVideoX 5B image-to-video, 720x480, 6 s at 8 fps: animates a reference image following the prompt.",
    sizes=(Size(720, 480),),
    default_size=Size(720, 480),
    fps=8,
    default_seconds=6.0,
    max_seconds=6.0,
    frame_rule=FrameRule(multiple=4, offset=1, min_frames=49, max_frames=49),
    default_steps=50,
    max_steps=100,
    default_guidance=6.0,
    inputs=TEXT_IMAGE,
    requires_image=True,
    needs_gpu=True,
    owned_by="THUDM",
    footprint=COGVIDEOX_I2V_WEIGHTS,
)

COGVIDEOX_1_5_5B_I2V = ModelSpec(
    id="cogvideox1.5-5b-i2v",
    family="cogvideox",
    description=(
        "CogVideoX 1.5 5B image-to-video, 1360x768, 5 s at 16 fps: animates a reference image following the prompt."
    ),
    sizes=(Size(1360, 768), Size(768, 1360)),
    default_size=Size(1360, 768),
    fps=16,
    default_seconds=5.0,
    max_seconds=5.0,
    frame_rule=FrameRule(multiple=4, offset=1, min_frames=9, max_frames=81),
    default_steps=50,
    max_steps=100,
    default_guidance=6.0,
    inputs=TEXT_IMAGE,
    requires_image=True,
    needs_gpu=True,
    owned_by="THUDM",
    footprint=COGVIDEOX_WEIGHTS,
)

# (spec, factory, options): the registry passes the options to the factory as keyword arguments.
OPEN_MODELS: tuple[tuple[ModelSpec, str, dict[str, object]], ...] = (
    (WAN21_T2V_1_3B, WAN_FACTORY, {"source": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "flow_shift": WAN_21_SHIFT}),
    (WAN21_T2V_14B, WAN_FACTORY, {"source": "Wan-AI/Wan2.1-T2V-14B-Diffusers", "flow_shift": WAN_21_SHIFT}),
    (
        WAN21_I2V_14B_480P,
        WAN_FACTORY,
        {"source": "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", "image_to_video": True, "flow_shift": WAN_21_SHIFT},
    ),
    (
        WAN21_I2V_14B_720P,
        WAN_FACTORY,
        {"source": "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers", "image_to_video": True, "flow_shift": WAN_21_SHIFT},
    ),
    (
        WAN21_T2V_14B_4STEP,
        WAN_FACTORY,
        {
            "source": "Wan-AI/Wan2.1-T2V-14B-Diffusers",
            "flow_shift": LIGHTX2V_SHIFT,
            "distill_lora": {"source": LIGHTX2V_LORAS, "file": "wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors"},
        },
    ),
    (
        WAN21_I2V_14B_480P_4STEP,
        WAN_FACTORY,
        {
            "source": "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
            "image_to_video": True,
            "flow_shift": LIGHTX2V_SHIFT,
            "distill_lora": {"source": LIGHTX2V_LORAS, "file": "wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors"},
        },
    ),
    (WAN22_TI2V_5B, WAN_FACTORY, {"source": "Wan-AI/Wan2.2-TI2V-5B-Diffusers"}),
    (WAN22_T2V_A14B, WAN_FACTORY, {"source": "Wan-AI/Wan2.2-T2V-A14B-Diffusers"}),
    (WAN22_I2V_A14B, WAN_FACTORY, {"source": "Wan-AI/Wan2.2-I2V-A14B-Diffusers", "image_to_video": True}),
    # 0.9.1 and later VAEs are timestep-conditioned: decode at t=0.05 with 2.5% noise (diffusers' LTX docs);
    # 0.9.5 and later animate images through LTXConditionPipeline.
    (
        LTX_VIDEO_0_9_1,
        LTX_FACTORY,
        {"source": "diffusers/LTX-Video-0.9.1", "decode_timestep": 0.05, "decode_noise_scale": 0.025},
    ),
    (
        LTX_VIDEO_0_9_7_DEV,
        LTX_FACTORY,
        {
            "source": "Lightricks/LTX-Video-0.9.7-dev",
            "decode_timestep": 0.05,
            "decode_noise_scale": 0.025,
            "condition_pipeline": True,
            "upsampler": LTX_0_9_7_UPSAMPLER,
        },
    ),
    (
        LTX_VIDEO_0_9_7_DISTILLED,
        LTX_FACTORY,
        {
            "source": "Lightricks/LTX-Video-0.9.7-distilled",
            "decode_timestep": 0.05,
            "decode_noise_scale": 0.025,
            "condition_pipeline": True,
            "upsampler": LTX_0_9_7_UPSAMPLER,
        },
    ),
    # The pipeline's own guidance defaults (audio CFG 7, spatio-temporal guidance, modality isolation).
    (LTX_2, LTX2_FACTORY, {"source": "Lightricks/LTX-2"}),
    (HUNYUAN_VIDEO, HUNYUAN_FACTORY, {"source": "hunyuanvideo-community/HunyuanVideo"}),
    (HUNYUAN15_T2V_480P, HUNYUAN15_FACTORY, {"source": "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_t2v"}),
    (HUNYUAN15_T2V_720P, HUNYUAN15_FACTORY, {"source": "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-720p_t2v"}),
    (
        HUNYUAN15_I2V_480P,
        HUNYUAN15_FACTORY,
        {"source": "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v", "image_to_video": True},
    ),
    (
        HUNYUAN15_I2V_720P,
        HUNYUAN15_FACTORY,
        {"source": "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-720p_i2v", "image_to_video": True},
    ),
    (COGVIDEOX_5B, COGVIDEOX_FACTORY, {"source": "THUDM/CogVideoX-5b"}),
    (COGVIDEOX_1_5_5B, COGVIDEOX_FACTORY, {"source": "THUDM/CogVideoX1.5-5B"}),
    (COGVIDEOX_5B_I2V, COGVIDEOX_FACTORY, {"source": "THUDM/CogVideoX-5b-I2V", "image_to_video": True}),
    (COGVIDEOX_1_5_5B_I2V, COGVIDEOX_FACTORY, {"source": "THUDM/CogVideoX1.5-5B-I2V", "image_to_video": True}),
)


def register_open_models(register: RegisterFn) -> None:
    for spec, factory, options in OPEN_MODELS:
        register(spec, factory, options=options)
