"""Plain diffusers vs reelgen's engine on full-size video architectures with random weights (issue 4).

    .venv/bin/python benchmarks/gpu_bench.py                          # every model, on CUDA, bfloat16
    .venv/bin/python benchmarks/gpu_bench.py --models wan2.1-t2v-1.3b --steps 6
    .venv/bin/python benchmarks/gpu_bench.py --tiny                   # the same code at toy sizes, on the CPU
    .venv/bin/python benchmarks/gpu_bench.py --compile --repeats 2    # reelgen side with REELGEN_COMPILE=blocks

Random weights time the same as trained ones: the work per step depends only on the architecture, the size and
the frame count. For each model, one pipeline is built at its published architecture (transformer and VAE as
in the checkpoint's config) and run twice, side by side in the same process:

- **diffusers**: `pipe(...)` with diffusers' defaults (its attention, its whole-video VAE decode), `output_type="np"`;
- **reelgen quality**: the same pipeline object through reelgen's engine (WanEngine / LTXEngine) with the
  "quality" preset: the memory plan, the exact-math speed settings, the streamed per-chunk VAE decode.

Both sides get the same prompt, seed, size, frame count, guidance (classifier-free, two transformer passes a
step) and steps. The text encoder is a one-layer stand-in with the real output width (UMT5-XXL / T5-XXL: 4096),
the same on both sides: its cost is a fraction of a second either way and would only add noise. Per-step time is
the median of steps 2..n (step 1 pays for warm-up), end to end is from the call until the last frame exists.
Alternating order over `--repeats` rounds keeps drift from favouring one side.

The published anchor (LightX2V's table, Wan2.1-I2V-14B 480p 81 frames on one H100): diffusers 9.77 s/step,
LightX2V 5.18 s/step (1.89x).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

from reelgen.domain.models import ModelSpec
from reelgen.domain.params import ParamLimits, validate_params
from reelgen.engines.base import StageRequest
from reelgen.engines.open_catalog import LTX_VIDEO_0_9_1, WAN21_T2V_1_3B, WAN21_T2V_14B, WAN22_TI2V_5B
from reelgen.engines.tiny_wan import build_tiny_tokenizer

PROMPT = "a red fox running through fresh snow at sunrise, cinematic, detailed"
NEGATIVE = "blurry, low quality"


@dataclass(frozen=True)
class Case:
    spec: ModelSpec
    build: Callable[[bool, torch.dtype], Any]  # (tiny, dtype) -> pipeline on the CPU
    engine: Callable[[ModelSpec, Any, str, torch.dtype], Any]  # (spec, pipeline, device, dtype) -> Engine
    size: str  # native size
    frames: int  # native frame count
    tiny_size: str = "64x64"
    tiny_frames: int = 9


def _text_encoder(kind: str, tiny: bool, vocab: int) -> torch.nn.Module:
    width = 32 if tiny else 4096
    common = dict(vocab_size=vocab, d_model=width, d_kv=8, d_ff=64, num_layers=1, num_heads=4, dropout_rate=0.0)
    if kind == "umt5":
        return UMT5EncoderModel(UMT5Config(relative_attention_num_buckets=8, **common))  # type: ignore[arg-type]
    return T5EncoderModel(T5Config(relative_attention_num_buckets=8, **common))  # type: ignore[arg-type]


def _cast(model: Any, dtype: torch.dtype) -> Any:
    """Cast as `from_pretrained(torch_dtype=dtype)` does: the modules the class keeps in float32 stay there."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    model.to(dtype)
    for name, param in model.named_parameters():
        if any(k in name.split(".") for k in keep):
            param.data = param.data.float()
    return model


def _wan_transformer(tiny: bool, *, heads: int, layers: int, ffn: int, channels: int = 16) -> Any:
    from diffusers.models.transformers.transformer_wan import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2 if tiny else heads,
        attention_head_dim=12 if tiny else 128,
        in_channels=channels,
        out_channels=channels,
        text_dim=32 if tiny else 4096,
        freq_dim=256,
        ffn_dim=32 if tiny else ffn,
        num_layers=2 if tiny else layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        rope_max_seq_len=1024,
    )


def _wan_pipeline(tiny: bool, transformer: Any, vae: Any, shift: float) -> Any:
    from diffusers.pipelines.wan.pipeline_wan import WanPipeline
    from diffusers.schedulers.scheduling_unipc_multistep import UniPCMultistepScheduler

    tokenizer = build_tiny_tokenizer()
    return WanPipeline(
        tokenizer=tokenizer,  # type: ignore[arg-type]
        text_encoder=_text_encoder("umt5", tiny, len(tokenizer)),  # type: ignore[arg-type]
        vae=vae,
        scheduler=UniPCMultistepScheduler(  # type: ignore[arg-type]
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift, num_train_timesteps=1000
        ),
        transformer=transformer,
    )


