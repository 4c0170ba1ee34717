"""The web page in headless Chromium (Playwright driving the system's chromium).

Skipped, with the reason, only when Playwright or a Chromium binary is missing. The browser gets
flags that keep it off the network (no background networking, sync, component updates) and talks
only to the live server on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    """$MOVIEREC_CHROMIUM, else Debian's /usr/bin/chromium, else chromium on PATH."""
    for candidate in (os.environ.get("MOVIEREC_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set MOVIEREC_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                    headless=True, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    context = browser.new_context(base_url=server)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_console(msg: Any) -> None:
        # The browser logs every 4xx answer; the page shows those to the user (tested below).
        if msg.type == "error" and "status of 4" not in msg.text:
            errors.append(msg.text)

    page.on("console", on_console)
    # Anything not served by our server is refused: the page must need no CDN.
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    try:
        yield page
        assert not errors, f"browser errors: {errors}"
        assert not outside, f"requests outside the server: {outside}"
    finally:
        context.close()


def test_rate_three_movies_and_see_recommendations(page: Any) -> None:
    page.goto("/")
    page.get_by_test_id("tab-new").click()
    page.get_by_test_id("search").fill("synthetic film 1")
    results = page.get_by_test_id("search-result")
    results.first.wait_for()
    assert results.count() >= 3
    ids = [results.nth(n).locator("[data-testid^='rate-']").first.get_attribute("data-testid")
           .split("-")[1] for n in range(3)]
    for item, stars in zip(ids, (5, 4, 5), strict=True):
        page.get_by_test_id(f"rate-{item}-{stars}").click()
    assert page.get_by_test_id("rated-item").count() == 3
    cards = page.get_by_test_id("card")
    cards.first.wait_for()
    page.wait_for_function("document.querySelector('#results-title').textContent"
                           ".includes('your 3 ratings')")
    assert cards.count() == 10
    shown = {cards.nth(n).get_attribute("data-item-id") for n in range(cards.count())}
    assert not shown & set(ids), "rated movies are not recommended again"
    first = cards.first.inner_text()
    assert "score" in first and "Because you liked" in page.get_by_test_id("results").inner_text()


def test_pick_an_existing_user(page: Any) -> None:
    page.goto("/")
    page.wait_for_function("document.querySelector('#user-ids').options.length > 0")
    user = page.locator("#user-ids option").first.get_attribute("value")
    page.get_by_test_id("user-id").fill(user)
    page.get_by_test_id("show-user").click()
    page.get_by_test_id("card").first.wait_for()
    assert f"User {user} rated" in page.locator("#user-history").inner_text()
    assert page.get_by_test_id("card").count() == 10


def test_unknown_user_shows_the_error(page: Any) -> None:
    page.goto("/")
    page.get_by_test_id("user-id").fill("987654")
    page.get_by_test_id("show-user").click()
    # The status reads "loading user 987654…" until the answer arrives: wait for the answer.
    page.wait_for_function("document.querySelector('#status').textContent"
                           ".includes('not in the training data')")
    assert "987654" in page.get_by_test_id("status").inner_text()
