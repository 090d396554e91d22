"""Pure settlement and flexibility-forecast logic, with plain function calls."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from csms.grid.forecast import Stay, car_export, forecast, mape
from csms.grid.settlement import (
    BaselineOptions,
    SettlementError,
    baseline,
    bin_register,
    event_hours,
    settle,
    settlement_csv,
    ten_of_ten,
)

LA = ZoneInfo("America/Los_Angeles")
EVENT_DAY = date(2026, 8, 18)  # a Tuesday


def hour(d: date, h: int) -> datetime:
    return datetime(d.year, d.month, d.day, h, tzinfo=LA).astimezone(UTC)


def history(days: int, load: float = 50.0, *, bump: dict[date, float] | None = None) -> dict[datetime, float]:
    """``days`` days before the event day, 24 h each: ``load`` kWh per hour (+ a per-day bump)."""
    out = {}
    for k in range(1, days + 1):
        d = EVENT_DAY - timedelta(days=k)
        for h in range(24):
            out[hour(d, h)] = load + (bump or {}).get(d, 0.0)
    return out


# ---------------------------------------------------------------------------------- baseline
def test_ten_of_ten_uses_the_last_ten_eligible_weekdays() -> None:
    hist = history(30)
    event_days = {EVENT_DAY - timedelta(days=7)}  # last Tuesday had an event: excluded
    # make the days that must NOT count stand out: weekends and the event day at 500
    for t in list(hist):
        d = t.astimezone(LA).date()
        if d.weekday() >= 5 or d in event_days:
            hist[t] = 500.0
    hours = [hour(EVENT_DAY, 16), hour(EVENT_DAY, 17)]
    b = ten_of_ten(hours, hist, tz=LA, event_days=event_days, options=BaselineOptions())
    assert b.method == "10of10"
    assert len(b.days_used) == 10
    assert all(d.weekday() < 5 and d not in event_days for d in b.days_used)
    assert max(b.days_used) == EVENT_DAY - timedelta(days=1)
    assert b.kwh == {hours[0]: pytest.approx(50.0), hours[1]: pytest.approx(50.0)}


def test_ten_of_ten_day_of_adjustment_is_capped() -> None:
    hist = history(20)
    hours = [hour(EVENT_DAY, 16)]
    day_of = {hour(EVENT_DAY, h): 100.0 for h in range(10, 16)}  # twice the usual load before the event
    opts = BaselineOptions(adjust=True, adjust_cap=0.2)
    b = ten_of_ten(hours, hist, tz=LA, event_days=set(), options=opts, day_of=day_of)
    assert b.adjustment == pytest.approx(1.2)
    assert b.kwh[hours[0]] == pytest.approx(60.0)


def test_too_little_history_falls_back_and_says_why() -> None:
    hours = [hour(EVENT_DAY, 16)]
    day_of = {hour(EVENT_DAY, 14): 30.0, hour(EVENT_DAY, 15): 40.0}
    b = baseline(hours, history=history(3), day_of=day_of, tz=LA, event_days=set(), options=BaselineOptions())
    assert b.method == "pre_event"
    assert b.kwh[hours[0]] == pytest.approx(35.0)
    assert "10of10 needs 5 eligible days" in b.notes[0] and "found 1" in b.notes[0]  # Mon; Sat and Sun do not count
    with pytest.raises(SettlementError) as exc:
        ten_of_ten(hours, history(3), tz=LA, event_days=set(), options=BaselineOptions())
    assert exc.value.field == "baseline"


def test_baseline_options_name_the_bad_field() -> None:
    with pytest.raises(SettlementError) as exc:
        BaselineOptions(method="median")  # type: ignore[arg-type]
    assert exc.value.field == "method"
    with pytest.raises(SettlementError) as exc:
        BaselineOptions(min_days=20)
    assert exc.value.field == "min_days"


def test_settlement_rows_incremental_and_csv() -> None:
    hours = event_hours(hour(EVENT_DAY, 16), hour(EVENT_DAY, 18))
    assert hours == [hour(EVENT_DAY, 16), hour(EVENT_DAY, 17)]
    day_of = {hours[0]: -100.0, hours[1]: 20.0}  # exported 100 kWh net, then drew 20
    b = baseline(hours, history=history(12), day_of=day_of, tz=LA, event_days=set(), options=BaselineOptions())
    report = settle(
        event={"id": "ev", "program": "DSGS-3", "committed_kw": 150.0},
        day_of=day_of,
        base=b,
        target_kwh={hours[0]: 150.0, hours[1]: 150.0},
        tz=LA,
    )
    first, second = report["hours"]
    assert first["hour_local"] == "2026-08-18 16:00"
    assert first["incremental_kwh"] == pytest.approx(150.0)  # 50 baseline - (-100)
    assert first["delivered_export_kwh"] == pytest.approx(100.0)
    assert second["incremental_kwh"] == pytest.approx(30.0) and second["delivered_export_kwh"] == 0.0
    s = report["summary"]
    assert s["incremental_kwh"] == pytest.approx(180.0)
    assert s["performance"] == pytest.approx(180.0 / 300.0)
    assert s["performance_vs_committed"] == pytest.approx(90.0 / 150.0)
    lines = settlement_csv(report).splitlines()
    assert len(lines) == 3 and lines[1].startswith("ev,2026-08-18T23:00:00Z,2026-08-18 16:00,150.0,50.0,-100.0")


def test_bin_register_spreads_increments_over_hours() -> None:
    t0 = datetime(2026, 8, 18, 22, 30, tzinfo=UTC)
    series = [(t0, 1000.0), (t0 + timedelta(hours=1), 3000.0), (t0 + timedelta(hours=2), 500.0)]  # reset at the end
    edges = [datetime(2026, 8, 18, 22, tzinfo=UTC) + timedelta(hours=k) for k in range(4)]
    assert bin_register(series, edges) == pytest.approx([1.0, 1.0, 0.0])


# ---------------------------------------------------------------------------------- forecast
NOW = datetime(2026, 8, 18, 23, 0, tzinfo=UTC)  # 16:00 in California


def stay(**kw: object) -> Stay:
    base = {
        "arrival": NOW - timedelta(hours=6),
        "departure": NOW + timedelta(hours=4),
        "capacity_kwh": 60.0,
        "soc_arrival": 90.0,
        "soc_target": 60.0,
        "max_discharge_kw": 15.0,
        "max_charge_kw": 15.0,
        "soc_floor": 20.0,
    }
    base.update(kw)
    return Stay(**base)  # type: ignore[arg-type]


def test_a_full_car_exports_at_its_limit() -> None:
    kw, energy = car_export(stay(), NOW, NOW + timedelta(hours=1))
    assert kw == pytest.approx(15.0)
    assert energy > 15.0


def test_export_never_breaks_the_promise() -> None:
    # 36 kWh in the battery (60 %), promise 60 %, leaving at the end of the hour: no export can be
    # held for the hour; at most a burst at 15 kW for t h, recharging (13.5 kWh/h into the battery)
    # for the rest of the hour: 15 t / 0.9 = 13.5 (1 - t) -> t = 13.5 / (15 / 0.9 + 13.5)
    s = stay(soc_arrival=60.0, arrival=NOW, departure=NOW + timedelta(hours=1))
    kw, energy = car_export(s, NOW, NOW + timedelta(hours=1))
    assert kw == 0.0
    assert energy == pytest.approx(15.0 * 13.5 / (15 / 0.9 + 13.5))
    # 3 h left after the hour, 15 kW charging: it can give back what it can recharge (x0.9 twice)
    s = stay(soc_arrival=60.0, arrival=NOW, departure=NOW + timedelta(hours=2))
    kw, _ = car_export(s, NOW, NOW + timedelta(hours=1))
    assert kw == pytest.approx(15.0 * 0.9 * 0.9)


def test_export_stops_at_the_floor_and_counts_partial_presence() -> None:
    s = stay(soc_arrival=25.0, soc_target=0.0, arrival=NOW, departure=NOW + timedelta(hours=30), max_charge_kw=0.1)
    kw, _ = car_export(s, NOW, NOW + timedelta(hours=1))
    assert kw == pytest.approx(60.0 * 0.05 * 0.9, rel=0.01)  # 3 kWh above the floor, 0.9 at the grid
    leaving = stay(departure=NOW + timedelta(minutes=30))
    kw, _ = car_export(leaving, NOW, NOW + timedelta(hours=1))
    assert kw == pytest.approx(7.5)  # 15 kW for half the hour


def test_fleet_forecast_band_from_history_scenarios() -> None:
    known = [stay(arrival=NOW, soc_arrival=90.0)]
    days = []
    for k in range(1, 11):  # 10 past days: k cars arriving at 17:00 local, staying 3 h
        d = EVENT_DAY - timedelta(days=k)
        arr = datetime(d.year, d.month, d.day, 17, tzinfo=LA).astimezone(UTC)
        days.append((d, [stay(arrival=arr, departure=arr + timedelta(hours=3)) for _ in range(k)]))
    fc = forecast(NOW, known=known, history=days, hours=6, tz="America/Los_Angeles")
    assert fc.scenarios == 10 and fc.known_cars == 1
    h16, h17 = fc.hours[0], fc.hours[1]
    assert h16.kw_known == pytest.approx(15.0) and h16.kw_p10 == h16.kw_p90 == pytest.approx(15.0)
    assert h17.kw_p10 < h17.kw_p50 < h17.kw_p90
    assert h17.kw_p50 == pytest.approx(15.0 + 15.0 * 5.5)  # median of 1..10 cars
    rows = fc.rows()
    assert rows[0]["start"] == "2026-08-18T23:00:00Z" and rows[1]["sustain_h"] > 0
    assert fc.csv().splitlines()[0] == "start,kw_p10,kw_p50,kw_p90,kw_mean,kw_known,energy_kwh,sustain_h"


def test_forecast_without_history_says_so() -> None:
    fc = forecast(NOW, known=[], hours=2)
    assert [h.kw_p50 for h in fc.hours] == [0.0, 0.0]
    assert "no history" in fc.notes[0]


def test_mape_ignores_zero_actuals() -> None:
    assert mape([10, 5, 3], [8, 0, 0]) == pytest.approx(25.0)
    assert mape([1.0], [0.0]) is None
