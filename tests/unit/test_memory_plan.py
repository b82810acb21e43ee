"""The GPU memory planner (reelgen.engines.memory): pure arithmetic, no torch, no GPU.

Budgets are chosen from the planner's own estimates (peak_bytes), so these tests pin down the *choices* (mode
order, tiling, overrides, refusals), not the calibration constants.
"""

from __future__ import annotations

import sys

import pytest

from reelgen.domain.models import Size
from reelgen.engines import open_catalog
from reelgen.engines.memory import (
    GIB,
    HEADROOM,
    DoesNotFit,
    Footprint,
    MemoryPolicy,
    family_profile,
    peak_bytes,
    placement_for,
    plan_job,
    plan_memory,
    spec_profile,
    too_large,
    what_fits,
)
from reelgen.engines.registry import Availability, Registry

WAN14 = open_catalog.WAN21_T2V_14B
LTX = open_catalog.LTX_VIDEO_0_9_7_DEV
HD = Size(1280, 720)


def budget_for(peak: int) -> int:
    """The smallest free memory in which a job of this estimated peak fits (the planner keeps HEADROOM back)."""
    return int(peak / (1 - HEADROOM)) + 1


def wan14() -> tuple[Footprint, object]:
    footprint = Footprint.from_spec(WAN14)
    assert footprint is not None
    return footprint, spec_profile(WAN14)


def test_memory_module_is_torch_free() -> None:
    import subprocess

    code = "import sys, reelgen.engines.memory; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_stated_footprints() -> None:
    footprint = Footprint.from_spec(open_catalog.WAN22_T2V_A14B)
    assert footprint is not None
    assert footprint.transformers == (28_600_000_000, 28_600_000_000)
    assert open_catalog.WAN22_T2V_A14B.weights_gb == pytest.approx(2 * 28.6 + 11.4 + 0.5)
    # Every open-weights catalog entry states one (reelgen models relies on it).
    assert all(spec.footprint is not None for spec, _, _ in open_catalog.OPEN_MODELS)


@pytest.mark.parametrize(
    ("mode", "streams"),
    [("none", True), ("model_offload", True), ("group_offload", True), ("sequential", False)],
)
def test_auto_takes_the_fastest_mode_that_fits(mode: str, streams: bool) -> None:
    footprint, profile = wan14()
    peak = peak_bytes(footprint, profile, HD, 81, mode, False)  # type: ignore[arg-type]
    plan = plan_memory(footprint, profile, HD, 81, free_bytes=budget_for(peak), streams=streams)
    assert plan.mode == mode
    assert plan.peak_bytes == peak and not plan.vae_tiling
    assert "fastest placement that fits" in plan.reason


def test_modes_need_less_and_less() -> None:
    footprint, profile = wan14()
    peaks = [peak_bytes(footprint, profile, HD, 81, m, False) for m in ("none", "model_offload", "group_offload")]
    assert peaks == sorted(peaks, reverse=True)
    # Two experts weigh twice on the GPU without offload, once with model offload (one runs at a time).
    a14b = Footprint.from_spec(open_catalog.WAN22_T2V_A14B)
    assert a14b is not None
    assert peak_bytes(a14b, profile, HD, 81, "none", False) > peak_bytes(footprint, profile, HD, 81, "none", False)
    assert peak_bytes(a14b, profile, HD, 81, "model_offload", False) == peak_bytes(
        footprint, profile, HD, 81, "model_offload", False
    )


def test_group_offload_needs_cuda_streams() -> None:
    footprint, profile = wan14()
    free = budget_for(peak_bytes(footprint, profile, HD, 81, "group_offload", False))
    assert plan_memory(footprint, profile, HD, 81, free_bytes=free, streams=True).mode == "group_offload"
    assert plan_memory(footprint, profile, HD, 81, free_bytes=free, streams=False).mode == "sequential"


def test_unknown_device_memory_means_no_offload_and_no_refusal() -> None:
    footprint, profile = wan14()
    plan = plan_memory(footprint, profile, HD, 81, free_bytes=None)
    assert (plan.mode, plan.vae_tiling) == ("none", False)
    assert "unknown" in plan.reason
    forced = plan_memory(footprint, profile, HD, 81, free_bytes=None, policy=MemoryPolicy(mode="sequential"))
    assert forced.mode == "sequential"


