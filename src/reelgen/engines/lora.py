"""Per-request LoRA adapters: finding them in the configured folder, and an adapter cache on a loaded pipeline.

Torch-free on purpose: the HTTP process imports `LoraLibrary` to check that a requested name exists before a
job is enqueued. The adapter cache only calls methods of the diffusers pipeline it is given (its LoRA loader
mixin: load_lora_weights, set_adapters, disable_lora, delete_adapters), so it needs no torch import either.

The folder (REELGEN_LORA_DIR) holds `<name>.safetensors` files, or `<name>/` folders with one safetensors
file (diffusers' `pytorch_lora_weights.safetensors` is preferred when there are several). Only safetensors are
ever loaded: a pickle can run code.

How a LoRA job runs (WanEngine, LTXEngine): `AdapterCache.applied(pipe, lora)` loads the adapter once under its
name (later jobs reuse it: a cache hit costs nothing), activates it at the request's scale with set_adapters,
and after the run disables every adapter, so the next job runs the exact base model. The base weights are never
reloaded or merged: peft's layers add the LoRA branch on top of the untouched base layer, and a disabled layer
returns the base layer's output unchanged (bit for bit). At most `capacity` adapters stay loaded; the least
recently used one is deleted to make room.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelgen.domain.errors import InvalidParams
from reelgen.domain.params import MAX_LORA_SCALE, MIN_LORA_SCALE, is_lora_name

SUFFIX = ".safetensors"
PREFERRED_FILE = "pytorch_lora_weights.safetensors"
# Two-expert models (Wan 2.2 A14B): a LoRA folder with one file per expert, named as the Wan 2.2 Lightning
# releases name them.
HIGH_NOISE_FILE = "high_noise_model.safetensors"
LOW_NOISE_FILE = "low_noise_model.safetensors"
MIN_SCALE = MIN_LORA_SCALE
MAX_SCALE = MAX_LORA_SCALE
DEFAULT_CAPACITY = 4


def is_valid_name(name: str) -> bool:
    """Whether `name` can name a LoRA: a plain file stem (no separators, no leading dot, no `..`)."""
    return is_lora_name(name)


@dataclass(frozen=True)
class LoraWeights:
    """The LoRA one job uses: its name (the adapter name in the pipeline), its safetensors file, its scale, and
    for two-expert models (Wan 2.2 A14B) the low-noise expert's file (`path` is then the high-noise one's)."""

    name: str
    path: Path
    scale: float = 1.0
    path_2: Path | None = None

    @property
    def files(self) -> tuple[Path, Path | None]:
        return (self.path, self.path_2)


class LoraLibrary:
    """The LoRA folder. Looks names up on every call (adding a file needs no restart)."""

    def __init__(self, folder: Path | str | None) -> None:
        self.folder = Path(folder).expanduser() if folder else None

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def find(self, name: str) -> Path | None:
        """The safetensors file of LoRA `name` (the high-noise one of a two-expert pair), or None. Names that
        are not plain stems never match, and a symlink leading out of the folder is refused."""
        found = self._files(name)
        return found[0] if found else None

    def _files(self, name: str) -> tuple[Path, Path | None] | None:
        if self.folder is None or not is_valid_name(name):
            return None
        candidates: list[Path] = []
        single = self.folder / f"{name}{SUFFIX}"
        if single.is_file():
            candidates.append(single)
        else:
            sub = self.folder / name
            if sub.is_dir():
                files = sorted(p for p in sub.iterdir() if p.name.endswith(SUFFIX) and p.is_file())
                names = {p.name for p in files}
                preferred = [p for p in files if p.name == PREFERRED_FILE]
                if not preferred and {HIGH_NOISE_FILE, LOW_NOISE_FILE} <= names:
                    candidates = [sub / HIGH_NOISE_FILE, sub / LOW_NOISE_FILE]
                else:
                    # Several files and none of them the preferred name: ambiguous, so not a LoRA.
                    candidates = preferred if preferred else files if len(files) == 1 else []
        root = self.folder.resolve()
        if not candidates or not all(path.resolve().is_relative_to(root) for path in candidates):
            return None
        return candidates[0], candidates[1] if len(candidates) > 1 else None

    def exists(self, name: str) -> bool:
        return self.find(name) is not None

    def names(self) -> list[str]:
        """Every LoRA name in the folder, sorted."""
        if self.folder is None or not self.folder.is_dir():
            return []
        found = set()
        for entry in self.folder.iterdir():
            stem = entry.name[: -len(SUFFIX)] if entry.name.endswith(SUFFIX) else entry.name
            if is_valid_name(stem) and self.find(stem) is not None:
                found.add(stem)
        return sorted(found)

    def weights(self, name: str, scale: float = 1.0) -> LoraWeights:
        """The LoraWeights of `name`; FileNotFoundError when the folder no longer has it."""
        found = self._files(name)
        if found is None:
            raise FileNotFoundError(f"no LoRA named {name!r} in {self.folder}")
        return LoraWeights(name, found[0], scale, path_2=found[1])


class AdapterCache:
    """The adapters loaded into one pipeline, least recently used first. Not re-entrant (one job at a time).

    Tied to the pipeline object it first loads into: when the engine reloads (a new pipeline object), the
    bookkeeping starts over, since the new pipeline has no adapters."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the adapter cache needs room for at least one adapter")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._pipe_id: int | None = None
        # adapter name -> the file(s) it was loaded from (other files under the same name are loaded in its place)
        self._loaded: OrderedDict[str, tuple[Path, Path | None]] = OrderedDict()
        self.loads = 0
        self.hits = 0

    @property
    def loaded(self) -> tuple[str, ...]:
        return tuple(self._loaded)

    @contextmanager
    def applied(self, pipe: Any, lora: LoraWeights | None) -> Iterator[None]:
        """Run the body with `lora` active at its scale (or the base model when None), then disable adapters."""
        if lora is None:
            yield
            return
        with self._lock:
            try:
                self._activate(pipe, lora)
                yield
            finally:
                # Also after a failed activation: enable_lora may have run before set_adapters failed.
                if _adapters_in(pipe):
                    pipe.disable_lora()

    def _activate(self, pipe: Any, lora: LoraWeights) -> None:
        if self._pipe_id != id(pipe):
            self._pipe_id = id(pipe)
            self._loaded.clear()
        known = self._loaded.get(lora.name)
        # Checked against the pipeline itself too: a reloaded pipeline may reuse a freed one's id().
        if known is not None and known == lora.files and lora.name in _adapters_in(pipe):
            self.hits += 1
            self._loaded.move_to_end(lora.name)
        else:
            self._loaded.pop(lora.name, None)
            # Same name, another file (or loaded behind this cache's back): replace it.
            if lora.name in _adapters_in(pipe):
                pipe.delete_adapters([lora.name])
            while len(self._loaded) >= self.capacity:
                evicted, _ = self._loaded.popitem(last=False)
                pipe.delete_adapters([evicted])
            # Only safetensors: load_lora_weights reads a single file with safetensors when it is given the file.
            if lora.path_2 is not None and getattr(pipe, "transformer_2", None) is None:
                raise InvalidParams(
                    f"LoRA {lora.name!r} has high- and low-noise files for a two-expert model (Wan 2.2 A14B); "
                    "this model has one transformer",
                    param="lora",
                )
            try:
                pipe.load_lora_weights(
                    str(lora.path.parent), weight_name=lora.path.name, adapter_name=lora.name, use_safetensors=True
                )
                if lora.path_2 is not None:
                    # The same adapter name on the low-noise expert: set_adapters then switches both at once.
                    pipe.load_lora_weights(
                        str(lora.path_2.parent),
                        weight_name=lora.path_2.name,
                        adapter_name=lora.name,
                        use_safetensors=True,
                        load_into_transformer_2=True,
                    )
            except (ValueError, KeyError, RuntimeError, OSError, AttributeError) as e:
                _discard_adapter(pipe, lora.name)
                raise InvalidParams(f"LoRA {lora.name!r} cannot be applied to this model: {e}", param="lora") from e
            if lora.name not in _adapters_in(pipe):  # diffusers only warns when no key matched
                raise InvalidParams(f"LoRA {lora.name!r} has no weights for this model's layers", param="lora")
            self._loaded[lora.name] = lora.files
            self.loads += 1
        pipe.enable_lora()
        pipe.set_adapters([lora.name], [lora.scale])


def _discard_adapter(pipe: Any, name: str) -> None:
    """Remove what a failed load may have left behind (peft can inject some layers before it fails)."""
    if name in _adapters_in(pipe):
        pipe.delete_adapters([name])


def _adapters_in(pipe: Any) -> set[str]:
    """Names of the adapters loaded into any of the pipeline's LoRA-capable components."""
    listed = pipe.get_list_adapters() if hasattr(pipe, "get_list_adapters") else {}
    return {name for names in listed.values() for name in names}