def build_wan21(heads: int, layers: int, ffn: int) -> Callable[[bool, torch.dtype], Any]:
    def build(tiny: bool, dtype: torch.dtype) -> Any:
        from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan

        # The Wan 2.1 VAE is AutoencoderKLWan's default configuration (base 96, 8x space, 4x time, 16 channels).
        vae = (
            AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], temperal_downsample=[False, True, True])
            if tiny
            else AutoencoderKLWan()
        )
        transformer = _wan_transformer(tiny, heads=heads, layers=layers, ffn=ffn)
        return _wan_pipeline(tiny, _cast(transformer, dtype), vae, 3.0)

    return build


def build_wan22_5b(tiny: bool, dtype: torch.dtype) -> Any:
    from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan

    # The Wan 2.2 high-compression VAE: 16x space (2x2 patchify + three downsamples), 4x time, 48 channels.
    vae = AutoencoderKLWan(
        base_dim=16 if tiny else 160,
        decoder_base_dim=16 if tiny else 256,
        z_dim=48,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=1 if tiny else 2,
        temperal_downsample=[False, True, True],
        is_residual=True,
        in_channels=12,
        out_channels=12,
        patch_size=2,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        # Random weights: any normalisation will do (the class defaults have the Wan 2.1 VAE's 16 channels).
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
    )
    transformer = _wan_transformer(tiny, heads=24, layers=30, ffn=14336, channels=48)
    return _wan_pipeline(tiny, _cast(transformer, dtype), vae, 5.0)


def build_ltx_2b(tiny: bool, dtype: torch.dtype) -> Any:
    from diffusers.models.autoencoders.autoencoder_kl_ltx import AutoencoderKLLTXVideo
    from diffusers.models.transformers.transformer_ltx import LTXVideoTransformer3DModel
    from diffusers.pipelines.ltx.pipeline_ltx import LTXPipeline
    from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler

    if tiny:
        from reelgen.engines.tiny_ltx import build_tiny_ltx_pipeline

        return build_tiny_ltx_pipeline()
    tokenizer = build_tiny_tokenizer()
    # LTX-Video 0.9.1: the transformer's defaults are the 2B architecture and the VAE's are 0.9.0's, to which
    # 0.9.1 adds timestep conditioning and noise injection in the decoder's upper blocks.
    vae = AutoencoderKLLTXVideo(timestep_conditioning=True, decoder_inject_noise=(True, True, True, False, False))
    return LTXPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=_text_encoder("t5", tiny, len(tokenizer)),  # type: ignore[arg-type]
        tokenizer=tokenizer,  # type: ignore[arg-type]
        transformer=_cast(LTXVideoTransformer3DModel(), dtype),
    )


def wan_engine(spec: ModelSpec, pipe: Any, device: str, dtype: torch.dtype) -> Any:
    from reelgen.engines.wan import WanEngine

    return WanEngine(spec, lambda: pipe, device, dtype)


def ltx_engine(spec: ModelSpec, pipe: Any, device: str, dtype: torch.dtype) -> Any:
    from reelgen.engines.ltx import LTXEngine

    return LTXEngine(spec, lambda: pipe, device, decode_timestep=0.05, decode_noise_scale=0.025)


