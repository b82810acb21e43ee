"""Several GPUs for one video: context parallelism (one video's transformer split across the GPUs of a torchrun
job, through diffusers' ``ContextParallelConfig``) or CFG parallelism (the guided and unguided passes of each
step on two GPUs at once).

Every rank holds the whole pipeline and makes the same call with the same inputs; inside the transformer the
token sequence is split across ranks. Ulysses attention exchanges heads with an all-to-all (each rank computes
full attention for its share of heads: exact, the same numbers as one GPU); ring attention passes key/value
chunks around and merges partial results with their log-sum-exp (diffusers needs an attention backend that
returns it: flash / ``_native_cudnn`` / sage on CUDA, not the plain SDPA one). Which families can: those whose
diffusers transformer carries a context-parallel plan (``_cp_plan``) that works: Wan 2.1/2.2 in diffusers 0.42
(LTX-Video's and LTX-2's plans fail when used: ``TOKEN_SPLIT_BROKEN``). The worker side (who claims jobs, how the
ranks stay in step) is ``reelgen.worker.lockstep``.

CFG parallelism (kind ``cfg``, two ranks) needs no plan from diffusers: classifier-free guidance runs the
transformer twice a step, once with the prompt and once with the negative prompt, and the two passes do not
depend on each other. ``_CfgSplit`` is a diffusers model hook that reads which pass a call is from the
``cache_context`` the pipelines name their calls with: a ``cond_uncond`` call (LTX-Video, LTX-2, CogVideoX
batch both passes) is split in two halves of the batch, one per rank; a ``cond`` call (Wan and HunyuanVideo
1.5's guider, ``pred_cond``, run the passes one after the other) is computed on rank 0 while rank 1 computes the
``uncond`` pass the pipeline will ask for next, with the negative prompt's inputs it saw on the first step; the
``uncond`` call then returns that result. The
ranks exchange their outputs with one all-gather, so both hold the same numbers as one GPU would (the same
kernels on the same inputs) and their latents never diverge.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

CONTEXT_PARALLEL_KINDS = ("ulysses", "ring", "cfg")
# Families whose pipelines name their guidance passes as _CfgSplit reads them.
CFG_PARALLEL_FAMILIES = ("wan", "ltx", "ltx2", "cogvideox", "hunyuan")
# Transformers with a single pass a step: nothing to split.
GUIDANCE_DISTILLED = ("HunyuanVideoTransformer3DModel",)
# Transformers whose diffusers plan exists but does not run, and where it fails (measured with two gloo ranks on
# the tiny models, native attention).
TOKEN_SPLIT_BROKEN = {
    "LTXVideoTransformer3DModel": "the text attention mask keeps every head while the heads are split",
    "LTX2VideoTransformer3DModel": "the split rotary embedding does not follow the split (apply_split_rotary_emb)",
}
TRANSFORMER_COMPONENTS = ("transformer", "transformer_2")

log = logging.getLogger("reelgen.engines")


@dataclass(frozen=True, slots=True)
class ContextParallel:
    """How a worker splits one video: ``kind`` (ulysses | ring) over ``degree`` ranks (the torchrun world)."""

    kind: str
    degree: int

    def __post_init__(self) -> None:
        if self.kind not in CONTEXT_PARALLEL_KINDS:
            raise ValueError(f"context parallel kind must be one of {CONTEXT_PARALLEL_KINDS}, not {self.kind!r}")
        if self.degree < 2:
            raise ValueError(f"context parallel needs at least 2 ranks, not {self.degree}")
        if self.kind == "cfg" and self.degree != 2:
            raise ValueError(f"CFG parallel runs the two guidance passes on 2 ranks, not {self.degree}")


def enable_context_parallel(pipe: Any, cp: ContextParallel, family: str) -> None:
    """Split the pipeline's transformer(s) across the ranks of the default process group: their tokens (ulysses,
    ring) or their guidance passes (cfg). Raises ValueError, before touching anything, when the model cannot."""
    models = [getattr(pipe, name) for name in TRANSFORMER_COMPONENTS if getattr(pipe, name, None) is not None]
    if cp.kind == "cfg":
        _split_guidance_passes(models, family)
    else:
        _split_tokens(models, cp)


def _split_tokens(models: list[Any], cp: ContextParallel) -> None:
    from diffusers import ContextParallelConfig

    for model in models:
        broken = TOKEN_SPLIT_BROKEN.get(type(model).__name__)
        if broken is not None:
            raise ValueError(
                f"{type(model).__name__} cannot split one video's tokens across GPUs with diffusers 0.42 ({broken}); "
                "use --context-parallel cfg for it"
            )
        if getattr(model, "_cp_plan", None) is None:
            raise ValueError(
                f"{type(model).__name__} has no context-parallel plan in diffusers, so it cannot split one video "
                "across GPUs; run this model on a worker without --context-parallel (the family that can: Wan), or "
                "with --context-parallel cfg"
            )
    for model in models:
        # The "anything" variants pad sequences and head counts that the degree does not divide (Wan 2.1 1.3B
        # has 12 heads; 8 GPUs would not divide them), at no cost where it does.
        options = {"ulysses_anything": True} if cp.kind == "ulysses" else {"ring_anything": True}
        config = ContextParallelConfig(**{f"{cp.kind}_degree": cp.degree}, **options)  # type: ignore[arg-type]
        with _a_device_per_rank():
            model.enable_parallelism(config=config)
        log.info("%s split %s-wise over %d ranks", type(model).__name__, cp.kind, cp.degree)


def _split_guidance_passes(models: list[Any], family: str) -> None:
    distilled = [type(m).__name__ for m in models if type(m).__name__ in GUIDANCE_DISTILLED]
    if family not in CFG_PARALLEL_FAMILIES or distilled:
        why = f"{distilled[0]} is guidance-distilled (one pass a step)" if distilled else f"{family!r} models"
        raise ValueError(
            "CFG parallel splits the two guidance passes of Wan, LTX-Video, LTX-2, CogVideoX and HunyuanVideo "
            f"1.5; {why} cannot use it: run this model on a worker without --context-parallel cfg"
        )
    for model in models:
        _add_cfg_split(model)
        log.info("%s runs its guidance passes on 2 ranks (CFG parallel)", type(model).__name__)


@contextmanager
def _a_device_per_rank() -> Iterator[None]:
    """diffusers picks each rank's device as ``rank % torch.accelerator.device_count()``, which divides by zero
    on a machine without an accelerator (CPU ranks on gloo: how the tests run). There, report one device while
    the parallel config is built; the device it names ("cpu") is the right one anyway."""
    count = torch.accelerator.device_count
    if count() > 0:
        yield
        return
    torch.accelerator.device_count = lambda: 1  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.accelerator.device_count = count  # type: ignore[assignment]


# -- CFG parallelism ----------------------------------------------------------------------------------------

CFG_HOOK = "reelgen_cfg_parallel"


def _add_cfg_split(model: Any) -> None:
    from diffusers.hooks import HookRegistry

    registry = HookRegistry.check_if_exists_or_initialize(model)
    if CFG_HOOK not in registry.hooks:
        registry.register_hook(_cfg_split_hook(), CFG_HOOK)


def _cfg_split_hook() -> Any:
    """Built on first use: diffusers' hook classes import torch-heavy modules."""
    import torch.distributed as dist
    from diffusers.hooks.hooks import BaseState, ModelHook, StateManager

    class _NoState(BaseState):
        def reset(self, *args: Any, **kwargs: Any) -> None:
            pass

    class _CfgSplit(ModelHook):
        _is_stateful = True  # so the pipelines' cache_context reaches `calls`

        def __init__(self) -> None:
            super().__init__()
            self.calls = StateManager(_NoState)  # type: ignore[arg-type]  # diffusers annotates an instance
            self.rank = dist.get_rank()
            # Pipelines that run the passes one after the other: the inputs of the last job's two passes (all
            # but the latents and the timestep), and the unguided result rank 1 computed during the guided call,
            # for the unguided call that follows it.
            self.cond: dict[str, Any] | None = None
            self.uncond: dict[str, Any] | None = None
            self.ahead: tuple[torch.Tensor, torch.Tensor, Any] | None = None

        def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
            context = self.calls._context
            name = context.name if context is not None else None
            if name == "cond_uncond":
                return self._split_batch(args, kwargs)
            if name in GUIDED_CALLS and not args:
                return self._guided(kwargs)
            if name in UNGUIDED_CALLS and not args:
                return self._unguided(kwargs)
            return self._compute(*args, **kwargs)

        def _compute(self, *args: Any, **kwargs: Any) -> Any:
            forward: Any = self.fn_ref.original_forward  # the transformer's own forward
            return forward(*args, **kwargs)

        def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
            self.cond = self.uncond = self.ahead = None
            return module

        def _split_batch(self, args: tuple, kwargs: dict[str, Any]) -> Any:
            """Each rank runs its half of a batch that holds the unguided then the guided pass."""
            full = kwargs["hidden_states"].shape[0] if "hidden_states" in kwargs else args[0].shape[0]
            if full % 2:
                return self._compute(*args, **kwargs)
            half = full // 2

            def mine(value: Any) -> Any:
                if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == full:
                    return value[self.rank * half : (self.rank + 1) * half]
                return value

            output = self._compute(*map(mine, args), **{k: mine(v) for k, v in kwargs.items()})
            return _map_tensors(output, lambda part: torch.cat(_gather(part), dim=0))

        def _guided(self, kwargs: dict[str, Any]) -> Any:
            inputs = _pass_inputs(kwargs)
            if self.uncond is None or self.cond is None or not _same(inputs, self.cond):
                # The first step of a job: both ranks run both passes and learn the passes' inputs.
                self.cond, self.uncond, self.ahead = inputs, None, None
                return self._compute(**kwargs)
            own = kwargs if self.rank == 0 else {**kwargs, **self.uncond}
            output = self._compute(**own)
            guided, unguided = _gather(_first_tensor(output))
            self.ahead = (kwargs["hidden_states"], kwargs["timestep"], _replace_first_tensor(output, unguided))
            return _replace_first_tensor(output, guided)

        def _unguided(self, kwargs: dict[str, Any]) -> Any:
            ahead, self.ahead = self.ahead, None
            inputs = _pass_inputs(kwargs)
            if (
                ahead is not None
                and ahead[0] is kwargs.get("hidden_states")
                and ahead[1] is kwargs.get("timestep")
                and self.uncond is not None
                and _same(inputs, self.uncond)
            ):
                return ahead[2]
            # The first step of a job (or another negative prompt than last time's): compute, and remember it.
            self.uncond = inputs
            return self._compute(**kwargs)

    return _CfgSplit()


