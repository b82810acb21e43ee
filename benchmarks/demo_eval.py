"""Held-out accuracy of the reelgen-demo model, scored by the classical checker (reelgen.demo.checker).

    .venv/bin/python benchmarks/demo_eval.py --n 100                       # the packaged weights
    .venv/bin/python benchmarks/demo_eval.py --weights demo-run/pipeline   # a training run's latest checkpoint
    .venv/bin/python benchmarks/demo_eval.py --vae-only --n 50             # ceiling: checker on VAE round trips
    .venv/bin/python benchmarks/demo_eval.py --split train --n 80          # combinations it trained on

Prints per-attribute accuracy on clips generated from canonical captions of held-out (colour, shape, motion)
combinations, seconds per clip (denoise + decode, one thread unless --threads), and the weights' size on disk.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from reelgen.demo.evaluate import DEFAULT_GUIDANCE, DEFAULT_STEPS, evaluate, reconstruction_accuracy
from reelgen.demo.model import WEIGHTS_DIR
from reelgen.engines.wan import load_wan_pipeline


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--guidance-scale", type=float, default=DEFAULT_GUIDANCE)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--split", choices=("heldout", "train"), default="heldout", help="train: combinations the model trained on"
    )
    ap.add_argument("--vae-only", action="store_true", help="score VAE reconstructions of rendered clips instead")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_wan_pipeline(args.weights, dtype=torch.float32, device="cpu")
    size_mb = sum(p.stat().st_size for p in args.weights.rglob("*") if p.is_file()) / 1e6
    if args.vae_only:
        result = reconstruction_accuracy(pipe, args.n, args.seed)
        print(f"VAE round trip of rendered held-out clips, {result.summary()}")
    else:
        result = evaluate(
            pipe,
            args.n,
            steps=args.steps,
            guidance=args.guidance_scale,
            seed=args.seed,
            split=args.split,
            progress=print if args.verbose else None,
        )
        print(f"{args.split} generation ({args.steps} steps, cfg {args.guidance_scale:g}), {result.summary()}")
        print(f"motion right per asked motion: {result.breakdown('motion')}")
    print(f"shape right per asked shape: {result.breakdown('shape')}")
    print(f"wrong shapes read as: {result.misread('shape') or '-'}")
    print(f"weights: {args.weights} ({size_mb:.1f} MB), torch threads: {args.threads}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
