"""Encode speed: reelgen's VideoWriter against the ffmpeg command line, same frames, same x264 settings.

    .venv/bin/python benchmarks/encode.py [--frames 240] [--sizes 1920x1080,1280x720] [--repeats 3]
                                          [--preset medium] [--crf 20] [--settle 30]

Needs the `ffmpeg` program on PATH (Debian/Ubuntu: `apt-get install -y ffmpeg`); PyAV brings its own
libraries, so reelgen itself does not. Prints a markdown table; ratio = ffmpeg time / reelgen time, so
>= 1.0 means reelgen is at least as fast.

Fairness: both encoders get the same synthetic frames, libx264 with the same preset and crf, yuv420p,
+faststart, and the same x264 threading (ffmpeg's default: threads auto, frame threads; VideoWriter
sets it explicitly because PyAV's default is slice threads). The x264 option strings embedded in the
two outputs are identical but for the x264 build, and ffmpeg is told to convert RGB with the BT.709
matrix and tag the stream as reelgen does (its default would be BT.601 untagged, a different and smaller
output; sizes are in the table). ffmpeg reads the raw rgb24 frames from a file on tmpfs
written before its clock starts, so it pays no pipe or disk cost; reelgen gets them as numpy arrays in
memory, written in chunks of 16 like a streaming decoder would produce them. Runs alternate between the
two (ffmpeg first in even rounds, reelgen first in odd ones) because the machine is shared and noisy;
before each run it waits (up to --settle seconds) for a second in which other processes use less than
0.2 cores, and each run logs the load others put on the machine meanwhile (stderr). The ratio compares
the best run of each; the ratio of medians is shown beside it, and CPU seconds (user + system, all
threads) too.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reelgen.media import DEFAULT_CRF, DEFAULT_PRESET, VideoWriter

FPS = 24
CHUNK = 16


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float
    size: int
    # Cores other processes kept busy meanwhile, on average: tells a clean run from a disturbed one.
    other_load: float

    def __str__(self) -> str:
        return (
            f"{self.wall_s:.2f} s wall, {self.cpu_s:.2f} s CPU, {self.size / 1e6:.2f} MB, "
            f"other load {self.other_load:.2f} cores"
        )


def make_frames(count: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """Panning texture + moving gradients + a moving disc + fresh grain: work for x264 like real footage.

    Grain is drawn anew for every frame so no motion vector can predict it, and the texture pans by a
    few pixels per frame so motion search has real matches to find.
    """
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    # Blocky noise, smoothed: a texture with detail at a few pixels' scale, like foliage or fabric.
    coarse = rng.normal(0.0, 1.0, size=(height // 4 + 2, width // 4 + 2, 3)).astype(np.float32)
    texture = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)[:height, :width]
    texture = (texture + np.roll(texture, 2, axis=0) + np.roll(texture, 2, axis=1)) * 12.0
    frames = np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        t = i / FPS
        img = np.empty((height, width, 3), np.float32)
        img[..., 0] = 110 + 70 * np.sin(6.0 * x + 2.0 * t + 3.0 * y)
        img[..., 1] = 110 + 70 * np.sin(9.0 * y - 1.5 * t + 2.0 * x * x)
        img[..., 2] = 110 + 70 * np.cos(4.0 * (x - y) + 3.0 * t)
        img += np.roll(texture, shift=(2 * i, 3 * i), axis=(0, 1))
        cx, cy = 0.5 + 0.3 * np.cos(t), 0.5 + 0.3 * np.sin(1.3 * t)
        disc = ((x - cx) * width / height) ** 2 + (y - cy) ** 2 < 0.02
        img[disc] = (230.0, 200.0, 60.0)
        img += rng.normal(0.0, 3.0, size=(height, width, 1)).astype(np.float32)
        np.clip(img, 0, 255, out=img)
        frames[i] = img.astype(np.uint8)
    return frames


def ffmpeg_command(raw: Path, out: Path, width: int, height: int, preset: str, crf: int) -> list[str]:
    return [
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(FPS), "-i", str(raw),
        # The same output as VideoWriter's: BT.709 limited range, tagged (ffmpeg's default would be BT.601).
        "-vf", "scale=out_color_matrix=bt709:out_range=tv", "-colorspace", "bt709", "-color_primaries", "bt709",
        "-color_trc", "bt709", "-color_range", "tv",
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", str(out),
    ]  # fmt: skip


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (Linux; NaN elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return math.nan
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(limit_s: float, threshold_cores: float = 0.2) -> float:
    """Wait (at most `limit_s`) until other processes use under `threshold_cores` for a whole second.

    On a shared machine a run that starts while someone else's tests are running measures them, not us.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        busy0 = machine_busy_seconds()
        time.sleep(1.0)
        if machine_busy_seconds() - busy0 < threshold_cores:
            break
    return time.perf_counter() - start


def measure(run: Callable[[], int], who: int) -> Timing:
    """Time `run` (which returns the output size); `who` is RUSAGE_SELF or RUSAGE_CHILDREN."""
    busy0, cpu0, t0 = machine_busy_seconds(), cpu_seconds(who), time.perf_counter()
    size = run()
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(who) - cpu0
    return Timing(wall, cpu, size, (machine_busy_seconds() - busy0 - cpu) / wall)


