"""The departure model in the controller's snapshot: learned from the sessions in the store
(real SQLite store through the CentralSystem), applied to the live cars (modelled departure,
promise at every moment, no "overdue" handling), and the settings that switch it (off by default)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from csms.central import CentralSystem
from csms.config import DispatchSettings
from csms.dispatch.departure import DepartureModel, SessionRecord
from csms.dispatch.fleet import EventTarget
from csms.dispatch.history import departure_model_from_store, stored_sessions, with_departure_model
from csms.dispatch.planner import plan
from csms.dispatch.snapshot import SnapshotOptions, build_snapshot
from csms.domain.station import BootState
from csms.smartcharging.needs import ChargingNeeds

pytestmark = pytest.mark.timeout(60)

LA = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 8, 19, 16, 0, tzinfo=LA).astimezone(UTC)  # a Wednesday, 16:00 local


def _ts(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _tx_event(kind: str, seq: int, at: datetime, tx: str, **extra: Any) -> dict[str, Any]:
    return {
        "eventType": kind,
        "timestamp": _ts(at),
        "triggerReason": {"Started": "CablePluggedIn", "Ended": "EVDeparted"}[kind],
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx},
        "evse": {"id": 1, "connectorId": 1},
        **extra,
    }


async def _store_history(central: CentralSystem, weeks: int = 6) -> int:
    """Weekday mornings of the last ``weeks`` weeks: 3 cars arriving at 08:00 staying 8, 9 and 12 h."""
    n = 0
    for d in range(1, 7 * weeks + 1):
        day = (NOW.astimezone(LA) - timedelta(days=d)).replace(hour=8, minute=0)
        if day.weekday() >= 5:
            continue
        for k, stay in enumerate((8.0, 9.0, 12.0)):
            tx = f"H-{d}-{k}"
            arr = day + timedelta(minutes=k)
            await central.store.apply_transaction_event("H", _tx_event("Started", 0, arr, tx))
            await central.store.apply_transaction_event("H", _tx_event("Ended", 1, arr + timedelta(hours=stay), tx))
            n += 1
    return n


def _live_car(central: CentralSystem, sid: str, *, started: datetime, announced: datetime, soc: float) -> None:
    st = central.state(sid)
    st.connected, st.boot, st.ocpp_version, st.model = True, BootState.ACCEPTED, "2.1", "FE-20"
    st.capabilities = {"SupportedOperationModes": "ChargingOnly,CentralSetpoint,Idle", "evse": {}}
    central.sessions[sid] = object()  # type: ignore[assignment]
    evse = st.evse(1)
    evse.transaction_id, evse.transaction_started_at = f"tx-{sid}", started
    evse.allowed_energy_transfer = ["DC_BPT"]
    evse.needs_at = started
    evse.charging_needs = ChargingNeeds(
        evse_id=1,
        requested_energy_transfer="DC_BPT",
        bidirectional=True,
        departure_time=announced,
        soc=soc,
        capacity_wh=60_000.0,
        target_soc=60.0,
        min_soc=20.0,
        max_charge_w=15_000.0,
        max_discharge_w=15_000.0,
        min_discharge_w=2_000.0,
    )


async def test_model_learned_from_the_stored_sessions(central: CentralSystem) -> None:
    n = await _store_history(central)
    assert n >= 50
    recent = await stored_sessions(central.store, NOW - timedelta(days=14))
    assert 0 < len(recent) < n  # only the window asked for
    model = await departure_model_from_store(central.store, "America/Los_Angeles", now=NOW, days=60)
    assert model is not None
    arrival = NOW.astimezone(LA).replace(hour=8, minute=0)
    fc = model.forecast(arrival, NOW)  # still here at 16:00, 8 h after plugging in
    assert arrival + timedelta(hours=8) <= fc.expected <= arrival + timedelta(hours=12)
    assert fc.latest == pytest.approx(arrival + timedelta(hours=12), abs=timedelta(minutes=5))
    assert fc.earliest == NOW  # the promise holds at every moment
    # too little history: no model (the snapshot keeps the drivers' word)
    assert await departure_model_from_store(central.store, "UTC", now=NOW, days=3) is None


async def test_controller_options_get_the_model_unless_switched_off(central: CentralSystem) -> None:
    await _store_history(central)
    central.settings.dispatch.site_timezone = "America/Los_Angeles"
    assert (await with_departure_model(SnapshotOptions(), central, NOW)).departure_model is None  # off by default
    central.settings.dispatch.departure_model = True
    opts = await with_departure_model(SnapshotOptions(), central, NOW)
    assert opts.departure_model is not None
    assert await with_departure_model(opts, central, NOW) is opts  # a model given by the caller is kept
    with pytest.raises(ValidationError, match="unknown time zone"):
        DispatchSettings(site_timezone="Mars/Olympus_Mons")


def _model() -> DepartureModel:
    """Cars arriving at 08:00 on weekdays stay 8, 9 or 12 hours."""
    out = []
    for d in range(60):
        day = datetime(2026, 5, 4, 8, 0, tzinfo=LA) + timedelta(days=d)
        if day.weekday() < 5:
            for stay in (8.0, 9.0, 12.0) * 3:
                out.append(SessionRecord(arrival=day, departure=day + timedelta(hours=stay)))
    return DepartureModel.fit(out, LA)


def test_snapshot_plans_modelled_departures_and_keeps_every_promise(tmp_path: Path) -> None:
    from tests.conftest import make_settings

    central = CentralSystem(make_settings(tmp_path))
    morning = NOW.astimezone(LA).replace(hour=8, minute=0)
    # announced 09:30 (long past: without a model the car is "overdue" and planned to leave in 30 min)
    _live_car(central, "PAST", started=morning, announced=morning + timedelta(hours=1, minutes=30), soc=90.0)
    # below its promise, announcing 22:00
    _live_car(central, "LOW", started=morning, announced=NOW + timedelta(hours=6), soc=40.0)
    plain = build_snapshot(central, now=NOW, options=SnapshotOptions(extrapolate_soc=False))
    past = next(r for r in plain.cars.values() if r.station_id == "PAST")
    assert past.car.departure == NOW + timedelta(minutes=30) and past.car.soc_floor == pytest.approx(0.6)

    opts = SnapshotOptions(extrapolate_soc=False, departure_model=_model())
    view = build_snapshot(central, now=NOW, options=opts)
    refs = {r.station_id: r for r in view.cars.values()}
    assert not view.uncontrolled
    past, low = refs["PAST"].car, refs["LOW"].car
    assert "departure: modelled" in refs["PAST"].assumptions
    # still here after 8 h: the 8 h stays are ruled out, planned until the late quantile (12 h)
    assert past.departure == pytest.approx(morning + timedelta(hours=12), abs=timedelta(minutes=10))
    assert past.earliest_departure == NOW and past.soc_floor == pytest.approx(0.2)
    assert past.departure > past.expected_departure > NOW
    # the driver's word (22:00) moves the middle, but only inside the model's range (the 12 h stays)
    assert low.expected_departure == low.departure < NOW + timedelta(hours=6)
    # planned: the car below its promise charges at full power from now; the other never dips below it
    ev = EventTarget.flat(NOW, NOW + timedelta(hours=3), 20.0)
    p = plan(view.snapshot, ev, step_s=300)
    assert p.power_kw[p.index(low.car_id), 0] == pytest.approx(low.max_charge_kw)
    assert p.soc[p.index(past.car_id)].min() >= 0.6 - 1e-6
    assert p.export_kw[0] > 0  # the car above its promise still exports what it holds above it


def test_demo_model_from_the_bundled_caltech_sessions() -> None:
    from datetime import date

    from csms.demo.departures import acn_departure_model

    day = date(2019, 7, 16)  # a Tuesday
    full, without = acn_departure_model(), acn_departure_model(exclude=day)
    arrival = datetime(2019, 7, 16, 8, 30, tzinfo=LA)
    fc = without.forecast(arrival, arrival + timedelta(hours=8))
    assert fc.cell == "wd/1/8" and fc.samples >= 20  # Tuesdays, 08:xx arrivals still here at 16:30
    assert arrival + timedelta(hours=8) < fc.expected < fc.latest < arrival + timedelta(hours=14)
    # the replayed day is left out
    assert without.forecast(arrival, arrival).samples < full.forecast(arrival, arrival).samples


def test_snapshot_max_soc_follows_what_the_station_can_command(tmp_path: Path) -> None:
    from tests.conftest import make_settings

    central = CentralSystem(make_settings(tmp_path))
    morning = NOW.astimezone(LA).replace(hour=8, minute=0)
    _live_car(central, "V21", started=morning, announced=NOW + timedelta(hours=3), soc=50.0)
    _live_car(central, "V201", started=morning, announced=NOW + timedelta(hours=3), soc=50.0)
    central.state("V201").ocpp_version = "2.0.1"
    view = build_snapshot(central, now=NOW, options=SnapshotOptions(extrapolate_soc=False))
    refs = {r.station_id: r.car for r in view.cars.values()}
    assert refs["V21"].max_soc == 1.0  # a positive CentralSetpoint takes it above its target
    assert refs["V201"].max_soc == pytest.approx(0.6)  # under a charge limit it stops at its target
    p = plan(view.snapshot, EventTarget.flat(NOW + timedelta(hours=1), NOW + timedelta(hours=2), 10.0), step_s=300)
    assert p.soc[p.index(refs["V201"].car_id)].max() <= 0.6 + 1e-6
