"""GenerationParams: the full recipe of one video, resolved and validated before a job is enqueued."""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from reelgen.domain.errors import InvalidParams
from reelgen.domain.models import ModelSpec, Size

MAX_SEED = 2**63 - 1
# Speed presets, fastest last (reelgen.engines.presets says what each one does per model family).
PRESETS: tuple[str, str, str] = ("quality", "balanced", "fast")
# LoRA names are plain file stems in the server's LoRA folder (reelgen.engines.lora checks the folder).
_LORA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MIN_LORA_SCALE = -2.0
MAX_LORA_SCALE = 2.0


@dataclass(frozen=True, slots=True)
class ParamLimits:
    """Deployment-wide caps on what a user controls, and the defaults they start from (from settings)."""

    max_prompt_chars: int = 2000
    max_steps: int = 100
    max_n: int = 4
    max_seconds: float = 20.0
    default_preset: str = "quality"


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Everything needed to reproduce a video. All fields resolved: no model defaults left to guess."""

    prompt: str
    model: str
    seconds: float
    size: Size
    fps: int
    num_frames: int
    seed: int
    steps: int
    guidance_scale: float
    negative_prompt: str = ""
    n: int = 1
    # Storage key of an uploaded reference image (image-to-video), never a user-supplied path.
    input_image: str | None = None
    # Speed preset: quality (exact) | balanced | fast (step caches; ignored by few-step jobs).
    preset: str = "quality"
    # A LoRA from the server's LoRA folder, by name, and its strength.
    lora: str | None = None
    lora_scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size"] = str(self.size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerationParams:
        d = dict(d)
        d["size"] = Size.parse(d["size"])
        return cls(**d)


def validate_params(
    spec: ModelSpec,
    limits: ParamLimits,
    *,
    prompt: str,
    seconds: float | str | None = None,
    size: Size | str | None = None,
    fps: int | None = None,
    seed: int | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    negative_prompt: str | None = None,
    n: int | None = None,
    input_image: str | None = None,
    preset: str | None = None,
    lora: str | None = None,
    lora_scale: float | None = None,
    lora_exists: Callable[[str], bool] | None = None,
) -> GenerationParams:
    """Check every field against the model and deployment limits; fill defaults. Raises InvalidParams(param=field).

    `lora_exists` answers whether the server's LoRA folder has a name (None: LoRAs are not enabled here)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidParams("prompt must be a non-empty string", param="prompt")
    if len(prompt) > limits.max_prompt_chars:
        raise InvalidParams(
            f"prompt is {len(prompt)} characters; the maximum is {limits.max_prompt_chars}", param="prompt"
        )
    neg = negative_prompt or ""
    if len(neg) > limits.max_prompt_chars:
        raise InvalidParams(
            f"negative_prompt is longer than {limits.max_prompt_chars} characters", param="negative_prompt"
        )
    if neg.strip() and not spec.negative_prompt:
        raise InvalidParams(
            f"model {spec.id} is guidance-distilled and takes no negative_prompt", param="negative_prompt"
        )

    secs = _number(seconds, spec.default_seconds, "seconds")
    max_secs = min(spec.max_seconds, limits.max_seconds)
    if not (0 < secs <= max_secs):
        raise InvalidParams(
            f"seconds must be greater than 0 and at most {max_secs:g} for model {spec.id}", param="seconds"
        )

    if size is None:
        sz = spec.default_size
    elif isinstance(size, Size):
        sz = size
    else:
        try:
            sz = Size.parse(size)
        except ValueError as e:
            raise InvalidParams(str(e), param="size") from None
    if sz not in spec.sizes:
        supported = ", ".join(str(s) for s in spec.sizes)
        raise InvalidParams(
            f"size {sz} is not supported by model {spec.id}; supported sizes: {supported}", param="size"
        )

    frame_rate = int(_number(fps, spec.fps, "fps"))
    if not (1 <= frame_rate <= 60):
        raise InvalidParams("fps must be between 1 and 60", param="fps")
    frames = spec.num_frames(secs, frame_rate)
    if frames > spec.frame_rule.max_frames:
        raise InvalidParams(
            f"{secs:g} seconds at {frame_rate} fps needs {frames} frames; model {spec.id} makes at most "
            f"{spec.frame_rule.max_frames}",
            param="seconds",
        )

    step_cap = min(spec.max_steps, limits.max_steps)
    n_steps = int(_number(steps, spec.default_steps, "steps"))
    if not (1 <= n_steps <= step_cap):
        raise InvalidParams(f"steps must be between 1 and {step_cap}", param="steps")

    guidance = _number(guidance_scale, spec.default_guidance, "guidance_scale")
    if not (0 <= guidance <= 30):
        raise InvalidParams("guidance_scale must be between 0 and 30", param="guidance_scale")

    variations = int(_number(n, 1, "n"))
    if not (1 <= variations <= limits.max_n):
        raise InvalidParams(f"n must be between 1 and {limits.max_n}", param="n")

    if seed is None:
        seed_value = secrets.randbelow(2**31)
    else:
        seed_value = _integer(seed, "seed")
        if not (0 <= seed_value <= MAX_SEED):
            raise InvalidParams(f"seed must be between 0 and {MAX_SEED}", param="seed")

    if input_image is not None and "image" not in spec.inputs:
        raise InvalidParams(f"model {spec.id} does not accept an input image", param="input_reference")
    if input_image is None and spec.requires_image:
        raise InvalidParams(
            f"model {spec.id} animates an image: send input_reference (an image file)", param="input_reference"
        )

    chosen_preset = preset or limits.default_preset
    if chosen_preset not in PRESETS:
        raise InvalidParams(f"preset must be one of {', '.join(PRESETS)}; got {chosen_preset!r}", param="preset")
    lora_name, scale = _lora(lora, lora_scale, lora_exists)

    return GenerationParams(
        prompt=prompt,
        model=spec.id,
        seconds=secs,
        size=sz,
        fps=frame_rate,
        num_frames=frames,
        seed=seed_value,
        steps=n_steps,
        guidance_scale=guidance,
        negative_prompt=neg,
        n=variations,
        input_image=input_image,
        preset=chosen_preset,
        lora=lora_name,
        lora_scale=scale,
    )


