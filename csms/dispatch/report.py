"""Per-event delivery reports: what was asked, what was delivered, what it cost the drivers.

A report is built from three records the controller keeps while an event runs:

* a :class:`MeterLedger` - every metered energy register (``Energy.Active.Import/Export.Register``)
  and SoC sample per EVSE, as the stations sent them. Energy per interval comes from the
  registers (linear interpolation between samples, flat before the first and after the last),
  so delivered energy is exact up to the sampling period, not an integral of sampled power;
* :class:`TickSample` rows, one per control interval (target, planned and achievable kW,
  instantaneous metered delivery, connected cars, commands);
* :class:`CarRecord` rows, one per car visit (transaction) the dispatch saw.

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

:func:`report_csv` gives the interval table as CSV; :func:`write_plot` draws target, feasible and
delivered with the connected-car count (matplotlib, Agg backend) into a PNG.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from csms.dispatch.fleet import CarState, EventTarget, FleetSnapshot, TargetInterval
from csms.dispatch.planner import nae, perfect_foresight_plan

__all__ = [
    "CarRecord",
    "EventRun",
    "MeterLedger",
    "TickSample",
    "build_report",
    "report_csv",
    "write_plot",
]

INTERVAL_S = 300
SOC_TOL_PCT = 0.5
DEPARTURE_GRACE_S = 120.0
COMPLETE_AFTER_S = 90.0
"""An interval counts as complete this long (simulated) after its end: every live EVSE has sampled."""


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _r(x: float | None, nd: int = 3) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), nd)


# ------------------------------------------------------------------------------------------ ledger
@dataclass(slots=True)
class _Series:
    reg_t: list[float] = field(default_factory=list)
    imp: list[float] = field(default_factory=list)
    exp: list[float] = field(default_factory=list)
    soc_t: list[float] = field(default_factory=list)
    soc: list[float] = field(default_factory=list)


class MeterLedger:
    """Energy registers and SoC per (station, EVSE) over time (epoch seconds, Wh, %)."""

    def __init__(self) -> None:
        self._s: dict[tuple[str, int], _Series] = {}

    def add(self, station_id: str, evse_id: int, at: datetime, readings: Mapping[str, Any]) -> None:
        t = at.timestamp()
        s = self._s.get((station_id, evse_id))
        if s is None:
            s = self._s[(station_id, evse_id)] = _Series()
        imp, exp = readings.get("energy_import_wh"), readings.get("energy_export_wh")
        if imp is not None or exp is not None:
            prev_i = s.imp[-1] if s.imp else 0.0
            prev_e = s.exp[-1] if s.exp else 0.0
            if not s.reg_t or t >= s.reg_t[-1]:
                s.reg_t.append(t)
                s.imp.append(float(imp) if imp is not None else prev_i)
                s.exp.append(float(exp) if exp is not None else prev_e)
        soc = readings.get("soc")
        if soc is not None and (not s.soc_t or t >= s.soc_t[-1]):
            s.soc_t.append(t)
            s.soc.append(float(soc))

    def evses(self) -> list[tuple[str, int]]:
        return list(self._s)

    def prune(self, before: datetime) -> None:
        """Forget samples older than ``before`` (keeping the last one before it per EVSE)."""
        t0 = before.timestamp()
        for s in self._s.values():
            k = bisect.bisect_left(s.reg_t, t0) - 1
            if k > 0:
                del s.reg_t[:k], s.imp[:k], s.exp[:k]
            k = bisect.bisect_left(s.soc_t, t0) - 1
            if k > 0:
                del s.soc_t[:k], s.soc[:k]

    def registers(self, key: tuple[str, int], at: datetime) -> tuple[float, float] | None:
        """(import Wh, export Wh) of one EVSE interpolated at ``at`` (None without samples)."""
        s = self._s.get(key)
        if s is None or not s.reg_t:
            return None
        t = at.timestamp()
        return float(np.interp(t, s.reg_t, s.imp)), float(np.interp(t, s.reg_t, s.exp))

    def registers_at(self, key: tuple[str, int], times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(import Wh, export Wh) of one EVSE at many epoch seconds at once (None without samples)."""
        s = self._s.get(key)
        if s is None or not s.reg_t:
            return None
        t = np.asarray(s.reg_t)
        return np.interp(times_s, t, np.asarray(s.imp)), np.interp(times_s, t, np.asarray(s.exp))

    def net_export_grid(self, keys: Iterable[tuple[str, int]], edges_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(net export Wh, gross export Wh) per interval between consecutive ``edges_s``, summed over keys."""
        n = max(len(edges_s) - 1, 0)
        net, gross = np.zeros(n), np.zeros(n)
        for key in keys:
            got = self.registers_at(key, edges_s)
            if got is None:
                continue
            imp, exp = np.maximum(np.diff(got[0]), 0.0), np.maximum(np.diff(got[1]), 0.0)
            net += exp - imp
            gross += exp
        return net, gross

    def energy(self, key: tuple[str, int], start: datetime, end: datetime) -> tuple[float, float]:
        """(import Wh, export Wh) of one EVSE over ``[start, end)``."""
        a, b = self.registers(key, start), self.registers(key, end)
        if a is None or b is None:
            return 0.0, 0.0
        return max(0.0, b[0] - a[0]), max(0.0, b[1] - a[1])

    def net_export_wh(self, keys: Iterable[tuple[str, int]], start: datetime, end: datetime) -> tuple[float, float]:
        """(net export Wh, gross export Wh) summed over ``keys``."""
        net = gross = 0.0
        for key in keys:
            imp, exp = self.energy(key, start, end)
            net += exp - imp
            gross += exp
        return net, gross

    def soc_samples(self, key: tuple[str, int], start: datetime, end: datetime) -> list[tuple[float, float]]:
        s = self._s.get(key)
        if s is None:
            return []
        lo, hi = bisect.bisect_left(s.soc_t, start.timestamp()), bisect.bisect_right(s.soc_t, end.timestamp())
        return list(zip(s.soc_t[lo:hi], s.soc[lo:hi], strict=True))

    def soc_at(self, key: tuple[str, int], at: datetime) -> float | None:
        """Last SoC sample at or before ``at``."""
        s = self._s.get(key)
        if s is None or not s.soc_t:
            return None
        k = bisect.bisect_right(s.soc_t, at.timestamp()) - 1
        return s.soc[k] if k >= 0 else None


# ------------------------------------------------------------------------------------------ records
@dataclass(slots=True)
class TickSample:
    """One control tick of an event (simulated time ``at``)."""

    at: datetime
    target_kw: float
    planned_kw: float | None
    feasible_kw: float | None
    delivered_kw: float
    cars_connected: int
    cars_dispatched: int
    commands_total: int

    def to_json(self) -> dict[str, Any]:
        return {
            "at": _iso(self.at),
            "target_kw": _r(self.target_kw),
            "planned_kw": _r(self.planned_kw),
            "feasible_kw": _r(self.feasible_kw),
            "delivered_kw": _r(self.delivered_kw),
            "cars_connected": self.cars_connected,
            "cars_dispatched": self.cars_dispatched,
            "commands_total": self.commands_total,
        }


@dataclass(slots=True)
class CarRecord:
    """One car visit (transaction) as dispatch saw it; SoC and targets in percent."""

    car_id: str
    station_id: str
    evse_id: int
    transaction_id: str
    first_seen: datetime
    soc_first: float
    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    eta_charge: float
    eta_discharge: float
    floor_pct: float
    target_pct: float
    announced_departure: datetime | None
    bidirectional: bool
    feasible_at_plugin: bool
    departed_at: datetime | None = None
    final_soc: float | None = None
    last_soc: float | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.station_id, self.evse_id)

    @staticmethod
    def feasible(
        soc_pct: float, target_pct: float, capacity_kwh: float, max_charge_kw: float, eta: float, hours: float
    ) -> bool:
        reachable = soc_pct + 100.0 * eta * max_charge_kw * max(hours, 0.0) / capacity_kwh
        return reachable + SOC_TOL_PCT >= target_pct


@dataclass(slots=True)
class EventRun:
    """Everything the controller records about one grid event (see :func:`build_report`)."""

    event: Any  # csms.grid.model.GridEvent
    received_at: datetime  # simulated
    received_wall: float  # time.perf_counter()
    scope: frozenset[str] | None = None  # station ids, None = whole site
    samples: list[TickSample] = field(default_factory=list)
    car_ids: set[str] = field(default_factory=set)
    plans: int = 0
    replan_reasons: dict[str, int] = field(default_factory=dict)
    last_plan: dict[str, Any] | None = None
    plan_log: list[dict[str, Any]] = field(default_factory=list)
    infeasible_need: dict[str, float] = field(default_factory=dict)
    shortfall_kwh: float = 0.0
    commands: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    first_command_s: float | None = None
    all_commanded_s: float | None = None
    first_command_latencies: list[float] = field(default_factory=list)
    clears: dict[str, int] = field(default_factory=dict)
    cancelled_at: datetime | None = None
    stopped_at: datetime | None = None
    revisions: list[dict[str, Any]] = field(default_factory=list)
    dry_run: dict[str, Any] | None = None
    delivered_published: int = 0
    final: dict[str, Any] | None = None

    @property
    def event_id(self) -> str:
        return str(self.event.id)

    def window(self) -> tuple[datetime, datetime]:
        end = self.event.end
        if self.cancelled_at is not None:
            end = min(end, max(self.cancelled_at, self.event.start))
        return self.event.start, end

    def note_commands(self, results: Iterable[Any], at: datetime, keep: int = 200) -> None:
        for r in results:
            self.commands[r.outcome] = self.commands.get(r.outcome, 0) + 1
            if not r.ok and len(self.failures) < keep:
                self.failures.append({**r.to_json(), "at": _iso(at)})


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
                "start": _iso(a),
                "end": _iso(b),
                "target_kw": _r(target),
                "feasible_kw": _r(feasible),
                "planned_kw": _r(planned),
                "pf_achievable_kw": _r(pf_kw),
                "delivered_kw": _r(delivered),
                "error_kw": _r(delivered - target),
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
                "target_kwh": _r(target_kwh),
                "delivered_kwh": _r(delivered_kwh),
                "energy_exported_kwh": _r(gross_export_wh / 1000.0),
                "feasible_kwh": _r(feasible_kwh),
                "mean_target_kw": _r(target_kwh / float(np.sum(h_arr))),
                "mean_delivered_kw": _r(delivered_kwh / float(np.sum(h_arr))),
                "delivery_ratio": _r(delivered_kwh / target_kwh) if target_kwh > 0 else None,
                "delivery_ratio_feasible": _r(float(np.sum(np.minimum(d_arr, f_arr) * h_arr)) / feasible_kwh)
                if feasible_kwh > 0
                else None,
                "intervals_within_10pct": _r(float(np.mean(within)), 4) if within else None,
                "intervals_within_10pct_feasible": _r(float(np.mean(within_f)), 4) if within_f else None,
                "nae": _r(nae(t_arr, d_arr, h_arr), 4),
                "nae_vs_feasible": _r(nae(f_arr, d_arr, h_arr), 4),
                "overshoot_kwh": _r(float(np.sum(np.maximum(d_arr - t_arr, 0.0) * h_arr))),
                "max_overshoot_kw": _r(float(np.max(d_arr - t_arr))),
            }
        )
        if pf is not None:
            summary["perfect_foresight_nae"] = _r(pf[0], 4)
            summary["regret"] = _r(nae(t_arr, d_arr, h_arr) - pf[0], 4)
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
            "first_seen": _iso(rec.first_seen),
            "announced_departure": _iso(rec.announced_departure),
            "departed_at": _iso(rec.departed_at),
            "capacity_kwh": _r(rec.capacity_kwh),
            "bidirectional": rec.bidirectional,
            "soc_first": _r(rec.soc_first, 1),
            "soc_min": _r(soc_min, 1),
            "soc_final": _r(rec.final_soc, 1),
            "floor_soc": _r(rec.floor_pct, 1),
            "target_soc": _r(rec.target_pct, 1),
            "feasible_at_plugin": rec.feasible_at_plugin,
            "discharged_kwh": _r(exp_wh / 1000.0),
            "charged_kwh": _r(imp_wh / 1000.0),
            "soc_path": _downsample(path),
        }
        if not rec.feasible_at_plugin:
            infeasible.append(cid)
        if rec.departed_at is not None:
            departures += 1
            final_soc = rec.final_soc if rec.final_soc is not None else ledger.soc_at(rec.key, rec.departed_at)
            row["soc_final"] = _r(final_soc, 1)
            met = final_soc is None or final_soc + SOC_TOL_PCT >= rec.target_pct
            on_time = rec.announced_departure is None or rec.departed_at >= rec.announced_departure - timedelta(
                seconds=DEPARTURE_GRACE_S
            )
            row["target_met"] = bool(met)
            row["on_time"] = bool(on_time)
            if not met:
                item = {
                    "car_id": cid,
                    "soc_final": _r(final_soc, 1),
                    "target_soc": _r(rec.target_pct, 1),
                    "discharged_kwh": _r(exp_wh / 1000.0),
                    "departed_at": _iso(rec.departed_at),
                    "announced_departure": _iso(rec.announced_departure),
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
                    at_risk.append({"car_id": cid, "soc": _r(soc_now, 1), "target_soc": _r(rec.target_pct, 1)})
        # below the floor after having been above it, while the car exported (a car may arrive below it)
        above = [i for i, v in enumerate(socs) if v + SOC_TOL_PCT >= rec.floor_pct]
        low = min(socs[above[0] :]) if above else None
        if low is not None and exp_wh > 0 and low + SOC_TOL_PCT < rec.floor_pct:
            floor_viol.append({"car_id": cid, "soc_min": _r(low, 1), "floor_soc": _r(rec.floor_pct, 1)})
        car_rows.append(row)
    delivered_kwh = summary.get("delivered_kwh") or 0.0
    summary["throughput_per_kwh"] = _r(moved_wh / 1000.0 / delivered_kwh) if delivered_kwh > 0 else None
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
        "generated_at": _iso(now),
        "window": {"start": _iso(start), "end": _iso(end), "planned_end": _iso(ev.end)},
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
            "shortfall_kwh": _r(run.shortfall_kwh),
            "last_plan": run.last_plan,
            "plan_log": run.plan_log[-200:],
            "infeasible_need": {k: _r(v, 4) for k, v in run.infeasible_need.items()},
        },
        "commands": {
            "by_outcome": dict(run.commands),
            "failures": run.failures,
            "clears": dict(run.clears),
            "replans": run.plans,
            "replan_reasons": dict(run.replan_reasons),
            "latency": {
                "first_command_s": _r(run.first_command_s, 4),
                "all_commanded_s": _r(run.all_commanded_s, 4),
                "per_station_p50_s": _r(lat[len(lat) // 2], 4) if lat else None,
                "per_station_p99_s": _r(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 4) if lat else None,
            },
        },
        "cancelled_at": _iso(run.cancelled_at),
        "stopped_at": _iso(run.stopped_at),
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
            out.append([_iso(datetime.fromtimestamp(t, UTC)), round(soc, 1)])
            last = t
    return out


# ------------------------------------------------------------------------------------------ outputs
CSV_COLUMNS = (
    "start",
    "end",
    "target_kw",
    "feasible_kw",
    "planned_kw",
    "pf_achievable_kw",
    "delivered_kw",
    "error_kw",
    "within_10pct",
    "within_10pct_feasible",
    "cars_connected",
    "complete",
)


def report_csv(report: Mapping[str, Any]) -> str:
    """The interval table of a report as CSV (one row per 5-minute interval)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report.get("intervals", []):
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    return out.getvalue()


def report_json(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report as a JSON-ready dict (it already is one; kept for symmetry with :func:`report_csv`)."""
    return dict(report)


def write_plot(report: Mapping[str, Any], path: Path, *, tz: str = "UTC") -> Path:
    """Draw target / feasible / delivered per interval and the connected cars into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    zone = ZoneInfo(tz)

    def when(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(zone)

    rows = report.get("intervals", [])
    ticks = report.get("timeline", [])
    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    try:
        if rows:
            edges = [when(r["start"]) for r in rows] + [when(rows[-1]["end"])]
            tgt = [r["target_kw"] or 0.0 for r in rows]
            dlv = [r["delivered_kw"] or 0.0 for r in rows]
            fea = [r["feasible_kw"] if r["feasible_kw"] is not None else np.nan for r in rows]
            ax.stairs(tgt, edges, color="black", linewidth=2.0, label="target")
            ax.stairs(fea, edges, color="tab:orange", linestyle="--", linewidth=1.4, label="feasible (planner)")
            pf = [r.get("pf_achievable_kw") for r in rows]
            if any(v is not None for v in pf):
                ax.stairs(
                    [np.nan if v is None else v for v in pf],
                    edges,
                    color="tab:purple",
                    linestyle=":",
                    linewidth=1.2,
                    label="perfect foresight",
                )
            ax.stairs(dlv, edges, color="tab:blue", fill=True, alpha=0.35, label="delivered (5-min, metered)")
        if ticks:
            tt = [when(s["at"]) for s in ticks]
            ax.plot(tt, [s["delivered_kw"] for s in ticks], color="tab:blue", linewidth=0.6, alpha=0.8)
        ax.set_ylabel("net export, kW")
        ax.set_xlabel(f"time ({tz})")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))
        ax.grid(True, alpha=0.3)
        if ticks:
            ax2 = ax.twinx()
            ax2.step(
                [when(s["at"]) for s in ticks],
                [s["cars_connected"] for s in ticks],
                where="post",
                color="tab:green",
                linewidth=1.0,
                label="cars connected",
            )
            ax2.set_ylabel("cars connected", color="tab:green")
            ax2.set_ylim(bottom=0)
            lines, labels = ax.get_legend_handles_labels()
            l2, lab2 = ax2.get_legend_handles_labels()
            ax.legend(lines + l2, labels + lab2, loc="upper right", fontsize=8)
        else:
            ax.legend(loc="upper right", fontsize=8)
        s = report.get("summary", {})
        title = f"{report.get('event_id')}: delivery {_pct(s.get('delivery_ratio'))}"
        title += f", feasible part {_pct(s.get('delivery_ratio_feasible'))}"
        title += f", within ±10% {_pct(s.get('intervals_within_10pct'))}, NAE {_pct(s.get('nae'))}"
        if report.get("is_test"):
            title += " (TEST: no power moved)"
        ax.set_title(title, fontsize=10)
        fig.autofmt_xdate()
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.1f}%"
