"""The open-weights catalog (Wan, LTX-Video, HunyuanVideo, CogVideoX) and offline-honest weight loading.

No network and no real weights: the HF cache is pointed at a temporary folder, HF_HUB_OFFLINE is switched on
where a test says so, and a "cached" repo is a hand-made cache entry holding only model_index.json.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from huggingface_hub import constants

from reelgen.domain.errors import InvalidParams
from reelgen.domain.models import ModelSpec
from reelgen.domain.params import ParamLimits, validate_params
from reelgen.engines import presets, registry
from reelgen.engines.open_catalog import OPEN_MODELS
from reelgen.engines.pending import EngineNotImplemented
from reelgen.engines.registry import PENDING_FACTORY, Registry
from reelgen.engines.weights import (
    WeightsNotFound,
    is_repo_id,
    require_weights,
    weights_status,
)

REPO = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF cache, Hub reachable (tests switch it off themselves)."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return cache


def put_in_cache(cache: Path, repo_id: str) -> None:
    """The layout huggingface_hub writes: refs/main names the snapshot holding the files."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0" * 40)


# -- the catalog ----------------------------------------------------------------------------------------------


def test_every_family_is_registered_with_a_repo_and_a_gpu() -> None:
    ids = {s.id for s in registry.list_specs()}
    for model_id in [
        "wan2.1-t2v-1.3b",
        "wan2.1-t2v-14b",
        "wan2.1-i2v-14b-480p",
        "wan2.1-i2v-14b-720p",
        "wan2.1-t2v-14b-lightx2v-4step",
        "wan2.1-i2v-14b-480p-lightx2v-4step",
        "wan2.2-ti2v-5b",
        "wan2.2-t2v-a14b",
        "wan2.2-i2v-a14b",
        "ltx-video-0.9.1",
        "ltx-video-0.9.7-dev",
        "ltx-video-0.9.7-distilled",
        "ltx-2",
        "hunyuanvideo",
        "hunyuanvideo1.5-t2v-480p",
        "hunyuanvideo1.5-t2v-720p",
        "hunyuanvideo1.5-i2v-480p",
        "hunyuanvideo1.5-i2v-720p",
        "cogvideox-5b",
        "cogvideox1.5-5b",
        "cogvideox-5b-i2v",
        "cogvideox1.5-5b-i2v",
    ]:
        assert model_id in ids, model_id
    for spec, factory, options in OPEN_MODELS:
        assert spec.needs_gpu, spec.id
        assert is_repo_id(str(options["source"])), spec.id
        assert registry.get_spec(spec.id) == spec
        assert registry.default_registry().get(spec.id).factory == factory


@pytest.mark.parametrize("spec", [entry[0] for entry in OPEN_MODELS], ids=lambda s: s.id)
def test_specs_follow_their_family_rules(spec: ModelSpec) -> None:
    rule = spec.frame_rule
    assert spec.default_size in spec.sizes
    # Spatial multiples: Wan 2.1 VAE 8x * patch 2; Wan 2.2 5B VAE 16x * 2; the LTX pipelines demand 32.
    multiple = {"wan": 16, "ltx": 32, "ltx2": 32, "hunyuan": 16, "cogvideox": 16}[spec.family]
    if spec.id == "wan2.2-ti2v-5b":
        multiple = 32
    assert all(s.width % multiple == 0 and s.height % multiple == 0 for s in spec.sizes), spec.sizes
    assert (rule.multiple, rule.offset) == ((8, 1) if spec.family in ("ltx", "ltx2") else (4, 1))
    image = "inputs/x/ref.png" if spec.requires_image else None
    default = validate_params(spec, ParamLimits(), prompt="a fox", input_image=image)
    assert (default.num_frames - rule.offset) % rule.multiple == 0
    assert default.num_frames <= rule.max_frames
    longest = spec.num_frames(spec.max_seconds)
    assert (longest - rule.offset) % rule.multiple == 0 and longest <= rule.max_frames
    assert 1 <= spec.default_steps <= spec.max_steps


def test_trained_lengths_and_rates() -> None:
    frames = {s.id: (s.num_frames(s.default_seconds), s.fps) for s, _, _ in OPEN_MODELS}
    assert frames["wan2.1-t2v-1.3b"] == (81, 16)
    assert frames["wan2.2-ti2v-5b"] == (121, 24)
    assert frames["ltx-video-0.9.1"] == (121, 24)
    assert frames["cogvideox-5b"] == (49, 8)
    assert frames["cogvideox1.5-5b"] == (81, 16)
    assert frames["cogvideox-5b-i2v"] == (49, 8)
    assert frames["cogvideox1.5-5b-i2v"] == (81, 16)
    hunyuan = registry.get_spec("hunyuanvideo")
    assert hunyuan.num_frames(hunyuan.max_seconds) == 129


