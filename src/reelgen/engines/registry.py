"""Which models exist, what they accept, and how a worker builds one. Torch-free on purpose.

The HTTP process imports this module to validate requests and list models, and must never import torch
(startup time, and the API must never touch a GPU). So the table holds only ModelSpecs and the *dotted path*
of each model's engine factory; `create_engine` imports the factory with importlib, and only workers and the
CLI call it.

The table is filled the way simonw/llm fills its model list: a hook receives a `register` function and calls
it once per model. The built-ins (`reelgen.engines.catalog:register_builtin_models`) use the same hook as a
plugin, which is a distribution exposing an entry point in the group `reelgen.models`:

    [project.entry-points."reelgen.models"]
    my_models = "my_package.reelgen_models:register_models"

    def register_models(register):
        register(MY_SPEC, "my_package.engine:create_engine", options={"source": "org/checkpoint"})

A factory is called as `factory(spec, device, **options)` and returns an `Engine`; `device` is a torch device
string or None for "the best one here".
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from reelgen.domain.errors import InvalidParams
from reelgen.domain.models import ModelSpec
from reelgen.engines.base import Engine

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "reelgen.models"

# Top-level packages a diffusers engine imports; `availability` checks them without importing them.
DIFFUSERS_STACK: tuple[str, ...] = ("torch", "diffusers", "transformers", "tokenizers")

# The factory of catalog entries whose family engine is not written yet (reelgen.engines.pending).
PENDING_FACTORY = "reelgen.engines.pending:create_engine"


class RegisterFn(Protocol):
    def __call__(
        self,
        spec: ModelSpec,
        factory: str,
        *,
        requires: Iterable[str] = DIFFUSERS_STACK,
        options: Mapping[str, Any] | None = None,
        replace: bool = False,
    ) -> None: ...


ModelHook = Callable[[RegisterFn], None]


@dataclass(frozen=True)
class Registration:
    spec: ModelSpec
    # "package.module:function"; imported only by create_engine.
    factory: str
    # Top-level Python packages the engine needs (checked by availability without importing them).
    requires: tuple[str, ...] = DIFFUSERS_STACK
    # Keyword arguments for the factory, e.g. the checkpoint to load. Plain values only: they live in the
    # torch-free process too.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Availability:
    """Whether a model can run on this machine, and why not (shown by `reelgen models` and /v1/models)."""

    runnable: bool
    reason: str


class Registry:
    """A table of models filled by hooks. The module-level functions below use one shared instance."""

    def __init__(self, hooks: Iterable[ModelHook] = ()) -> None:
        self._entries: dict[str, Registration] = {}
        for hook in hooks:
            self.run_hook(hook)

    def register(
        self,
        spec: ModelSpec,
        factory: str,
        *,
        requires: Iterable[str] = DIFFUSERS_STACK,
        options: Mapping[str, Any] | None = None,
        replace: bool = False,
    ) -> None:
        module, sep, attr = factory.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"factory must look like 'package.module:function'; got {factory!r}")
        if spec.id in self._entries and not replace:
            raise ValueError(f"model {spec.id!r} is already registered (pass replace=True to override it)")
        self._entries[spec.id] = Registration(spec, factory, tuple(requires), dict(options or {}))

    def use_local_folders(self, model_dir: Path) -> list[str]:
        """Load models from ``model_dir/<model id>/`` (a diffusers pipeline folder with model_index.json) where
        such a folder exists, instead of their Hugging Face repo. Returns the ids that now load locally."""
        switched = []
        for model_id, reg in list(self._entries.items()):
            folder = Path(model_dir).expanduser() / model_id
            if isinstance(reg.options.get("source"), str) and (folder / "model_index.json").is_file():
                self._entries[model_id] = replace(reg, options={**reg.options, "source": str(folder)})
                switched.append(model_id)
        return switched

    def run_hook(self, hook: ModelHook, name: str | None = None) -> None:
        """Let a hook register its models. A broken plugin is logged and skipped, never fatal: one bad
        third-party package must not take the API down."""
        try:
            hook(self.register)
        except Exception:
            log.exception("model plugin %s failed to register its models; skipping it", name or hook)

    def list_specs(self) -> list[ModelSpec]:
        return [r.spec for r in self._entries.values()]

    def get(self, model_id: str) -> Registration:
        try:
            return self._entries[model_id]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise InvalidParams(f"unknown model {model_id!r}; known models: {known}", param="model") from None

    def get_spec(self, model_id: str) -> ModelSpec:
        return self.get(model_id).spec

    def create_engine(self, model_id: str, device: str | None = None) -> Engine:
        """Import the model's factory and build its Engine (not loaded yet: the worker calls `load`).

        This is the one place engine modules, and so torch, get imported.
        """
        reg = self.get(model_id)
        module_name, _, attr = reg.factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        engine = factory(reg.spec, device, **reg.options)
        if not isinstance(engine, Engine):
            raise TypeError(f"factory {reg.factory} returned {type(engine).__name__}, not an Engine")
        return engine

    def availability(
        self, model_id: str, *, probe_device: bool = False, device_memory: int | None = None
    ) -> Availability:
        """Can this model run here? Never imports torch unless asked to or already imported.

        - Missing packages are found with importlib.util.find_spec (locates, does not import).
        - For models that need a GPU: when torch is already imported (worker, CLI) or `probe_device` is set,
          ask torch.cuda; otherwise (the HTTP process) look for an NVIDIA driver-visible GPU in /proc and
          /dev, which is a cheap hint, not a guarantee that torch can use it.
        - For models with a `source` option (Hub repo id or local folder): whether the weights are on disk
          (HF cache lookup, no network); "needs download" names the command that fetches them.
        - Catalog entries without an engine yet (PENDING_FACTORY) are never runnable.
        - "too large for this GPU" when even the model's smallest job cannot fit with the most frugal memory
          placement (reelgen.engines.memory), from its stated footprint and the GPU's memory: `device_memory`
          (bytes, e.g. REELGEN_GPU_MEMORY_GB) or, when torch is probed, the GPU's total; otherwise not checked.
        """
        reg = self.get(model_id)
        if reg.factory == PENDING_FACTORY:
            return Availability(False, f"no engine for {model_id} in this version of reelgen yet")
        missing = [pkg for pkg in reg.requires if importlib.util.find_spec(pkg) is None]
        if missing:
            return Availability(False, f"needs the Python package(s) {', '.join(missing)}")
        device = self._device_availability(reg.spec, probe_device)
        if device.runnable and reg.spec.needs_gpu:
            from reelgen.engines.memory import too_large  # torch-free

            memory = device_memory if device_memory is not None else _gpu_memory(probe_device)
            reason = too_large(reg.spec, memory) if memory is not None else None
            if reason is not None:
                device = Availability(False, reason)
        source = reg.options.get("source")
        if not isinstance(source, str):
            return device
        # Models loaded from a Hub repo or folder: also say whether the weights are here (disk only, no network).
        from reelgen.engines.weights import file_status, weights_status

        weights = weights_status(source)
        lora = reg.options.get("distill_lora")
        if weights.present and isinstance(lora, Mapping):  # a few-step preset: its LoRA must be here too
            weights = file_status(str(lora["source"]), str(lora["file"]))
        if weights.present:
            return device
        if device.runnable:
            return Availability(False, weights.reason)
        return Availability(False, f"{device.reason}; {weights.reason}")

    @staticmethod
    def _device_availability(spec: ModelSpec, probe_device: bool) -> Availability:
        if not spec.needs_gpu:
            return Availability(True, "runs on CPU or GPU")
        if probe_device or "torch" in sys.modules:
            import torch

            if torch.cuda.is_available():
                return Availability(True, f"CUDA GPU: {torch.cuda.get_device_name(0)}")
            return Availability(False, "needs a CUDA GPU; torch sees none")
        if _driver_sees_gpu():
            return Availability(True, "NVIDIA GPU present (not probed with torch in this process)")
        return Availability(False, "needs a CUDA GPU; none found")


def _gpu_memory(probe_device: bool) -> int | None:
    """Total memory of the first CUDA GPU when torch may be asked (never imported just for this)."""
    if not (probe_device or "torch" in sys.modules):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(0).total_memory)


def _driver_sees_gpu() -> bool:
    try:
        if os.listdir("/proc/driver/nvidia/gpus"):
            return True
    except OSError:
        pass
    return os.path.exists("/dev/nvidia0")


def _plugin_hooks() -> list[tuple[str, ModelHook]]:
    hooks: list[tuple[str, ModelHook]] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            hooks.append((ep.name, ep.load()))
        except Exception:
            log.exception("could not import model plugin %s (%s); skipping it", ep.name, ep.value)
    return hooks


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The shared registry: built-ins first, then installed plugins, loaded on first use."""
    global _default
    with _default_lock:
        if _default is None:
            from reelgen.engines.catalog import register_builtin_models

            registry = Registry([register_builtin_models])
            for name, hook in _plugin_hooks():
                registry.run_hook(hook, name)
            _default = registry
        return _default


