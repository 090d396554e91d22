"""``csms grid forecast`` / ``csms grid settle`` on a local database, and the stays the
forecast reads from stored charging needs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from csms.cli.main import app
from csms.grid.forecast_store import pick_days, stay_from

T = datetime(2026, 8, 18, 16, 0, tzinfo=UTC)


def test_stay_from_charging_needs_and_defaults() -> None:
    needs = {
        "soc": 85.0,
        "capacity_wh": 59000.0,
        "target_soc": 60.0,
        "min_soc": 25.0,
        "max_charge_w": 20000.0,
        "max_discharge_w": 15000.0,
        "departure_time": (T + timedelta(hours=5)).isoformat(),
    }
    s = stay_from(needs, T, None)
    assert (s.capacity_kwh, s.soc_arrival, s.soc_target, s.soc_floor) == (59.0, 85.0, 60.0, 25.0)
    assert (s.max_charge_kw, s.max_discharge_kw, s.departure) == (20.0, 15.0, T + timedelta(hours=5))
    live = stay_from(needs, T, None, soc_now=70.0)
    assert live.soc_arrival == 70.0
    bare = stay_from(None, T, None)  # no needs reported: a charge-only car of the default size
    assert bare.max_discharge_kw == 0.0 and bare.departure == T + timedelta(hours=8)


def test_pick_days_prefers_the_same_kind_of_day() -> None:
    days = {date(2026, 8, d): [] for d in range(1, 18)}  # Aug 1 (Sat) .. Aug 17 (Mon)
    picked = [d for d, _ in pick_days(days, date(2026, 8, 18), 10)]  # a Tuesday
    assert len(picked) == 10 and all(d.weekday() < 5 for d in picked) and picked[-1] == date(2026, 8, 17)
    weekend = [d for d, _ in pick_days(days, date(2026, 8, 22), 10)]  # a Saturday
    assert all(d.weekday() >= 5 for d in weekend) and len(weekend) == 6  # Aug 1-2, 8-9, 15-16


def test_cli_forecast_and_settle(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(
        app, ["grid", "forecast", "--data-dir", str(tmp_path), "--hours", "3", "--at", "2026-08-18T16:00:00Z", "--json"]
    )
    assert out.exit_code == 0, out.output
    body = json.loads(out.output[out.output.index("{") :])
    assert [h["start"][11:16] for h in body["hours"]] == ["16:00", "17:00", "18:00"]
    assert "no history" in body["notes"][0]
    bad = runner.invoke(app, ["grid", "forecast", "--data-dir", str(tmp_path), "--tz", "Mars/Olympus"])
    assert bad.exit_code == 2 and "--tz" in bad.output
    missing = runner.invoke(app, ["grid", "settle", "nope", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "no grid event with id 'nope'" in missing.output
    wrong = runner.invoke(app, ["grid", "settle", "x", "--data-dir", str(tmp_path), "--baseline", "median"])
    assert wrong.exit_code == 2 and "--baseline" in wrong.output and "10of10" in wrong.output