def test_image_only_checkpoints_need_an_image_at_validation() -> None:
    by_id = {s.id: s for s, _, _ in OPEN_MODELS}
    needs = {s.id for s in by_id.values() if s.requires_image}
    assert needs == {
        "wan2.1-i2v-14b-480p",
        "wan2.1-i2v-14b-720p",
        "wan2.1-i2v-14b-480p-lightx2v-4step",
        "wan2.2-i2v-a14b",
        "hunyuanvideo1.5-i2v-480p",
        "hunyuanvideo1.5-i2v-720p",
        "cogvideox-5b-i2v",
        "cogvideox1.5-5b-i2v",
    }
    limits = ParamLimits()
    with pytest.raises(InvalidParams) as err:
        validate_params(by_id["wan2.1-i2v-14b-480p"], limits, prompt="a cat")
    assert err.value.param == "input_reference"
    ok = validate_params(by_id["wan2.1-i2v-14b-480p"], limits, prompt="a cat", input_image="inputs/x/ref.png")
    assert ok.input_image == "inputs/x/ref.png"
    # A text-and-image checkpoint still runs from text alone.
    assert validate_params(by_id["wan2.2-ti2v-5b"], limits, prompt="a cat").input_image is None


def test_listing_the_catalog_stays_torch_free_and_says_what_is_missing(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from reelgen.engines.registry import availability, list_specs
        for spec in list_specs():
            print(spec.id, "|", availability(spec.id).reason)
        heavy = sorted(m for m in ("torch", "diffusers", "transformers", "tokenizers") if m in sys.modules)
        assert not heavy, heavy
        """
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    reasons = dict(line.split(" | ", 1) for line in result.stdout.splitlines())
    assert "needs download: `hf download Wan-AI/Wan2.1-T2V-1.3B-Diffusers`" in reasons["wan2.1-t2v-1.3b"]
    assert "hf download Lightricks/LTX-Video-0.9.7-dev" in reasons["ltx-video-0.9.7-dev"]
    assert "hf download hunyuanvideo-community/HunyuanVideo" in reasons["hunyuanvideo"]
    assert "hf download THUDM/CogVideoX-5b" in reasons["cogvideox-5b"]


def test_availability_combines_device_and_weights(hf_cache: Path) -> None:
    spec = registry.get_spec("wan2.1-t2v-1.3b")
    reg = Registry()
    reg.register(spec, "reelgen.engines.wan:create_engine", options={"source": REPO})
    missing = reg.availability(spec.id)
    assert not missing.runnable and f"hf download {REPO}" in missing.reason
    put_in_cache(hf_cache, REPO)
    cached = reg.availability(spec.id)
    assert "download" not in cached.reason  # only the GPU question remains
    reg.register(spec, PENDING_FACTORY, options={"source": REPO}, replace=True)
    assert not reg.availability(spec.id).runnable


def test_model_dir_folders_replace_hub_repos(hf_cache: Path, tmp_path: Path) -> None:
    spec = registry.get_spec("wan2.1-t2v-1.3b")
    other = registry.get_spec("wan2.1-t2v-14b")
    reg = Registry()
    reg.register(spec, "reelgen.engines.wan:create_engine", options={"source": REPO, "flow_shift": {}})
    reg.register(other, "reelgen.engines.wan:create_engine", options={"source": "Wan-AI/Wan2.1-T2V-14B-Diffusers"})
    models = tmp_path / "models"
    (models / spec.id).mkdir(parents=True)
    (models / other.id).mkdir()  # no model_index.json: not a pipeline folder, so the repo stays
    assert reg.use_local_folders(models) == []
    (models / spec.id / "model_index.json").write_text("{}")
    assert reg.use_local_folders(models) == [spec.id]
    assert reg.get(spec.id).options == {"source": str(models / spec.id), "flow_shift": {}}
    assert "download" not in reg.availability(spec.id).reason  # the folder has the weights
    assert reg.get(other.id).options["source"] == "Wan-AI/Wan2.1-T2V-14B-Diffusers"
    assert "hf download" in reg.availability(other.id).reason


# -- offline-honest loading -----------------------------------------------------------------------------------


def test_weights_status_of_repos_and_folders(hf_cache: Path, tmp_path: Path) -> None:
    assert not weights_status(REPO).present
    put_in_cache(hf_cache, REPO)
    assert weights_status(REPO).present
    folder = tmp_path / "my-wan"
    folder.mkdir()
    assert not weights_status(str(folder)).present
    (folder / "model_index.json").write_text("{}")
    assert weights_status(str(folder)).present and weights_status(folder).present


def test_offline_missing_repo_fails_with_the_download_command(hf_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_weights(REPO)  # online: from_pretrained may download it
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotFound) as err:
        require_weights(REPO)
    message = err.value.message
    assert f"hf download {REPO}" in message and f"huggingface-cli download {REPO}" in message
    assert "HF_HUB_OFFLINE" in message and str(hf_cache) in message
    assert err.value.param == "model" and err.value.code == "model_not_downloaded"
    assert isinstance(err.value, ValueError)  # the worker does not retry it
    put_in_cache(hf_cache, REPO)
    require_weights(REPO)


def test_a_missing_local_folder_fails_even_online(hf_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFound, match=r"no model_index\.json"):
        require_weights(str(tmp_path / "nowhere"))


def test_engine_factories_fail_before_loading_anything(hf_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for model_id, repo in [
        ("wan2.1-t2v-1.3b", REPO),
        ("wan2.2-t2v-a14b", "Wan-AI/Wan2.2-T2V-A14B-Diffusers"),
        ("ltx-video-0.9.7-distilled", "Lightricks/LTX-Video-0.9.7-distilled"),
        ("hunyuanvideo", "hunyuanvideo-community/HunyuanVideo"),
        ("cogvideox-5b", "THUDM/CogVideoX-5b"),
        ("cogvideox1.5-5b", "THUDM/CogVideoX1.5-5B"),
        ("cogvideox-5b-i2v", "THUDM/CogVideoX-5b-I2V"),
        ("hunyuanvideo1.5-i2v-480p", "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v"),
    ]:
        with pytest.raises(WeightsNotFound, match=re.escape(f"hf download {repo}")):
            registry.create_engine(model_id, device="cpu")


def test_a_catalog_entry_without_an_engine_fails_before_loading() -> None:
    reg = Registry()
    reg.register(registry.get_spec("cogvideox-5b"), PENDING_FACTORY, options={"source": "THUDM/CogVideoX-5b"})
    assert "no engine" in reg.availability("cogvideox-5b").reason
    with pytest.raises(EngineNotImplemented, match="cogvideox"):
        reg.create_engine("cogvideox-5b", device="cpu")


@pytest.mark.slow
def test_hf_hub_offline_from_the_environment(tmp_path: Path) -> None:
    """The real switch, read by huggingface_hub at import: a fresh process with HF_HUB_OFFLINE=1."""
    code = textwrap.dedent(
        """
        from reelgen.engines.registry import create_engine
        from reelgen.engines.weights import WeightsNotFound
        try:
            create_engine("ltx-video-0.9.1", device="cpu")
        except WeightsNotFound as e:
            print(e.message)
        else:
            raise SystemExit("no error")
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "hf download diffusers/LTX-Video-0.9.1" in result.stdout


def test_four_step_presets_are_their_base_checkpoint_with_a_distillation_lora() -> None:
    entries = {spec.id: (spec, options) for spec, _, options in OPEN_MODELS}
    for model_id, base_id, file in [
        ("wan2.1-t2v-14b-lightx2v-4step", "wan2.1-t2v-14b", "wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors"),
        (
            "wan2.1-i2v-14b-480p-lightx2v-4step",
            "wan2.1-i2v-14b-480p",
            "wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors",
        ),
    ]:
        spec, options = entries[model_id]
        base, base_options = entries[base_id]
        assert options["source"] == base_options["source"] and spec.sizes == base.sizes
        assert options["distill_lora"] == {"source": "lightx2v/Wan2.1-Distill-Loras", "file": file}
        assert (spec.default_steps, spec.default_guidance, spec.negative_prompt) == (4, 1.0, False)
        # Few steps: the speed presets' step caches stay off (they hurt distilled models).
        assert spec.default_steps <= presets.FEW_STEPS
        assert set(options["flow_shift"].values()) == {5.0}  # type: ignore[union-attr]
