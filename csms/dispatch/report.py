"""Per-event delivery reports: what was asked, what was delivered, what it cost the drivers.

A report is built from three records the controller keeps while an event runs:

* a :class:`~csms.dispatch.ledger.MeterLedger` - every metered energy register
  (``Energy.Active.Import/Export.Register``) and SoC sample per EVSE, as the stations sent them.
  Energy per interval comes from the registers (linear interpolation between samples, flat
  before the first and after the last), so delivered energy is exact up to the sampling
  period, not an integral of sampled power;
* :class:`~csms.dispatch.records.TickSample` rows, one per control interval (target, planned and
  achievable kW, instantaneous metered delivery, connected cars, commands);
* :class:`~csms.dispatch.records.CarRecord` rows, one per car visit (transaction) the dispatch saw.

Metrics (grid.md), per 5-minute interval ``i`` of the event window:

* ``delivered_kw`` = net export of the EVSEs in the event's scope (export minus import
  registers over the interval / its length); for ``import_limit`` events it is the net import;
* ``feasible_kw`` = min(target, what the dispatch planner said it could achieve with the cars
  present - the plan in force at each control tick, averaged over the interval);
* ``delivery_ratio`` = sum delivered / sum target; ``delivery_ratio_feasible`` =
  sum min(delivered, feasible) / sum feasible ("delivery on the feasible part");
* ``within_10pct`` = share of intervals with |delivered - target| <= 10 % of target
  (``within_10pct_feasible``: against the feasible value);
* ``nae`` = sum|target - delivered| / sum target; ``perfect_foresight_nae`` = the NAE of the
  perfect-foresight LP on the same cars (every arrival with its SoC, every real departure), and
  ``regret`` = nae - perfect_foresight_nae (final reports only);
* driver guarantees: a **violation** is a car that left below its promised SoC (0.5 point
  tolerance) although the promise was reachable at plug-in (charging at full power until the
  announced departure) and it did not leave before the departure it announced (2 min grace);
  cars that left *early* below target are listed separately, as are discharges below the floor
  and cars still plugged in that can no longer reach their target in time (``at_risk``);
* ``throughput_per_kwh`` = (energy in + out of the dispatched cars) / net delivered energy, a
  battery-wear proxy; ``overshoot_kwh`` = energy above the target.

:mod:`csms.dispatch.report_files` writes a report as files: the interval table as CSV and a PNG of
target, feasible and delivered power with the connected-car count.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from csms.dispatch.fleet import CarState, EventTarget, FleetSnapshot, TargetInterval
from csms.dispatch.planner import nae, perfect_foresight_plan

from .ledger import COMPLETE_AFTER_S, DEPARTURE_GRACE_S, INTERVAL_S, SOC_TOL_PCT, MeterLedger, iso_utc, rounded
from .records import CarRecord, EventRun


# ------------------------------------------------------------------------------------------ metrics
def _target_at(event: Any, t: datetime) -> float:
    hit = event.interval_at(t)
    return float(hit[1].target_kw) if hit is not None else 0.0


def _mean_target(event: Any, a: datetime, b: datetime) -> float:
    """Time-weighted mean of the event's target over [a, b)."""
    total = 0.0
    span = (b - a).total_seconds()
    if span <= 0:
        return 0.0
    for iv in event.intervals:
        lo, hi = max(a, iv.start), min(b, iv.end)
        if hi > lo:
            total += iv.target_kw * (hi - lo).total_seconds()
    return total / span


def interval_grid(start: datetime, end: datetime, step_s: int = INTERVAL_S) -> list[tuple[datetime, datetime]]:
    out = []
    t = start
    while t < end:
        nxt = min(t + timedelta(seconds=step_s), end)
        out.append((t, nxt))
        t = nxt
    return out


def _scope_keys(run: EventRun, ledger: MeterLedger) -> list[tuple[str, int]]:
    keys = ledger.evses()
    if run.scope is not None:
        keys = [k for k in keys if k[0] in run.scope]
    return keys


