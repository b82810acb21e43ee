"""One worker on several GPUs: a context-parallel worker under torchrun (``reelgen worker --context-parallel``).

Rank 0 is the worker the queue sees: it claims jobs, heartbeats, reports progress, encodes and stores. Every
other rank follows: it loads the same model and makes the same pipeline call as rank 0, in step, so that the
transformer's collectives (engines.parallel) meet. Rank 0 tells the followers what to do over a small gloo
channel (JSON and raw bytes in tensors; nothing is unpickled):

- ``load``: the model rank 0 is about to load (loading is collective once the transformer is split);
- ``run``: the stage request rank 0 is about to run (params, variation, count, LoRA, input image);
- ``stop``: rank 0 is shutting down.

After every denoising step all ranks agree whether to go on (one all-reduce of a flag): when rank 0's progress
sink stops the job (cancel, lost lease), every rank leaves the pipeline at the same step and the followers are
back at the channel waiting for the next job. A follower that fails on its own (out of memory, a crash) leaves
rank 0 waiting in a collective until the process group's timeout ends the torchrun job; the claimed job's
lease then expires and another worker runs it: nothing lost, nothing stored twice (the attempt fencing).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from reelgen.domain.errors import JobCancelled
from reelgen.domain.params import GenerationParams
from reelgen.engines.base import Engine, ProgressSink, StageRequest, VideoOutput
from reelgen.engines.lora import LoraWeights
from reelgen.worker.engine_cache import EngineCache

log = logging.getLogger("reelgen.worker")

# A control message is a stage request's JSON (prompt and all): far below this. The input image travels as
# its own blob, bounded by the API's upload limit.
MAX_MESSAGE_BYTES = 1 << 20


class Lockstep:
    """The control channel between rank 0 and the followers (a gloo group next to the default one, which may
    be NCCL: control messages stay on the CPU)."""

    def __init__(self) -> None:
        self.rank = dist.get_rank()
        self.size = dist.get_world_size()
        # Followers wait on this channel while the queue is idle, for as long as it is: no timeout to speak of.
        # (A rank that dies ends the torchrun job; a failure inside a run times out in the default group.)
        self.group = dist.new_group(backend="gloo", timeout=timedelta(days=365))

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def send(self, message: dict[str, Any], blob: bytes = b"") -> None:
        assert self.leader
        data = json.dumps(message).encode()
        if len(data) > MAX_MESSAGE_BYTES:
            raise ValueError(f"control message of {len(data)} bytes is over {MAX_MESSAGE_BYTES}")
        dist.broadcast(torch.tensor([len(data), len(blob)], dtype=torch.int64), src=0, group=self.group)
        dist.broadcast(torch.frombuffer(bytearray(data), dtype=torch.uint8), src=0, group=self.group)
        if blob:
            dist.broadcast(torch.frombuffer(bytearray(blob), dtype=torch.uint8), src=0, group=self.group)

    def receive(self) -> tuple[dict[str, Any], bytes]:
        assert not self.leader
        sizes = torch.zeros(2, dtype=torch.int64)
        dist.broadcast(sizes, src=0, group=self.group)
        data = torch.empty(int(sizes[0]), dtype=torch.uint8)
        dist.broadcast(data, src=0, group=self.group)
        blob = b""
        if sizes[1]:
            raw = torch.empty(int(sizes[1]), dtype=torch.uint8)
            dist.broadcast(raw, src=0, group=self.group)
            blob = raw.numpy().tobytes()
        return json.loads(data.numpy().tobytes()), blob

    def any(self, flag: bool) -> bool:
        """True on every rank when any rank passed True."""
        value = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.group)
        return bool(value.item())


# -- stage requests over the channel -----------------------------------------------------------------------


def request_message(request: StageRequest) -> tuple[dict[str, Any], bytes]:
    if request.init_frames is not None:
        raise ValueError("context-parallel workers run generate stages only (no init frames)")
    image = request.input_image
    lora = request.lora
    message = {
        "params": request.params.to_dict(),
        "stage": request.stage,
        "variation": request.variation,
        "count": request.count,
        "lora": None
        if lora is None
        else {"name": lora.name, "path": str(lora.path), "scale": lora.scale, "path_2": _str(lora.path_2)},
        "image_shape": None if image is None else list(image.shape),
    }
    return message, b"" if image is None else np.ascontiguousarray(image, dtype=np.uint8).tobytes()


def request_from_message(message: dict[str, Any], blob: bytes) -> StageRequest:
    lora = message["lora"]
    shape = message["image_shape"]
    return StageRequest(
        params=GenerationParams.from_dict(message["params"]),
        stage=message["stage"],
        variation=int(message["variation"]),
        count=int(message["count"]),
        lora=None
        if lora is None
        else LoraWeights(
            name=lora["name"],
            path=Path(lora["path"]),
            scale=float(lora["scale"]),
            path_2=None if lora["path_2"] is None else Path(lora["path_2"]),
        ),
        input_image=None if shape is None else np.frombuffer(blob, dtype=np.uint8).reshape(shape).copy(),
    )


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


# -- rank 0 ----------------------------------------------------------------------------------------------------


class LeaderSink:
    """Rank 0's progress sink: the worker's own, plus the per-step agreement with the followers."""

    def __init__(self, inner: ProgressSink, lockstep: Lockstep) -> None:
        self.inner, self.lockstep = inner, lockstep

    def step(self, step: int, total: int, preview: Callable[[], np.ndarray] | None = None) -> None:
        try:
            self.inner.step(step, total, preview)
        except BaseException:
            self.lockstep.any(True)
            raise
        self.lockstep.any(False)  # the followers' side of this step's vote (only rank 0 ever stops a run)


class LeaderEngine(Engine):
    """Rank 0's view of an engine: every run is announced to the followers first."""

    def __init__(self, inner: Engine, lockstep: Lockstep) -> None:
        self.inner, self.lockstep, self.spec = inner, lockstep, inner.spec

    def load(self) -> None:
        self.inner.load()

    def max_batch(self, request: StageRequest) -> int:
        return self.inner.max_batch(request)

    def run(self, request: StageRequest, sink: ProgressSink) -> VideoOutput:
        return self.run_batch(request, sink)[0]

    def run_batch(self, request: StageRequest, sink: ProgressSink) -> list[VideoOutput]:
        message, blob = request_message(request)
        self.lockstep.send({"op": "run", "model": self.spec.id, **message}, blob)
        return self.inner.run_batch(request, LeaderSink(sink, self.lockstep))

    def unload(self) -> None:
        self.inner.unload()


