"""Publishing with approval in the studio, in a real Chromium against a real `reelgen serve` (single-owner mode:
the local owner is also the moderator): submit a video from its page, it is not in the gallery; approve it on
the review page; it appears in the gallery, its thumbnail served by the gallery's content route. Rejecting
needs a reason, which the owner then sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import test_studio as studio
from tests.e2e.test_studio import create_and_wait, open_page, playwright_api, snap

# The studio tests' fixtures: a Chromium, a fresh page per test, the screenshot folder.
browser, page, shots = studio.browser, studio.page, studio.shots

pytestmark = [pytest.mark.slow]
expect = playwright_api.expect


def test_submit_approve_on_the_review_page_and_see_it_in_the_gallery(page: Any, server_url: str, shots: Path) -> None:
    video = create_and_wait(server_url, "a fox waiting for approval", seed=11)
    card = f"#grid li.card[data-id={video['id']}]"

    open_page(page, f"/library/{video['id']}")
    expect(page.locator("#publish")).to_have_text("Submit for publication")
    page.click("#publish")
    expect(page.locator("#review-state")).to_contain_text("waiting for a moderator")
    expect(page.locator("#publish")).to_have_text("Withdraw")

    open_page(page, "/gallery")
    expect(page.locator(card)).to_have_count(0)

    open_page(page, "/review")
    item = page.locator(f"#pending li.review-item[data-id={video['id']}]")
    expect(item).to_be_visible()
    expect(item.locator(".review-prompt")).to_have_text("a fox waiting for approval")
    expect(item.locator(".review-meta")).to_contain_text("by local")
    page.wait_for_function(
        "id => document.querySelector(`li.review-item[data-id=${id}] video`)?.readyState >= 1", arg=video["id"]
    )
    snap(page, shots / "review.png")
    item.locator("button.accept").click()
    expect(item).to_have_count(0)

    open_page(page, "/gallery")
    expect(page.locator(card)).to_be_visible()
    page.wait_for_function(
        "id => document.querySelector(`#grid li.card[data-id=${id}] img`)?.naturalWidth > 0", arg=video["id"]
    )
    src = page.locator(f"{card} img").get_attribute("src")
    assert src == f"/v1/gallery/{video['id']}/content?variant=thumbnail"
    snap(page, shots / "gallery.png")

    open_page(page, f"/library/{video['id']}")
    expect(page.locator("#review-state")).to_contain_text("Published in the gallery")
    expect(page.locator("#publish")).to_have_text("Unpublish")


def test_rejecting_needs_a_reason_that_the_owner_sees(page: Any, server_url: str) -> None:
    video = create_and_wait(server_url, "a fox to be rejected", seed=12)
    assert httpx.post(f"{server_url}/v1/videos/{video['id']}/publish").json()["review"]["state"] == "pending"

    open_page(page, "/review")
    item = page.locator(f"#pending li.review-item[data-id={video['id']}]")
    item.locator("button.reject").click()
    expect(item.locator(".error")).to_have_text("Give a reason to reject.")
    item.locator("input.reason").fill("the fox is blurry")
    item.locator("button.reject").click()
    expect(item).to_have_count(0)

    open_page(page, f"/library/{video['id']}")
    expect(page.locator("#review-state")).to_contain_text("the fox is blurry")
    expect(page.locator("#publish")).to_have_text("Submit again")
    open_page(page, "/gallery")
    expect(page.locator(f"#grid li.card[data-id={video['id']}]")).to_have_count(0)