# How pipelines name the passes they run one after the other (Wan; the guiders of HunyuanVideo 1.5).
GUIDED_CALLS = ("cond", "pred_cond")
UNGUIDED_CALLS = ("uncond", "pred_uncond")
# Inputs that are the same in both passes of a step (the rest, the text side, is what the unguided pass changes).
STEP_INPUTS = ("hidden_states", "timestep")


def _pass_inputs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in STEP_INPUTS}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two passes' inputs are equal (tensors by value)."""
    return a.keys() == b.keys() and all(_equal(a[key], b[key]) for key in a)


def _equal(x: Any, y: Any) -> bool:
    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        return isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape and torch.equal(x, y)
    if isinstance(x, tuple | list) or isinstance(y, tuple | list):
        return type(x) is type(y) and len(x) == len(y) and all(_equal(i, j) for i, j in zip(x, y, strict=True))
    return bool(x == y)


def _gather(part: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's `part` (same shape on each), in rank order."""
    import torch.distributed as dist

    parts = [torch.empty_like(part) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, part.contiguous())
    return parts


def _map_tensors(output: Any, fn: Any) -> Any:
    """`fn` applied to each tensor of a transformer's output (the pipelines call with return_dict=False)."""
    if isinstance(output, torch.Tensor):
        return fn(output)
    if isinstance(output, tuple):
        return tuple(_map_tensors(item, fn) for item in output)
    if output is None:
        return None
    raise TypeError(f"CFG parallel cannot gather a transformer output of type {type(output).__name__}")


def _first_tensor(output: Any) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output[0]


def _replace_first_tensor(output: Any, tensor: torch.Tensor) -> Any:
    return tensor if isinstance(output, torch.Tensor) else (tensor, *output[1:])