def perfect_foresight(
    run: EventRun, cars: Mapping[str, CarRecord], ledger: MeterLedger, *, step_s: int = INTERVAL_S
) -> tuple[float, list[float]] | None:
    """(NAE, achievable kW per interval) of the perfect-foresight LP on the cars of ``run``."""
    start, end = run.window()
    if end <= start or run.event.direction != "export":
        return None
    states: list[CarState] = []
    for cid in sorted(run.car_ids):
        rec = cars.get(cid)
        if rec is None:
            continue
        dep = rec.departed_at or rec.announced_departure or end + timedelta(hours=12)
        if dep <= start:
            continue
        if rec.first_seen <= start:
            soc = ledger.soc_at(rec.key, start)
            soc = rec.soc_first if soc is None else soc
            plugged = None
        else:
            soc, plugged = rec.soc_first, rec.first_seen
        if plugged is not None and plugged >= dep:
            continue
        states.append(
            CarState(
                car_id=cid,
                station_id=rec.station_id,
                evse_id=rec.evse_id,
                soc=min(max(soc / 100.0, 0.0), 1.0),
                capacity_kwh=rec.capacity_kwh,
                max_charge_kw=rec.max_charge_kw,
                max_discharge_kw=rec.max_discharge_kw,
                eta_charge=rec.eta_charge,
                eta_discharge=rec.eta_discharge,
                soc_floor=min(max(rec.floor_pct / 100.0, 0.0), 1.0),
                target_soc=min(max(rec.target_pct / 100.0, 0.0), 1.0),
                departure=dep,
                plugged_in_at=plugged,
            )
        )
    target = EventTarget(
        event_id=run.event_id,
        intervals=[
            TargetInterval(start=max(iv.start, start), end=min(iv.end, end), target_kw=iv.target_kw)
            for iv in run.event.intervals
            if min(iv.end, end) > max(iv.start, start)
        ],
    )
    if not target.intervals:
        return None
    pf = perfect_foresight_plan(FleetSnapshot(time=start, cars=states), target, step_s=float(step_s))
    grid = interval_grid(start, end, step_s)
    ach = []
    for a, b in grid:
        vals, w = [], []
        for t in range(pf.n_steps):
            lo, hi = max(a, pf.step_starts[t]), min(b, pf.step_ends[t])
            if hi > lo and not np.isnan(pf.delivered_kw[t]):
                vals.append(min(float(pf.delivered_kw[t]), float(pf.target_kw[t])))
                w.append((hi - lo).total_seconds())
        ach.append(float(np.average(vals, weights=w)) if w else 0.0)
    tgt = np.array([_mean_target(run.event, a, b) for a, b in grid])
    return nae(tgt, np.array(ach)), ach


