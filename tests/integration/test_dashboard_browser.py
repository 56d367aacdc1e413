"""The dashboard end to end in a real headless browser (Debian's chromium driven by
Playwright): log in, charts drawn from real traffic, filter by model, drill down into a
request. Screenshots go to .test-artifacts/ui/."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import MASTER_KEY, GatewayFactory, SimFactory
from tests.integration.dashboard_traffic import traffic_gateway

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = os.environ.get("LOCKGATE_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("LOCKGATE_REQUIRE_SERVICES") == "1"
ARTIFACTS = Path(__file__).resolve().parents[2] / ".test-artifacts" / "ui"


@pytest.fixture
def chromium() -> str:
    """The browser's path; a skip when it is missing (a failure in CI)."""
    if shutil.which(CHROMIUM) is None:
        message = f"no chromium at {CHROMIUM} (apt-get install chromium)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return CHROMIUM


@pytest.fixture
async def page(chromium: str) -> AsyncIterator[playwright_api.Page]:
    async with playwright_api.async_playwright() as pw:
        try:
            browser = await pw.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox"]
            )
        except playwright_api.Error as exc:
            if REQUIRED:
                pytest.fail(f"chromium did not start: {exc}")
            pytest.skip(f"chromium did not start: {exc}")
        context = await browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(10_000)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        assert not errors, errors  # no script errors while the test drove the page
        await browser.close()


async def _loaded(page: playwright_api.Page, after: str | None) -> str:
    """Wait for the page to finish a refresh that began after ``after``; its stamp."""
    await page.wait_for_function(
        "after => document.body.dataset.loaded && document.body.dataset.loaded !== after",
        arg=after,
        timeout=10_000,
    )
    return str(await page.evaluate("document.body.dataset.loaded"))


async def _totals(page: playwright_api.Page, chart: str) -> dict[str, float]:
    return dict(
        await page.eval_on_selector_all(
            f"#{chart} path.series",
            "paths => paths.map(p => [p.dataset.name, Number(p.dataset.total)])",
        )
    )


async def test_log_in_see_charts_filter_and_drill_down(
    make_gateway: GatewayFactory, make_sim: SimFactory, tmp_path: Path, page: playwright_api.Page
) -> None:
    t = await traffic_gateway(make_gateway, make_sim, tmp_path)
    await page.goto(f"{t.gw.url}/ui")

    # A wrong key is refused and stays on the login form.
    await page.fill("#key", "sk-wrong")
    await page.click("#login-form button")
    await page.wait_for_selector("#login-error:has-text('refused')")
    await page.screenshot(path=str(ARTIFACTS / "01-login.png"))

    await page.fill("#key", MASTER_KEY)
    await page.click("#login-form button")
    stamp = await _loaded(page, None)
    assert await page.is_hidden("#login")

    spend = await _totals(page, "chart-spend")
    assert {"gpt-4o-mini", "gpt-4o"} <= spend.keys()
    assert spend["gpt-4o-mini"] > 0 and spend["gpt-4o"] > 0
    requests = await _totals(page, "chart-requests")
    assert requests == {"requests": t.ok + t.errors, "errors": t.errors}
    rates = await _totals(page, "chart-rates")
    assert rates == {"429 rate limited": t.limited, "cache hits": 1}
    latency = await _totals(page, "chart-latency")
    assert latency.keys() == {"p50", "p95", "p99"} and latency["p50"] > 0
    bars = await page.eval_on_selector_all(
        "#chart-deployments rect.bar", "rs => rs.map(r => Number(r.dataset.value))"
    )
    assert len(bars) >= 6 and min(bars) > 0  # p50/p95/p99 of primary and secondary at least
    ttft = await page.get_attribute("#chart-ttft svg", "data-bars")
    assert ttft == "3"  # one streamed deployment: p50, p95, p99
    assert await page.locator("#recent-table tbody tr").count() == t.ok + t.errors
    assert "key:master" in await page.inner_text("#budgets-table")
    assert "fallback-demo" in await page.inner_text("#models-table")
    tiles = await page.inner_text("#tiles")
    assert f"{t.ok + t.errors}\nrequests" in tiles
    await page.screenshot(path=str(ARTIFACTS / "02-dashboard.png"), full_page=True)

    # Filter: one model group.
    await page.select_option("#model", "gpt-4o")
    stamp = await _loaded(page, stamp)
    assert (await _totals(page, "chart-spend")).keys() == {"gpt-4o"}
    assert (await _totals(page, "chart-requests"))["requests"] == 3
    rows = page.locator("#recent-table tbody tr")
    assert await rows.count() == 3
    assert await page.locator("#models-table tbody tr").count() == 1
    assert (await page.get_attribute("#chart-deployments svg", "data-bars")) == "3"
    await page.screenshot(path=str(ARTIFACTS / "03-filtered.png"), full_page=True)

    # Drill down: the newest gpt-4o request's ledger row.
    await rows.first.click()
    await page.wait_for_selector("#detail[open]")
    detail = await page.inner_text("#detail-table")
    assert t.ids[9] in await page.inner_text("#detail-id")
    assert "secondary" in detail and "stream\ttrue" in detail and "nano-USD" in detail
    await page.screenshot(path=str(ARTIFACTS / "04-detail.png"))
    await page.click("#detail-close")

    # Errors only, across every model.
    await page.select_option("#model", "")
    await _loaded(page, stamp)
    await page.select_option("#status", "error")
    await page.wait_for_function(
        f"document.querySelectorAll('#recent-table tbody tr').length === {t.errors}"
    )
    assert await page.locator("#recent-table tbody tr.err").count() == t.errors
