"""Browser tests of the operator console: headless Chromium from the OS (``/usr/bin/chromium``)
driven by Playwright for Python against a real CSMS (HTTP API + console, dispatch) and 20
simulated stations on real sockets, all in the test's event loop.

Chromium (or the ``playwright`` package) missing: the tests fail under CI=true and are skipped,
with the reason printed, elsewhere. Screenshots go to each test's ``tmp_path``; with
``CSMS_SCREENSHOTS=<dir>`` they are copied there too (how ``docs/img`` is refreshed).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
N_STATIONS = 20
XSS_ID = "FE<img src=x onerror=window.__xss=1><script>"
XSS_VENDOR = "<script>window.__xss=2</script>"
SPEED = 60.0


def chromium() -> Path:
    return Path(os.environ.get("CSMS_CHROMIUM", DEFAULT_CHROMIUM))


def _missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not chromium().is_file():
        return f"{chromium()} is missing (apt-get install -y chromium)"
    return None


def require_chromium() -> None:
    """Return when Chromium and Playwright are there; else fail under CI=true, skip elsewhere."""
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    print(f"\nskipping the console browser tests: {reason}", file=sys.stderr)
    pytest.skip(reason)


@dataclass
class Console:
    site: Any  # csms.demo.site.Site
    url: str
    read_token: str
    operator_token: str
    browser: Any
    xss_id: str = XSS_ID

    def station(self, station_id: str) -> Any:
        for st in self.site.fleet:
            if st.id == station_id:
                return st
        raise KeyError(station_id)

    async def signed_in(self, token: str) -> Any:
        """A fresh browser context (own cookies) signed in with ``token``; returns its page."""
        ctx = await self.browser.new_context(viewport={"width": 1400, "height": 900})
        ctx.set_default_timeout(15_000)
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.console_errors = errors  # type: ignore[attr-defined]  # checked by the tests
        await page.goto(f"{self.url}/console/")
        assert "/console/login" in page.url  # not signed in yet
        await page.fill("#token", token)
        await page.click("#sign-in")
        await page.wait_for_url(f"{self.url}/console/")
        return page


def screenshot_copy(path: Path) -> None:
    target = os.environ.get("CSMS_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def _fleet(epoch: datetime, event_start: datetime) -> Any:
    from csms.demo.site import evening_fleet

    config = evening_fleet(N_STATIONS, epoch=epoch, seed=11, event_start=event_start, tx_interval_s=60)
    stations = list(config.stations)
    stations[-1] = stations[-1].model_copy(update={"id": XSS_ID, "vendor": XSS_VENDOR})
    return config.model_copy(update={"stations": stations})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    require_chromium()
    from playwright.async_api import async_playwright

    from csms.api.apitokens import issue_token
    from csms.demo.site import running_site
    from csms.dispatch.controller import ControllerOptions

    zone = ZoneInfo("America/Los_Angeles")
    t_event = datetime(2026, 8, 18, 16, 0, tzinfo=zone)
    epoch = t_event - timedelta(minutes=30)
    data = tmp_path_factory.mktemp("console-site")
    # lead_s=0: dispatch starts with the event's window, so the live chart shows delivery rising
    options = ControllerOptions(report_tz="America/Los_Angeles", lead_s=0, settle_s=60, report_min_wall_s=1)
    async with (
        running_site(
            _fleet(epoch, t_event),
            data,
            epoch=epoch,
            speed=SPEED,
            options=options,
            api=True,
            frame_log_limit=200,
            reconcile_wait_s=2.0,
        ) as site,
        async_playwright() as pw,
    ):
        store = site.central.store
        read, _ = await issue_token(store, "viewer", "read")
        operator, _ = await issue_token(store, "duty-operator", "operator")
        browser = await pw.chromium.launch(executable_path=str(chromium()), args=CHROMIUM_ARGS, headless=True)
        try:
            yield Console(site, site.service.api.url, read, operator, browser)
        finally:
            await browser.close()
