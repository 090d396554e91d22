"""Grid-event dispatch end to end: the CSMS (SQLite), the DispatchController and Fermata-style
simulated stations (OCPP 2.1 and 2.0.1) over real sockets on one accelerated clock.

* a 16:00-21:00 export event over a fleet replayed from the Caltech ACN sessions (cars leave
  during the event): delivery on the feasible part, +-10 % intervals, drivers' promises, and the
  report's metered delivery checked against the simulators' own energy registers;
* 10 % of the stations dropping off the network mid-event are compensated within two control
  intervals;
* a revision changes the schedules; a cancellation stops discharge within one control interval;
* a test event goes through the whole path and moves no power.

Targets are chosen as a fraction of what the fleet can do (``csms.demo.site`` documents the
fleets); the feasible part is what the dispatch planner said it could achieve.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from csms.demo.site import Site, caltech_fleet, evening_fleet, running_site, v2g_program_socs
from csms.dispatch.controller import ControllerOptions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LA = ZoneInfo("America/Los_Angeles")
DAY = datetime(2026, 8, 18, tzinfo=LA)


def local(h: int, m: int = 0) -> datetime:
    return DAY.replace(hour=h, minute=m)


def event(event_id: str, start: datetime, hours_kw: list[tuple[float, float]], **extra: Any) -> dict[str, Any]:
    """A canonical event of consecutive intervals (hours, kW)."""
    intervals, t = [], start
    for hours, kw in hours_kw:
        end = t + timedelta(hours=hours)
        intervals.append({"start": t.isoformat(), "end": end.isoformat(), "target_kw": kw})
        t = end
    return {"id": event_id, "program": "DSGS-3", "intervals": intervals, **extra}


class Truth:
    """The simulators' own energy registers, sampled on the simulated clock (ground truth)."""

    def __init__(self, site: Site, every_s: float = 10.0) -> None:
        self.site, self.every_s = site, every_s
        self.t: list[float] = []
        self.net_wh: list[float] = []
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            tot = self.site.fleet.totals()
            self.t.append(self.site.clock.now().timestamp())
            self.net_wh.append(tot["export_wh"] - tot["import_wh"])
            await self.site.clock.sleep(self.every_s)

    def mean_kw(self, a: datetime, b: datetime) -> float:
        t, e = np.array(self.t), np.array(self.net_wh)
        wh = float(np.interp(b.timestamp(), t, e) - np.interp(a.timestamp(), t, e))
        return wh / 1000.0 / ((b - a).total_seconds() / 3600.0)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def until(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := predicate()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return value


SHOWN = ("delivery_ratio", "delivery_ratio_feasible", "intervals_within_10pct", "intervals_within_10pct_feasible",
         "nae", "perfect_foresight_nae", "regret")  # fmt: skip


def options(**kw: Any) -> ControllerOptions:
    return ControllerOptions(report_tz="America/Los_Angeles", **kw)


# ------------------------------------------------------------------------------------------ Caltech
async def test_caltech_evening_export(tmp_path: Path) -> None:
    """16:00-21:00 over the Caltech ACN 2019-07-16 sessions (30 single-EVSE stations, a third on
    OCPP 2.0.1), V2G-programme SoCs. The fleet shrinks from 24 cars to 3; the hourly targets follow
    that availability tail at about 70 % of what a perfect-foresight dispatcher could hold."""
    targets = [(1, 80.0), (1, 50.0), (1, 10.0), (1, 5.0), (1, 5.0)]
    async with running_site(
        caltech_fleet(),
        tmp_path,
        epoch=local(15, 40),
        speed=200,
        options=options(),
        prepare=v2g_program_socs,
    ) as site:
        truth = Truth(site)
        await site.clock.sleep_until(local(15, 50))
        await site.book.submit(event("caltech-2019-07-16", local(16), targets))
        await until(lambda: "caltech-2019-07-16" in site.controller.finished, timeout=200)
        await truth.stop()
        report = site.controller.finished["caltech-2019-07-16"]
        stored = await site.central.store.get_event_report("caltech-2019-07-16")
        departures = [
            (st.id, h, None)
            for st in site.fleet
            for e in st.evses.values()
            for h in e.history
            if h["event"] == "departure"
        ]

    s = report["summary"]
    print("caltech:", {k: s.get(k) for k in SHOWN}, report["commands"]["latency"])
    assert s["intervals_complete"] == 60
    assert s["delivery_ratio_feasible"] >= 0.95, s
    assert s["intervals_within_10pct_feasible"] >= 0.90, s
    assert s["intervals_within_10pct"] >= 0.90, s  # against the target itself
    assert s["nae"] < 0.1 and s["perfect_foresight_nae"] is not None
    g = report["driver_guarantees"]
    assert g["departures"] >= 20  # cars leave during the event
    assert g["violations"] == [] and g["floor_violations"] == []
    assert report["commands"]["by_outcome"].get("accepted", 0) >= 24
    assert max(i["cars_connected"] for i in report["intervals"]) >= 20
    assert min(i["cars_connected"] for i in report["intervals"]) <= 5
    # what the CSMS metered is what the simulated chargers did (registers are exact)
    assert truth.mean_kw(local(16), local(21)) == pytest.approx(s["mean_delivered_kw"], rel=0.01)
    # the report's departure SoCs are the simulated cars' own
    sim_soc = {(sid, round(h["t"])): h["soc"] for sid, h, _ in departures}
    for car in report["cars"]:
        if car["departed_at"] is None:
            continue
        left = datetime.fromisoformat(car["departed_at"]).timestamp()
        near = [soc for (sid, t), soc in sim_soc.items() if sid == car["station_id"] and abs(t - left) < 600]
        assert near and car["soc_final"] == pytest.approx(near[0], abs=0.2), car["car_id"]
    # stored, with the plot and the CSV
    assert stored is not None and stored.report["status"] == "final"
    png = await asyncio.to_thread(Path(report["plot_path"]).read_bytes)
    csv_text = await asyncio.to_thread(Path(report["csv_path"]).read_text)
    assert png[:4] == b"\x89PNG" and csv_text.count("\n") == 61


# ------------------------------------------------------------------------------------------ drop-outs
async def test_dropouts_are_compensated_within_two_intervals(tmp_path: Path) -> None:
    """20 stations export 60 kW; at 16:20 two stations that are discharging lose their network
    for good. Their profiles lapse after ``max_offline_duration_s`` (60 s) on the stations; the CSMS
    re-plans at once and the rest of the fleet carries the target from the second interval on."""
    fleet = evening_fleet(20, epoch=local(15, 40), seed=3, event_start=local(16), tx_interval_s=60)
    for st in fleet.stations:
        st.offline_discharge_timeout_s = 60.0  # 2.0.1: stop discharging after a minute offline
    async with running_site(
        fleet, tmp_path, epoch=local(15, 40), speed=100, options=options(), dispatch={"max_offline_duration_s": 60}
    ) as site:
        truth = Truth(site, every_s=5.0)
        await site.clock.sleep_until(local(15, 50))
        await site.book.submit(event("drop", local(16), [(0.75, 60.0)]))
        await site.clock.sleep_until(local(16, 20))
        ctl = site.controller
        now = site.clock.now()
        discharging = sorted(
            (c.power_at(now) or 0.0, c.station_id) for c in ctl.commanded.values() if (c.power_at(now) or 0) < 0
        )
        dropped = [sid for _, sid in discharging[:2]]
        assert len(dropped) == 2
        t_drop = site.clock.now()
        for sid in dropped:
            site.fleet[sid].disconnect(None)
        await until(lambda: ctl.runs["drop"].replan_reasons.get("station offline", 0) >= 1, timeout=10)
        assert not any(ref.station_id in dropped for ref in ctl.view.cars.values())
        await until(lambda: "drop" in ctl.finished, timeout=60)
        await truth.stop()
        report = ctl.finished["drop"]

    interval_s = 60
    settle = t_drop + timedelta(seconds=2 * interval_s)
    after_kw = [round(truth.mean_kw(a, a + timedelta(minutes=5)), 1) for a in (settle, settle + timedelta(minutes=5))]
    print("drop-out:", {k: report["summary"].get(k) for k in SHOWN}, "truth after drop:", after_kw)
    # the whole fleet, dropped stations included (what the site meter sees), from two intervals on
    for a in (settle, settle + timedelta(minutes=5), settle + timedelta(minutes=10)):
        assert truth.mean_kw(a, a + timedelta(minutes=5)) == pytest.approx(60.0, rel=0.10), a
    # the CSMS's own report: every 5-minute interval that starts after the drop is within 10 %
    after = [i for i in report["intervals"] if datetime.fromisoformat(i["start"]) >= settle]
    assert after and all(i["within_10pct"] for i in after), after
    assert report["summary"]["intervals_within_10pct"] >= 0.85


# ------------------------------------------------------------------------------------------ revision, cancel
class Recorder:
    """Stands in for the MQTT bridge: what the controller publishes."""

    def __init__(self) -> None:
        self.status: list[tuple[str, dict[str, Any]]] = []
        self.delivery: list[tuple[str, dict[str, Any]]] = []

    async def publish_status(self, event_id: str, payload: dict[str, Any]) -> None:
        self.status.append((event_id, payload))

    async def publish_delivery(self, event_id: str, payload: dict[str, Any]) -> None:
        self.delivery.append((event_id, payload))


async def test_revision_changes_schedules_and_cancel_stops_discharge(tmp_path: Path) -> None:
    fleet = evening_fleet(10, epoch=local(15, 40), seed=5, event_start=local(16), tx_interval_s=60)
    pub = Recorder()
    async with running_site(fleet, tmp_path, epoch=local(15, 40), speed=100, options=options(), publisher=pub) as site:
        ctl = site.controller
        truth = Truth(site, every_s=5.0)
        await site.clock.sleep_until(local(15, 50))
        await site.book.submit(event("rc", local(16), [(1, 40.0)]))
        await site.clock.sleep_until(local(16, 10))
        before = {cid: c for cid, c in ctl.commanded.items()}
        sent = ctl.commands_sent
        await site.book.submit(event("rc", local(16), [(1, 20.0)], revision=1))
        await until(lambda: ctl.runs["rc"].replan_reasons.get("revision"), timeout=10)
        assert ctl.commands_sent > sent
        at = local(16, 20)
        assert sum(-(c.power_at(at) or 0) for c in before.values()) == pytest.approx(40_000, rel=0.02)
        assert sum(-(c.power_at(at) or 0) for c in ctl.commanded.values()) == pytest.approx(20_000, rel=0.02)
        changed = [cid for cid, c in ctl.commanded.items() if not c.same_schedule(before.get(cid), from_=at)]
        assert changed
        await site.clock.sleep_until(local(16, 25))
        assert truth.mean_kw(local(16, 15), local(16, 25)) == pytest.approx(20.0, rel=0.10)

        assert any(e.power_w < -1000 for st in site.fleet for e in st.evses.values())
        t_cancel = site.clock.now()
        await site.book.cancel("rc", "grid operator cancelled")

        def nothing_discharges() -> bool:
            return all(e.power_w >= 0 for st in site.fleet for e in st.evses.values())

        await until(nothing_discharges, timeout=10)
        stopped = site.clock.now()
        assert (stopped - t_cancel).total_seconds() <= 60, stopped - t_cancel  # within one control interval
        await until(lambda: "rc" in ctl.finished, timeout=30)
        await truth.stop()
        report = ctl.finished["rc"]
        assert not ctl.claimed and not ctl.commanded
        assert not any(
            site.central.charging.allocator.is_dispatch_owned(p.profile.id)
            for profiles in site.central.charging.installed.values()
            for p in profiles
        )
    assert report["cancelled_at"] is not None and report["revisions"][0]["revision"] == 1
    # status every control interval, delivery every 5 minutes, a final status with the summary
    assert len(pub.status) >= 20 and {p["revision"] for _, p in pub.status if "revision" in p} == {0, 1}
    assert pub.status[-1][1]["state"] == "final" and "summary" in pub.status[-1][1]
    assert len(pub.delivery) >= 4 and all(p["target_kw"] in (40.0, 20.0) for _, p in pub.delivery)
    assert datetime.fromisoformat(report["window"]["end"]) <= t_cancel.astimezone(UTC) + timedelta(seconds=5)


# ------------------------------------------------------------------------------------------ test event
async def test_test_event_moves_no_power(tmp_path: Path) -> None:
    fleet = evening_fleet(6, epoch=local(15, 50), seed=9, event_start=local(16), tx_interval_s=60)
    async with running_site(fleet, tmp_path, epoch=local(15, 50), speed=60, options=options(), record=True) as site:
        ctl = site.controller
        await site.clock.sleep_until(local(15, 55))
        await site.book.submit(event("test-1", local(16), [(0.25, 30.0)], is_test=True))
        await until(lambda: ctl.runs["test-1"].dry_run is not None, timeout=10)
        await site.clock.sleep_until(local(16, 5))
        dry = ctl.runs["test-1"].dry_run
        received = [a for st in site.fleet for a, _ in st.received if a == "SetChargingProfile"]
        discharging = [e for st in site.fleet for e in st.evses.values() if e.power_w < 0]
        assert dry is not None and dry["would_send"] >= 4 and dry["by_outcome"].get("validated", 0) >= 4
        assert received == [] and discharging == [] and not ctl.claimed
        report = ctl.report("test-1")
        assert report is not None and report["is_test"] and report["test_run"]["commands"]


# ------------------------------------------------------------------------------------------ 1 kW per car
async def test_caltech_one_kw_per_car_against_perfect_foresight(tmp_path: Path) -> None:
    """Issue 18's moderate target in the closed loop: the Caltech 2019-07-16 replay with
    V2G-programme SoCs, a flat 16:00-21:00 export event of 1 kW per car connected at 16:00 (24 kW).
    The fleet shrinks from 24 cars to 3 and overnight cars arrive that must charge, so the target
    cannot be held to the end (perfect foresight on the same cars: NAE 0.16-0.22). The closed loop
    must deliver most of it, stay near perfect foresight and leave (almost) no driver below the
    promise. Measured 2026-12-07 over ten runs on a loaded machine: delivery 0.65-0.79 of the
    target, regret +0.05 to +0.24."""
    counted: dict[str, int] = {}

    def prepare(fleet: Any) -> None:
        v2g_program_socs(fleet)
        t16 = local(16).timestamp()
        counted["cars"] = sum(
            1 for st in fleet for e in st.evses.values() for p in e.plans if p.plug_in_t <= t16 < p.departure_t
        )

    async with running_site(
        caltech_fleet(), tmp_path, epoch=local(15, 40), speed=300, options=options(), prepare=prepare
    ) as site:
        target = 1.0 * counted["cars"]
        await site.clock.sleep_until(local(15, 45))
        await site.book.submit(event("caltech-1kw", local(16), [(5, target)]))
        await until(lambda: "caltech-1kw" in site.controller.finished, timeout=200)
        report = site.controller.finished["caltech-1kw"]
        plug_ins = [
            (st.id, h) for st in site.fleet for e in st.evses.values() for h in e.history if h["event"] == "plug_in"
        ]

    s, g = report["summary"], report["driver_guarantees"]
    print("caltech 1 kW/car:", counted, {k: s.get(k) for k in SHOWN})
    assert counted["cars"] >= 20 and s["intervals_complete"] == 60
    assert g["departures"] >= 15
    # planned with the drivers' estimates: over ten runs on a loaded machine one driver left below
    # the promise three times, never more; no discharge below a floor
    short = g["violations"] + g["early_departures_below_target"]
    print("below target:", short)
    assert len(short) <= 2 and g["floor_violations"] == []
    # 0.65-0.79 over ten runs on a loaded machine; planning with the departure model gave 0.13 (README)
    assert s["delivery_ratio"] >= 0.6, s
    # the perfect-foresight yardstick starts every car at its real SoC (not the snapshot's default
    # for a car whose charging needs had not arrived yet)
    arrived = [c for c in report["cars"] if datetime.fromisoformat(c["first_seen"]) > local(16)]
    assert arrived
    for car in arrived:
        seen = datetime.fromisoformat(car["first_seen"]).timestamp()
        sim = max((h["t"], h["soc"]) for sid, h in plug_ins if sid == car["station_id"] and h["t"] <= seen + 5)
        assert car["soc_first"] == pytest.approx(sim[1], abs=3.0), (car["car_id"], sim)
    assert s["perfect_foresight_nae"] is not None and s["perfect_foresight_nae"] < 0.3, s  # 0.16-0.22
    assert s["regret"] <= 0.3, s  # +0.06 to +0.24 measured
