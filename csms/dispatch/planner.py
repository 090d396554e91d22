"""V2G dispatch planner: split a site-level event target across the plugged-in cars.

Pure code (no I/O, no asyncio). Entry points:

* :func:`plan` -- plan from a :class:`~csms.dispatch.fleet.FleetSnapshot` and one
  or more :class:`~csms.dispatch.fleet.EventTarget` (LP, heuristic or auto).
* :func:`plan_heuristic` -- the fast greedy planner directly.
* :func:`resolve_targets` -- overlapping events -> one schedule by priority.
* :func:`diff_plans` -- which cars need a new command after a replan.
* :func:`nae`, :func:`plan_nae`, :func:`perfect_foresight_plan`,
  :func:`perfect_foresight_nae` -- scoring against the perfect-foresight LP.

Replanning needs nothing but the current state: call :func:`plan` again with a
fresh snapshot (current SoCs, the cars still plugged in) and the same events;
energy already exported is simply reflected in the SoCs. Then
:func:`diff_plans` tells the executor which chargers to re-command.

See :mod:`csms.dispatch.problem` for the time grid, :mod:`csms.dispatch.repair` for the repair step,
:mod:`csms.dispatch.planner_lp` for the LP formulation and
:mod:`csms.dispatch.heuristic` for the greedy algorithm.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Literal

import numpy as np

from csms.dispatch.fleet import EventTarget, FleetSnapshot
from csms.dispatch.heuristic import heuristic_schedule
from csms.dispatch.plan_result import Plan, Shortfall, ShortStep, assemble_plan, nae
from csms.dispatch.planner_lp import solve_lp
from csms.dispatch.problem import Problem, build_problem
from csms.dispatch.targets import TargetSegment, resolve_targets

__all__ = [
    "LP_MAX_PAIRS",
    "Method",
    "Plan",
    "ShortStep",
    "Shortfall",
    "TargetSegment",
    "build_problem",
    "diff_plans",
    "nae",
    "perfect_foresight_nae",
    "perfect_foresight_plan",
    "plan",
    "plan_heuristic",
    "plan_nae",
    "resolve_targets",
]

Method = Literal["auto", "lp", "heuristic"]
TargetArg = EventTarget | list[EventTarget] | list[TargetSegment] | None

#: ``method="auto"`` uses the heuristic directly above this many (car, step) pairs:
#: the LP grows to roughly 3 columns and 5 non-zeros per pair and would not fit a
#: few-second budget much beyond it on a 2-core machine.
LP_MAX_PAIRS = 250_000


def plan(
    snapshot: FleetSnapshot,
    target: TargetArg,
    *,
    step_s: float = 60.0,
    horizon_end: datetime | None = None,
    time_budget_s: float = 2.0,
    method: Method = "auto",
    tail_step_s: float | None = None,
    max_horizon_s: float = 24 * 3600.0,
    precharge_headroom: bool = True,
) -> Plan:
    """Plan every car's power from ``snapshot.time`` until the last departure.

    Args:
        snapshot: the fleet now (cars with ``plugged_in_at`` in the future are
            treated as arriving then -- used by the perfect-foresight benchmark).
        target: one event, several (possibly overlapping: resolved by
            :func:`resolve_targets`) or already resolved segments; None plans
            charging only.
        step_s: step length inside events (seconds); steps align to each event
            interval's start.
        horizon_end: end of the horizon; default the latest departure, at most
            ``max_horizon_s`` after the last event end. Cars leaving after it
            must only be left with enough energy to reach their target by
            charging at full power until they leave.
        time_budget_s: wall-clock budget of the LP; ``auto`` falls back to the
            heuristic when it runs out (so does ``lp``, with a note).
        method: ``"lp"``, ``"heuristic"`` or ``"auto"`` (LP when the problem has
            at most :data:`LP_MAX_PAIRS` car-steps, else the heuristic).
        tail_step_s: step length outside events (default ``max(step_s, 900)``).
        max_horizon_s: cap on the horizon after the last event end.
        precharge_headroom: before an event, charge every car that can
            discharge toward what it could export in the event, not only what
            this plan needs (headroom for arrivals that must charge and for
            departures earlier than told). Pass False when the cars will not
            charge above their own target (e.g. under a ``ChargingOnly`` limit).

    Returns:
        A :class:`~csms.dispatch.plan_result.Plan`. ``plan.infeasible`` is True
        when the target cannot be met in full (``plan.shortfall`` lists the short
        steps with the achievable kW) or some driver's target SoC cannot be
        reached even at full charging power (``plan.infeasible_need``: those
        cars are charged at full power and never discharged).
    """
    t_start = time.perf_counter()
    problem = build_problem(
        snapshot,
        target,
        step_s=step_s,
        tail_step_s=tail_step_s,
        horizon_end=horizon_end,
        max_horizon_s=max_horizon_s,
        precharge_headroom=precharge_headroom,
    )
    return plan_problem(problem, method=method, time_budget_s=time_budget_s, t_start=t_start)


def plan_problem(
    problem: Problem,
    *,
    method: Method = "auto",
    time_budget_s: float = 2.0,
    t_start: float | None = None,
    formulation: str = "auto",
) -> Plan:
    """Solve an already built :class:`Problem` (see :func:`plan`; ``formulation``: see :func:`solve_lp`)."""
    t_start = time.perf_counter() if t_start is None else t_start
    pairs = int(np.maximum(problem.b - problem.a, 0).sum())
    notes: list[str] = []
    use_lp = method == "lp" or (method == "auto" and pairs <= LP_MAX_PAIRS)
    if method == "auto" and not use_lp:
        notes.append(f"auto: {pairs} car-steps > {LP_MAX_PAIRS}, heuristic used")
    if use_lp:
        remaining = time_budget_s - (time.perf_counter() - t_start)
        res = solve_lp(problem, time_budget_s=max(remaining, 0.05), formulation=formulation)
        notes.extend(res.notes)
        if res.optimal and res.power is not None:
            return assemble_plan(
                problem,
                res.power,
                method="lp",
                status=res.status,
                solve_time_s=time.perf_counter() - t_start,
                notes=notes,
            )
        notes.append(f"LP not solved ({res.status}); heuristic fallback")
    power = heuristic_schedule(problem)
    return assemble_plan(
        problem,
        power,
        method="heuristic",
        status="ok",
        solve_time_s=time.perf_counter() - t_start,
        notes=notes,
    )


def plan_heuristic(snapshot: FleetSnapshot, target: TargetArg, **kwargs: object) -> Plan:
    """Plan with the greedy heuristic (same arguments as :func:`plan`, without ``method``)."""
    return plan(snapshot, target, method="heuristic", **kwargs)  # type: ignore[arg-type]


def _epoch(times: list[datetime]) -> np.ndarray:
    return np.array([t.timestamp() for t in times], dtype=float)


def _sample(plan_: Plan, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Power of every car of ``plan_`` at the given epoch seconds (0 outside its horizon)."""
    if plan_.n_steps == 0:
        return np.zeros((len(plan_.car_ids), times_s.size)), np.zeros(times_s.size, dtype=bool)
    starts = _epoch(plan_.step_starts)
    end = plan_.step_ends[-1].timestamp()
    idx = np.searchsorted(starts, times_s, side="right") - 1
    inside = (idx >= 0) & (times_s < end)
    out = np.zeros((len(plan_.car_ids), times_s.size))
    out[:, inside] = plan_.power_kw[:, idx[inside]]
    return out, inside


