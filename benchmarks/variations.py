"""n variations: one batched denoising pass against one pass per variation, same engine, same clips.

    .venv/bin/python benchmarks/variations.py [--model reelgen-demo] [--n 4] [--steps 20] [--repeats 3]
                                              [--threads 1] [--device cpu]

Runs `engine.run_batch` with count=n (what the worker does when memory allows) and n separate `engine.run`
calls (what it does otherwise), alternating which goes first each round because the machine is noisy, and
reports the best and median wall time of each, the ratio (sequential / batched: > 1 means batching is faster),
and the largest pixel difference between the two sets of clips (same seeds, so near 0). Every clip is fully
decoded in both, as the worker encodes it. Prints a markdown row.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from reelgen.domain.params import ParamLimits, validate_params
from reelgen.engines import registry
from reelgen.engines.base import StageRequest, VideoOutput


class _Quiet:
    def step(self, step: int, total: int, preview: object = None) -> None:
        pass


def _frames(output: VideoOutput) -> np.ndarray:
    return np.concatenate(list(output.chunks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="reelgen-demo")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default=None)
    parser.add_argument("--prompt", default="a red square moves to the right on a white background")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = registry.get_spec(args.model)
    engine = registry.create_engine(args.model, device=args.device)
    limits = ParamLimits(max_n=max(args.n, 1))
    params = validate_params(spec, limits, prompt=args.prompt, n=args.n, steps=args.steps, seed=1)
    engine.load()
    if engine.max_batch(StageRequest(params, count=args.n)) < args.n:
        raise SystemExit(f"{args.model}: {args.n} variations do not fit in one batch here")

    def batched() -> list[np.ndarray]:
        return [_frames(o) for o in engine.run_batch(StageRequest(params, count=args.n), _Quiet())]

    def sequential() -> list[np.ndarray]:
        return [_frames(engine.run(StageRequest(params, variation=k), _Quiet())) for k in range(args.n)]

    batched()  # warm-up: first-call allocations, lazy imports
    times: dict[str, list[float]] = {"batched": [], "sequential": []}
    clips: dict[str, list[np.ndarray]] = {}
    for round_ in range(args.repeats):
        order = [("batched", batched), ("sequential", sequential)]
        for name, run in order if round_ % 2 == 0 else reversed(order):
            started = time.perf_counter()
            clips[name] = run()
            times[name].append(time.perf_counter() - started)
    diff = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(clips["batched"], clips["sequential"], strict=True))
    best = {k: min(v) for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in times.items()}
    header = ("model", "n", "steps", "device, threads", "batched best / median", "sequential best / median")
    print("| " + " | ".join((*header, "ratio", "max pixel diff")) + " |")
    print("|---" * (len(header) + 2) + "|")
    cells = [
        args.model,
        str(args.n),
        str(args.steps),
        f"{getattr(engine, 'device', '?')}, {args.threads}",
        f"{best['batched']:.2f} / {median['batched']:.2f} s",
        f"{best['sequential']:.2f} / {median['sequential']:.2f} s",
        f"{best['sequential'] / best['batched']:.2f}x",
        str(diff),
    ]
    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
