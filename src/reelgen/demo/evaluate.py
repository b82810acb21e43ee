"""Score the demo model on held-out captions (``reelgen eval-demo``, ``benchmarks/demo_eval.py``).

Scenes come from ``sample_spec(rng, "heldout")``: (colour, shape, motion) combinations the model never saw in
training, each word of which it did see. The prompt is the scene's canonical caption ("a yellow ring stays still
on a gray background"), the clip is generated through the same ``WanPipeline.__call__`` the engine runs, and
``demo.checker.check`` scores it against the scene: colour, shape, motion, background.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers.pipelines.wan.pipeline_wan import WanPipeline

from reelgen.demo.captions import caption
from reelgen.demo.checker import CheckResult, check
from reelgen.demo.model import MAX_SEQUENCE_LENGTH, NUM_FRAMES, SIZE, UPSCALE
from reelgen.demo.world import SceneSpec, sample_spec
from reelgen.engines.wan import pipeline_num_frames
from reelgen.media.resize import upscale_frames

ATTRIBUTES = ("colour", "shape", "motion", "background")
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 4.0


@dataclass
class EvalResult:
    n: int = 0
    correct: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ATTRIBUTES, 0))
    all_ok: int = 0
    seconds: list[float] = field(default_factory=list)
    rows: list[dict[str, str | bool | None]] = field(default_factory=list)

    def accuracy(self, attribute: str) -> float:
        return self.correct[attribute] / self.n if self.n else 0.0

    def record(self, got: CheckResult, spec: SceneSpec, prompt: str = "") -> None:
        """Count one scored clip: per attribute, all four, and a row with what was asked and what was seen."""
        oks = {"colour": got.colour_ok, "shape": got.shape_ok, "motion": got.motion_ok, "background": got.background_ok}
        self.n += 1
        for a, ok in oks.items():
            self.correct[a] += bool(ok)
        self.all_ok += all(oks.values())
        asked = spec.objects[0]
        self.rows.append(
            {
                "prompt": prompt,
                "asked_shape": asked.shape,
                "asked_motion": asked.motion,
                "colour": got.colour,
                "shape": got.shape,
                "motion": got.motion,
                **{f"{a}_ok": ok for a, ok in oks.items()},
            }
        )

    def per_asked(self, attribute: str) -> dict[str, tuple[int, int]]:
        """For "shape" or "motion": asked value -> (clips that got it right, clips that asked for it)."""
        tallies: dict[str, tuple[int, int]] = {}
        for row in self.rows:
            value = str(row[f"asked_{attribute}"])
            right, asked = tallies.get(value, (0, 0))
            tallies[value] = (right + bool(row[f"{attribute}_ok"]), asked + 1)
        return dict(sorted(tallies.items()))

    def breakdown(self, attribute: str) -> str:
        """Right/asked per asked value ("left 12/12, shrink 0/6, ..."): which shapes or paths the model has learned."""
        return ", ".join(f"{value} {right}/{asked}" for value, (right, asked) in self.per_asked(attribute).items())

    def misread(self, attribute: str) -> str:
        """What the wrong ones were read as, per asked value ("star as circle 12, none 2; square as ...")."""
        seen: dict[str, Counter[str]] = {}
        for row in self.rows:
            if not row[f"{attribute}_ok"]:
                seen.setdefault(str(row[f"asked_{attribute}"]), Counter())[str(row[attribute])] += 1
        return "; ".join(
            f"{asked} as " + ", ".join(f"{value} {count}" for value, count in counts.most_common())
            for asked, counts in sorted(seen.items())
        )

    def summary(self) -> str:
        parts = [f"{a} {self.accuracy(a):.0%}" for a in ATTRIBUTES]
        parts.append(f"all {self.all_ok / max(self.n, 1):.0%}")
        mean = float(np.mean(self.seconds)) if self.seconds else 0.0
        return f"n={self.n}: " + ", ".join(parts) + f"; {mean:.2f} s per clip"


def heldout_specs(n: int, seed: int = 1234, split: str = "heldout") -> list[SceneSpec]:
    """``n`` scenes of held-out combinations (or, with ``split="train"``, of combinations the model trained on:
    the same score on both says a failure is the model's, not a failure to generalise)."""
    rng = np.random.default_rng(seed)
    return [sample_spec(rng, split) for _ in range(n)]


def generate(
    pipe: WanPipeline, prompt: str, seed: int, steps: int = DEFAULT_STEPS, guidance: float = DEFAULT_GUIDANCE
) -> np.ndarray:
    """One (T, H, W, 3) uint8 clip at display size, as the engine makes it (CPU noise, fixed seed, upscaled)."""
    frames = pipe(
        prompt=prompt,
        height=SIZE,
        width=SIZE,
        num_frames=pipeline_num_frames(pipe, NUM_FRAMES),
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=torch.Generator(device="cpu").manual_seed(seed),
        output_type="np",
        max_sequence_length=MAX_SEQUENCE_LENGTH,
    ).frames[0]
    return upscale_frames(np.clip(np.asarray(frames) * 255.0 + 0.5, 0, 255).astype(np.uint8), UPSCALE)


def display_frames(video: torch.Tensor) -> np.ndarray:
    """A decoded (3, T, H, W) video in [-1, 1] as the (T, H, W, 3) uint8 clip at display size the checker reads."""
    frames = ((video.permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).numpy()
    return upscale_frames(frames, UPSCALE)


def evaluate(
    pipe: WanPipeline,
    n: int = 100,
    *,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    seed: int = 1234,
    split: str = "heldout",
    save_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvalResult:
    pipe.set_progress_bar_config(disable=True)
    result = EvalResult()
    for i, spec in enumerate(heldout_specs(n, seed, split)):
        prompt = caption(spec)
        started = time.perf_counter()
        clip = generate(pipe, prompt, seed + i, steps, guidance)
        result.seconds.append(time.perf_counter() - started)
        got = check(clip, spec)
        result.record(got, spec, prompt)
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            np.save(save_dir / f"{i:03d}.npy", clip)
        if progress is not None:
            progress(f"[{i + 1}/{n}] {prompt!r} -> {got.colour} {got.shape} {got.motion} on {got.background}")
    return result


def reconstruction_accuracy(pipe: WanPipeline, n: int = 50, seed: int = 1234) -> EvalResult:
    """The checker on VAE round trips of rendered held-out clips: the ceiling the VAE puts on generation."""
    from reelgen.demo.train import clips_to_tensor
    from reelgen.demo.world import render

    vae = pipe.vae
    result = EvalResult()
    for i, spec in enumerate(heldout_specs(n, seed)):
        clip = render(spec, NUM_FRAMES, SIZE, SIZE, seed=i)
        started = time.perf_counter()
        with torch.no_grad():
            x = vae.decode(vae.encode(clips_to_tensor(clip[None])).latent_dist.mode()).sample
        result.seconds.append(time.perf_counter() - started)
        result.record(check(display_frames(x[0]), spec), spec)
    return result
