"""The result of the V2G planner: :class:`Plan`, its shortfall report and the tracking metric.

:func:`assemble_plan` repairs a schedule (:mod:`csms.dispatch.repair`) and wraps
it, with what it achieves in the event's own terms, into the :class:`Plan` the
caller receives; :func:`nae` is the normalised tracking error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from csms.dispatch.problem import Problem
from csms.dispatch.repair import consolidate_min_power, repair, top_up


@dataclass(frozen=True)
class ShortStep:
    """One step in which the plan delivers less than the target (or exceeds an import limit)."""

    start: datetime
    end: datetime
    target_kw: float
    achievable_kw: float


@dataclass(frozen=True)
class Shortfall:
    """Target vs achievable over the tracked (export / load-reduction) steps of the horizon.

    ``achievable_kwh`` is what the plan delivers; for the LP this is the most any
    dispatcher can deliver with these cars (the LP minimises the tracking error),
    for the heuristic it is what the greedy allocation managed.
    """

    target_kwh: float
    achievable_kwh: float
    shortfall_kwh: float
    steps: list[ShortStep] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        """True when every tracked step is planned at its target (within tolerance)."""
        return not self.steps


@dataclass
class Plan:
    """A dispatch plan: per-car power per step plus what it achieves.

    Arrays: ``power_kw`` (N, T) grid-side kW, positive = charge, negative =
    discharge; ``soc`` (N, T+1) projected SoC at every step edge; ``export_kw``
    (T,) planned net fleet export X (sum of discharges minus charges);
    ``target_kw`` / ``delivered_kw`` (T,) in the event's own terms (meter
    export, load reduction or meter import for import-limit steps), NaN on steps
    without an event; ``achievable_kw`` is ``delivered_kw`` (what the plan
    achieves, the best the solver found).
    """

    method: str
    status: str
    solve_time_s: float
    car_ids: list[str]
    step_starts: list[datetime]
    step_ends: list[datetime]
    power_kw: np.ndarray
    soc: np.ndarray
    export_kw: np.ndarray
    target_kw: np.ndarray
    delivered_kw: np.ndarray
    directions: list[str | None]
    shortfall: Shortfall
    infeasible_need: dict[str, float]
    unmet_departures: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def achievable_kw(self) -> np.ndarray:
        """Per-step achievable value in event terms (same as ``delivered_kw``)."""
        return self.delivered_kw

    @property
    def infeasible(self) -> bool:
        """True when the target is not fully achievable or a driver target is unreachable."""
        return (not self.shortfall.feasible) or bool(self.infeasible_need) or bool(self.unmet_departures)

    @property
    def n_steps(self) -> int:
        """Number of steps."""
        return len(self.step_starts)

    def index(self, car_id: str) -> int:
        """Row of ``car_id`` in the arrays."""
        return self.car_ids.index(car_id)

    def schedule(self, car_id: str) -> list[float]:
        """Per-step power (kW, + = charge) of one car."""
        return [float(x) for x in self.power_kw[self.index(car_id)]]

    def schedules(self) -> dict[str, list[float]]:
        """Per-step power of every car, keyed by car id."""
        return {cid: [float(x) for x in row] for cid, row in zip(self.car_ids, self.power_kw, strict=True)}

    def soc_path(self, car_id: str) -> list[float]:
        """Projected SoC of one car at every step edge (T+1 values)."""
        return [float(x) for x in self.soc[self.index(car_id)]]

    def step_at(self, when: datetime) -> int | None:
        """Index of the step containing ``when``, or None outside the horizon."""
        if not self.step_starts or when < self.step_starts[0] or when >= self.step_ends[-1]:
            return None
        lo, hi = 0, len(self.step_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.step_starts[mid] <= when:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def power_at(self, car_id: str, when: datetime) -> float:
        """Planned power (kW) of ``car_id`` at ``when``; 0 outside the horizon or for unknown cars."""
        t = self.step_at(when)
        if t is None or car_id not in self.car_ids:
            return 0.0
        return float(self.power_kw[self.index(car_id), t])


def delivered_in_event_terms(
    problem: Problem, export_kw: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Map net fleet export to the event's terms: returns ``(target_kw, delivered_kw, directions)``."""
    n_t = problem.n_steps
    tgt = np.full(n_t, np.nan)
    dlv = np.full(n_t, np.nan)
    dirs: list[str | None] = [None] * n_t
    for t in range(n_t):
        j = int(problem.seg_idx[t])
        if j < 0:
            continue
        seg = problem.segments[j]
        dirs[t] = seg.direction
        tgt[t] = seg.target_kw
        if seg.direction == "export":
            dlv[t] = export_kw[t] - problem.baseline_kw
        elif seg.direction == "load_reduction":
            dlv[t] = export_kw[t]
        else:
            dlv[t] = problem.baseline_kw - export_kw[t]
    return tgt, dlv, dirs


