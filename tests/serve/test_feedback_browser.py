"""The web page with a store, in headless Chromium against `movierec serve --store` (SQLite,
then a throw-away PostgreSQL server): create a profile, rate a movie, see the list change,
restart the server, the rating is there.

Skipped like test_browser.py when Playwright or Chromium is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from servekit import start_server, stop
from test_browser import TIMEOUT_MS, browser  # noqa: F401  (the module-scoped fixture)

pytest.importorskip("sqlalchemy", reason="the feedback API needs the `store` extra")

import pgstore  # noqa: E402

# SQLite and a throw-away PostgreSQL server (tests/pgstore.py).
postgres_server, pg_url, store_url = pgstore.postgres_server, pgstore.pg_url, pgstore.store_url


def _open(browser: Any, base: str) -> tuple[Any, Any]:  # noqa: F811
    context = browser.new_context(base_url=base)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
               else route.abort())
    page.goto("/")
    page.wait_for_selector("[data-testid=create-profile]:not([hidden])")
    return context, page


def _cards(page: Any) -> list[str]:
    return page.locator("[data-testid=card]").evaluate_all(
        "cards => cards.map(c => c.dataset.itemId)")


@pytest.mark.slow
def test_rate_see_the_list_change_restart_and_find_the_rating(
        browser: Any, itemknn_dir: Path, tmp_path: Path, store_url: str) -> None:  # noqa: F811
    proc, base = start_server(itemknn_dir, tmp_path / "serve1.log", "--store", store_url)
    try:
        context, page = _open(browser, base)
        page.get_by_test_id("create-profile").click()
        page.wait_for_function("document.getElementById('status').textContent"
                               ".includes('created profile 61')")
        before = _cards(page)
        assert before, "popular movies are shown before any rating"
        first = before[0]
        page.get_by_test_id(f"card-rate-{first}-5").click()
        page.wait_for_selector(f"[data-testid=stored-rating][data-item-id='{first}']")
        page.wait_for_function(
            f"![...document.querySelectorAll('[data-testid=card]')]"
            f".some(c => c.dataset.itemId === '{first}')")
        after = _cards(page)
        assert first not in after and after != before
        context.close()
    finally:
        stop(proc)
    proc, base = start_server(itemknn_dir, tmp_path / "serve2.log", "--store", store_url)
    try:
        context, page = _open(browser, base)  # a fresh browser profile: nothing remembered
        page.get_by_test_id("user-id").fill("61")
        page.get_by_test_id("show-user").click()
        page.wait_for_selector(f"[data-testid=stored-rating][data-item-id='{first}']")
        assert first not in _cards(page)
        context.close()
    finally:
        stop(proc)
