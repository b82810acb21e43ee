"""Where does the demo model lose the shape? Two probes on rendered training-split clips noised to sigma s.

    .venv/bin/python benchmarks/demo_shape_probe.py [--weights src/reelgen/demo/weights] [--n 42] [--threads 2]

1. Keep: the transformer's one-step clean-latent prediction ``x_t - s v`` (prompt: the clip's own caption, no
   guidance) from a rendered clip noised to ``s``, decoded and read by the demo checker. Can the model keep a
   shape it can see?
2. Switch: the same from a rendered *circle*, while the prompt asks for the scene's other shape, at guidance 1
   and 4. Can the words put in a shape the noisy latent does not show? Sampling from noise needs exactly that
   at high sigma, where the clean latent is still a blur.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from diffusers.pipelines.wan.pipeline_wan import WanPipeline

from reelgen.demo.captions import caption
from reelgen.demo.checker import check
from reelgen.demo.evaluate import display_frames
from reelgen.demo.model import NUM_FRAMES, SIZE, WEIGHTS_DIR, encode_prompts, normalize_latents
from reelgen.demo.train import clips_to_tensor
from reelgen.demo.world import SceneSpec, render, sample_spec
from reelgen.engines.wan import denormalize_latents, load_wan_pipeline

KEEP_SIGMAS = (0.15, 0.3, 0.5, 0.7, 0.85, 1.0)
SWITCH_SIGMAS = (0.5, 0.7, 0.85)


def read_shape(pipe: WanPipeline, latent: torch.Tensor, spec: SceneSpec) -> str:
    """Decode a normalized latent as WanPipeline does and return the shape the checker sees."""
    video = pipe.vae.decode(denormalize_latents(pipe.vae, latent)).sample[0]
    return check(display_frames(video), spec).shape or "nothing"


def clean_prediction(
    pipe: WanPipeline, xt: torch.Tensor, sigma: float, prompts: list[str], guidance: float
) -> torch.Tensor:
    """``x_t - sigma * v`` with classifier-free guidance against the empty prompt (none at guidance 1)."""
    embeds = encode_prompts(pipe, [*prompts, ""])
    batch = xt.expand(len(prompts) + 1, -1, -1, -1, -1)
    v = pipe.transformer(batch, torch.full((len(prompts) + 1,), sigma * 1000.0), embeds, return_dict=False)[0]
    guided = v[-1:] + guidance * (v[:-1] - v[-1:])
    return xt - sigma * guided


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--n", type=int, default=42, help="scenes per probe")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_wan_pipeline(args.weights, dtype=torch.float32, device="cpu")
    rng, noise_gen = np.random.default_rng(99), torch.Generator().manual_seed(0)
    kept: Counter[tuple[float, str, bool]] = Counter()
    switched: Counter[tuple[float, float, str]] = Counter()
    for i in range(args.n):
        spec = sample_spec(rng, "train")
        asked = spec.objects[0].shape
        circle = dataclasses.replace(spec, objects=(dataclasses.replace(spec.objects[0], shape="circle"),))
        for source, probe in ((spec, "keep"), (circle, "switch")):
            if probe == "switch" and asked == "circle":
                continue
            x0 = normalize_latents(
                pipe.vae,
                pipe.vae.encode(
                    clips_to_tensor(render(source, NUM_FRAMES, SIZE, SIZE, seed=i)[None])
                ).latent_dist.mode(),
            )
            noise = torch.randn(x0.shape, generator=noise_gen)
            for sigma in KEEP_SIGMAS if probe == "keep" else SWITCH_SIGMAS:
                xt = (1 - sigma) * x0 + sigma * noise
                for guidance in (1.0,) if probe == "keep" else (1.0, 4.0):
                    seen = read_shape(pipe, clean_prediction(pipe, xt, sigma, [caption(spec)], guidance), spec)
                    if probe == "keep":
                        kept[(sigma, asked, seen == asked)] += 1
                    else:
                        switched[(sigma, guidance, "asked" if seen == asked else seen)] += 1
    shapes = sorted({s for _, s, _ in kept})
    print(f"keep: the shape of a rendered clip noised to sigma, {args.n} training-split scenes")
    for sigma in KEEP_SIGMAS:
        right = sum(kept[(sigma, s, True)] for s in shapes)
        per = " ".join(
            f"{s} {kept[(sigma, s, True)]}/{kept[(sigma, s, True)] + kept[(sigma, s, False)]}" for s in shapes
        )
        print(f"  sigma {sigma:.2f}: {right}/{args.n}  ({per})")
    print("switch: a rendered circle noised to sigma, the prompt asking for another shape")
    for sigma in SWITCH_SIGMAS:
        for guidance in (1.0, 4.0):
            total = sum(v for (s, g, _), v in switched.items() if s == sigma and g == guidance)
            n_asked, n_circle = switched[(sigma, guidance, "asked")], switched[(sigma, guidance, "circle")]
            print(f"  sigma {sigma:.2f}, guidance {guidance:g}: asked shape {n_asked}/{total}, circles {n_circle}")
    print(f"weights: {args.weights}")


if __name__ == "__main__":
    main()
