"""The OpenADR 3 VEN end to end over real HTTP: the VTN simulator (uvicorn on 127.0.0.1), the
CSMS with its API and dispatch, and Fermata-style simulated stations, on one accelerated clock.

One evening, in order:

1. the VEN registers (VEN, one resource per station, a subscription with its callback);
2. event A arrives by subscription (the VTN calls the CSMS back) and is dispatched: the
   stations export and the VTN receives a report after each 5-minute interval;
3. the VTN stops delivering callbacks (a firewall): event B arrives by polling only;
4. the VTN goes down for a quarter of an hour mid-event: dispatch goes on, the VEN logs the
   outage, backs off, and when the VTN is back it catches up - a change made to event B is
   picked up and every report interval of the outage arrives;
5. a malformed revision of event B is refused with the field named and the planned event B
   stays as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from csms.api.apitokens import issue_token
from csms.config import OpenAdr3Settings
from csms.demo.site import evening_fleet, running_site
from csms.dispatch.controller import ControllerOptions
from simulators.vtn import VtnServer, VtnState

from .vtn_support import BusinessLogic, export_event

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LA = ZoneInfo("America/Los_Angeles")
DAY = datetime(2026, 8, 18, tzinfo=LA)
SPEED = 200.0


def local(h: int, m: int = 0) -> datetime:
    return DAY.replace(hour=h, minute=m)


async def until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := predicate()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return value


def report_intervals(state: VtnState, event_id: str) -> list[dict[str, Any]]:
    reports = state.reports_for(event_id)
    assert len(reports) <= 1, "one report per event, updated interval by interval"
    return reports[0]["resources"][0]["intervals"] if reports else []


async def test_ven_over_http(tmp_path: Path) -> None:
    state = VtnState()
    state.add_client("ven-1", "ven-secret", "ven")
    state.add_client("bl", "bl-secret", "bl")
    vtn = VtnServer(state)
    await vtn.start()
    bl = BusinessLogic(vtn.url)
    program = await bl.program("dsgs-option-3")
    settings = OpenAdr3Settings(
        enabled=True,
        vtn_url=vtn.url,
        client_id="ven-1",
        client_secret="ven-secret",
        ven_name="garage-ven",
        programs=["dsgs-option-3"],
        callback_url="auto",
        poll_interval_s=300.0,
        backoff_initial_s=60.0,
        backoff_max_s=120.0,
        request_timeout_s=2.0,
    )
    epoch = local(15, 45)
    fleet = evening_fleet(8, epoch=epoch, seed=11, event_start=local(16), tx_interval_s=60)
    options = ControllerOptions(report_tz="America/Los_Angeles", perfect_foresight=False, write_files=False)
    try:
        async with running_site(
            fleet, tmp_path, epoch=epoch, speed=SPEED, options=options, api=True, openadr3=settings
        ) as site:
            ven = site.ven
            # 1. registration
            await until(lambda: ven.registered and ven.polls >= 1)
            vens = list(state.objects["vens"].values())
            assert [v["venName"] for v in vens] == ["garage-ven"]
            names = sorted(r["resourceName"] for r in state.resources[vens[0]["id"]].values())
            assert names == sorted(s.id for s in fleet.all_stations())
            subs = list(state.objects["subscriptions"].values())
            assert len(subs) == 1 and subs[0]["programID"] == program
            assert subs[0]["objectOperations"][0]["callbackUrl"].endswith("/grid/openadr3/notify")
            assert ("POST", "/auth/token", 200) in state.requests

            # 2. event A by subscription, 16:00-16:45, 20 kW
            a = await bl.event(program, local(16), [20.0, 20.0, 20.0])
            await until(lambda: site.book.get(a) is not None, timeout=5)
            assert ven.arrivals[a] == "webhook"
            await until(lambda: any(d.object_id == a and d.status == 200 for d in state.deliveries), timeout=5)
            ev_a = site.book.get(a)
            assert ev_a.direction == "export" and [iv.target_kw for iv in ev_a.intervals] == [20.0] * 3
            assert ev_a.start == local(16) and ev_a.end == local(16, 45)

            # dispatch delivers it, and the VTN gets the report interval by interval, during the event
            await until(lambda: report_intervals(state, a), timeout=30)
            first_len = len(report_intervals(state, a))
            assert site.clock.now() < local(16, 45) and first_len < 9
            await until(lambda: len(report_intervals(state, a)) > first_len, timeout=10)
            report_id = state.reports_for(a)[0]["id"]
            assert state.requests.count(("PUT", f"/reports/{report_id}", 200)) >= 1, "updated, not re-created"
            first = report_intervals(state, a)
            assert [iv["id"] for iv in first] == list(range(len(first)))
            demand = [iv["payloads"][1]["values"][0] for iv in first]
            assert all(d < -5.0 for d in demand[1:]), f"the fleet exports (negative demand): {demand}"

            # 3. callbacks blocked: event B (16:45-17:15, 15 kW) only by polling
            for sub in state.objects["subscriptions"].values():
                sub["objectOperations"][0]["callbackUrl"] = "http://127.0.0.1:9/unreachable"
            polls = ven.polls
            b_obj = export_event(program, local(16, 45), [15.0, 15.0])
            b = (await bl.call("POST", "/events", b_obj, expect=201))["id"]
            await until(lambda: site.book.get(b) is not None, timeout=15)
            assert ven.polls > polls and ven.arrivals[b] == "poll"
            await until(lambda: any(d.object_id == b for d in state.deliveries), timeout=5)
            assert all(d.status is None and d.error for d in state.deliveries if d.object_id == b)

            # 4. the VTN goes down (at 16:10, or now if later) for a quarter of an hour, while A runs
            down_at = max(site.clock.now(), local(16, 10))
            assert down_at < local(16, 30), "the outage starts while event A is running"
            await site.clock.sleep_until(down_at)
            await vtn.stop()
            await site.clock.sleep_until(down_at + timedelta(minutes=15))
            assert ven.down_since is not None, "the VEN noticed"
            sent_before = len(report_intervals(state, a))
            await vtn.start()
            # a change made at the VTN when it is back: B's second interval 15 -> 10 kW
            changed = {**b_obj, "intervals": [*b_obj["intervals"][:1], {"id": 1, "payloads": [
                {"type": "EXPORT_CAPACITY_LIMIT", "values": [10.0]}]}]}  # fmt: skip
            await bl.call("PUT", f"/events/{b}", changed, expect=200)
            await until(lambda: ven.down_since is None and ven.outages, timeout=15)
            await until(lambda: [iv.target_kw for iv in site.book.get(b).intervals] == [15.0, 10.0], timeout=15)
            await until(lambda: len(report_intervals(state, a)) >= 9, timeout=20)
            assert len(report_intervals(state, a)) > sent_before, "the outage's intervals arrived afterwards"
            starts = [iv["intervalPeriod"]["start"] for iv in report_intervals(state, a)]
            assert len(set(starts)) == len(starts)

            # 5. a malformed revision of B is refused, naming the field; B stays planned as it was
            planned = site.book.get(b)
            bad = {**changed, "intervals": [{"id": 0, "payloads": [
                {"type": "EXPORT_CAPACITY_LIMIT", "values": ["lots"]}]}]}  # fmt: skip
            await bl.call("PUT", f"/events/{b}", bad, expect=200)
            await until(lambda: ven.rejections, timeout=15)
            refused = ven.rejections[-1]
            assert refused.event_id == b
            assert refused.field == "intervals[0].payloads[0].values[0]"
            assert "number" in refused.reason
            assert site.book.get(b) == planned
            assert site.controller.runs[b].event.intervals == planned.intervals

            # the B report goes on (dispatch carried on with the planned B)
            await until(lambda: len(report_intervals(state, b)) >= 1, timeout=20)

            # 6. a forecast request: the VEN answers with 24 hourly intervals of exportable kW
            req = {
                "programID": program,
                "eventName": "day-ahead flexibility",
                "intervalPeriod": {"start": local(17).isoformat(), "duration": "PT24H"},
                "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE_LEVEL_REQUEST", "values": [0]}]}],
                "reportDescriptors": [{"payloadType": "STORAGE_MAX_DISCHARGE_POWER", "historical": False}],
            }
            f = (await bl.call("POST", "/events", req, expect=201))["id"]
            await until(lambda: state.reports_for(f), timeout=15)
            fr = state.reports_for(f)[0]
            assert site.book.get(f) is None, "a forecast request is not a dispatch event"
            hours = fr["resources"][0]["intervals"]
            assert len(hours) == 24
            p50 = [h["payloads"][0]["values"][0] for h in hours]
            p10 = [h["payloads"][1]["values"][0] for h in hours]
            p90 = [h["payloads"][2]["values"][0] for h in hours]
            assert p50[0] > 0, "cars are plugged in: some export is possible now"
            assert all(lo <= m <= hi for lo, m, hi in zip(p10, p50, p90, strict=True))

            # 7. settlement and forecast over the operator API
            await until(lambda: a in site.controller.finished, timeout=30)
            token, _ = await issue_token(site.central.store, "test", "read")
            async with httpx.AsyncClient(
                base_url=site.service.api.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
            ) as api:
                resp = await api.get(f"/api/v1/grid/events/{a}/settlement", params={"tz": "America/Los_Angeles"})
                assert resp.status_code == 200, resp.text
                claim = resp.json()
                assert claim["format"] == "dsgs-option3-claim"
                assert claim["baseline"]["method"] == "pre_event", "no past days: 10of10 falls back"
                assert "10of10 needs 5 eligible days" in claim["baseline"]["notes"][0]
                (hour,) = claim["hours"]
                assert hour["hour_local"] == "2026-08-18 16:00"
                assert hour["target_kwh"] == pytest.approx(15.0)  # 20 kW for 45 min
                assert hour["delivered_export_kwh"] > 5.0
                assert hour["incremental_kwh"] == pytest.approx(hour["baseline_kwh"] - hour["actual_net_import_kwh"])
                csv_text = (await api.get(f"/api/v1/grid/events/{a}/settlement.csv")).text
                assert csv_text.splitlines()[0].startswith("event_id,hour_start,hour_local,target_kwh,baseline_kwh")
                bad = await api.get(f"/api/v1/grid/events/{a}/settlement", params={"baseline": "median"})
                assert bad.status_code == 422 and "baseline" in bad.text
                fc = (await api.get("/api/v1/grid/forecast", params={"hours": 6})).json()
                assert len(fc["hours"]) == 6 and fc["known_cars"] >= 1
                notify = "/grid/openadr3/notify"
                wrong = await api.post(notify, json={}, headers={"Authorization": "Bearer not-the-token"})
                assert wrong.status_code == 403
                good = {"Authorization": f"Bearer {ven.callback_token}"}
                malformed = await api.post(notify, json={"objectType": "EVENT", "object": {}}, headers=good)
                assert malformed.status_code == 400 and malformed.json()["detail"].startswith("operation:")
                bad_event = {"objectType": "EVENT", "operation": "POST", "object": {**b_obj, "id": "evt-x",
                             "intervalPeriod": {"start": "tomorrow", "duration": "PT15M"}}}  # fmt: skip
                refused = await api.post(notify, json=bad_event, headers=good)
                assert refused.status_code == 400, refused.text
                assert refused.json()["field"] == "object.intervalPeriod.start"
                assert site.book.get("evt-x") is None
                ven_state = (await api.get("/api/v1/grid/openadr3")).json()
                assert ven_state["registered"] and ven_state["outages"] >= 1
                assert ven_state["rejections"][-2]["field"] == "intervals[0].payloads[0].values[0]"
    finally:
        await vtn.stop()
