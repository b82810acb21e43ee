"""The model registry: torch-free, plugin-style, and strict about unknown models."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from reelgen.domain.errors import InvalidParams
from reelgen.domain.models import Size
from reelgen.domain.params import ParamLimits, validate_params
from reelgen.engines import registry
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.engines.registry import Registry


def test_importing_and_querying_the_registry_never_imports_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        from reelgen.engines.registry import availability, get_spec, list_specs
        specs = list_specs()
        assert any(s.id == "tiny-random-wan" for s in specs), specs
        get_spec("tiny-random-wan")
        assert availability("tiny-random-wan").runnable
        heavy = sorted(m for m in ("torch", "diffusers", "transformers", "tokenizers") if m in sys.modules)
        assert not heavy, heavy
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_unknown_model_names_the_field_and_the_known_models() -> None:
    with pytest.raises(InvalidParams) as err:
        registry.get_spec("sora-9000")
    assert err.value.param == "model"
    assert "sora-9000" in err.value.message
    assert "tiny-random-wan" in err.value.message


def test_tiny_random_wan_spec_is_consistent() -> None:
    spec = registry.get_spec("tiny-random-wan")
    assert spec.family == "wan"
    assert spec.default_size in spec.sizes
    for size in (Size(832, 480), Size(480, 832), Size(128, 128), Size(64, 64)):
        assert size in spec.sizes
    assert all(s.width % 16 == 0 and s.height % 16 == 0 for s in spec.sizes)
    params = validate_params(spec, ParamLimits(), prompt="a fox")
    assert params.num_frames == 17 and (params.num_frames - 1) % 4 == 0
    assert spec.num_frames(spec.max_seconds) <= spec.frame_rule.max_frames
    assert "random" in spec.description and "test" in spec.description


def test_registration_rules() -> None:
    reg = Registry()
    reg.register(TINY_RANDOM_WAN, "reelgen.engines.tiny_wan:create_engine")
    with pytest.raises(ValueError, match="already registered"):
        reg.register(TINY_RANDOM_WAN, "reelgen.engines.tiny_wan:create_engine")
    renamed = replace(TINY_RANDOM_WAN, description="mine")
    reg.register(renamed, "reelgen.engines.tiny_wan:create_engine", replace=True)
    assert reg.get_spec("tiny-random-wan").description == "mine"
    with pytest.raises(ValueError, match=r"package\.module:function"):
        reg.register(replace(TINY_RANDOM_WAN, id="x"), "reelgen.engines.tiny_wan.create_engine")


def test_hooks_register_models_and_a_broken_hook_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    def good(register: registry.RegisterFn) -> None:
        register(replace(TINY_RANDOM_WAN, id="plugin-model"), "some_plugin.engine:build", options={"a": 1})

    def broken(register: registry.RegisterFn) -> None:
        raise RuntimeError("plugin bug")

    with caplog.at_level(logging.ERROR):
        reg = Registry([broken, good])
    assert [s.id for s in reg.list_specs()] == ["plugin-model"]
    assert reg.get("plugin-model").options == {"a": 1}
    assert "failed to register" in caplog.text


def test_entry_point_plugins_join_the_default_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    def hook(register: registry.RegisterFn) -> None:
        register(replace(TINY_RANDOM_WAN, id="from-entry-point"), "some_plugin.engine:build")

    fake = SimpleNamespace(name="fake", value="fake_plugin:hook", load=lambda: hook)
    monkeypatch.setattr(registry, "entry_points", lambda group: [fake] if group == "reelgen.models" else [])
    monkeypatch.setattr(registry, "_default", None)
    ids = [s.id for s in registry.list_specs()]
    assert ids[:2] == ["reelgen-demo", "tiny-random-wan"]  # built-ins first, the default model at the top
    assert ids[-1] == "from-entry-point"


def test_create_engine_imports_the_factory_lazily_and_checks_its_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_engines.py").write_text(
        textwrap.dedent(
            """
            from reelgen.engines.base import Engine

            class Fake(Engine):
                def __init__(self, spec, device, **options):
                    self.spec, self.device, self.options = spec, device, options
                def load(self):
                    pass
                def run(self, request, sink):
                    raise NotImplementedError

            def good(spec, device, **options):
                return Fake(spec, device, **options)

            def bad(spec, device, **options):
                return object()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    reg.register(replace(TINY_RANDOM_WAN, id="good"), "fake_engines:good", options={"source": "x"})
    reg.register(replace(TINY_RANDOM_WAN, id="bad"), "fake_engines:bad")
    engine = reg.create_engine("good", device="cpu")
    assert (engine.spec.id, engine.device, engine.options) == ("good", "cpu", {"source": "x"})
    with pytest.raises(TypeError, match="not an Engine"):
        reg.create_engine("bad")


def test_availability_reports_missing_packages_and_gpus() -> None:
    reg = Registry()
    reg.register(replace(TINY_RANDOM_WAN, id="cpu"), "x:y")
    reg.register(replace(TINY_RANDOM_WAN, id="exotic"), "x:y", requires=("torch", "no_such_package_xyz"))
    reg.register(replace(TINY_RANDOM_WAN, id="big", needs_gpu=True), "x:y")
    assert reg.availability("cpu").runnable
    exotic = reg.availability("exotic")
    assert not exotic.runnable and "no_such_package_xyz" in exotic.reason
    big = reg.availability("big", probe_device=True)
    import torch

    if torch.cuda.is_available():
        assert big.runnable
    else:
        assert not big.runnable and "GPU" in big.reason
    with pytest.raises(InvalidParams):
        reg.availability("nope")