def configure_models(model_dir: Path | None) -> None:
    """Apply the deployment's model settings (REELGEN_MODEL_DIR) to the shared registry; entry points call it."""
    if model_dir is not None:
        for model_id in default_registry().use_local_folders(model_dir):
            log.info("model %s loads from %s", model_id, Path(model_dir) / model_id)


def register(
    spec: ModelSpec,
    factory: str,
    *,
    requires: Iterable[str] = DIFFUSERS_STACK,
    options: Mapping[str, Any] | None = None,
    replace: bool = False,
) -> None:
    """Add a model to the shared registry at runtime (plugins should prefer the entry point hook)."""
    default_registry().register(spec, factory, requires=requires, options=options, replace=replace)


def list_specs() -> list[ModelSpec]:
    return default_registry().list_specs()


def get_spec(model_id: str) -> ModelSpec:
    """The spec of `model_id`; InvalidParams(param="model") naming the known models when it is unknown."""
    return default_registry().get_spec(model_id)


def create_engine(model_id: str, device: str | None = None) -> Engine:
    """Build the Engine for `model_id` (imports torch: workers and the CLI only)."""
    return default_registry().create_engine(model_id, device)


def availability(model_id: str, *, probe_device: bool = False, device_memory: int | None = None) -> Availability:
    """Whether `model_id` can run here; see Registry.availability for how it avoids importing torch."""
    return default_registry().availability(model_id, probe_device=probe_device, device_memory=device_memory)
