"""Delivery reports from synthetic meter data: interval energies from registers, delivery ratio,
+-10 % share, NAE, feasible part, driver-guarantee classification, CSV and PNG outputs."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from csms.dispatch.ledger import MeterLedger
from csms.dispatch.records import CarRecord, EventRun, TickSample
from csms.dispatch.report import build_report, perfect_foresight
from csms.dispatch.report_files import report_csv, write_plot
from csms.grid.model import GridEvent

T0 = datetime(2026, 8, 18, 23, 0, tzinfo=UTC)


def _event(kw: float = 100.0, hours: float = 1.0) -> GridEvent:
    return GridEvent.model_validate(
        {
            "id": "ev-r",
            "intervals": [{"start": T0.isoformat(), "end": (T0 + timedelta(hours=hours)).isoformat(), "target_kw": kw}],
        }
    )


def _ramp(ledger: MeterLedger, key: tuple[str, int], kw_by_interval: list[float], step_s: int = 60) -> None:
    """Registers of an EVSE exporting (kW > 0) or importing (kW < 0) at a constant power per 5 minutes."""
    imp = exp = 0.0
    t = T0 - timedelta(minutes=2)
    ledger.add(key[0], key[1], t, {"energy_import_wh": 0.0, "energy_export_wh": 0.0, "soc": 80.0})
    t = T0
    ledger.add(key[0], key[1], t, {"energy_import_wh": 0.0, "energy_export_wh": 0.0, "soc": 80.0})
    soc = 80.0
    for kw in kw_by_interval:
        for _ in range(300 // step_s):
            wh = kw * 1000 * step_s / 3600
            if wh >= 0:
                exp += wh
            else:
                imp -= wh
            soc -= kw * step_s / 3600 / 60 * 100
            t += timedelta(seconds=step_s)
            ledger.add(key[0], key[1], t, {"energy_import_wh": imp, "energy_export_wh": exp, "soc": soc})


def test_ledger_interpolates_registers() -> None:
    led = MeterLedger()
    led.add("S", 1, T0, {"energy_import_wh": 100.0, "energy_export_wh": 0.0})
    led.add("S", 1, T0 + timedelta(minutes=10), {"energy_import_wh": 100.0, "energy_export_wh": 1000.0})
    assert led.energy(("S", 1), T0, T0 + timedelta(minutes=5)) == pytest.approx((0.0, 500.0))
    assert led.energy(("S", 1), T0 - timedelta(hours=1), T0) == (0.0, 0.0)  # flat before the first sample
    net, gross = led.net_export_wh([("S", 1), ("missing", 1)], T0, T0 + timedelta(minutes=20))
    assert (net, gross) == pytest.approx((1000.0, 1000.0))
    led.prune(T0 + timedelta(minutes=20))
    assert led.registers(("S", 1), T0 + timedelta(minutes=10)) == pytest.approx((100.0, 1000.0))


def test_metrics_from_registers() -> None:
    led = MeterLedger()
    # 12 intervals: 10 on target (100 kW from two cars), one 20 % short, one 5 % over
    a = [50.0] * 12
    b = [50.0] * 10 + [30.0, 55.0]
    _ramp(led, ("A", 1), a)
    _ramp(led, ("B", 1), b)
    run = EventRun(event=_event(), received_at=T0 - timedelta(minutes=10), received_wall=0.0)
    for m in range(60):
        run.samples.append(TickSample(T0 + timedelta(minutes=m), 100.0, 100.0, 100.0 if m < 50 else 85.0,
                                      100.0, 2, 2, 2))  # fmt: skip
    rep = build_report(run, led, {}, now=T0 + timedelta(hours=1, minutes=5), final=True)
    s = rep["summary"]
    delivered = [i["delivered_kw"] for i in rep["intervals"]]
    assert delivered == pytest.approx([100.0] * 10 + [80.0, 105.0])
    assert s["target_kwh"] == pytest.approx(100.0)
    assert s["delivered_kwh"] == pytest.approx((1000 + 80 + 105) / 12)
    assert s["delivery_ratio"] == pytest.approx(1185 / 1200, abs=1e-3)
    assert s["intervals_within_10pct"] == pytest.approx(11 / 12, abs=1e-3)
    assert s["nae"] == pytest.approx((20 + 5) / 1200, abs=1e-4)
    assert s["energy_exported_kwh"] == pytest.approx(s["delivered_kwh"])
    assert s["overshoot_kwh"] == pytest.approx(5 / 12, abs=1e-3)
    # the last two intervals were only 85 kW feasible: 80 is within 10 % of that, the ratio uses min(d, f)
    assert [i["feasible_kw"] for i in rep["intervals"][-2:]] == pytest.approx([85.0, 85.0])
    assert s["delivery_ratio_feasible"] == pytest.approx((1000 + 80 + 85) / (1000 + 170), abs=1e-3)
    assert s["intervals_within_10pct_feasible"] == pytest.approx(11 / 12, abs=1e-3)
    # CSV: one row per interval, the documented columns
    rows = list(csv.DictReader(io.StringIO(report_csv(rep))))
    assert len(rows) == 12 and float(rows[10]["delivered_kw"]) == pytest.approx(80.0)
    assert {"start", "target_kw", "feasible_kw", "delivered_kw", "within_10pct"} <= set(rows[0])
    # a live report leaves the intervals that may still get meter values out of the metrics
    live = build_report(run, led, {}, now=T0 + timedelta(minutes=31), final=False)
    assert len(live["intervals"]) == 6 and live["summary"]["intervals_complete"] == 5


def _rec(cid: str, *, target: float, departed: datetime | None, announced: datetime | None,
         final: float | None, feasible: bool = True, key: str = "A") -> CarRecord:  # fmt: skip
    return CarRecord(
        car_id=cid, station_id=key, evse_id=1, transaction_id=cid, first_seen=T0 - timedelta(hours=1),
        soc_first=80.0, capacity_kwh=60.0, max_charge_kw=20.0, max_discharge_kw=15.0, eta_charge=0.9,
        eta_discharge=0.9, floor_pct=20.0, target_pct=target, announced_departure=announced,
        bidirectional=True, feasible_at_plugin=feasible, departed_at=departed, final_soc=final,
    )  # fmt: skip


def test_driver_guarantees_are_classified() -> None:
    led = MeterLedger()
    _ramp(led, ("A", 1), [10.0] * 12)
    run = EventRun(event=_event(), received_at=T0, received_wall=0.0)
    t = T0 + timedelta(minutes=30)
    cars = {
        "ok": _rec("ok", target=60, departed=t, announced=t, final=60.2),
        "short": _rec("short", target=60, departed=t, announced=t - timedelta(minutes=5), final=57.0),
        "early": _rec("early", target=60, departed=t, announced=t + timedelta(minutes=30), final=57.0),
        "infeasible": _rec("infeasible", target=90, departed=t, announced=t, final=70.0, feasible=False),
        "within_tolerance": _rec("within_tolerance", target=60, departed=t, announced=t, final=59.7),
        "staying": _rec("staying", target=90, departed=None, announced=T0 + timedelta(hours=1, minutes=10), final=None),
    }
    run.car_ids = set(cars)
    rep = build_report(run, led, cars, now=T0 + timedelta(hours=1), final=True,
                       live_soc={"staying": (40.0, T0 + timedelta(hours=1))})  # fmt: skip
    g = rep["driver_guarantees"]
    assert [v["car_id"] for v in g["violations"]] == ["short"]
    assert [v["car_id"] for v in g["early_departures_below_target"]] == ["early"]
    assert g["infeasible_at_plugin"] == ["infeasible"]
    assert [v["car_id"] for v in g["at_risk"]] == ["staying"]  # 40 % + 10 min at 20 kW < 90 %
    assert g["departures"] == 5
    # every car row has its discharge energy and SoC path
    row = next(c for c in rep["cars"] if c["car_id"] == "ok")
    assert row["discharged_kwh"] > 0 and row["soc_path"] and row["target_met"]


def test_floor_violation_only_counts_after_being_above_the_floor() -> None:
    led = MeterLedger()
    for m, soc in enumerate([15.0, 25.0, 22.0, 18.0]):  # arrived below the floor, charged, then discharged below
        led.add("A", 1, T0 + timedelta(minutes=m * 5), {"energy_import_wh": 0.0, "energy_export_wh": 100.0 * m,
                                                         "soc": soc})  # fmt: skip
    run = EventRun(event=_event(), received_at=T0, received_wall=0.0)
    cars = {"c": _rec("c", target=50, departed=None, announced=None, final=None)}
    run.car_ids = {"c"}
    rep = build_report(run, led, cars, now=T0 + timedelta(minutes=30), final=False)
    assert [v["soc_min"] for v in rep["driver_guarantees"]["floor_violations"]] == [18.0]


def test_perfect_foresight_and_plot(tmp_path: Path) -> None:
    led = MeterLedger()
    _ramp(led, ("A", 1), [10.0] * 12)
    run = EventRun(event=_event(kw=10.0), received_at=T0, received_wall=0.0)
    cars = {"c": _rec("c", target=50, departed=None, announced=T0 + timedelta(hours=3), final=None)}
    run.car_ids = {"c"}
    pf = perfect_foresight(run, cars, led)
    assert pf is not None and pf[0] == pytest.approx(0.0, abs=1e-3) and len(pf[1]) == 12
    rep = build_report(run, led, cars, now=T0 + timedelta(hours=1, minutes=5), final=True, pf=pf)
    assert rep["summary"]["perfect_foresight_nae"] == pytest.approx(0.0, abs=1e-3)
    assert rep["summary"]["regret"] == pytest.approx(rep["summary"]["nae"], abs=1e-3)
    png = write_plot(rep, tmp_path / "reports" / "ev-r.png", tz="America/Los_Angeles")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