def is_lora_name(name: str) -> bool:
    """Whether `name` can name a LoRA: a plain file stem (letters, digits, `.`, `_`, `-`; no `..`, no paths)."""
    return bool(_LORA_NAME.fullmatch(name)) and ".." not in name


def _lora(name: object, scale: float | None, exists: Callable[[str], bool] | None) -> tuple[str | None, float]:
    if name is None or name == "":
        if scale is not None and scale != "":
            raise InvalidParams("lora_scale needs a lora", param="lora_scale")
        return None, 1.0
    if not isinstance(name, str) or not is_lora_name(name):
        raise InvalidParams(
            "lora must be the plain name of a LoRA (letters, digits, '.', '_', '-'; no paths)", param="lora"
        )
    if exists is None:
        raise InvalidParams("this server has no LoRA folder (REELGEN_LORA_DIR)", param="lora")
    if not exists(name):
        raise InvalidParams(f"no LoRA named {name!r} on this server", param="lora")
    value = _number(scale, 1.0, "lora_scale")
    if not (MIN_LORA_SCALE <= value <= MAX_LORA_SCALE):
        raise InvalidParams(f"lora_scale must be between {MIN_LORA_SCALE:g} and {MAX_LORA_SCALE:g}", param="lora_scale")
    return name, value


def _number(value: object, default: float, field: str) -> float:
    if value is None or value == "":
        return float(default)
    if isinstance(value, bool):
        raise InvalidParams(f"{field} must be a number", param=field)
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParams(f"{field} must be a number, got {value!r}", param=field) from None
    if not math.isfinite(x):
        raise InvalidParams(f"{field} must be finite", param=field)
    if field in ("steps", "n", "fps", "seed") and x != int(x):
        raise InvalidParams(f"{field} must be an integer", param=field)
    return x


def _integer(value: object, field: str) -> int:
    """Exact integer parsing (a float would lose precision above 2**53)."""
    if isinstance(value, bool):
        raise InvalidParams(f"{field} must be an integer", param=field)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise InvalidParams(f"{field} must be an integer, got {value!r}", param=field) from None