class LeaderEngineCache(EngineCache):
    """Rank 0's engine cache: a model switch is announced before it happens, runs go through LeaderEngine."""

    def __init__(self, factory: Callable[[str], Engine], lockstep: Lockstep) -> None:
        super().__init__(factory)
        self.lockstep = lockstep

    def get(self, model_id: str) -> Engine:
        if model_id != self.resident:
            self.lockstep.send({"op": "load", "model": model_id})
        return LeaderEngine(super().get(model_id), self.lockstep)

    def close(self) -> None:
        self.lockstep.send({"op": "stop"})
        super().close()


# -- the other ranks ------------------------------------------------------------------------------------------


class FollowerSink:
    """A follower's sink: no reporting, only the per-step agreement (rank 0 may have stopped the job)."""

    def __init__(self, lockstep: Lockstep) -> None:
        self.lockstep = lockstep

    def step(self, step: int, total: int, preview: Callable[[], np.ndarray] | None = None) -> None:
        if self.lockstep.any(False):
            raise JobCancelled("stopped by rank 0")


def follow(lockstep: Lockstep, engines: EngineCache) -> int:
    """A follower's loop: do what rank 0 announces until it stops. Returns how many runs it made."""
    runs = 0
    while True:
        message, blob = lockstep.receive()
        op = message["op"]
        if op == "stop":
            engines.close()
            return runs
        try:
            engine = engines.get(message["model"])
            if op == "run":
                request = request_from_message(message, blob)
                # Frames are rank 0's to encode; the followers' outputs are dropped undecoded.
                engine.run_batch(request, FollowerSink(lockstep))
                runs += 1
        except JobCancelled:
            log.info("rank %d: run stopped with rank 0", lockstep.rank)
        except Exception:
            # The same request fails the same way on rank 0 (same inputs, same checks), which fails the job.
            log.exception("rank %d: %s failed", lockstep.rank, op)