def test_override_forces_the_mode() -> None:
    footprint, profile = wan14()
    plan = plan_memory(footprint, profile, HD, 81, free_bytes=200 * GIB, policy=MemoryPolicy(mode="sequential"))
    assert plan.mode == "sequential" and "REELGEN_MEMORY_MODE" in plan.reason
    # A forced mode that cannot hold the job is refused before it starts, saying so.
    with pytest.raises(DoesNotFit, match=r"with no offload and a tiled VAE \(forced by REELGEN_MEMORY_MODE=none\)"):
        plan_memory(footprint, profile, HD, 81, free_bytes=24 * GIB, policy=MemoryPolicy(mode="none"))


def test_budget_caps_free_memory() -> None:
    footprint, profile = wan14()
    capped = MemoryPolicy(budget_bytes=24 * GIB)
    assert plan_memory(footprint, profile, HD, 81, free_bytes=200 * GIB).mode == "none"
    assert plan_memory(footprint, profile, HD, 81, free_bytes=200 * GIB, policy=capped).mode == "group_offload"
    # A budget alone (no device figure, e.g. a CPU worker) is planned with too.
    assert plan_memory(footprint, profile, HD, 81, free_bytes=None, policy=capped).mode == "group_offload"


def test_bad_policy_values() -> None:
    with pytest.raises(ValueError, match="memory mode"):
        MemoryPolicy(mode="fast")
    with pytest.raises(ValueError, match="VAE tiling"):
        MemoryPolicy(vae_tiling="maybe")


# -- VAE tiling ------------------------------------------------------------------------------------------------


def test_tiling_turns_on_only_when_the_untiled_decode_does_not_fit() -> None:
    footprint = Footprint.from_spec(LTX)
    assert footprint is not None
    profile = spec_profile(LTX)
    size, frames = Size(768, 512), 241
    untiled = peak_bytes(footprint, profile, size, frames, "none", False)
    tiled = peak_bytes(footprint, profile, size, frames, "none", True)
    assert tiled < untiled  # LTX decodes a whole clip at once: its decode is the peak
    # Just enough for the untiled decode: no tiling. A byte less than that, down to the tiled peak: tiling.
    assert plan_memory(footprint, profile, size, frames, free_bytes=budget_for(untiled)).vae_tiling is False
    plan = plan_memory(footprint, profile, size, frames, free_bytes=budget_for(untiled) - 2 * 1024**2)
    assert (plan.mode, plan.vae_tiling) == ("none", True)
    assert "VAE tiled" in plan.reason
    plan = plan_memory(footprint, profile, size, frames, free_bytes=budget_for(tiled))
    assert (plan.mode, plan.vae_tiling) == ("none", True)
    # Below that, a stronger mode (tiling tried first at each mode, as it is cheaper than more offloading).
    assert plan_memory(footprint, profile, size, frames, free_bytes=budget_for(tiled) - 2 * 1024**2).mode != "none"


def test_tiling_override() -> None:
    footprint = Footprint.from_spec(LTX)
    assert footprint is not None
    profile = spec_profile(LTX)
    size, frames = Size(768, 512), 241
    roomy = 500 * GIB
    on = plan_memory(footprint, profile, size, frames, free_bytes=roomy, policy=MemoryPolicy(vae_tiling="on"))
    assert (on.mode, on.vae_tiling) == ("none", True)
    tiled = peak_bytes(footprint, profile, size, frames, "none", True)
    # LTX's untiled decode is its peak whatever the placement: with tiling forced off, the job is refused.
    with pytest.raises(DoesNotFit, match="even with sequential CPU offload; "):
        plan_memory(
            footprint, profile, size, frames, free_bytes=budget_for(tiled), policy=MemoryPolicy(vae_tiling="off")
        )


def test_wan_decode_is_per_latent_frame() -> None:
    """Wan's causal VAE decodes 4 frames at a time: longer clips cost it only the output buffer."""
    profile = family_profile("wan", hidden=1536)
    short = profile.decode_bytes(HD, 17, tiled=False)
    long = profile.decode_bytes(HD, 81, tiled=False)
    assert long - short == HD.width * HD.height * (81 - 17) * 3 * 4


