"""The library stays fast with 10,000 videos: the page loads one page of the API's keyset paging at a time.

A `reelgen serve --no-worker` over a database seeded with 10,000 finished videos (through the job store, then
marked completed in one statement: test setup, not something the page can do), all sharing one thumbnail.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reelgen.jobs import open_job_store
from reelgen.jobs.store import NewJob
from tests.conftest import make_params
from tests.e2e.conftest import running_server
from tests.e2e.test_studio import browser, open_page, playwright_api, snap  # noqa: F401 - `browser` is a fixture

pytestmark = [pytest.mark.slow]
expect = playwright_api.expect

VIDEOS = 10_000


def seed(home: Path) -> None:
    store = open_job_store(f"sqlite:///{home / 'reelgen.db'}")
    try:
        store.create_many([NewJob("local", make_params(f"fox number {i}")) for i in range(VIDEOS)])
    finally:
        store.close()
    thumb = home / "videos" / "seed" / "thumbnail.webp"
    thumb.parent.mkdir(parents=True)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 90, 200)).save(buf, format="WEBP")
    thumb.write_bytes(buf.getvalue())
    artifact = {
        "video_key": "seed/video.mp4",
        "thumbnail_key": "seed/thumbnail.webp",
        "spritesheet_key": None,
        "bytes": 1,
        "num_frames": 9,
        "width": 64,
        "height": 64,
        "fps": 16,
        "sha256": "0" * 64,
        # Every seeded video has a soundtrack (as LTX-2's do): cards say so.
        "extra": {"audio": {"sample_rate": 24000, "channels": 2, "seconds": 0.5}},
    }
    with sqlite3.connect(home / "reelgen.db") as db:
        db.execute(
            "UPDATE jobs SET status = 'completed', progress = 100, attempt = 1, finished_at = created_at + 1, "
            "artifact = ?",
            (json.dumps(artifact),),
        )


@pytest.fixture(scope="module")
def big_library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("reelgen-big-library")
    seed(home)
    with running_server(home, "--no-worker") as url:
        yield url


def settled(page: Any, cards: Any, timeout: float = 30) -> int:
    """The number of cards once the grid has stopped filling the screen by itself: no page in flight and the
    count unchanged for half a second (an appended page can leave the "more" button on screen, which loads
    another)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        page.wait_for_function("() => document.querySelector('#grid').getAttribute('aria-busy') !== 'true'")
        count = cards.count()
        if count == last:
            return count
        last = count
        page.wait_for_timeout(500)
    raise AssertionError(f"the grid kept loading for {timeout} s")


def test_ten_thousand_videos_load_one_page_at_a_time(browser: Any, big_library: str, tmp_path: Path) -> None:  # noqa: F811
    context = browser.new_context(base_url=big_library, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    cards = page.locator("#grid li.card")
    started = time.monotonic()
    open_page(page, "/library")
    page.wait_for_function("() => [...document.querySelectorAll('#grid img')].some((img) => img.naturalWidth > 0)")
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"the first page took {elapsed:.1f} s"
    shown = settled(page, cards)
    # Pages of 24, only as many as fill the screen: never the whole library.
    assert 24 <= shown <= 72 and shown % 24 == 0
    assert cards.first.locator(".card-prompt").inner_text() == f"fox number {VIDEOS - 1}"  # newest first
    assert "with sound" in cards.first.locator(".card-meta").inner_text()

    page.click("#more")
    expect(cards.nth(shown).locator(".card-prompt")).to_have_text(f"fox number {VIDEOS - 1 - shown}")
    # The click scrolled to the button, so the new page may leave it on screen and fetch one more by itself.
    after_click = settled(page, cards)
    assert after_click in (shown + 24, shown + 48), (shown, after_click)
    # Scrolling near the end fetches the next page by itself.
    page.mouse.wheel(0, 100_000)
    expect(cards.nth(after_click)).to_be_attached()
    assert settled(page, cards) < VIDEOS
    snap(page, tmp_path / "library-10000.png")

    # The create page's queue reads one short page too.
    started = time.monotonic()
    open_page(page, "/")
    assert time.monotonic() - started < 5
    expect(page.locator("#jobs li.job")).to_have_count(6)
    context.close()