def time_ffmpeg(command: list[str], out: Path) -> Timing:
    def run() -> int:
        subprocess.run(command, check=True)
        return out.stat().st_size

    return measure(run, resource.RUSAGE_CHILDREN)


def time_reelgen(frames: np.ndarray, out: Path, preset: str, crf: int) -> Timing:
    count, height, width, _ = frames.shape

    def run() -> int:
        with VideoWriter(out, width, height, FPS, crf=crf, preset=preset, expected_frames=count) as writer:
            for start in range(0, count, CHUNK):
                writer.write(frames[start : start + CHUNK])
        return writer.close().bytes

    return measure(run, resource.RUSAGE_SELF)


def median(timings: list[Timing], field: Callable[[Timing], float]) -> float:
    return statistics.median(field(t) for t in timings)


def bench_size(width: int, height: int, args: argparse.Namespace, scratch: Path, ram: Path) -> tuple[str, list[str]]:
    print(f"{width}x{height}: generating {args.frames} frames", file=sys.stderr)
    frames = make_frames(args.frames, width, height)
    raw = ram / f"frames-{width}x{height}.rgb"
    frames.tofile(raw)
    ff_out, rg_out = scratch / "ffmpeg.mp4", scratch / "reelgen.mp4"
    command = ffmpeg_command(raw, ff_out, width, height, args.preset, args.crf)
    ffmpeg_runs: list[Timing] = []
    reelgen_runs: list[Timing] = []
    try:
        for round_ in range(args.repeats):
            order = ("ffmpeg", "reelgen") if round_ % 2 == 0 else ("reelgen", "ffmpeg")
            for who in order:
                waited = wait_for_quiet(args.settle)
                if who == "ffmpeg":
                    ffmpeg_runs.append(time_ffmpeg(command, ff_out))
                else:
                    reelgen_runs.append(time_reelgen(frames, rg_out, args.preset, args.crf))
                timing = (ffmpeg_runs if who == "ffmpeg" else reelgen_runs)[-1]
                print(f"  round {round_ + 1} {who}: {timing} (waited {waited:.0f} s for quiet)", file=sys.stderr)
    finally:
        raw.unlink(missing_ok=True)
    ff_best, rg_best = min(t.wall_s for t in ffmpeg_runs), min(t.wall_s for t in reelgen_runs)
    ff_median, rg_median = median(ffmpeg_runs, lambda t: t.wall_s), median(reelgen_runs, lambda t: t.wall_s)
    ff_cpu, rg_cpu = median(ffmpeg_runs, lambda t: t.cpu_s), median(reelgen_runs, lambda t: t.cpu_s)
    row = (
        f"| {width}x{height} | {args.frames} | {args.preset} | {args.crf} | {ff_best:.2f} | {rg_best:.2f} "
        f"| **{ff_best / rg_best:.2f}** | {ff_median / rg_median:.2f} | {ff_cpu:.1f} | {rg_cpu:.1f} "
        f"| {ffmpeg_runs[-1].size / 1e6:.2f} | {reelgen_runs[-1].size / 1e6:.2f} |"
    )
    return row, command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--sizes", default="1920x1080,1280x720", help="comma-separated WIDTHxHEIGHT list")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each encoder per size")
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--crf", type=int, default=DEFAULT_CRF)
    parser.add_argument(
        "--settle", type=float, default=30.0, help="max seconds to wait for an idle machine before each run"
    )
    args = parser.parse_args()

    if shutil.which("ffmpeg") is None:
        print(
            "benchmarks/encode.py needs the ffmpeg command line to compare against, and `ffmpeg` is not on "
            "PATH.\nInstall it (Debian/Ubuntu: `apt-get update && apt-get install -y ffmpeg`) and run again.",
            file=sys.stderr,
        )
        return 2
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    # tmpfs, so ffmpeg reads its input from memory as reelgen does.
    ram = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())

    rows, commands = [], []
    with tempfile.TemporaryDirectory(prefix="reelgen-bench-") as tmp:
        for width, height in sizes:
            row, command = bench_size(width, height, args, Path(tmp), ram)
            rows.append(row)
            commands.append(command)

    version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split(" Copyright")[0]
    print(f"{args.repeats} runs of each, alternating. Wall seconds are the best run of each (the one least")
    print("disturbed by other load); ratio = ffmpeg s / reelgen s, >= 1.0 means reelgen is at least as fast.")
    print(f"CPU seconds (user + system, all threads) are medians. {version}; reelgen uses PyAV's libx264.\n")
    print("| size | frames | preset | crf | ffmpeg s | reelgen s | ratio | ratio of medians "
          "| ffmpeg CPU s | reelgen CPU s | ffmpeg MB | reelgen MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nffmpeg command (per size; input is a raw rgb24 file on tmpfs):\n")
    for command in commands:
        print(f"    {shlex.join([*command[:-1], 'out.mp4'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
