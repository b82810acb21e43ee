"""Authentication end to end: a real `reelgen serve` with users made by `reelgen users add`, called by the
official `openai` SDK with a real key, and the studio's sign-in in a real headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import running_server

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")]

TINY: dict[str, Any] = {
    "model": "tiny-random-wan",
    "size": "64x64",
    "seconds": "0.5",
    "extra_body": {"steps": 2, "guidance_scale": 1.0, "seed": 1},
}
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@dataclass
class Team:
    url: str
    alice_key: str
    bob_key: str


def users_add(home: Path, *args: str, stdin: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGEN_")}
    env["REELGEN_HOME"] = str(home)
    result = subprocess.run(
        [sys.executable, "-m", "reelgen.cli", "users", "add", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    home = tmp_path_factory.mktemp("reelgen-team")
    alice = users_add(home, "alice", "--password-stdin", stdin="alice-password\n")
    bob = users_add(home, "bob")
    with running_server(home, "--workers", "1", env={"REELGEN_DEFAULT_MODEL": "tiny-random-wan"}) as url:
        yield Team(url, alice, bob)


def test_the_official_sdk_with_a_real_key(team: Team, tmp_path: Path) -> None:
    client = openai.OpenAI(base_url=f"{team.url}/v1", api_key=team.alice_key, max_retries=0, timeout=60)
    video = client.videos.create_and_poll(prompt="a red fox running through snow", **TINY)
    assert video.status == "completed", video.error
    out = tmp_path / "fox.mp4"
    client.videos.download_content(video.id).write_to_file(out)
    assert out.stat().st_size > 1000
    assert video.id in [v.id for v in client.videos.list()]

    wrong = openai.OpenAI(base_url=f"{team.url}/v1", api_key="rg-000000000000-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.videos.list()
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()

    bob = openai.OpenAI(base_url=f"{team.url}/v1", api_key=team.bob_key, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        bob.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        bob.videos.download_content(video.id)
    assert [v.id for v in bob.videos.list()] == []


def test_studio_login_create_csrf_and_logout(team: Team, tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the studio tests need playwright")
    if not CHROMIUM.exists():
        pytest.skip("the studio tests need Debian's chromium at /usr/bin/chromium")
    expect = playwright_api.expect
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=team.url, viewport={"width": 1280, "height": 860})
        context.set_default_timeout(30_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # Not signed in: the studio sends you to the sign-in page.
        page.goto("/library")
        expect(page).to_have_url(f"{team.url}/login?next=/library")
        page.fill("#login-name", "alice")
        page.fill("#login-secret", "not her password")
        page.click("#login-password button[type=submit]")
        expect(page.locator("#login-error")).to_contain_text("Wrong name or password")
        page.fill("#login-secret", "alice-password")
        page.click("#login-password button[type=submit]")
        expect(page).to_have_url(f"{team.url}/library")
        expect(page.locator("#account-name")).to_have_text("alice")
        page.screenshot(path=tmp_path / "library-signed-in.png")

        # Create a video from the form: the page's calls carry the CSRF token.
        page.goto("/")
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("#model", "tiny-random-wan")
        page.fill("#prompt", "a signed-in fox")
        page.select_option("#size", "64x64")
        page.select_option("#seconds", "1")
        if page.locator("#advanced").get_attribute("open") is None:
            page.click("#advanced summary")
        page.fill("#steps", "2")
        page.click("#submit")
        card = page.locator("#jobs li.job", has=page.locator(".job-prompt", has_text="a signed-in fox"))
        expect(card).to_be_visible()
        expect(card).to_have_attribute("data-status", "completed", timeout=60_000)
        alice = httpx.get(f"{team.url}/v1/videos", headers={"Authorization": f"Bearer {team.alice_key}"}).json()
        assert "a signed-in fox" in [v["prompt"] for v in alice["data"]]

        # The session cookie alone is not enough for an unsafe call: without the CSRF token it is a 403.
        forged = page.request.post(f"{team.url}/v1/videos", data={"prompt": "forged", "size": "64x64"})
        assert forged.status == 403 and forged.json()["error"]["code"] == "insufficient_permissions"
        assert page.request.get(f"{team.url}/v1/videos").status == 200

        # Sign out: the session ends, the pages and the API want credentials again.
        page.click("#logout")
        expect(page).to_have_url(f"{team.url}/login")
        assert page.request.get(f"{team.url}/v1/videos").status == 401
        page.goto("/gallery")
        expect(page).to_have_url(f"{team.url}/login?next=/gallery")
        context.close()
        browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