def assemble_plan(
    problem: Problem,
    power: np.ndarray,
    *,
    method: str,
    status: str,
    solve_time_s: float,
    notes: list[str] | None = None,
    tol_kw: float = 1e-3,
) -> Plan:
    """Repair ``power`` and wrap it, with its metrics and reports, into a :class:`Plan`."""
    p, energy = repair(problem, consolidate_min_power(problem, power))
    p, energy = top_up(problem, p, energy)
    export = -p.sum(axis=0)
    tgt, dlv, dirs = delivered_in_event_terms(problem, export)
    starts, ends = problem.step_times()
    short: list[ShortStep] = []
    tgt_kwh = ach_kwh = 0.0
    for t in range(problem.n_steps):
        if dirs[t] is None:
            continue
        if problem.track[t]:
            tgt_kwh += tgt[t] * problem.dt_h[t]
            ach_kwh += min(dlv[t], tgt[t]) * problem.dt_h[t]
            if dlv[t] < tgt[t] - tol_kw:
                short.append(ShortStep(starts[t], ends[t], float(tgt[t]), float(dlv[t])))
        elif dlv[t] > tgt[t] + tol_kw:  # import limit exceeded
            short.append(ShortStep(starts[t], ends[t], float(tgt[t]), float(dlv[t])))
    shortfall = Shortfall(tgt_kwh, ach_kwh, max(0.0, tgt_kwh - ach_kwh), short)
    infeasible_need = {
        cid: float(problem.reachable[i] / problem.capacity_kwh[i])
        for i, cid in enumerate(problem.car_ids)
        if problem.infeasible_need[i]
    }
    unmet: dict[str, float] = {}
    for i, cid in enumerate(problem.car_ids):
        if problem.b[i] <= problem.a[i]:
            continue
        span = slice(int(problem.bp[i]), int(problem.b[i]) + 1)
        worst = int(problem.bp[i]) + int(np.argmin(energy[i, span] - problem.lower[i, span]))
        if energy[i, worst] < problem.lower[i, worst] - 1e-4:
            unmet[cid] = float(energy[i, worst] / problem.capacity_kwh[i])
    soc = energy / problem.capacity_kwh[:, None] if problem.n_cars else energy
    return Plan(
        method=method,
        status=status,
        solve_time_s=solve_time_s,
        car_ids=list(problem.car_ids),
        step_starts=starts,
        step_ends=ends,
        power_kw=p,
        soc=soc,
        export_kw=export,
        target_kw=tgt,
        delivered_kw=dlv,
        directions=dirs,
        shortfall=shortfall,
        infeasible_need=infeasible_need,
        unmet_departures=unmet,
        notes=list(notes or []),
    )


def nae(target_series: np.ndarray | list[float], delivered_series: np.ndarray | list[float], dt=None) -> float:
    """Normalised absolute tracking error ``sum |target - delivered| dt / sum target dt``.

    ``dt`` are per-interval durations (any unit; default: equal intervals).
    Intervals whose target is NaN are skipped. Returns 0.0 when the target
    energy is zero.
    """
    tgt = np.asarray(target_series, dtype=float)
    dlv = np.asarray(delivered_series, dtype=float)
    w = np.ones_like(tgt) if dt is None else np.asarray(dt, dtype=float)
    m = ~np.isnan(tgt)
    denom = float(np.sum(tgt[m] * w[m]))
    if denom <= 0:
        return 0.0
    return float(np.sum(np.abs(tgt[m] - np.nan_to_num(dlv[m])) * w[m]) / denom)
