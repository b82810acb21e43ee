"""Moderation hooks: the built-in prompt blocklist, plugins chosen by dotted path in the settings (real plugin
modules in tests/moderation_plugins.py), and the frame check a real worker runs after generating a video."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reelgen.api.app import create_app
from reelgen.domain import JobStatus
from reelgen.domain.review import ReviewState
from reelgen.engines.catalog import TINY_RANDOM_WAN
from reelgen.engines.registry import Registry, create_engine
from reelgen.jobs import JobStore
from reelgen.moderation import AllowAllFrames, Blocklist, Verdict, VerdictKind, load_frame_check, load_prompt_check
from reelgen.settings import Settings
from reelgen.storage.local import LocalArtifactStore
from reelgen.worker.engine_cache import EngineCache
from reelgen.worker.runner import Worker, WorkerConfig
from tests import moderation_plugins
from tests.integration.test_worker import tiny

TINY = {"prompt": "a red fox", "size": "64x64", "seconds": "0.5", "steps": 2}


def test_blocklist_matches_whole_words_and_phrases_case_insensitively(tmp_path: Path) -> None:
    blocklist = Blocklist(["gore", "  Red Fox ", "hold:dragon", "block:hold:odd", "", "# a comment"])
    assert blocklist.check("GORE!") == Verdict.block('the prompt matches the blocklist entry "gore"')
    assert blocklist.check("gorey scene").allowed and blocklist.check("ingore").allowed
    assert blocklist.check("a red\n  FOX runs").kind is VerdictKind.BLOCK
    assert blocklist.check("a redfox").allowed
    assert blocklist.check("the dragon's egg") == Verdict.hold('the prompt matches the blocklist entry "dragon"')
    assert blocklist.check("a dragon and gore").kind is VerdictKind.BLOCK  # block wins over hold
    assert len(blocklist) == 4

    words = tmp_path / "blocklist.txt"
    words.write_text("# one per line\nnapalm\nhold:clown\n", encoding="utf-8")
    from_settings = load_prompt_check(
        Settings(home=tmp_path, moderation_blocklist="gore,\nred fox", moderation_blocklist_file=words)
    )
    assert isinstance(from_settings, Blocklist) and len(from_settings) == 4
    assert from_settings.check("Napalm").kind is VerdictKind.BLOCK
    assert from_settings.check("a clown").kind is VerdictKind.HOLD
    held_by_default = load_prompt_check(
        Settings(home=tmp_path, moderation_blocklist="gore", moderation_blocklist_action="hold")
    )
    assert held_by_default.check("gore").kind is VerdictKind.HOLD
    assert load_prompt_check(Settings(home=tmp_path)).check("anything at all").allowed


def test_plugins_load_by_dotted_path(tmp_path: Path) -> None:
    prompt = load_prompt_check(
        Settings(home=tmp_path, moderation_prompt_check="tests.moderation_plugins:ShoutingPromptCheck")
    )
    assert isinstance(prompt, moderation_plugins.ShoutingPromptCheck)
    assert prompt.check("A FOX").kind is VerdictKind.HOLD and prompt.check("A fox").allowed
    frames = load_frame_check(Settings(home=tmp_path, moderation_frame_check="tests.moderation_plugins.FLAG_ANY_LIGHT"))
    assert frames is moderation_plugins.FLAG_ANY_LIGHT
    assert isinstance(load_frame_check(Settings(home=tmp_path)), AllowAllFrames)
    for broken in ("tests.moderation_plugins:NOT_A_PLUGIN", "tests.moderation_plugins:returns_no_check"):
        with pytest.raises(TypeError, match="check"):
            load_prompt_check(Settings(home=tmp_path, moderation_prompt_check=broken))


@pytest.fixture
def plugin_client(tmp_path: Path, store: JobStore) -> Iterator[TestClient]:
    registry = Registry()
    registry.register(TINY_RANDOM_WAN, "reelgen.engines.tiny_wan:create_engine")
    settings = Settings(home=tmp_path, moderation_prompt_check="tests.moderation_plugins:ShoutingPromptCheck")
    app = create_app(settings, store=store, artifacts=LocalArtifactStore(tmp_path / "videos"), registry=registry)
    with TestClient(app) as c:
        yield c


def test_a_prompt_plugin_holds_and_blocks_through_the_api(plugin_client: TestClient, store: JobStore) -> None:
    r = plugin_client.post("/v1/videos", json={**TINY, "prompt": "A RED FOX!!!"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "moderation_blocked"
    assert r.json()["error"]["param"] == "prompt" and "shouting" in r.json()["error"]["message"]
    held = plugin_client.post("/v1/videos", json={**TINY, "prompt": "A RED FOX"}).json()
    assert held["review"]["state"] == "held" and held["review"]["reason"] == "the prompt is in capitals"
    # Remixes go through the same check.
    source = plugin_client.post("/v1/videos", json=TINY).json()
    remix = plugin_client.post(f"/v1/videos/{source['id']}/remix", json={"prompt": "A BLUE FOX!!!"})
    assert remix.status_code == 400 and remix.json()["error"]["code"] == "moderation_blocked"
    claim = store.claim("w")
    assert claim is not None and claim.job_id == source["id"] and store.claim("w") is None


@pytest.fixture(scope="module")
def engines() -> EngineCache:
    return EngineCache(create_engine)


@pytest.mark.parametrize(
    ("plugin", "held"), [(moderation_plugins.FLAG_ANY_LIGHT, True), (moderation_plugins.ALLOW_ALL_LIGHT, False)]
)
def test_the_worker_runs_the_frame_check_on_sampled_frames(
    store: JobStore, tmp_path: Path, engines: EngineCache, plugin: moderation_plugins.BrightnessCheck, held: bool
) -> None:
    job, _ = store.create("alice", tiny(size="64x64", seconds=1, fps=16))
    worker = Worker(
        store,
        LocalArtifactStore(tmp_path / "videos"),
        engines,
        WorkerConfig(worker_id="w", heartbeat_seconds=0.2),
        frame_check=plugin,
        frame_samples=4,
    )
    plugin.seen.clear()
    done = worker.run_once()
    assert done is not None and done.id == job.id and done.status is JobStatus.COMPLETED
    assert plugin.seen == [(4, 64, 64, 3)]  # four frames, evenly spaced, RGB
    if held:
        assert done.review.state is ReviewState.HELD and done.review.reviewed_by == "hook:frames"
        assert done.review.reason is not None and done.review.reason.startswith("mean brightness")
        [entry] = store.audit_log(target=job.id)
        assert (entry.actor, entry.action) == ("hook:frames", "moderation.hold")
    else:
        assert done.review.state is ReviewState.NONE and store.audit_log(target=job.id) == []