def diff_plans(old: Plan, new: Plan, tol_kw: float = 0.5, *, now: datetime | None = None) -> set[str]:
    """Car ids whose remaining schedule differs by more than ``tol_kw`` between two plans.

    The comparison covers ``[now, end of new plan)`` (``now`` defaults to the new
    plan's start), sampled at the midpoint of every step of either plan. A car in
    only one of the plans is compared against 0 kW (a departed car that was
    still planned to move power must be stopped; a new car must be commanded).
    """
    if new.n_steps == 0:
        return {cid for cid in old.car_ids if np.any(np.abs(_sample(old, _epoch(old.step_starts))[0]) > tol_kw)}
    t_from = (now or new.step_starts[0]).timestamp()
    t_to = new.step_ends[-1].timestamp()
    mids = []
    for p in (old, new):
        if p.n_steps:
            s, e = _epoch(p.step_starts), _epoch(p.step_ends)
            mids.append(0.5 * (s + e))
            mids.append(s + 1e-3)
    times_s = np.unique(np.concatenate(mids))
    times_s = times_s[(times_s >= t_from) & (times_s < t_to)]
    if t_from < t_to:
        times_s = np.unique(np.concatenate([times_s, [t_from]]))
    old_p, _ = _sample(old, times_s)
    new_p, _ = _sample(new, times_s)
    old_rows = {cid: i for i, cid in enumerate(old.car_ids)}
    new_rows = {cid: i for i, cid in enumerate(new.car_ids)}
    changed: set[str] = set()
    zeros = np.zeros(times_s.size)
    for cid in set(old_rows) | set(new_rows):
        o = old_p[old_rows[cid]] if cid in old_rows else zeros
        n = new_p[new_rows[cid]] if cid in new_rows else zeros
        if times_s.size and float(np.max(np.abs(o - n))) > tol_kw:
            changed.add(cid)
    return changed


