"""The operator console in a real browser (see conftest.py): sign-in, the live fleet, a
station, grid events (form validation, live chart, report), read scope, CSRF and escaping."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.web.conftest import N_STATIONS, XSS_ID, XSS_VENDOR, Console, screenshot_copy

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.browser]


async def _shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    screenshot_copy(path)
    return path


async def until(page: Any, expression: str, timeout: float = 10.0) -> Any:
    """Poll a JavaScript expression until it is truthy (the console's CSP forbids the eval that
    ``page.wait_for_function`` uses; ``evaluate`` goes through the DevTools protocol)."""
    deadline = time.perf_counter() + timeout
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if time.perf_counter() > deadline:
            raise AssertionError(f"not true within {timeout} s: {expression}")
        await asyncio.sleep(0.1)


def _accept_dialogs(page: Any) -> list[str]:
    seen: list[str] = []

    async def accept(dialog: Any) -> None:
        seen.append(f"{dialog.type}: {dialog.message}")
        await dialog.accept()

    page.on("dialog", accept)
    return seen


async def test_sign_in_fleet_lists_stations_and_shows_a_disconnect_live(console: Console, tmp_path: Path) -> None:
    page = await console.signed_in(console.operator_token)
    cookies = await page.context.cookies()
    session = next(c for c in cookies if c["name"] == "csms_console")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert await page.evaluate("document.cookie") == ""  # nothing readable by scripts

    rows = page.locator("#fleet tbody tr")
    assert await rows.count() == N_STATIONS
    await page.wait_for_selector("#live[data-state=live]")
    await until(page, "document.querySelectorAll('#fleet tbody tr[data-state=online]').length === 20")
    await _shot(page, tmp_path, "console-fleet.png")

    victim = next(st for st in console.site.fleet if st.id != XSS_ID and st.id.startswith("FE20"))
    await page.evaluate("window.__sameDocument = true")
    row = page.locator(f'#fleet tbody tr[data-id="{victim.id}"]')
    assert await row.get_attribute("data-state") == "online"
    t0 = time.perf_counter()
    victim.disconnect()
    await row.and_(page.locator("[data-state=offline]")).wait_for(timeout=5_000)
    shown_after = time.perf_counter() - t0
    assert shown_after < 5.0
    assert await page.evaluate("window.__sameDocument") is True  # no reload happened
    assert await row.locator("td.state").text_content() == "offline"

    # filter and search work on the live data
    await page.select_option("#filter", "offline")
    assert await page.locator("#fleet tbody tr:not([hidden])").count() == 1
    await page.select_option("#filter", "all")
    await page.fill("#q", victim.id)
    assert await page.locator("#fleet tbody tr:not([hidden])").count() == 1
    await page.fill("#q", "")

    victim.reconnect()
    await row.and_(page.locator("[data-state=online]")).wait_for(timeout=15_000)
    await page.context.close()


async def test_station_page_and_an_operator_action_with_confirmation(console: Console, tmp_path: Path) -> None:
    page = await console.signed_in(console.operator_token)
    dialogs = _accept_dialogs(page)
    sid = next(st.id for st in console.site.fleet if st.id.startswith("FE20"))
    await page.goto(f"{console.url}/console/stations/{quote(sid, safe='')}")
    assert await page.locator("#station-id").text_content() == sid
    assert await page.locator("#evse-table tbody tr[data-evse='1']").count() == 1
    await page.wait_for_selector("#frames table.frames tbody tr.dir-in td:has-text('CALL')")
    await page.wait_for_selector("#frames table.frames tbody tr.dir-out")
    await until(page, "Number(document.getElementById('meter-chart').dataset.points || 0) > 0")
    assert await page.locator("#meter-chart canvas").count() >= 1

    await page.select_option("form:has(button[data-action=TriggerMessage]) select", "Heartbeat")
    await page.click("button[data-action=TriggerMessage]")
    result = page.locator("#command-result .command-result")
    await result.wait_for()
    assert dialogs and dialogs[0].startswith("confirm: ") and sid in dialogs[0]
    assert await result.get_attribute("data-status") == "Accepted"
    assert "Accepted" in (await result.locator(".status").text_content() or "")
    await _shot(page, tmp_path, "console-station.png")
    assert page.console_errors == []

    # the page follows the station: it goes offline, the state and the EVSE panel say so
    console.station(sid).disconnect()
    await page.locator("#station-state", has_text="offline").wait_for(timeout=8_000)
    console.station(sid).reconnect()
    await page.locator("#station-state", has_text="online").wait_for(timeout=15_000)

    # an error from the station or the API is shown, not swallowed
    await page.fill("form:has(button[data-action=UnlockConnector]) input[name=evse_id]", "x")
    await page.click("button[data-action=UnlockConnector]")
    await page.wait_for_selector("#command-result .command-result.error")
    assert "evse_id" in (await page.locator("#command-result .message").text_content() or "")
    await page.context.close()


async def test_grid_event_form_validation_live_chart_cancel_and_report(console: Console, tmp_path: Path) -> None:
    page = await console.signed_in(console.operator_token)
    _accept_dialogs(page)
    await page.goto(f"{console.url}/console/events")
    event_id = await page.input_value("#ev-id")
    await page.fill("#ev-target_kw", "-5")
    await page.click("#create-event")
    err = page.locator("#err-target_kw")
    await err.wait_for()
    assert await err.text_content() == "must be >= 0"  # the API's own message, beside the field
    assert await page.get_attribute("#ev-target_kw", "aria-invalid") == "true"
    assert console.site.book.get(event_id) is None

    await page.fill("#ev-target_kw", "20")
    await page.click("#create-event")
    await page.wait_for_url(f"{console.url}/console/events/{event_id}")
    assert console.site.book.get(event_id) is not None
    assert await page.locator("#event-id").text_content() == event_id

    # the live chart: delivered power rises toward the 20 kW target (dispatch starts with the window)
    chart = page.locator("#event-chart")
    await until(page, "Number(document.getElementById('event-chart').dataset.samples || 0) >= 2", 40)
    await until(page, "Number(document.getElementById('event-chart').dataset.delivered) >= 12", 40)
    assert float(await chart.get_attribute("data-target") or 0) == 20.0
    assert await chart.locator("canvas").count() >= 1
    live = await (await page.request.get(f"{console.url}/console/events/{event_id}/live.json")).json()
    delivered = live["delivered"]
    assert delivered[0] < 10.0 <= 12.0 <= max(delivered), delivered
    assert set(live["target"]) == {20.0}
    await page.wait_for_selector("#cars tbody tr[data-station]")
    await until(page, "Number(document.getElementById('event-chart').dataset.samples || 0) >= 6", 20)
    await _shot(page, tmp_path, "console-event-live.png")

    # a drop-out shows up as it happens
    cars = await page.locator("#cars tbody tr[data-station]").evaluate_all("rows => rows.map(r => r.dataset.station)")
    lost = next(s for s in reversed(cars) if s != XSS_ID and not s.startswith("FE20-001"))
    console.station(lost).disconnect()
    try:
        drop = page.locator("#dropouts li", has_text=lost)
        await drop.and_(page.locator("li", has_text="station offline")).wait_for()
    finally:
        console.station(lost).reconnect()

    # cancel: confirmation, then the final report with its downloads
    await page.click("#cancel-event")
    await page.wait_for_selector("#event-status:has-text('cancelled')")
    await page.wait_for_selector("#report", timeout=40_000)
    assert (await page.locator("#delivery-ratio").text_content() or "").endswith("%")
    assert await page.locator("#report-chart canvas").count() >= 1
    await _shot(page, tmp_path, "console-event-report.png")
    assert page.console_errors == []
    csv = await page.request.get(f"{console.url}/console/events/{event_id}/report.csv")
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "delivered_kw" in (await csv.text()).splitlines()[0]
    js = await page.request.get(f"{console.url}/console/events/{event_id}/report.json")
    assert js.status == 200 and (await js.json())["event_id"] == event_id
    await page.goto(f"{console.url}/console/events")
    assert await page.locator(f'#events tr[data-event="{event_id}"]').get_attribute("data-status") == "cancelled"
    await page.context.close()


async def test_read_scope_sees_no_command_buttons_and_forged_commands_get_403(console: Console) -> None:
    page = await console.signed_in(console.read_token)
    sid = next(st.id for st in console.site.fleet if st.id.startswith("FE20"))
    await page.goto(f"{console.url}/console/stations/{quote(sid, safe='')}")
    assert await page.locator("#station-id").text_content() == sid
    assert await page.locator("#actions").count() == 0
    assert await page.locator("button[data-action]").count() == 0
    await page.goto(f"{console.url}/console/events")
    assert await page.locator("#event-form").count() == 0

    store = console.site.central.store
    csrf = await page.get_attribute("meta[name=csrf-token]", "content")
    forged = await page.request.post(
        f"{console.url}/console/stations/{quote(sid, safe='')}/commands/Reset",
        form={"type": "Immediate"},
        headers={"X-CSRF-Token": csrf or ""},
    )
    assert forged.status == 403
    assert "this needs scope &#39;operator&#39;" in await forged.text()
    forged_event = await page.request.post(
        f"{console.url}/console/events", form={"id": "forged", "target_kw": "1"}, headers={"X-CSRF-Token": csrf or ""}
    )
    assert forged_event.status == 403
    assert console.site.book.get("forged") is None
    await asyncio.sleep(1.2)  # frames are written in batches
    await store.flush()
    assert not [f for f in await store.frames(sid, limit=200) if '"Reset"' in f.frame]  # nothing was sent
    await page.context.close()

    # CSRF: an operator session without the token (what a hostile page could send) is refused too
    op = await console.signed_in(console.operator_token)
    no_token = await op.request.post(
        f"{console.url}/console/stations/{quote(sid, safe='')}/commands/Reset", form={"type": "OnIdle"}
    )
    assert no_token.status == 403
    assert "CSRF" in await no_token.text()
    csrf = await op.get_attribute("meta[name=csrf-token]", "content")
    other_origin = await op.request.post(
        f"{console.url}/console/stations/{quote(sid, safe='')}/commands/Reset",
        form={"type": "OnIdle"},
        headers={"X-CSRF-Token": csrf or "", "Origin": "http://evil.example"},
    )
    assert other_origin.status == 403
    await op.context.close()


async def test_markup_in_station_id_and_vendor_is_shown_as_text(console: Console) -> None:
    page = await console.signed_in(console.operator_token)
    dialogs = _accept_dialogs(page)
    await page.wait_for_selector("#live[data-state=live]")
    cell = page.locator("#fleet tbody tr", has_text="onerror").locator("td.id a")
    assert await cell.text_content() == XSS_ID
    await page.fill("#q", "script")
    assert XSS_VENDOR in (await page.locator("#fleet tbody tr:not([hidden]) td.model").first.text_content() or "")
    await page.fill("#q", "")
    await cell.click()
    await page.wait_for_selector("#station-id")
    assert await page.locator("#station-id").text_content() == XSS_ID
    await until(page, "document.getElementById('station-vendor').textContent.includes('script')")
    assert await page.locator("#station-vendor").text_content() == XSS_VENDOR
    await asyncio.sleep(0.5)
    assert await page.evaluate("window.__xss") is None
    assert await page.locator("main img, main script").count() == 0
    assert dialogs == []
    assert page.console_errors == []  # no script error, no Content-Security-Policy violation
    await page.context.close()
