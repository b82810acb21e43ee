"""CFG parallelism (`--context-parallel cfg`): two real CPU processes on gloo run each step's guided and unguided
passes at once, for every family that can, and make the video one process makes (Wan bit for bit; the families
that batch their passes up to last-bit rounding of a smaller batch).

Each family's tiny pipeline runs once without the split (the reference) and once with it, in both ranks; the
first transformer block counts its calls, which shows the work was shared: Wan computes one pass a step per rank
after the first step, the batched families half a batch a call."""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

STEPS = 3
# Families whose pipelines run the guided and unguided passes one after the other (Wan; HunyuanVideo 1.5's guider).
SEQUENTIAL = ("wan", "hunyuan")


def _calls() -> dict[str, tuple[Callable[[], Any], dict[str, Any]]]:
    from reelgen.engines import tiny_cogvideox, tiny_hunyuan15, tiny_ltx, tiny_ltx2, tiny_wan

    return {
        "wan": (
            tiny_wan.build_tiny_wan_pipeline,
            {"guidance_scale": 5.0, "max_sequence_length": tiny_wan.MAX_SEQUENCE_LENGTH},
        ),
        "ltx": (tiny_ltx.build_tiny_ltx_pipeline, {"guidance_scale": 3.0, "max_sequence_length": 16}),
        "ltx2": (
            tiny_ltx2.build_tiny_ltx2_pipeline,
            {"guidance_scale": 3.0, "max_sequence_length": 16, **tiny_ltx2.GUIDANCE},
        ),
        "cogvideox": (tiny_cogvideox.build_tiny_cogvideox_pipeline, {"guidance_scale": 6.0, "max_sequence_length": 16}),
        # Its guider runs the passes (scale 6 as shipped); the call takes no guidance scale.
        "hunyuan": (tiny_hunyuan15.build_tiny_hunyuan15_pipeline, {}),
    }


def _generate(pipe: Any, extra: dict[str, Any], negative: str) -> np.ndarray:
    frames = pipe(
        prompt="a red fox running through the snow",
        negative_prompt=negative,
        height=64,
        width=64,
        num_frames=9,
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(3),
        output_type="np",
        **extra,
    ).frames[0]
    return np.round(np.asarray(frames) * 255).astype(np.uint8)


def _first_block(pipe: Any) -> torch.nn.Module:
    transformer = pipe.transformer
    blocks = getattr(transformer, "blocks", None) or transformer.transformer_blocks
    return blocks[0]


def _rank(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from reelgen.engines.parallel import ContextParallel, enable_context_parallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        for family, (build, extra) in _calls().items():
            pipe = build()
            pipe.set_progress_bar_config(disable=True)
            reference = _generate(pipe, extra, "blurry")
            reference_other = _generate(pipe, extra, "dark, grainy")
            enable_context_parallel(pipe, ContextParallel("cfg", 2), family)
            calls: list[int] = []
            handle = _first_block(pipe).register_forward_pre_hook(lambda *_, seen=calls: seen.append(1))
            split = _generate(pipe, extra, "blurry")
            split_calls = len(calls)
            handle.remove()
            # The next job has another negative prompt: nothing of the last one's may leak into it.
            other = _generate(pipe, extra, "dark, grainy")
            np.savez(
                Path(out) / f"{family}-{rank}.npz",
                reference=reference,
                reference_other=reference_other,
                split=split,
                other=other,
                calls=split_calls,
            )
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cfg-parallel")
    context = multiprocessing.get_context("spawn")
    port = _free_port()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ranks = [context.Process(target=_rank, args=(rank, port, str(out))) for rank in range(2)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(300)
        assert process.exitcode == 0, f"a rank failed (exit code {process.exitcode})"
    return out


@pytest.mark.parametrize("family", ["wan", "ltx", "ltx2", "cogvideox", "hunyuan"])
def test_two_ranks_make_the_one_process_video_sharing_the_passes(results: Path, family: str) -> None:
    ranks = [np.load(results / f"{family}-{rank}.npz") for rank in range(2)]
    for r in ranks:
        for split, reference in [(r["split"], r["reference"]), (r["other"], r["reference_other"])]:
            if family in SEQUENTIAL:  # the same calls on the same inputs: bit for bit
                np.testing.assert_array_equal(split, reference)
            else:
                # Half a batch per call: a matrix product over one sample may round differently in the last bit
                # than over two, as for any batch size change.
                assert np.abs(split.astype(int) - reference).max() <= 2
                assert np.mean(split != reference) < 0.01
        assert not np.array_equal(r["other"], r["reference"])  # the other negative prompt was used
    # Both ranks hold the same numbers, so their latents never drift apart.
    np.testing.assert_array_equal(ranks[0]["split"], ranks[1]["split"])
    np.testing.assert_array_equal(ranks[0]["other"], ranks[1]["other"])
    calls = [int(r["calls"]) for r in ranks]
    if family in SEQUENTIAL:
        # Two passes a step alone; with the split, both passes on the first step (it learns the negative prompt's
        # inputs), then one a step on each rank.
        assert calls == [STEPS + 1, STEPS + 1], calls
    else:
        # One batched call a step (two for LTX-2's separate guidance terms when on; off here), each rank half of it.
        assert calls == [STEPS, STEPS], calls