def plan_nae(plan_: Plan, interval_s: float | None = None) -> float:
    """NAE of a plan's own delivered vs target over its tracked steps.

    With ``interval_s`` the steps are first averaged into intervals of that
    length (e.g. 300 s for the 5-minute metric), each step weighted by its duration.
    """
    tracked = np.array([d in ("export", "load_reduction") for d in plan_.directions], dtype=bool)
    if not tracked.any():
        return 0.0
    starts = _epoch(plan_.step_starts)
    dur = _epoch(plan_.step_ends) - starts
    tgt, dlv = plan_.target_kw[tracked], plan_.delivered_kw[tracked]
    w = dur[tracked]
    if interval_s is None:
        return nae(tgt, dlv, w)
    key = np.floor((starts[tracked] - starts[tracked][0]) / interval_s).astype(np.int64)
    wsum = np.bincount(key, weights=w)
    ok = wsum > 0
    t_i = np.bincount(key, weights=tgt * w)[ok] / wsum[ok]
    d_i = np.bincount(key, weights=dlv * w)[ok] / wsum[ok]
    return nae(t_i, d_i, wsum[ok])


def perfect_foresight_plan(
    snapshot: FleetSnapshot,
    target: TargetArg,
    *,
    step_s: float = 300.0,
    time_budget_s: float = 3600.0,
    **kwargs: object,
) -> Plan:
    """LP plan that knows every arrival and departure ahead of time.

    ``snapshot`` holds every car of the scenario, including those whose
    ``plugged_in_at`` lies in the future (with their SoC at arrival); the LP
    uses each car only while it is plugged in. Always solved as the full LP
    (``kwargs`` go to :func:`build_problem`): the compact formulation is not
    exact once cars arrive during the event -- a car arriving mid-event may
    charge while the others carry the target and export later, when the fleet's
    discharge power binds, which the compact model cannot plan.
    """
    t_start = time.perf_counter()
    problem = build_problem(snapshot, target, step_s=step_s, **kwargs)  # type: ignore[arg-type]
    return plan_problem(problem, method="lp", time_budget_s=time_budget_s, t_start=t_start, formulation="full")


def perfect_foresight_nae(
    snapshot: FleetSnapshot, target: TargetArg, *, step_s: float = 300.0, interval_s: float = 300.0
) -> float:
    """NAE of the perfect-foresight LP (see :func:`perfect_foresight_plan`), on ``interval_s`` intervals.

    Regret of an online planner = its NAE - this value (same scenario, same target).
    """
    return plan_nae(perfect_foresight_plan(snapshot, target, step_s=step_s), interval_s)
