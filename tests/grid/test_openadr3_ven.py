"""The VEN against the VTN simulator over HTTP, without a fleet: a real EventBook on SQLite and
the VEN's own loop on an accelerated clock (polling only; the callback path runs in
``test_openadr3_e2e``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from csms.clock import Clock
from csms.config import OpenAdr3Settings, Settings
from csms.grid.book import EventBook
from csms.grid.openadr3.ven import OpenAdr3Ven
from csms.store.repository import Store
from simulators.vtn import VtnServer, VtnState

from .vtn_support import BusinessLogic, export_event

EPOCH = datetime(2026, 8, 18, 22, 0, tzinfo=UTC)


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := predicate()):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return value


class Harness:
    def __init__(self, vtn: VtnServer, ven: OpenAdr3Ven, book: EventBook, bl: BusinessLogic) -> None:
        self.vtn, self.ven, self.book, self.bl = vtn, ven, book, bl


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    state = VtnState()
    state.add_client("ven-1", "ven-secret", "ven")
    state.add_client("bl", "bl-secret", "bl")
    vtn = VtnServer(state)
    await vtn.start()
    port = vtn.port
    await vtn.stop()  # the VTN is down when the VEN starts
    store = await Store.open("sqlite+aiosqlite:///" + str(tmp_path / "v.db"))
    clock = Clock(EPOCH, speed=600.0)
    book = EventBook(store, clock)
    settings = OpenAdr3Settings(
        enabled=True,
        vtn_url=f"http://127.0.0.1:{port}",
        client_id="ven-1",
        client_secret="ven-secret",
        ven_name="v",
        resources="site",
        poll_interval_s=60.0,
        backoff_initial_s=30.0,
        backoff_max_s=60.0,
        request_timeout_s=1.0,
        simple_levels_kw={0: 0.0, 1: 50.0, 2: 120.0},
    )
    central = SimpleNamespace(
        clock=clock, settings=Settings(openadr3=settings), states={}, extensions={}, now=clock.now
    )
    controller = SimpleNamespace(book=book, publisher=None)
    ven = OpenAdr3Ven(SimpleNamespace(central=central, api=None), controller, settings)
    await ven.start()
    try:
        yield Harness(vtn, ven, book, BusinessLogic(vtn.url))
    finally:
        await ven.stop()
        await vtn.stop()
        await store.close()


async def test_vtn_down_at_start_then_events_by_polling(harness: Harness) -> None:
    h = harness
    await until(lambda: h.ven.down_since is not None)
    assert not h.ven.registered
    await h.vtn.start()
    program = await h.bl.program("dsgs")
    await until(lambda: h.ven.registered and h.ven.programs and h.ven.outages)
    assert [r["resourceName"] for r in next(iter(h.vtn.state.resources.values())).values()] == ["site"]
    assert h.ven.outages and h.ven.down_since is None

    # SIMPLE levels through the configured table
    start = EPOCH + timedelta(hours=2)
    simple = {
        "programID": program,
        "intervalPeriod": {"start": start.isoformat(), "duration": "PT30M"},
        "intervals": [{"id": k, "payloads": [{"type": "SIMPLE", "values": [v]}]} for k, v in enumerate([1, 2])],
    }
    s_id = (await h.bl.call("POST", "/events", simple, expect=201))["id"]
    ev = await until(lambda: h.book.get(s_id))
    assert [iv.target_kw for iv in ev.intervals] == [50.0, 120.0] and ev.direction == "export"

    # an event for another VEN is not ours
    other = await h.bl.event(program, start, [10.0], targets=[{"type": "VEN_NAME", "values": ["someone-else"]}])
    later = start + timedelta(hours=3)
    mine = await h.bl.event(program, later, [10.0], targets=[{"type": "VEN_NAME", "values": ["v"]}])
    await until(lambda: h.book.get(mine))
    assert h.book.get(other) is None

    # a revision, then a deletion at the VTN: the book follows (revision 1, then cancelled)
    e_id = await h.bl.event(program, start + timedelta(hours=1), [80.0])
    await until(lambda: h.book.get(e_id))
    await h.bl.call("PUT", f"/events/{e_id}", export_event(program, start + timedelta(hours=1), [60.0]), expect=200)
    await until(lambda: h.book.get(e_id).revision == 1)
    assert h.book.get(e_id).intervals[0].target_kw == 60.0
    await h.bl.call("DELETE", f"/events/{e_id}", expect=200)
    await until(lambda: h.book.get(e_id).status == "cancelled")
    assert "deleted" in (h.book.get(e_id).cancel_reason or "")

    # an unknown SIMPLE level is refused naming the field; the SIMPLE event stays as planned
    bad = {**simple, "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [9]}]}]}
    await h.bl.call("PUT", f"/events/{s_id}", bad, expect=200)
    await until(lambda: h.ven.rejections)
    assert h.ven.rejections[-1].field == "intervals[0].payloads[0].values[0]"
    assert "SIMPLE level 9" in h.ven.rejections[-1].reason
    assert h.book.get(s_id) == ev


async def test_revoked_token_is_renewed(harness: Harness) -> None:
    h = harness
    await h.vtn.start()
    await h.bl.program("dsgs")
    await until(lambda: h.ven.registered and h.ven.polls >= 1)
    h.vtn.state.tokens.clear()  # the VTN forgets every token (expiry, restart of its auth server)
    polls = h.ven.polls
    await until(lambda: h.ven.polls > polls + 1)
    assert h.ven.down_since is None
    assert sum(1 for m, p, code in h.vtn.state.requests if p == "/auth/token" and code == 200) >= 2
    assert any(code == 403 for _, _, code in h.vtn.state.requests), "the old token was refused once"


async def test_reports_continue_after_a_restart(harness: Harness) -> None:
    """The controller re-publishes an event's intervals after a CSMS restart: the VEN continues
    its report at the VTN (no second report, no repeated interval, what was reported stays)."""
    h = harness
    await h.vtn.start()
    program = await h.bl.program("dsgs")
    start = EPOCH + timedelta(hours=2)
    e_id = await h.bl.event(program, start, [100.0, 100.0])
    await until(lambda: h.book.get(e_id))

    def interval(k: int, kw: float) -> dict[str, Any]:
        a = start + timedelta(minutes=5 * k)
        return {"start": a.isoformat(), "end": (a + timedelta(minutes=5)).isoformat(), "target_kw": 100.0,
                "delivered_kw": kw}  # fmt: skip

    for k in range(3):
        await h.ven.publish_delivery(e_id, interval(k, 95.0))
    await until(lambda: h.vtn.state.reports_for(e_id) and len(_intervals(h, e_id)) == 3)
    await h.ven.stop()

    restarted = OpenAdr3Ven(h.ven.service, h.ven.controller, h.ven.settings)
    await restarted.start()
    try:
        assert e_id in restarted.known, "the VTN's events are recognised in the book after a restart"
        for k in range(5):  # the new process re-publishes from the start, with no early meter data
            await restarted.publish_delivery(e_id, interval(k, 0.0 if k < 3 else 97.0))
        await until(lambda: len(_intervals(h, e_id)) == 5)
    finally:
        await restarted.stop()
    assert len(h.vtn.state.reports_for(e_id)) == 1
    demand = [iv["payloads"][1]["values"][0] for iv in _intervals(h, e_id)]
    assert demand == [-95.0, -95.0, -95.0, -97.0, -97.0]
    assert [iv["id"] for iv in _intervals(h, e_id)] == [0, 1, 2, 3, 4]


def _intervals(h: Harness, event_id: str) -> list[dict[str, Any]]:
    reports = h.vtn.state.reports_for(event_id)
    return reports[0]["resources"][0]["intervals"] if reports else []