CASES = {
    "wan2.1-t2v-1.3b": Case(WAN21_T2V_1_3B, build_wan21(12, 30, 8960), wan_engine, "832x480", 81),
    "wan2.1-t2v-14b": Case(WAN21_T2V_14B, build_wan21(40, 40, 13824), wan_engine, "1280x720", 81),
    "wan2.2-ti2v-5b": Case(WAN22_TI2V_5B, build_wan22_5b, wan_engine, "1280x704", 121, tiny_size="64x64"),
    "ltx-video-0.9.1": Case(LTX_VIDEO_0_9_1, build_ltx_2b, ltx_engine, "768x512", 121),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_diffusers(pipe: Any, params: Any, device: str) -> tuple[list[float], float]:
    marks: list[float] = []

    def on_step(_pipe: Any, _i: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        _sync(device)
        marks.append(time.perf_counter())
        return kwargs

    _sync(device)
    start = time.perf_counter()
    out = pipe(
        prompt=params.prompt,
        negative_prompt=params.negative_prompt,
        height=params.size.height,
        width=params.size.width,
        num_frames=params.num_frames,
        num_inference_steps=params.steps,
        guidance_scale=params.guidance_scale,
        generator=torch.Generator(device="cpu").manual_seed(params.seed),
        output_type="np",
        callback_on_step_end=on_step,
    )
    frames = np.asarray(out.frames[0])
    _sync(device)
    end = time.perf_counter()
    assert frames.shape[0] == params.num_frames, frames.shape
    return np.diff([start, *marks]).tolist(), end - start


class _Timer:
    def __init__(self, device: str) -> None:
        self.device = device
        self.marks: list[float] = []

    def step(self, step: int, total: int, preview: object = None) -> None:
        _sync(self.device)
        self.marks.append(time.perf_counter())


def run_reelgen(engine: Any, params: Any, device: str) -> tuple[list[float], float]:
    timer = _Timer(device)
    _sync(device)
    start = time.perf_counter()
    out = engine.run(StageRequest(params), timer)
    frames = sum(len(chunk) for chunk in out.chunks)
    _sync(device)
    end = time.perf_counter()
    assert frames == params.num_frames, frames
    return np.diff([start, *timer.marks]).tolist(), end - start


def bench(name: str, args: argparse.Namespace) -> dict[str, Any]:
    case = CASES[name]
    device = "cpu" if args.tiny else "cuda"
    dtype = torch.float32 if args.tiny else torch.bfloat16
    built = time.perf_counter()
    # Weights are initialised on the device: a 14B random init takes minutes on a CPU.
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(0)
        pipe = case.build(args.tiny, dtype)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    built = time.perf_counter() - built
    size = case.tiny_size if args.tiny else case.size
    frames = case.tiny_frames if args.tiny else case.frames
    if args.tiny:
        params = _tiny_params(case, size, frames, args.steps)
    else:
        params = validate_params(
            case.spec,
            ParamLimits(max_steps=1000, max_seconds=60.0),
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            size=size,
            seconds=frames / case.spec.fps,
            steps=args.steps,
            seed=0,
            preset="quality",
        )
    engine = case.engine(case.spec, pipe, device, dtype)
    # REELGEN_COMPILE=blocks: its compile happens in the first reelgen step (excluded from the per-step median;
    # use --repeats 2 so the end-to-end minimum has a round without it).
    engine.compile_blocks = args.compile
    engine.attention_backend = args.attention
    engine.load()  # once per worker, not per job: placement and the preview projection's fit
    rows: dict[str, list[tuple[list[float], float]]] = {"diffusers": [], "reelgen": []}
    for r in range(args.repeats):
        order = ["diffusers", "reelgen"] if r % 2 == 0 else ["reelgen", "diffusers"]
        for side in order:
            result = run_diffusers(pipe, params, device) if side == "diffusers" else run_reelgen(engine, params, device)
            rows[side].append(result)
            print(f"  {name} {side} round {r + 1}: {result[1]:.2f} s", file=sys.stderr)
    summary: dict[str, Any] = {
        "model": name,
        "size": size,
        "frames": frames,
        "steps": args.steps,
        "guidance": params.guidance_scale,
        "build_s": round(built, 1),
        "reelgen_settings": f"compile={'blocks' if args.compile else 'off'}, attention={args.attention or 'default'}",
    }
    for side, results in rows.items():
        steps = [s for per_step, _ in results for s in per_step[1:]] or [results[0][0][0]]
        summary[f"{side}_step_s"] = statistics.median(steps)
        summary[f"{side}_total_s"] = min(total for _, total in results)
    summary["step_ratio"] = summary["diffusers_step_s"] / summary["reelgen_step_s"]
    summary["total_ratio"] = summary["diffusers_total_s"] / summary["reelgen_total_s"]
    if device == "cuda":
        summary["peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    del engine, pipe
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return summary


def _tiny_params(case: Case, size: str, frames: int, steps: int) -> Any:
    """Toy runs bypass the catalog's size list (the published sizes are far too big for a CPU)."""
    from reelgen.domain.models import Size
    from reelgen.domain.params import GenerationParams

    w, h = (int(v) for v in size.split("x"))
    return GenerationParams(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        model=case.spec.id,
        seconds=frames / case.spec.fps,
        size=Size(w, h),
        fps=case.spec.fps,
        num_frames=frames,
        seed=0,
        steps=steps,
        guidance_scale=case.spec.default_guidance,
        preset="quality",
    )


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| model | size, frames | steps | diffusers s/step | reelgen s/step | ratio | diffusers end-to-end s "
        "| reelgen end-to-end s | ratio | peak GB |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['size']}, {r['frames']} | {r['steps']} | {r['diffusers_step_s']:.3f} | "
            f"{r['reelgen_step_s']:.3f} | **{r['step_ratio']:.2f}x** | {r['diffusers_total_s']:.1f} | "
            f"{r['reelgen_total_s']:.1f} | {r['total_ratio']:.2f}x | {r.get('peak_gb', '-')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    ap.add_argument("--steps", type=int, default=4, help="denoising steps per run (per-step time: median of 2..n)")
    ap.add_argument("--repeats", type=int, default=1, help="rounds per side, alternating which goes first")
    ap.add_argument("--tiny", action="store_true", help="toy sizes on the CPU (checks the script, times nothing)")
    ap.add_argument("--compile", action="store_true", help="reelgen side: regional torch.compile (REELGEN_COMPILE)")
    ap.add_argument("--attention", help="reelgen side: a diffusers attention backend (REELGEN_ATTENTION_BACKEND)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or --tiny to check the script on the CPU", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(CASES)}", file=sys.stderr)
        return 2
    results = [bench(name, args) for name in names]
    device = "CPU (--tiny)" if args.tiny else torch.cuda.get_device_name()
    print(f"device: {device}; torch {torch.__version__}; reelgen side: {results[0]['reelgen_settings']}")
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
