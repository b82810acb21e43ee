"""What a model can make: sizes, durations, frame-count rules, defaults. Torch-free, so the API can validate."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[xX\u00d7]\s*(\d{1,5})\s*$")


@dataclass(frozen=True, slots=True, order=True)
class Size:
    width: int
    height: int

    @classmethod
    def parse(cls, text: str) -> Size:
        m = _SIZE_RE.match(text)
        if not m:
            raise ValueError(f"size must look like WIDTHxHEIGHT, e.g. 832x480; got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True, slots=True)
class FrameRule:
    """Valid frame counts are `multiple * k + offset` (Wan: 4k+1, LTX: 8k+1), between min and max."""

    multiple: int = 1
    offset: int = 0
    min_frames: int = 1
    max_frames: int = 1024

    def frames_for(self, seconds: float, fps: int) -> int:
        """The valid frame count closest to seconds*fps (never below min_frames)."""
        wanted = max(round(seconds * fps), self.min_frames)
        k = max(round((wanted - self.offset) / self.multiple), 0)
        frames = self.multiple * k + self.offset
        while frames < self.min_frames:
            frames += self.multiple
        while frames > self.max_frames and frames - self.multiple >= self.min_frames:
            frames -= self.multiple
        return frames


@dataclass(frozen=True, slots=True)
class Footprint:
    """A model's stated memory needs, known before its weights are downloaded: GB of weights per component in
    the dtype the worker loads them in (bf16 transformer and text encoder, fp32 VAE for Wan), and the
    transformer's width, which activations scale with. The worker measures the real figures once loaded; these
    drive `reelgen models` ("too large for this GPU") and the memory plan's estimates until then."""

    transformer_gb: float
    text_encoder_gb: float
    vae_gb: float
    # attention heads x head dim of the denoising transformer.
    hidden: int
    # Wan 2.2 A14B: two experts of transformer_gb each (only one runs at a time).
    experts: int = 1
    # CLIP image encoder of Wan 2.1 I2V.
    image_encoder_gb: float = 0.0

    @property
    def weights_gb(self) -> float:
        return self.transformer_gb * self.experts + self.text_encoder_gb + self.vae_gb + self.image_encoder_gb


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Registry entry for one model: everything the API needs to validate a request without loading it."""

    id: str
    family: str
    description: str
    sizes: tuple[Size, ...]
    default_size: Size
    fps: int
    default_seconds: float
    max_seconds: float
    frame_rule: FrameRule
    default_steps: int
    max_steps: int
    default_guidance: float
    inputs: tuple[str, ...] = ("text",)
    # Image-to-video checkpoints that cannot start from text alone: a request without an image is a 400 at the
    # API instead of a failure in the worker.
    requires_image: bool = False
    # Guidance-distilled models (HunyuanVideo) have no pass a negative prompt could go into: a request with one is a
    # 400 at the API instead of a prompt silently ignored.
    negative_prompt: bool = True
    # Stages this model can run; a job is a chain of them (generate -> extend -> upscale -> interpolate).
    stages: tuple[str, ...] = ("generate",)
    needs_gpu: bool = False
    vocabulary: tuple[str, ...] = field(default=())
    owned_by: str = "reelgen"
    # Stated memory needs of open-weights checkpoints (None: measured once loaded, e.g. tiny test models).
    footprint: Footprint | None = None

    @property
    def weights_gb(self) -> float | None:
        return None if self.footprint is None else self.footprint.weights_gb

    def num_frames(self, seconds: float, fps: int | None = None) -> int:
        return self.frame_rule.frames_for(seconds, fps or self.fps)
