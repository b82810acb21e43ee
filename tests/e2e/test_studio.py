"""The studio in a real headless Chromium (Debian's `chromium`, driven by Playwright) against a real `reelgen serve`
generating real videos with the tiny Wan model: submit, watch the queue and the steps, cancel, play, download,
publish, remix, delete, and API errors shown next to the field that caused them.

Every page is saved as a screenshot under the test's temporary folder (the path is printed; `pytest -s` shows it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
# A real browser, quiet and self-contained: no GPU, no background traffic, no first-run UI.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TINY: dict[str, Any] = {"model": "tiny-random-wan", "size": "64x64", "seconds": "1", "steps": 2, "guidance_scale": 1.0}

playwright_api = pytest.importorskip("playwright.sync_api", reason="the studio tests need the playwright package")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("the studio tests need Debian's chromium at /usr/bin/chromium (`make install` installs it as root)")
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("studio-screenshots")
    print(f"\nstudio screenshots: {folder}")
    return folder


@pytest.fixture
def page(browser: Any, server_url: str) -> Iterator[Any]:
    context = browser.new_context(base_url=server_url, viewport={"width": 1280, "height": 860}, accept_downloads=True)
    context.set_default_timeout(30_000)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_page(page: Any, path: str) -> None:
    page.goto(path)
    page.wait_for_selector("body[data-ready=true]")


def snap(page: Any, path: Path) -> None:
    """A full-page screenshot from the top (a sticky header would otherwise be drawn mid-page)."""
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=path, full_page=True)


def create_and_wait(server_url: str, prompt: str, **extra: Any) -> dict[str, Any]:
    """Make a finished video through the API (what another client of the same owner would do)."""
    video = httpx.post(f"{server_url}/v1/videos", json={"prompt": prompt, **TINY, **extra}, timeout=30).json()
    deadline = time.monotonic() + 60
    while video["status"] not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.2)
        video = httpx.get(f"{server_url}/v1/videos/{video['id']}", timeout=30).json()
    assert video["status"] == "completed", video
    return video


def fill_form(page: Any, prompt: str, *, steps: str = "2", seed: str = "", size: str = "64x64") -> None:
    page.select_option("#model", "tiny-random-wan")
    page.fill("#prompt", prompt)
    page.select_option("#size", size)
    page.select_option("#seconds", "1")
    page.fill("#seed", seed)
    if page.locator("#advanced").get_attribute("open") is None:
        page.click("#advanced summary")
    page.fill("#steps", steps)
    page.fill("#guidance_scale", "1")


def job(page: Any, prompt: str) -> Any:
    return page.locator("#jobs li.job", has=page.locator(".job-prompt", has_text=prompt))


def test_pages_and_files_are_served_locally_with_a_strict_policy(server_url: str) -> None:
    for path in ("/", "/library", "/gallery", "/library/video_missing"):
        r = httpx.get(server_url + path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        policy = r.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        # Nothing from another site: no CDN, no web fonts.
        assert "http://" not in r.text and "https://" not in r.text
    assert httpx.get(f"{server_url}/static/studio.css").headers["content-type"].startswith("text/css")
    assert "javascript" in httpx.get(f"{server_url}/static/create.js").headers["content-type"]
    # The pages are not part of the API's document.
    assert not [p for p in httpx.get(f"{server_url}/openapi.json").json()["paths"] if not p.startswith(("/v1", "/h"))]


def test_api_errors_are_shown_next_to_the_field_that_caused_them(page: Any, shots: Path) -> None:
    open_page(page, "/")
    page.select_option("#model", "tiny-random-wan")
    # The size and duration lists come from the chosen model's card in /v1/models.
    assert "832x480" in page.locator("#size option").evaluate_all("os => os.map(o => o.value)")
    assert page.locator("#seconds option").evaluate_all("os => os.map(o => o.value)") == ["1", "2", "3", "4", "5"]

    page.click("#submit")  # no prompt
    expect(page.locator("#prompt-error")).to_contain_text("prompt")
    expect(page.locator("#prompt")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#prompt")).to_be_focused()

    fill_form(page, "a fox", steps="999")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#steps-error")).to_contain_text("steps must be between 1 and 50")
    expect(page.locator("#prompt-error")).to_be_hidden()
    page.fill("#steps", "2")
    expect(page.locator("#steps-error")).to_be_hidden()  # editing the field clears its error

    # An image dropped on the form goes up as the multipart input_reference part; this model takes text only.
    page.evaluate(
        """async () => {
            const canvas = Object.assign(document.createElement("canvas"), {width: 32, height: 32});
            canvas.getContext("2d").fillRect(0, 0, 16, 16);
            const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
            const data = new DataTransfer();
            data.items.add(new File([blob], "fox.png", {type: "image/png"}));
            document.querySelector("#dropzone").dispatchEvent(
                new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
        }"""
    )
    expect(page.locator("#image-preview")).to_be_visible()
    expect(page.locator("#image-name")).to_contain_text("fox.png")
    page.click("#submit")
    expect(page.locator("#input_reference-error")).to_contain_text("does not accept an input image")
    snap(page, shots / "create-errors.png")
    page.click("#image-clear")
    expect(page.locator("#dropzone")).to_be_visible()
    expect(page.locator("#input_reference-error")).to_be_hidden()


def test_submit_watch_the_queue_and_steps_cancel_and_play(
    page: Any, browser: Any, server_url: str, shots: Path
) -> None:
    open_page(page, "/")
    # A long job first (two variations of 50 steps: one bar of 100), then a short one that waits in line behind it.
    # At 256x256 (16x the tokens of 64x64): at 64x64 a fast machine ran all 100 steps while the page waited for the
    # first preview frame (previews come at most once a second), and the job finished before the cancel click.
    fill_form(page, "a slow fox", steps="50", seed="1", size="256x256")
    page.click("label[for=n-2]")
    page.click("#submit")
    expect(job(page, "a slow fox")).to_be_visible()
    page.click("label[for=n-1]")
    fill_form(page, "a quick fox", steps="2", seed="2")
    page.click("#submit")
    expect(job(page, "a quick fox").locator(".job-status")).to_contain_text("in line")

    # Closing the tab does not stop anything; a new tab shows each video where it is.
    page.close()
    page = browser.new_context(base_url=server_url, viewport={"width": 1280, "height": 860}).new_page()
    open_page(page, "/")
    slow, quick = job(page, "a slow fox"), job(page, "a quick fox")
    expect(slow).to_have_attribute("data-status", "in_progress")
    expect(quick).to_have_attribute("data-status", "queued")
    expect(quick.locator(".job-status")).to_contain_text("1st in line")

    # Live progress from the event stream: step i of 100, the bar, preview frames.
    page.wait_for_function(
        """() => [...document.querySelectorAll("#jobs li.job")].some(
            (li) => li.textContent.includes("a slow fox") && Number(li.dataset.step) >= 2)"""
    )
    expect(slow.locator(".job-status")).to_contain_text(" of 100")
    assert float(slow.locator("progress").get_attribute("value") or 0) > 0
    expect(slow.locator("img.preview")).to_be_visible()
    snap(page, shots / "create-waiting.png")

    # Cancel stops the running job at its next step.
    slow.get_by_role("button", name="Cancel this video").click()
    expect(slow).to_have_attribute("data-status", "cancelled")
    expect(slow.locator(".job-status")).to_have_text("Cancelled")

    # The short one runs next, and its clip plays in the queue.
    expect(quick).to_have_attribute("data-status", "completed", timeout=60_000)
    page.wait_for_function(
        """() => [...document.querySelectorAll("#jobs li.job[data-status=completed]")].some(
            (li) => li.textContent.includes("a quick fox") && li.querySelector("video").readyState >= 2)"""
    )
    snap(page, shots / "create-done.png")
    page.context.close()


def test_library_player_download_publish_remix_and_delete(page: Any, server_url: str, shots: Path) -> None:
    video = create_and_wait(server_url, "a library fox", seed=7)
    open_page(page, "/library")
    first = page.locator("#grid li.card").first
    expect(first).to_have_attribute("data-id", video["id"])  # newest first
    page.wait_for_function("() => document.querySelector('#grid li.card img')?.naturalWidth > 0")
    first.locator(".card-link").hover()  # hover plays
    page.wait_for_function("() => document.querySelector('#grid li.card .hover-player')?.readyState >= 2")
    snap(page, shots / "library.png")
    page.mouse.move(0, 0)
    expect(first.locator(".hover-player")).to_have_count(0)
    first.locator(".card-link").focus()  # and so does keyboard focus
    expect(first.locator(".hover-player")).to_have_count(1)

    first.locator(".card-link").click()
    page.wait_for_url(f"**/library/{video['id']}")
    page.wait_for_function("() => document.querySelector('#video')?.readyState >= 2")
    recipe = page.locator("#recipe")
    expect(recipe).to_contain_text("a library fox")
    expect(recipe.locator("dt:text-is('Seed') + dd")).to_have_text("7")
    expect(recipe.locator("dt:text-is('Steps') + dd")).to_have_text("2")
    expect(recipe.locator("dt:text-is('Sound') + dd")).to_have_text("none")  # tiny Wan makes silent videos
    snap(page, shots / "video.png")

    with page.expect_download() as download:
        page.click("#download")
    data = Path(download.value.path()).read_bytes()
    assert data[4:8] == b"ftyp" and len(data) == len(httpx.get(f"{server_url}/v1/videos/{video['id']}/content").content)

    # Publishing asks a moderator (tests/e2e/test_studio_review.py follows it through the review page).
    page.click("#publish")
    expect(page.locator("#publish")).to_have_text("Withdraw")
    expect(page.locator("#review-state")).to_contain_text("waiting for a moderator")
    page.click("#publish")
    expect(page.locator("#publish")).to_have_text("Submit for publication")
    expect(page.locator("#review-state")).to_be_hidden()

    # Remix: the form comes back prefilled with the whole recipe; a new prompt keeps the rest (remix endpoint).
    open_page(page, f"/library/{video['id']}")
    page.click("#remix")
    page.wait_for_url("**/?remix=*")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#prompt")).to_have_value("a library fox")
    for selector, value in (("#seed", "7"), ("#steps", "2"), ("#size", "64x64"), ("#seconds", "1")):
        expect(page.locator(selector)).to_have_value(value)
    expect(page.locator("#remix-banner")).to_be_visible()
    snap(page, shots / "create-remix.png")
    page.fill("#prompt", "a library fox, remixed")
    page.click("#submit")
    expect(job(page, "a library fox, remixed")).to_be_visible()
    newest = httpx.get(f"{server_url}/v1/videos?limit=1").json()["data"][0]
    assert newest["remixed_from_video_id"] == video["id"] and newest["params"]["seed"] == 7

    # Delete, after a confirmation.
    open_page(page, f"/library/{video['id']}")
    page.click("#delete")
    page.click("#confirm-delete-button")
    page.wait_for_url("**/library")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator(f"#grid li.card[data-id={video['id']}]")).to_have_count(0)
    assert httpx.get(f"{server_url}/v1/videos/{video['id']}").status_code == 404


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_phone_sized_screens_in_light_and_dark(browser: Any, server_url: str, shots: Path, scheme: str) -> None:
    context = browser.new_context(
        base_url=server_url, viewport={"width": 390, "height": 844}, color_scheme=scheme, is_mobile=True
    )
    p = context.new_page()
    for path, name in (("/", "create"), ("/library", "library")):
        open_page(p, path)
        # Nothing wider than the screen.
        assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
        snap(p, shots / f"{name}-phone-{scheme}.png")
    context.close()