# -- refusing before the job starts ----------------------------------------------------------------------------


def test_refusal_lists_what_fits() -> None:
    footprint, profile = wan14()
    free = 8 * GIB
    with pytest.raises(DoesNotFit) as caught:
        plan_memory(footprint, profile, HD, 81, free_bytes=free, spec=WAN14)
    message = caught.value.message
    assert "wan2.1-t2v-14b at 1280x720 with 81 frames needs about" in message
    assert "even with sequential CPU offload and a tiled VAE; 8.0 GiB is free here" in message
    fits = what_fits(WAN14, footprint, profile, free)
    assert fits, "a smaller job must fit in 8 GiB"
    assert "What fits: " in message
    for size, frames in fits:
        if size.width >= size.height:  # portrait twins are not repeated
            assert f"{size} up to {frames} frames" in message
        # The listed job fits, one frame step more does not (for sizes below the model's maximum).
        plan_memory(footprint, profile, size, frames, free_bytes=free)
        if frames < WAN14.frame_rule.max_frames:
            with pytest.raises(DoesNotFit):
                plan_memory(footprint, profile, size, frames + 4, free_bytes=free)
    assert caught.value.code == "insufficient_gpu_memory"
    assert isinstance(caught.value, ValueError)  # the worker fails such a job without retrying it


def test_refusal_when_nothing_fits_names_the_memory_needed() -> None:
    footprint, profile = wan14()
    with pytest.raises(
        DoesNotFit, match=r"Nothing wan2.1-t2v-14b makes fits: its smallest job \(832x480, 5 frames\) needs about"
    ):
        plan_memory(footprint, profile, HD, 81, free_bytes=GIB // 4, spec=WAN14)


def test_placement_at_load_covers_the_largest_job() -> None:
    footprint, profile = wan14()
    largest = peak_bytes(footprint, profile, HD, 81, "none", False)
    assert placement_for(WAN14, footprint, profile, budget_for(largest)) == "none"
    # Not enough for the largest job without offload: offload from the start, so no job needs a reload.
    assert placement_for(WAN14, footprint, profile, budget_for(largest) - 2 * 1024**2) == "model_offload"
    assert placement_for(WAN14, footprint, profile, None) == "none"


def test_plan_job_reloads_only_for_more_offloading() -> None:
    footprint, profile = wan14()
    small = peak_bytes(footprint, profile, HD, 81, "group_offload", False)
    plan, reload = plan_job(
        WAN14,
        footprint,
        profile,
        HD,
        81,
        loaded="none",
        free_bytes=budget_for(small),
        policy=MemoryPolicy(),
        streams=True,
    )
    assert (plan.mode, reload) == ("group_offload", True)
    plan, reload = plan_job(
        WAN14,
        footprint,
        profile,
        HD,
        81,
        loaded="sequential",
        free_bytes=200 * GIB,
        policy=MemoryPolicy(),
        streams=True,
    )
    assert (plan.mode, reload) == ("sequential", False)
    assert "sequential already loaded" in plan.reason


# -- reelgen models ---------------------------------------------------------------------------------------------


def test_too_large_for_this_gpu() -> None:
    assert too_large(WAN14, 80 * GIB) is None
    reason = too_large(WAN14, GIB // 4)
    assert reason is not None and reason.startswith("too large for this GPU")
    assert too_large(open_catalog.WAN21_T2V_1_3B, 8 * GIB) is None


def test_registry_says_too_large_only_with_a_memory_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry()
    # A model that needs a GPU and no weights download, so only the device and memory checks speak.
    registry.register(open_catalog.WAN21_T2V_14B, "reelgen.engines.wan:create_engine", requires=())
    # A GPU is present (whether or not torch was imported by other tests in this process).
    monkeypatch.setattr(Registry, "_device_availability", staticmethod(lambda spec, probe: Availability(True, "GPU")))
    monkeypatch.setattr("reelgen.engines.registry._gpu_memory", lambda probe: None)
    assert registry.availability(WAN14.id).runnable
    assert registry.availability(WAN14.id, device_memory=80 * GIB).runnable
    small = registry.availability(WAN14.id, device_memory=GIB // 4)
    assert not small.runnable and small.reason.startswith("too large for this GPU")
