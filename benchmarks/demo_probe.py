"""Does the demo model read a word? Three probes of one trained pipeline, cheaper than a full evaluation.

    .venv/bin/python benchmarks/demo_probe.py [--weights src/reelgen/demo/weights] [--seeds 3] [--threads 2]

1. Text encoder: for prompts that differ in one word ("... moves to the right ..." vs "... to the left ..."), the
   L2 distance between the encoder's outputs at that word, next to the outputs' norm.
2. Transformer: the relative L2 difference of its prediction for the two prompts, same noisy latent, at timesteps
   900, 500 and 100. A word the model ignores moves it by well under 1%.
3. Tracks: the object's centroid (x, y as fractions of the frame) every other frame, as the demo checker finds
   it, for a red circle moving right / left / up / staying still, at a few seeds; with the motion the checker reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from reelgen.demo.checker import analyse
from reelgen.demo.evaluate import generate
from reelgen.demo.model import WEIGHTS_DIR, encode_prompts
from reelgen.engines.wan import load_wan_pipeline

PAIRS = (
    ("a red circle moves to the {} on a black background", "right", "left"),
    ("a red circle moves {} on a black background", "up", "down"),
    ("a {} circle moves to the right on a black background", "red", "blue"),
    ("a red {} moves to the right on a black background", "circle", "square"),
)
MOTIONS = ("moves to the right", "moves to the left", "moves up", "stays still")


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_wan_pipeline(args.weights, dtype=torch.float32, device="cpu")
    tokenizer = pipe.tokenizer
    latent = torch.randn(1, 16, 17, 16, 16, generator=torch.Generator().manual_seed(0))
    print(f"weights: {args.weights}")
    print("| words | encoder distance at the word / output norm | transformer change at t=900 / 500 / 100 |")
    print("|---|---|---|")
    for template, a, b in PAIRS:
        first, second = template.format(a), template.format(b)
        at = tokenizer(first).input_ids.index(tokenizer.convert_tokens_to_ids(a))
        ea, eb = encode_prompts(pipe, [first])[0], encode_prompts(pipe, [second])[0]
        distance, norm = float((ea[at] - eb[at]).norm()), float(ea[at].norm())
        changes = []
        for t in (900.0, 500.0, 100.0):
            timestep = torch.tensor([t])
            pa = pipe.transformer(latent, timestep, ea[None], return_dict=False)[0]
            pb = pipe.transformer(latent, timestep, eb[None], return_dict=False)[0]
            changes.append(f"{float((pa - pb).norm() / pa.norm()):.1%}")
        print(f"| {a} / {b} | {distance:.2f} / {norm:.2f} | {' / '.join(changes)} |")
    print()
    for seed in range(args.seeds):
        for motion in MOTIONS:
            clip = generate(pipe, f"a red circle {motion} on a black background", seed)
            found = analyse(clip)
            track = " ".join("--" if p is None else f"{p[0]:.2f},{p[1]:.2f}" for p in found.track[::2])
            print(f"seed {seed} {motion:<20} read as {found.motion or '-':<10} {track}", flush=True)


if __name__ == "__main__":
    main()
