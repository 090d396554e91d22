"""Settlement from stored meter values (SQLite): hourly energy from the registers, the 10-of-10
baseline over stored past days, and the CSV / JSON files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.grid.meterdata import hourly_net_import, settle_event
from csms.grid.model import validate_event
from csms.grid.settlement import BaselineOptions
from csms.store.repository import Store

EVENT_START = datetime(2026, 8, 18, 23, 0, tzinfo=UTC)  # Tuesday 16:00 in California


def mv(at: datetime, imp_wh: float, exp_wh: float, context: str = "Sample.Periodic") -> dict[str, Any]:
    return {
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "sampledValue": [
            {"value": imp_wh, "measurand": "Energy.Active.Import.Register", "context": context},
            {"value": exp_wh, "measurand": "Energy.Active.Export.Register", "context": context},
        ],
    }


def read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = await Store.open("sqlite+aiosqlite:///" + str(tmp_path / "m.db"))
    try:
        yield s
    finally:
        await s.close()


async def test_a_session_repeated_outside_its_transaction_counts_once(store: Store) -> None:
    t = EVENT_START
    # a car charges 6 kWh in 30 min inside a transaction; the station goes on reporting the
    # register (clock-aligned, no transaction) before and after, then a new session starts at 0
    store.add_meter_values("S1", 1, None, [mv(t - timedelta(minutes=30), 0, 0, "Sample.Clock")])
    store.add_meter_values("S1", 1, "tx1", [mv(t, 0, 0), mv(t + timedelta(minutes=30), 6000, 0)])
    store.add_meter_values("S1", 1, None, [mv(t + timedelta(minutes=45), 6000, 0, "Sample.Clock")])
    new = [mv(t + timedelta(minutes=50), 0, 0), mv(t + timedelta(minutes=60), 0, 1000)]
    store.add_meter_values("S1", 1, "tx2", new)
    await store.flush()
    hours = await hourly_net_import(store, t, t + timedelta(hours=1))
    assert hours == {t: pytest.approx(6.0 - 1.0)}


async def test_ten_of_ten_settlement_from_stored_days(store: Store, tmp_path: Path) -> None:
    # 16 past days (12 weekdays): every day the site draws 20 kW (one EVSE) from 14:00 to 18:00 local
    day0 = EVENT_START - timedelta(hours=2)
    for k in range(1, 17):
        start = day0 - timedelta(days=k)
        samples = [mv(start + timedelta(minutes=15 * j), 20_000 * j / 4, 0) for j in range(17)]
        store.add_meter_values("S1", 1, f"d{k}", samples)
    # the event day: the same 20 kW draw until 16:00, then 30 kW export for an hour
    samples = [mv(day0 + timedelta(minutes=15 * j), 20_000 * j / 4, 0) for j in range(9)]
    samples += [mv(EVENT_START + timedelta(minutes=15 * j), 40_000, 30_000 * j / 4) for j in range(1, 5)]
    store.add_meter_values("S1", 1, "event", samples)
    await store.flush()
    event = validate_event(
        {
            "id": "ev-1",
            "program": "DSGS-3",
            "committed_kw": 40,
            "intervals": [{"start": "2026-08-18T23:00:00Z", "end": "2026-08-19T00:00:00Z", "target_kw": 40}],
        }
    )
    report = await settle_event(store, event, tz="America/Los_Angeles", event_days=set(), out_dir=tmp_path / "r")
    assert report["baseline"]["method"] == "10of10"
    assert len(report["baseline"]["days_used"]) == 10  # the 10 latest weekdays: weekends are skipped
    (row,) = report["hours"]
    assert row["baseline_kwh"] == pytest.approx(20.0)
    assert row["actual_net_import_kwh"] == pytest.approx(-30.0)
    assert row["incremental_kwh"] == pytest.approx(50.0)
    assert report["summary"]["performance"] == pytest.approx(50.0 / 40.0)
    saved = json.loads(read(report["json_path"]))
    assert saved["hours"] == report["hours"]
    assert read(report["csv_path"]).splitlines()[1].startswith("ev-1,2026-08-18T23:00:00Z")
    zero = await settle_event(store, event, options=BaselineOptions(method="zero"), tz="America/Los_Angeles")
    assert zero["hours"][0]["incremental_kwh"] == pytest.approx(30.0)


def tx_event(kind: str, seq: int, at: datetime, tx: str) -> dict[str, Any]:
    return {
        "eventType": kind,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "triggerReason": "CablePluggedIn" if kind == "Started" else "EVDeparted",
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx},
        "evse": {"id": 1, "connectorId": 1},
    }


NEEDS = {
    "soc": 90.0,
    "capacity_wh": 60000.0,
    "target_soc": 50.0,
    "min_soc": 20.0,
    "max_charge_w": 15000.0,
    "max_discharge_w": 15000.0,
}


async def test_forecast_from_stored_sessions(store: Store) -> None:
    """Ten past weekdays with one car 08:00-18:00 local, and one car plugged in at 15:00 today
    that has announced 20:00: forecast as of 16:00."""
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from csms.grid.forecast_store import store_forecast

    la = ZoneInfo("America/Los_Angeles")
    today = datetime(2026, 8, 18, tzinfo=la)  # Tuesday
    k = 0
    for back in range(1, 15):
        day = today - timedelta(days=back)
        if day.weekday() >= 5:
            continue
        k += 1
        arr, dep = day.replace(hour=8).astimezone(UTC), day.replace(hour=18).astimezone(UTC)
        await store.apply_transaction_event(f"S{k}", tx_event("Started", 0, arr, f"T{k}"))
        await store.set_transaction_fields(f"S{k}", f"T{k}", charging_needs=NEEDS)
        await store.apply_transaction_event(f"S{k}", tx_event("Ended", 1, dep, f"T{k}"))
    arr = today.replace(hour=15).astimezone(UTC)
    await store.apply_transaction_event("NOW", tx_event("Started", 0, arr, "TNOW"))
    departure = today.replace(hour=20).astimezone(UTC).isoformat()
    await store.set_transaction_fields("NOW", "TNOW", charging_needs={**NEEDS, "departure_time": departure})
    await store.apply_transaction_event("NOW", tx_event("Ended", 1, today.replace(hour=19).astimezone(UTC), "TNOW"))

    now = today.replace(hour=16).astimezone(UTC)
    fc = await store_forecast(SimpleNamespace(store=store, states={}), now, hours=5, tz="America/Los_Angeles")
    assert fc.scenarios == 10 and fc.known_cars == 1, "as of 16:00 the car that left at 19:00 was plugged in"
    by_hour = {h.start.astimezone(la).hour: h for h in fc.hours}
    # the history's cars arrived at 08:00: no arrivals after 16:00, so only the known car counts,
    # until its announced (not its actual) departure at 20:00
    assert by_hour[16].kw_p50 == pytest.approx(15.0) and by_hour[16].kw_p10 == by_hour[16].kw_p90
    assert by_hour[19].kw_p50 > 0 and by_hour[20].kw_p50 == 0.0
