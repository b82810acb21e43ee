"""Weights loaded from safetensors on the CPU are views into a memory-mapped file at whatever byte offset each
tensor has there. CPU kernels take different vector paths for unaligned data and round differently (1e-7 here),
so the same checkpoint gave different pixels in memory and from disk. Copying the unaligned tensors once at
load time makes a loaded model compute exactly like the one that was saved."""

from __future__ import annotations

import itertools
from typing import Any, TypeVar

import torch

ALIGNMENT = 64  # bytes: a cache line, and what PyTorch's CPU allocator guarantees

_P = TypeVar("_P")


def align_weights(pipe: _P) -> _P:
    """Copy every CPU parameter and buffer of the pipeline's modules that does not start on an aligned address."""
    components: dict[str, Any] = getattr(pipe, "components", {})
    for component in components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        for tensor in itertools.chain(component.parameters(), component.buffers()):
            if tensor.device.type == "cpu" and tensor.data_ptr() % ALIGNMENT:
                tensor.data = tensor.data.clone()
    return pipe
