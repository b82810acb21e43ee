"""`reelgen serve | worker | generate | models | users | train-demo | eval-demo`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from reelgen.domain.errors import ReelgenError
from reelgen.settings import Settings

if TYPE_CHECKING:
    from reelgen.demo.train import TrainConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reelgen", description="Self-hosted text-to-video service.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="make one video in this process and write it to a file")
    p.add_argument("prompt")
    p.add_argument("-o", "--output", type=Path, default=Path("out.mp4"), help="where to write the mp4")
    p.add_argument("--model", help="model id (default: REELGEN_DEFAULT_MODEL)")
    p.add_argument("--seconds", type=float)
    p.add_argument("--size", help="WIDTHxHEIGHT, e.g. 832x480")
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--fps", type=int)
    p.add_argument("--guidance-scale", type=float)
    p.add_argument("--negative-prompt")
    p.add_argument("--preset", choices=("quality", "balanced", "fast"), help="speed preset (default: quality)")
    p.add_argument("--lora", help="name of a LoRA in REELGEN_LORA_DIR")
    p.add_argument("--lora-scale", type=float, help="LoRA strength, -2 to 2 (default 1)")

    p = sub.add_parser("worker", help="run a worker on REELGEN_DATABASE_URL / REELGEN_STORAGE_URL")
    p.add_argument("--models", help="comma-separated model ids this worker accepts (default: all)")
    p.add_argument("--threads", type=int, default=1, help="worker threads in this process")
    p.add_argument(
        "--context-parallel",
        choices=("ulysses", "ring", "cfg"),
        help="split each video across the GPUs of a torchrun job (torchrun --nproc-per-node N -m reelgen worker ...): "
        "its tokens (ulysses, ring) or its two guidance passes (cfg, 2 GPUs)",
    )

    sub.add_parser("models", help="list models and whether each can run here")

    p = sub.add_parser("serve", help="start the API and studio with embedded workers")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--workers", type=int, default=1, help="embedded worker threads (default 1)")
    group.add_argument("--no-worker", action="store_true", help="serve only; run `reelgen worker` elsewhere")
    p.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve on a non-loopback address even though authentication is off (no users, REELGEN_AUTH=off)",
    )

    from reelgen.cli_users import add_users_parser

    add_users_parser(sub)

    from reelgen.cli_ops import add_ops_parsers

    add_ops_parsers(sub)  # queue, workers, maintenance

    p = sub.add_parser("train-demo", help="train the reelgen-demo model (resumable; see reelgen.demo.train)")
    p.add_argument("--run-dir", type=Path, help="checkpoints, cache and logs (default: $REELGEN_HOME/demo-run)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--steps", type=int, help="train the transformer up to this step (default 100000)")
    p.add_argument(
        "--max-minutes", type=float, help="stop (after checkpointing) once the transformer stage ran this long"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vae-image-steps", type=int, help="VAE steps on single frames (new runs only; default 3000)")
    p.add_argument("--vae-steps", type=int, help="VAE steps on whole clips, after those (new runs only; default 600)")
    p.add_argument(
        "--vae-lr", type=float, help="VAE peak learning rate (new runs only; default 5e-4; lower to fine-tune)"
    )
    p.add_argument(
        "--decoder-steps",
        type=int,
        help="then train the VAE decoder alone, encoder frozen, for this many clip steps (new runs only; default 0)",
    )
    p.add_argument("--decoder-lr", type=float, help="its peak learning rate (new runs only; default 1e-4)")
    p.add_argument("--lr", type=float, help="transformer peak learning rate (new runs only; default 1e-3)")
    p.add_argument(
        "--ffn-dim",
        type=int,
        help="the transformer's feed-forward width (new runs only; default 256); an --init-transformer of a width "
        "that divides it is widened to it, computing the same function",
    )
    p.add_argument(
        "--final-lr",
        type=float,
        help="anneal the transformer's rate along a cosine down to this at --steps (new runs only; default: none, "
        "the rate stays at --lr)",
    )
    p.add_argument(
        "--loss-sigma-floor",
        type=float,
        help="the clean-latent error weighs 1/max(sigma, this)^2 (new runs only; default 0.25; higher: more weight "
        "on noisy samples, where the words must decide the shape)",
    )
    p.add_argument(
        "--shape-swap",
        type=float,
        help="share of noisy samples (sigma >= 0.5) drawn from the scene with another shape, the caption and target "
        "unchanged: teaches the words to decide the shape (new runs only; default 0)",
    )
    p.add_argument(
        "--shape-swap-min-sigma",
        type=float,
        help="the noise level from which --shape-swap applies (new runs only; default 0.5; lower: the words must "
        "also override a shape that is already fairly visible)",
    )
    p.add_argument(
        "--rollout",
        type=float,
        help="share of noisy samples (sigma >= --rollout-min-sigma) whose input is one sampling step from a "
        "noisier one with the model's own prediction, the target the true scene (new runs only; default 0)",
    )
    p.add_argument(
        "--rollout-min-sigma",
        type=float,
        help="the noise level from which --rollout applies (new runs only; default 0.3)",
    )
    p.add_argument(
        "--detail-weight",
        type=float,
        help="extra loss weight on latent detail (|x0 - its 3x3 mean|, relative; new runs only; default 0)",
    )
    p.add_argument(
        "--object-weight",
        type=float,
        help="extra loss weight on latent positions the object covers (new runs only; default 4)",
    )
    p.add_argument(
        "--shape-weight",
        action="append",
        metavar="SHAPE=W",
        help="pick scenes of SHAPE W times as often for training batches (repeatable; new runs only; default 1 each)",
    )
    p.add_argument(
        "--swap-source-weight",
        action="append",
        metavar="SHAPE=W",
        help="with --shape-swap, redraw scenes as SHAPE W times as often as each other shape (repeatable; new runs "
        "only; e.g. circle=5: the round blob sampling starts from, to be turned into the shape the words ask for)",
    )
    p.add_argument("--cache-size", type=int, help="training clips encoded for the transformer (new runs only)")
    p.add_argument("--batch", type=int, help="transformer batch size (new runs only; default 32; shipped runs: 16)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared machines)")
    p.add_argument("--checkpoint-every", type=int, default=250, help="transformer steps between checkpoints")
    p.add_argument("--export", type=Path, help="also write the pipeline here at every checkpoint")
    p.add_argument(
        "--init-vae",
        type=Path,
        help="start from this trained VAE folder (a run's `vae/`, or src/reelgen/demo/warmstart/vae) instead of "
        "the single-frame stage; --vae-steps clip steps still follow (0: none)",
    )

    p.add_argument(
        "--init-transformer",
        type=Path,
        help="start the transformer and text encoder from this exported pipeline (e.g. src/reelgen/demo/weights); "
        "use it with the VAE it was trained on (--init-vae of its own vae/ folder, --vae-steps 0)",
    )
    p.add_argument(
        "--fresh-text-encoder",
        action="store_true",
        help="with --init-transformer: take only the transformer; the text encoder starts from random weights",
    )
    p.add_argument(
        "--text-encoder",
        choices=("joint", "frozen"),
        help="train the text encoder with the transformer (joint, the default) or keep it as it starts (new runs only)",
    )
    p.add_argument(
        "--canonical-captions",
        type=float,
        help="share of training captions in the canonical wording, 0-1 (new runs only; default 0)",
    )

    p = sub.add_parser("eval-demo", help="score reelgen-demo on held-out captions with the demo checker")
    p.add_argument("--n", type=int, default=100, help="number of held-out clips")
    p.add_argument("--weights", type=Path, help="pipeline folder (default: the packaged weights)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance-scale", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--save-clips", type=Path, help="write each generated clip here as .npy")

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from reelgen.engines.registry import configure_models  # torch-free

    configure_models(Settings().model_dir)
    try:
        commands = {
            "generate": cmd_generate,
            "worker": cmd_worker,
            "models": cmd_models,
            "serve": cmd_serve,
            "train-demo": cmd_train_demo,
            "eval-demo": cmd_eval_demo,
            "users": cmd_users,
            "queue": cmd_ops,
            "workers": cmd_ops,
            "maintenance": cmd_ops,
        }
        return commands[args.command](args)
    except ReelgenError as e:
        field = f" ({e.param})" if e.param else ""
        print(f"error{field}: {e.message}", file=sys.stderr)
        return 2


def cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from reelgen.domain.jobs import JobStatus
    from reelgen.domain.params import validate_params
    from reelgen.engines.lora import LoraLibrary
    from reelgen.engines.registry import get_spec
    from reelgen.runtime import build_worker, open_artifacts_from, open_job_store_from

    base = Settings()
    spec = get_spec(args.model or base.default_model)
    params = validate_params(
        spec,
        base.limits,
        prompt=args.prompt,
        seconds=args.seconds,
        size=args.size,
        fps=args.fps,
        seed=args.seed,
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        negative_prompt=args.negative_prompt,
        preset=args.preset,
        lora=args.lora,
        lora_scale=args.lora_scale,
        lora_exists=LoraLibrary(base.lora_dir).exists if base.lora_dir else None,
    )
    # A private, throwaway queue: the job runs through the same store -> worker -> storage path as in the
    # service, but no running server's workers can pick it up.
    with tempfile.TemporaryDirectory(prefix="reelgen-generate-") as home:
        settings = base.model_copy(update={"home": Path(home), "database_url": None, "storage_url": None})
        store, artifacts = open_job_store_from(settings), open_artifacts_from(settings)
        bar = tqdm(total=params.steps * params.n, unit="step", desc=spec.id, file=sys.stderr)

        def on_step(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            job, _ = store.create("local", params)
            worker = build_worker(settings, store, artifacts, on_step=on_step)
            worker.run_once()
            bar.close()
            job = store.get(job.id) or job
            if job.status is not JobStatus.COMPLETED or job.artifact is None:
                print(
                    f"generation {job.status.value}: {job.error.message if job.error else ''}",
                    file=sys.stderr,
                )
                return 1
            args.output.parent.mkdir(parents=True, exist_ok=True)
            with open(args.output, "wb") as out:
                for chunk in artifacts.read_range(job.artifact.video_key):
                    out.write(chunk)
        finally:
            store.close()
    print(args.output)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from reelgen.runtime import build_worker, open_artifacts_from, open_job_store_from

    settings = Settings()
    if args.models:
        settings = settings.model_copy(update={"worker_models": args.models})
    stop = threading.Event()
    _stop_on_signals(stop)
    if args.context_parallel:
        from reelgen.runtime import run_context_parallel_worker

        run_context_parallel_worker(settings, args.context_parallel, stop)
        return 0
    store, artifacts = open_job_store_from(settings), open_artifacts_from(settings)
    threads = []
    for i in range(max(args.threads, 1)):
        # Each thread has its own store connection (thread-local) and its own engine cache.
        worker = build_worker(settings, store if i == 0 else open_job_store_from(settings), artifacts)
        t = threading.Thread(target=worker.run_forever, args=(stop,), name=f"worker-{i}")
        t.start()
        threads.append(t)
    logging.getLogger("reelgen.worker").info(
        "worker started: %d thread(s) on %s", len(threads), settings.resolved_database_url.split("@")[-1]
    )
    # Join with a timeout: the kernel may deliver SIGTERM to any thread, and a main thread blocked in an untimed
    # join would never return to the interpreter to run the handler (a worker that ignores SIGTERM).
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    store.close()
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from reelgen.engines.registry import availability, list_specs

    gpu_gb = Settings().gpu_memory_gb  # a known GPU memory figure flags models too large for it
    memory = None if gpu_gb is None else int(gpu_gb * 1024**3)
    rows = [("MODEL", "FAMILY", "SIZES", "STATUS")]
    for spec in list_specs():
        avail = availability(spec.id, device_memory=memory)
        sizes = ", ".join(str(s) for s in spec.sizes[:4]) + (" …" if len(spec.sizes) > 4 else "")
        rows.append((spec.id, spec.family, sizes, "ready" if avail.runnable else avail.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from reelgen.server import serve

    settings = Settings()
    return serve(
        settings,
        host=args.host,
        port=args.port,
        workers=0 if args.no_worker else args.workers,
        allow_unauthenticated=args.allow_unauthenticated,
    )


def cmd_ops(args: argparse.Namespace) -> int:
    from reelgen import cli_ops

    run = {"queue": cli_ops.cmd_queue, "workers": cli_ops.cmd_workers, "maintenance": cli_ops.cmd_maintenance}
    return run[args.command](args)


def cmd_users(args: argparse.Namespace) -> int:
    from reelgen.cli_users import cmd_users as run_users

    return run_users(args)


def cmd_train_demo(args: argparse.Namespace) -> int:
    import torch

    from reelgen.demo.train import Trainer

    torch.set_num_threads(max(args.threads, 1))
    run_dir = args.run_dir or Settings().home / "demo-run"
    # A resumed run keeps its saved settings except steps and checkpoint_every (see Trainer).
    try:
        config = _train_config(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        trainer = Trainer(
            run_dir,
            config,
            resume=args.resume,
            export=args.export,
            init_vae=args.init_vae,
            init_transformer=args.init_transformer,
            fresh_text_encoder=args.fresh_text_encoder,
        )
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    step = trainer.run(max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    print(f"transformer step {step}; pipeline in {run_dir / 'pipeline'}")
    return 0


def _train_config(args: argparse.Namespace) -> TrainConfig:
    from reelgen.demo.train import TrainConfig

    defaults = TrainConfig()
    return TrainConfig(
        seed=args.seed,
        model=defaults.model if args.ffn_dim is None else dataclasses.replace(defaults.model, ffn_dim=args.ffn_dim),
        steps=defaults.steps if args.steps is None else args.steps,
        checkpoint_every=args.checkpoint_every,
        vae_image_steps=defaults.vae_image_steps if args.vae_image_steps is None else args.vae_image_steps,
        vae_steps=defaults.vae_steps if args.vae_steps is None else args.vae_steps,
        vae_lr=args.vae_lr or defaults.vae_lr,
        decoder_steps=args.decoder_steps or defaults.decoder_steps,
        decoder_lr=args.decoder_lr or defaults.decoder_lr,
        cache_size=args.cache_size or defaults.cache_size,
        batch=args.batch or defaults.batch,
        lr=defaults.lr if args.lr is None else args.lr,
        final_lr=args.final_lr,
        loss_sigma_floor=defaults.loss_sigma_floor if args.loss_sigma_floor is None else args.loss_sigma_floor,
        text_encoder=args.text_encoder or defaults.text_encoder,
        shape_swap=defaults.shape_swap if args.shape_swap is None else args.shape_swap,
        shape_swap_min_sigma=(
            defaults.shape_swap_min_sigma if args.shape_swap_min_sigma is None else args.shape_swap_min_sigma
        ),
        rollout=defaults.rollout if args.rollout is None else args.rollout,
        rollout_min_sigma=defaults.rollout_min_sigma if args.rollout_min_sigma is None else args.rollout_min_sigma,
        detail_weight=defaults.detail_weight if args.detail_weight is None else args.detail_weight,
        object_weight=defaults.object_weight if args.object_weight is None else args.object_weight,
        shape_weights=_shape_weights(args.shape_weight or [], "--shape-weight"),
        swap_source_weights=_shape_weights(args.swap_source_weight or [], "--swap-source-weight"),
        canonical_captions=defaults.canonical_captions if args.canonical_captions is None else args.canonical_captions,
    )


def _shape_weights(items: list[str], flag: str) -> dict[str, float]:
    """`--shape-weight star=3 --shape-weight square=2` -> {"star": 3.0, "square": 2.0}."""
    weights = {}
    for item in items:
        shape, _, value = item.partition("=")
        try:
            weights[shape.strip()] = float(value)  # no "=": value is "", not a number
        except ValueError:
            raise ValueError(f"{flag} takes SHAPE=WEIGHT (e.g. star=3), not {item!r}") from None
    return weights


def cmd_eval_demo(args: argparse.Namespace) -> int:
    import torch

    from reelgen.demo.evaluate import evaluate
    from reelgen.demo.model import WEIGHTS_DIR
    from reelgen.engines.wan import load_wan_pipeline

    torch.set_num_threads(max(args.threads, 1))
    folder = args.weights or WEIGHTS_DIR
    if not (folder / "model_index.json").is_file():
        print(f"error: no trained pipeline in {folder} (run `reelgen train-demo --export {folder}`)", file=sys.stderr)
        return 2
    pipe = load_wan_pipeline(folder, dtype=torch.float32, device="cpu")
    result = evaluate(
        pipe,
        args.n,
        steps=args.steps,
        guidance=args.guidance_scale,
        seed=args.seed,
        save_dir=args.save_clips,
        progress=print if args.verbose else None,
    )
    print(result.summary())
    print(f"motion right per asked motion: {result.breakdown('motion')}")
    print(f"shape right per asked shape: {result.breakdown('shape')}")
    return 0


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


if __name__ == "__main__":
    sys.exit(main())
