"""Demo checker accuracy: how often the classical-vision checker names the attributes of ground-truth clips.

    .venv/bin/python benchmarks/demo_checker.py [--n 500] [--frames 17] [--size 128] [--seed 0]

Renders --n random scenes of the demo world (nine in ten from the training sampler, one in ten held out, the
same mix as the unit test), and scores each under four conditions:

- clean: the render itself;
- mild: ``world.degrade`` defaults (box blur 0.5-1.2 px, per-channel gain 0.9-1.1 and offset +-12 levels,
  noise sigma 3-8 levels), what the unit test asserts >= 98% on;
- strong: blur 1.5-2.5 px, gain 0.8-1.2, offset +-25, noise sigma 10-16, far beyond what the test asks;
- lowres: rendered at a quarter of the size, upscaled bilinearly, then mild, like a model that generates
  small frames.

Prints a markdown table of per-attribute accuracy and the checker's time per clip (single thread), then the
most common confusions. Single-threaded numpy + Pillow; no torch.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
from PIL import Image

from reelgen.demo.checker import check
from reelgen.demo.world import SceneSpec, degrade, render, sample_spec

ATTRIBUTES = ("colour", "shape", "motion", "background")


def upscaled(spec: SceneSpec, frames: int, size: int, seed: int) -> np.ndarray:
    small = render(spec, frames, size // 4, size // 4, seed)
    resize = Image.Resampling.BILINEAR
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), resize)) for f in small])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    specs = [sample_spec(rng, "heldout" if i % 10 == 0 else "train") for i in range(args.n)]
    f, s = args.frames, args.size
    conditions: dict[str, Callable[[SceneSpec, int], np.ndarray]] = {
        "clean": lambda spec, i: render(spec, f, s, s, i),
        "mild": lambda spec, i: degrade(render(spec, f, s, s, i), rng),
        "strong": lambda spec, i: degrade(
            render(spec, f, s, s, i), rng, blur=(1.5, 2.5), noise=(10.0, 16.0), gain=0.2, offset=25.0
        ),
        "lowres": lambda spec, i: degrade(upscaled(spec, f, s, i), rng),
    }
    print(f"{args.n} clips of {f} frames at {s}x{s}, seed {args.seed}\n")
    print("| condition | colour | shape | motion | background | checker ms/clip |")
    print("|---|---|---|---|---|---|")
    confusions: dict[str, Counter[tuple[str, str, str]]] = {}
    for name, make in conditions.items():
        hits: Counter[str] = Counter()
        wrong: Counter[tuple[str, str, str]] = Counter()
        spent = 0.0
        for i, spec in enumerate(specs):
            clip = make(spec, i)
            start = time.process_time()
            result = check(clip, spec)
            spent += time.process_time() - start
            for attr in ATTRIBUTES:
                if getattr(result, f"{attr}_ok"):
                    hits[attr] += 1
                else:
                    wrong[(attr, getattr(spec, attr), str(getattr(result, attr)))] += 1
        confusions[name] = wrong
        cells = " | ".join(f"{100 * hits[a] / args.n:.1f}%" for a in ATTRIBUTES)
        print(f"| {name} | {cells} | {1000 * spent / args.n:.1f} |")
    print()
    for name, wrong in confusions.items():
        if wrong:
            listed = ", ".join(f"{a} {want}->{got} x{k}" for (a, want, got), k in wrong.most_common(6))
            print(f"{name}: {listed}")


if __name__ == "__main__":
    main()