def build_report(
    run: EventRun,
    ledger: MeterLedger,
    cars: Mapping[str, CarRecord],
    *,
    now: datetime,
    final: bool,
    pf: tuple[float, list[float]] | None = None,
    live_soc: Mapping[str, tuple[float | None, datetime | None]] | None = None,
) -> dict[str, Any]:
    """The report document of ``run`` at ``now`` (see the module docstring)."""
    ev = run.event
    start, end = run.window()
    direction = ev.direction
    keys = _scope_keys(run, ledger)
    intervals: list[dict[str, Any]] = []
    tg, dl, fe, hours = [], [], [], []
    gross_export_wh = 0.0
    ticks = run.samples
    tick_t = [s.at for s in ticks]
    grid = [(a, b) for a, b in interval_grid(start, end) if b <= now]
    edges = np.array([a.timestamp() for a, _ in grid] + ([grid[-1][1].timestamp()] if grid else []))
    net_all, gross_all = ledger.net_export_grid(keys, edges) if grid else (np.zeros(0), np.zeros(0))
    for i, (a, b) in enumerate(grid):
        complete = final or now >= b + timedelta(seconds=COMPLETE_AFTER_S)
        net_wh, gross_wh = float(net_all[i]), float(gross_all[i])
        h = (b - a).total_seconds() / 3600.0
        delivered = net_wh / 1000.0 / h if h > 0 else 0.0
        if direction == "import_limit":
            delivered = -delivered
        target = _mean_target(ev, a, b)
        lo, hi = bisect.bisect_left(tick_t, a), bisect.bisect_left(tick_t, b)
        in_iv = ticks[lo:hi]
        feas_vals = [s.feasible_kw for s in in_iv if s.feasible_kw is not None]
        feasible = min(target, float(np.mean(feas_vals))) if feas_vals else target
        plan_vals = [s.planned_kw for s in in_iv if s.planned_kw is not None]
        planned = float(np.mean(plan_vals)) if plan_vals else None
        if pf is not None and i < len(pf[1]):
            pf_kw: float | None = pf[1][i]
        else:
            pf_kw = None
        cars_conn = max((s.cars_connected for s in in_iv), default=0)
        within = abs(delivered - target) <= 0.1 * target if target > 0 else abs(delivered) <= 1.0
        within_f = abs(delivered - feasible) <= 0.1 * feasible if feasible > 0 else abs(delivered) <= 1.0
        if direction == "import_limit":
            within = within_f = delivered <= target * 1.0 + 1e-6
        intervals.append(
            {
                "start": iso_utc(a),
                "end": iso_utc(b),
                "target_kw": rounded(target),
                "feasible_kw": rounded(feasible),
                "planned_kw": rounded(planned),
                "pf_achievable_kw": rounded(pf_kw),
                "delivered_kw": rounded(delivered),
                "error_kw": rounded(delivered - target),
                "within_10pct": bool(within),
                "within_10pct_feasible": bool(within_f),
                "cars_connected": cars_conn,
                "complete": bool(complete),
            }
        )
        if complete:
            tg.append(target)
            dl.append(delivered)
            fe.append(feasible)
            hours.append(h)
            gross_export_wh += gross_wh
    t_arr, d_arr, f_arr, h_arr = (np.array(x, dtype=float) for x in (tg, dl, fe, hours))
    n = len(tg)
    summary: dict[str, Any] = {"intervals_complete": n}
    if n:
        target_kwh = float(np.sum(t_arr * h_arr))
        delivered_kwh = float(np.sum(d_arr * h_arr))
        feasible_kwh = float(np.sum(f_arr * h_arr))
        within = [it["within_10pct"] for it in intervals if it["complete"]]
        within_f = [it["within_10pct_feasible"] for it in intervals if it["complete"] and it["feasible_kw"]]
        summary.update(
            {
                "target_kwh": rounded(target_kwh),
                "delivered_kwh": rounded(delivered_kwh),
                "energy_exported_kwh": rounded(gross_export_wh / 1000.0),
                "feasible_kwh": rounded(feasible_kwh),
                "mean_target_kw": rounded(target_kwh / float(np.sum(h_arr))),
                "mean_delivered_kw": rounded(delivered_kwh / float(np.sum(h_arr))),
                "delivery_ratio": rounded(delivered_kwh / target_kwh) if target_kwh > 0 else None,
                "delivery_ratio_feasible": rounded(float(np.sum(np.minimum(d_arr, f_arr) * h_arr)) / feasible_kwh)
                if feasible_kwh > 0
                else None,
                "intervals_within_10pct": rounded(float(np.mean(within)), 4) if within else None,
                "intervals_within_10pct_feasible": rounded(float(np.mean(within_f)), 4) if within_f else None,
                "nae": rounded(nae(t_arr, d_arr, h_arr), 4),
                "nae_vs_feasible": rounded(nae(f_arr, d_arr, h_arr), 4),
                "overshoot_kwh": rounded(float(np.sum(np.maximum(d_arr - t_arr, 0.0) * h_arr))),
                "max_overshoot_kw": rounded(float(np.max(d_arr - t_arr))),
            }
        )
        if pf is not None:
            summary["perfect_foresight_nae"] = rounded(pf[0], 4)
            summary["regret"] = rounded(nae(t_arr, d_arr, h_arr) - pf[0], 4)
    # ------------------------------------------------------------------ cars
    car_rows: list[dict[str, Any]] = []
    violations, early, floor_viol, at_risk, infeasible = [], [], [], [], []
    moved_wh = 0.0
    departures = 0
    for cid in sorted(run.car_ids):
        rec = cars.get(cid)
        if rec is None:
            continue
        a = max(rec.first_seen, start)
        b = min(rec.departed_at or now, end, now)
        imp_wh, exp_wh = ledger.energy(rec.key, a, b) if b > a else (0.0, 0.0)
        moved_wh += imp_wh + exp_wh
        path = ledger.soc_samples(rec.key, rec.first_seen, rec.departed_at or now)
        socs = [s for _, s in path]
        soc_min = min(socs) if socs else None
        row: dict[str, Any] = {
            "car_id": cid,
            "station_id": rec.station_id,
            "evse_id": rec.evse_id,
            "transaction_id": rec.transaction_id,
            "first_seen": iso_utc(rec.first_seen),
            "announced_departure": iso_utc(rec.announced_departure),
            "departed_at": iso_utc(rec.departed_at),
            "capacity_kwh": rounded(rec.capacity_kwh),
            "bidirectional": rec.bidirectional,
            "soc_first": rounded(rec.soc_first, 1),
            "soc_min": rounded(soc_min, 1),
            "soc_final": rounded(rec.final_soc, 1),
            "floor_soc": rounded(rec.floor_pct, 1),
            "target_soc": rounded(rec.target_pct, 1),
            "feasible_at_plugin": rec.feasible_at_plugin,
            "discharged_kwh": rounded(exp_wh / 1000.0),
            "charged_kwh": rounded(imp_wh / 1000.0),
            "soc_path": _downsample(path),
        }
        if not rec.feasible_at_plugin:
            infeasible.append(cid)
        if rec.departed_at is not None:
            departures += 1
            final_soc = rec.final_soc if rec.final_soc is not None else ledger.soc_at(rec.key, rec.departed_at)
            row["soc_final"] = rounded(final_soc, 1)
            met = final_soc is None or final_soc + SOC_TOL_PCT >= rec.target_pct
            on_time = rec.announced_departure is None or rec.departed_at >= rec.announced_departure - timedelta(
                seconds=DEPARTURE_GRACE_S
            )
            row["target_met"] = bool(met)
            row["on_time"] = bool(on_time)
            if not met:
                item = {
                    "car_id": cid,
                    "soc_final": rounded(final_soc, 1),
                    "target_soc": rounded(rec.target_pct, 1),
                    "discharged_kwh": rounded(exp_wh / 1000.0),
                    "departed_at": iso_utc(rec.departed_at),
                    "announced_departure": iso_utc(rec.announced_departure),
                }
                if not rec.feasible_at_plugin:
                    pass
                elif on_time:
                    violations.append(item)
                else:
                    early.append(item)
        elif live_soc is not None and rec.announced_departure is not None:
            soc_now = (live_soc.get(cid) or (None, None))[0]
            if soc_now is not None and rec.feasible_at_plugin:
                hours_left = (rec.announced_departure - now).total_seconds() / 3600.0
                if not CarRecord.feasible(
                    soc_now, rec.target_pct, rec.capacity_kwh, rec.max_charge_kw, rec.eta_charge, hours_left
                ):
                    at_risk.append(
                        {"car_id": cid, "soc": rounded(soc_now, 1), "target_soc": rounded(rec.target_pct, 1)}
                    )
        # below the floor after having been above it, while the car exported (a car may arrive below it)
        above = [i for i, v in enumerate(socs) if v + SOC_TOL_PCT >= rec.floor_pct]
        low = min(socs[above[0] :]) if above else None
        if low is not None and exp_wh > 0 and low + SOC_TOL_PCT < rec.floor_pct:
            floor_viol.append({"car_id": cid, "soc_min": rounded(low, 1), "floor_soc": rounded(rec.floor_pct, 1)})
        car_rows.append(row)
    delivered_kwh = summary.get("delivered_kwh") or 0.0
    summary["throughput_per_kwh"] = rounded(moved_wh / 1000.0 / delivered_kwh) if delivered_kwh > 0 else None
    summary["cars_seen"] = len(car_rows)
    summary["max_cars_connected"] = max((s.cars_connected for s in ticks), default=0)
    lat = sorted(run.first_command_latencies)
    report: dict[str, Any] = {
        "event_id": run.event_id,
        "revision": ev.revision,
        "program": ev.program,
        "source": ev.source,
        "is_test": ev.is_test,
        "direction": direction,
        "event_status": ev.status,
        "status": "final" if final else "live",
        "generated_at": iso_utc(now),
        "window": {"start": iso_utc(start), "end": iso_utc(end), "planned_end": iso_utc(ev.end)},
        "interval_s": INTERVAL_S,
        "summary": summary,
        "intervals": intervals,
        "driver_guarantees": {
            "departures": departures,
            "violations": violations,
            "early_departures_below_target": early,
            "floor_violations": floor_viol,
            "at_risk": at_risk,
            "infeasible_at_plugin": infeasible,
        },
        "infeasibility": {
            "plans": run.plans,
            "shortfall_kwh": rounded(run.shortfall_kwh),
            "last_plan": run.last_plan,
            "plan_log": run.plan_log[-200:],
            "infeasible_need": {k: rounded(v, 4) for k, v in run.infeasible_need.items()},
        },
        "commands": {
            "by_outcome": dict(run.commands),
            "failures": run.failures,
            "clears": dict(run.clears),
            "replans": run.plans,
            "replan_reasons": dict(run.replan_reasons),
            "latency": {
                "first_command_s": rounded(run.first_command_s, 4),
                "all_commanded_s": rounded(run.all_commanded_s, 4),
                "per_station_p50_s": rounded(lat[len(lat) // 2], 4) if lat else None,
                "per_station_p99_s": rounded(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 4) if lat else None,
            },
        },
        "cancelled_at": iso_utc(run.cancelled_at),
        "stopped_at": iso_utc(run.stopped_at),
        "revisions": run.revisions,
        "cars": car_rows,
        "timeline": [s.to_json() for s in ticks],
    }
    if run.dry_run is not None:
        report["test_run"] = run.dry_run
    return report


def _downsample(path: list[tuple[float, float]], step_s: float = INTERVAL_S) -> list[list[Any]]:
    out: list[list[Any]] = []
    last = -math.inf
    for i, (t, soc) in enumerate(path):
        if t - last >= step_s or i == len(path) - 1:
            out.append([iso_utc(datetime.fromtimestamp(t, UTC)), round(soc, 1)])
            last = t
    return out
