"""Shared machinery of the V2G planner: target resolution, time grid, problem arrays, repair, Plan.

The LP (:mod:`csms.dispatch.planner_lp`) and the greedy heuristic
(:mod:`csms.dispatch.heuristic`) both work on a :class:`Problem`: numpy arrays
describing the time grid, the per-step reference the fleet must track and each
car's limits and energy requirements. Both return a net power matrix
``(n_cars, n_steps)`` in kW (positive = charge); :func:`repair` then makes the
schedule exactly consistent with the hard guarantees (SoC floor, capacity, the
minimum stable discharge power) by forward simulation, and :func:`assemble_plan`
builds the :class:`Plan` the caller receives.

Time grid
---------
The horizon starts at the snapshot time and ends at the latest departure
(capped at ``max_horizon_s`` after the last event end). Inside event segments
steps are ``step_s`` long and aligned to each segment's start; outside events
(pre-event charging, post-event recharge until departures) steps are
``tail_step_s`` long (default ``max(step_s, 900)``), which keeps an overnight
horizon small. A car is available for a step only if it is plugged in for the
whole step (arrival rounded up, departure rounded down to step edges), so the
SoC at the end of its last available step is its SoC at departure.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from csms.dispatch.fleet import Direction, EventTarget, FleetSnapshot

#: Tolerance (kWh) used when deciding whether a departure target is reachable.
ENERGY_TOL_KWH = 1e-6
#: Powers below this magnitude (kW) are treated as zero in the output.
POWER_EPS_KW = 1e-6


@dataclass(frozen=True)
class TargetSegment:
    """A piece of the resolved event schedule: one winning event interval over ``[start, end)``."""

    start: datetime
    end: datetime
    target_kw: float
    min_kw: float | None
    max_kw: float | None
    direction: Direction
    reserve_margin: float
    priority: int
    event_id: str


def resolve_targets(events: list[EventTarget]) -> list[TargetSegment]:
    """Merge possibly overlapping events into one non-overlapping, time-ordered schedule.

    For every instant covered by at least one interval, the interval of the event
    with the **lowest** ``priority`` number wins (OpenADR: 0 is the highest
    priority). On a tie the event that comes **later** in ``events`` wins (pass
    events in the order they were received, so a newer event overrides an older
    one of the same priority); inside one event a later interval overrides an
    earlier overlapping one. Zero-length intervals are ignored (a cancelled
    event is a zero-length window). Adjacent pieces of the same winning
    interval are merged, so a single event comes back as its own intervals.
    """
    flat: list[tuple[int, int, int, EventTarget, int]] = []  # (priority, -event_idx, -iv_idx, ev, iv_idx)
    for ev_idx, ev in enumerate(events):
        for iv_idx, iv in enumerate(ev.intervals):
            if iv.end > iv.start:
                flat.append((ev.priority, -ev_idx, -iv_idx, ev, iv_idx))
    if not flat:
        return []
    bounds = sorted({t for *_, ev, iv_idx in flat for t in (ev.intervals[iv_idx].start, ev.intervals[iv_idx].end)})
    segments: list[TargetSegment] = []
    last_key: tuple[int, int] | None = None
    for lo, hi in itertools.pairwise(bounds):
        covering = [
            item for item in flat if item[3].intervals[item[4]].start <= lo and item[3].intervals[item[4]].end >= hi
        ]
        if not covering:
            last_key = None
            continue
        prio, neg_ev, _neg_iv, ev, iv_idx = min(covering, key=lambda item: (item[0], item[1], item[2]))
        iv = ev.intervals[iv_idx]
        key = (-neg_ev, iv_idx)
        if key == last_key and segments and segments[-1].end == lo:
            prev = segments[-1]
            segments[-1] = TargetSegment(
                prev.start,
                hi,
                prev.target_kw,
                prev.min_kw,
                prev.max_kw,
                prev.direction,
                prev.reserve_margin,
                prev.priority,
                prev.event_id,
            )
        else:
            segments.append(
                TargetSegment(
                    lo,
                    hi,
                    iv.target_kw,
                    iv.min_kw,
                    iv.max_kw,
                    ev.direction,
                    ev.reserve_margin,
                    prio,
                    ev.event_id,
                )
            )
        last_key = key
    return segments


def _as_segments(target: EventTarget | list[EventTarget] | list[TargetSegment] | None) -> list[TargetSegment]:
    """Normalise the ``target`` argument of the planners to resolved segments."""
    if target is None:
        return []
    if isinstance(target, EventTarget):
        return resolve_targets([target])
    items = list(target)
    if all(isinstance(x, TargetSegment) for x in items):
        return sorted(items, key=lambda s: s.start)  # type: ignore[arg-type, return-value]
    if all(isinstance(x, EventTarget) for x in items):
        return resolve_targets(items)  # type: ignore[arg-type]
    raise TypeError("target must be an EventTarget, a list of EventTarget or a list of TargetSegment")


@dataclass
class Problem:
    """Numerical description of one planning problem (all arrays are numpy).

    Per step ``t`` (``n_steps`` = T): ``edges_s`` (T+1, seconds after ``t0``), ``dt_h``,
    ``seg_idx`` (index into ``segments`` or -1), ``ref_kw`` (reference for the net
    fleet export X, NaN when nothing to track), ``w_under`` / ``w_over`` (penalty
    per kWh below / above the reference), ``x_lo`` / ``x_hi`` (hard bounds on X),
    ``reserve`` (derating of discharge limits), ``track`` (the step is an
    export / load-reduction step whose shortfall is reported).

    Per car ``i`` (N): limits, efficiencies, ``e0`` / ``cap`` (the highest energy charging can
    reach: ``max_soc`` of the capacity ``capacity_kwh``, or ``e0`` above it) / ``lb`` (kWh),
    ``a`` / ``b`` (first / one-past-last available step), ``req`` (energy
    required at the end of step ``b-1``, already lowered to what is reachable
    for cars whose target cannot be met), ``infeasible_need``, ``can_discharge``;
    ``bp`` the edge of the earliest departure (``a <= bp <= b``; ``b`` unless
    the car's ``earliest_departure`` says otherwise), ``promise`` the energy
    held from ``bp`` on (``req``, or the full target when ``bp < b``) and
    ``lower`` (N, T+1) the least energy at every edge: ``lb`` before ``bp``,
    from ``bp`` to ``b`` the promise or, until it can be there, what charging
    at full power since ``a`` reaches (the promise to a driver who may leave from ``bp`` on);
    ``precharge_headroom``: before an event, charge every car that can discharge
    toward what it could export in it (see :mod:`csms.dispatch.planner_lp`),
    not only what the plan needs. ``presence`` (N, T) the probability the car is still plugged in during each
    step: 1 until its earliest departure, 1/2 at its expected departure
    (midway without one), 0 at ``b``, piecewise linear (1 throughout when the
    departure is known; always 1 in the first step, which is executed now).
    """

    t0: datetime
    edges_s: np.ndarray
    dt_h: np.ndarray
    segments: list[TargetSegment]
    seg_idx: np.ndarray
    ref_kw: np.ndarray
    w_under: np.ndarray
    w_over: np.ndarray
    x_lo: np.ndarray
    x_hi: np.ndarray
    reserve: np.ndarray
    track: np.ndarray
    baseline_kw: float
    car_ids: list[str]
    capacity_kwh: np.ndarray
    e0: np.ndarray
    cap: np.ndarray
    lb: np.ndarray
    floor: np.ndarray
    target_kwh: np.ndarray
    req: np.ndarray
    reachable: np.ndarray
    cmax: np.ndarray
    dmax: np.ndarray
    dmin: np.ndarray
    eta_c: np.ndarray
    eta_d: np.ndarray
    a: np.ndarray
    b: np.ndarray
    infeasible_need: np.ndarray
    can_discharge: np.ndarray
    departs_in_horizon: np.ndarray
    bp: np.ndarray
    promise: np.ndarray
    lower: np.ndarray
    presence: np.ndarray
    precharge_headroom: bool = True

    @property
    def n_steps(self) -> int:
        """Number of time steps T."""
        return int(self.dt_h.size)

    @property
    def n_cars(self) -> int:
        """Number of cars N (including ones with no available step)."""
        return len(self.car_ids)

    def avail(self) -> np.ndarray:
        """Boolean (N, T) mask of the steps each car is available for."""
        steps = np.arange(self.n_steps)
        return (steps[None, :] >= self.a[:, None]) & (steps[None, :] < self.b[:, None])

    def dmax_steps(self) -> np.ndarray:
        """(N, T) upper bound on grid-side discharge: derated limit on event steps, 0 elsewhere.

        A car/step whose derated limit is below the car's minimum stable
        discharge power gets 0 (it cannot discharge there at all).
        """
        ub = self.dmax[:, None] * (1.0 - self.reserve)[None, :]
        ub = np.where((self.seg_idx >= 0)[None, :] & self.can_discharge[:, None] & self.avail(), ub, 0.0)
        ub[ub < np.maximum(self.dmin[:, None], POWER_EPS_KW)] = 0.0
        return ub

    def keep_line(self) -> np.ndarray:
        """(N, T+1) minimum battery energy at each edge from which every later ``lower`` bound is still met.

        It assumes charging at the car's full power in every remaining available
        step, and never goes below the car's lower energy bound.
        """
        cum_h = np.concatenate([[0.0], np.cumsum(self.dt_h)])
        edges = np.arange(self.n_steps + 1)
        ca = cum_h[np.clip(edges[None, :], self.a[:, None], self.b[:, None])]  # available hours up to each edge
        rate = (self.eta_c * self.cmax)[:, None]
        term = np.where(edges[None, :] <= self.b[:, None], self.lower - rate * ca, -np.inf)
        suffix = np.maximum.accumulate(term[:, ::-1], axis=1)[:, ::-1]
        return np.maximum(suffix + rate * ca, self.lb[:, None])

    def step_times(self) -> tuple[list[datetime], list[datetime]]:
        """Start and end datetimes of every step."""
        times = [self.t0 + timedelta(seconds=float(s)) for s in self.edges_s]
        return times[:-1], times[1:]


def _grid_edges(horizon_s: float, seg_spans: list[tuple[float, float]], step_s: float, tail_s: float) -> np.ndarray:
    """Step edges (seconds after t0) over ``[0, horizon_s]``: ``step_s`` in segments, ``tail_s`` elsewhere."""
    pts: list[np.ndarray] = [np.array([0.0, horizon_s])]
    cursor = 0.0
    for lo, hi in seg_spans:
        lo_c, hi_c = max(lo, 0.0), min(hi, horizon_s)
        if hi_c <= lo_c:
            continue
        if lo_c > cursor:
            pts.append(np.arange(cursor, lo_c, tail_s))
        # align ticks to the segment start even when t0 falls inside it
        k0 = math.ceil((lo_c - lo) / step_s - 1e-9)
        pts.append(lo + step_s * np.arange(k0, math.floor((hi_c - lo) / step_s + 1e-9) + 1))
        pts.append(np.array([lo_c, hi_c]))
        cursor = max(cursor, hi_c)
    if cursor < horizon_s:
        pts.append(np.arange(cursor, horizon_s, tail_s))
    edges = np.unique(np.clip(np.concatenate(pts), 0.0, horizon_s))
    keep = np.concatenate([[True], np.diff(edges) > 0.5])
    edges = edges[keep]
    if edges[-1] < horizon_s:
        edges[-1] = horizon_s
    return edges


def build_problem(
    snapshot: FleetSnapshot,
    target: EventTarget | list[EventTarget] | list[TargetSegment] | None,
    *,
    step_s: float = 60.0,
    tail_step_s: float | None = None,
    horizon_end: datetime | None = None,
    max_horizon_s: float = 24 * 3600.0,
    precharge_headroom: bool = True,
) -> Problem:
    """Turn a snapshot and its event(s) into a :class:`Problem` (see the module docstring)."""
    if step_s <= 0:
        raise ValueError("step_s must be positive")
    tail_s = float(tail_step_s) if tail_step_s else max(float(step_s), 900.0)
    t0 = snapshot.time
    segments = [s for s in _as_segments(target) if s.end > t0]

    def rel(t: datetime) -> float:
        return (t - t0).total_seconds()

    spans = [(rel(s.start), rel(s.end)) for s in segments]
    event_end = max((hi for _, hi in spans), default=0.0)
    if horizon_end is not None:
        h_s = rel(horizon_end)
    else:
        latest_dep = max((rel(c.departure) for c in snapshot.cars), default=0.0)
        h_s = min(max(event_end, latest_dep), max(event_end, 0.0) + max_horizon_s)
    h_s = max(h_s, event_end if horizon_end is None else 0.0)
    if h_s <= 0.0:
        h_s = float(step_s)
    edges = _grid_edges(h_s, spans, float(step_s), tail_s)
    n_t = edges.size - 1
    dt_h = np.diff(edges) / 3600.0
    mids = 0.5 * (edges[:-1] + edges[1:])

    base = float(snapshot.baseline_kw or 0.0)
    seg_idx = np.full(n_t, -1, dtype=np.int64)
    for j, (lo, hi) in enumerate(spans):
        seg_idx[(mids >= lo) & (mids < hi)] = j
    ref = np.full(n_t, np.nan)
    w_under = np.zeros(n_t)
    w_over = np.zeros(n_t)
    x_hi = np.full(n_t, np.inf)
    x_lo = np.full(n_t, -np.inf)
    reserve = np.zeros(n_t)
    track = np.zeros(n_t, dtype=bool)
    for j, seg in enumerate(segments):
        m = seg_idx == j
        reserve[m] = seg.reserve_margin
        cap_kw = seg.max_kw if seg.max_kw is not None else seg.target_kw
        if seg.direction == "export":
            ref[m], x_hi[m] = seg.target_kw + base, cap_kw + base
            w_under[m], w_over[m], track[m] = 1.0, 1.0, True
        elif seg.direction == "load_reduction":
            ref[m], x_hi[m] = seg.target_kw, cap_kw
            w_under[m], w_over[m], track[m] = 1.0, 1.0, True
        else:  # import_limit: meter import b - X <= target  <=>  X >= b - target (soft, heavily weighted)
            ref[m] = base - seg.target_kw
            w_under[m] = 10.0
    # Non-event steps: never export (discharge is only planned inside events).
    x_hi[seg_idx < 0] = 0.0
    if snapshot.site_export_limit_kw is not None:
        x_hi = np.minimum(x_hi, snapshot.site_export_limit_kw + base)
    if snapshot.site_import_limit_kw is not None:
        x_lo = np.maximum(x_lo, base - snapshot.site_import_limit_kw)
    # keep X = 0 always admissible so the LP is never infeasible
    x_hi = np.maximum(x_hi, 0.0)
    x_lo = np.minimum(x_lo, 0.0)

    cars = snapshot.cars
    capacity = np.array([c.capacity_kwh for c in cars], dtype=float)
    e0 = np.array([c.soc for c in cars], dtype=float) * capacity
    # the highest energy charging can reach (a car that stops at its own target: max_soc)
    cap = np.maximum(np.array([c.max_soc for c in cars], dtype=float) * capacity, np.minimum(e0, capacity))
    floor = np.array([c.soc_floor for c in cars], dtype=float) * capacity
    target_kwh = np.array([c.target_soc for c in cars], dtype=float) * capacity
    cmax = np.array([c.max_charge_kw for c in cars], dtype=float)
    dmax = np.array([c.max_discharge_kw for c in cars], dtype=float)
    dmin = np.array([c.min_discharge_kw for c in cars], dtype=float)
    eta_c = np.array([c.eta_charge for c in cars], dtype=float)
    eta_d = np.array([c.eta_discharge for c in cars], dtype=float)
    plug_s = np.array([rel(c.plugged_in_at) if c.plugged_in_at is not None else -1.0 for c in cars], dtype=float)
    dep_s = np.array([rel(c.departure) for c in cars], dtype=float)
    # first step starting at/after arrival; one past the last step ending at/before departure
    a = np.searchsorted(edges[:-1], plug_s - 1e-6, side="left").astype(np.int64)
    b = np.searchsorted(edges[1:], dep_s + 1e-6, side="right").astype(np.int64)
    b = np.maximum(a, b)
    departs_in = dep_s <= edges[-1] + 1e-6
    # energy still addable after the horizon (cars leaving later) lowers what is needed at its end
    post_h = np.where(departs_in, 0.0, (dep_s - edges[-1]) / 3600.0)
    need = np.minimum(target_kwh, cap) - eta_c * cmax * post_h
    cum_h = np.concatenate([[0.0], np.cumsum(dt_h)])
    avail_h = cum_h[b] - cum_h[a]
    reachable = np.minimum(cap, e0 + eta_c * cmax * avail_h)
    infeasible = need > reachable + ENERGY_TOL_KWH
    req = np.where(infeasible, reachable, np.maximum(need, 0.0))
    lb = np.minimum(floor, e0)
    can_dis = (~infeasible) & (e0 >= floor) & (dmax > 0)
    early_s = np.array(
        [rel(c.earliest_departure) if c.earliest_departure is not None else np.inf for c in cars], dtype=float
    )
    bp = np.clip(np.searchsorted(edges[1:], early_s + 1e-6, side="right").astype(np.int64), a, b)
    k = np.arange(n_t + 1)[None, :]
    ramp = e0[:, None] + (eta_c * cmax)[:, None] * (cum_h[None, :] - cum_h[a][:, None])
    in_promise = (k >= bp[:, None]) & (k <= b[:, None]) & (b > a)[:, None]
    # from the earliest departure on the car holds its full target (no credit for charging after
    # the horizon: the driver may leave at once), or what full power since now reaches
    promise = np.where(bp < b, np.minimum(target_kwh, cap), req)
    lower = np.where(in_promise, np.maximum(lb[:, None], np.minimum(promise[:, None], ramp)), lb[:, None])
    # chance the car is still plugged in: 1 until bp, 1/2 at its expected departure, 0 at b
    t_lo = np.minimum(np.maximum(early_s, edges[a]), edges[b])
    t_hi = edges[b]
    exp_s = np.array(
        [rel(c.expected_departure) if c.expected_departure is not None else np.nan for c in cars], dtype=float
    )
    t_mid = np.where(np.isnan(exp_s), 0.5 * (t_lo + t_hi), np.clip(exp_s, t_lo, t_hi))
    first = np.clip((t_mid[:, None] - mids[None, :]) / np.maximum(t_mid - t_lo, 1e-9)[:, None], 0.0, 1.0)
    second = np.clip((t_hi[:, None] - mids[None, :]) / np.maximum(t_hi - t_mid, 1e-9)[:, None], 0.0, 1.0)
    presence = np.where(mids[None, :] < t_mid[:, None], 0.5 + 0.5 * first, 0.5 * second)
    presence = np.where((mids[None, :] < t_lo[:, None]) | (bp == b)[:, None], 1.0, presence)
    if n_t:
        presence[:, 0] = 1.0
    return Problem(
        t0=t0,
        edges_s=edges,
        dt_h=dt_h,
        segments=segments,
        seg_idx=seg_idx,
        ref_kw=ref,
        w_under=w_under,
        w_over=w_over,
        x_lo=x_lo,
        x_hi=x_hi,
        reserve=reserve,
        track=track,
        baseline_kw=base,
        car_ids=[c.car_id for c in cars],
        capacity_kwh=capacity,
        e0=e0,
        cap=cap,
        lb=lb,
        floor=floor,
        target_kwh=target_kwh,
        req=req,
        reachable=reachable,
        cmax=cmax,
        dmax=dmax,
        dmin=dmin,
        eta_c=eta_c,
        eta_d=eta_d,
        a=a,
        b=b,
        infeasible_need=infeasible & (dep_s > 0),
        can_discharge=can_dis,
        departs_in_horizon=departs_in,
        bp=bp,
        promise=promise,
        lower=lower,
        presence=presence,
        precharge_headroom=precharge_headroom,
    )


def simulate(problem: Problem, power: np.ndarray) -> np.ndarray:
    """Battery energy (kWh) at every edge, shape (N, T+1), for a net power matrix (kW, + = charge)."""
    gain = np.where(power > 0, power * problem.eta_c[:, None], power / problem.eta_d[:, None]) * problem.dt_h[None, :]
    return problem.e0[:, None] + np.concatenate([np.zeros((problem.n_cars, 1)), np.cumsum(gain, axis=1)], axis=1)


def repair(problem: Problem, power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Make a schedule satisfy every hard per-car constraint exactly; return ``(power, energy)``.

    * power is clipped to the car's limits and zeroed outside its availability;
    * discharges below the minimum stable power are set to 0 (after the solver);
    * a forward simulation then clamps the battery at capacity by trimming
      charging, and at the lower bound by trimming discharge (a trimmed
      discharge that falls below the minimum becomes 0).

    Every change only raises the SoC path or lowers a charge that would have
    overfilled the battery, so a schedule that met the departure requirements
    still meets them.
    """
    p = np.array(power, dtype=float, copy=True)
    p[~problem.avail()] = 0.0
    dub = problem.dmax_steps()
    p = np.clip(p, -dub, problem.cmax[:, None])
    p[np.abs(p) < POWER_EPS_KW] = 0.0
    small = (p < 0) & (-p < problem.dmin[:, None] - 1e-9)
    p[small] = 0.0
    energy = np.empty((problem.n_cars, problem.n_steps + 1))
    e = problem.e0.copy()
    energy[:, 0] = e
    for t in range(problem.n_steps):
        dt = problem.dt_h[t]
        pt = p[:, t]
        e_next = e + np.where(pt > 0, pt * problem.eta_c, pt / problem.eta_d) * dt
        over = (e_next > problem.cap) & (pt > 0)
        if over.any():
            pt[over] = np.maximum(0.0, (problem.cap[over] - e[over]) / (problem.eta_c[over] * dt))
        under = (e_next < problem.lb) & (pt < 0)
        if under.any():
            pt[under] = np.minimum(0.0, -(e[under] - problem.lb[under]) * problem.eta_d[under] / dt)
            bad = under & (-pt < problem.dmin - 1e-9)
            pt[bad] = 0.0
        pt[np.abs(pt) < POWER_EPS_KW] = 0.0
        e = e + np.where(pt > 0, pt * problem.eta_c, pt / problem.eta_d) * dt
        e = np.where(pt > 0, np.minimum(e, problem.cap), e)
        e = np.where(pt < 0, np.maximum(e, problem.lb), e)
        p[:, t] = pt
        energy[:, t + 1] = e
    return p, energy


def consolidate_min_power(problem: Problem, power: np.ndarray) -> np.ndarray:
    """Remove discharges below the minimum stable power by swapping energy between steps (returns a copy).

    An LP vertex typically leaves a car whose energy budget binds with one
    "remainder" step where it discharges a little. For such a remainder ``r``
    at step ``t`` of car ``i``, find a step ``t2`` where ``i`` already
    discharges and has room for ``r`` more, and a partner car ``j`` discharging
    at both steps with room for ``r`` more at ``t`` and at least its minimum
    left at ``t2`` after giving ``r`` up: move ``r`` of ``i`` from ``t`` to
    ``t2`` and ``r`` of ``j`` from ``t2`` to ``t``. Every car keeps its total
    energy and every step keeps its total export, so the objective is
    unchanged. If step ``t2`` is short of its reference by at least ``r``, no
    partner is needed. A move is kept only if both cars' energy paths stay
    within their bounds (outside the compact LP's monotone blocks a car may
    charge between the two steps). Remainders that cannot be swapped are left to
    :func:`repair` (set to 0) and :func:`top_up`.
    """
    p = np.array(power, dtype=float, copy=True)
    d = np.maximum(-p, 0.0)
    dub = problem.dmax_steps()
    dmin = problem.dmin
    viol = np.argwhere((d > POWER_EPS_KW) & (d < dmin[:, None] - 1e-9))
    if viol.size == 0:
        return p
    export = -p.sum(axis=0)
    ref = np.where(problem.track, np.minimum(np.nan_to_num(problem.ref_kw), problem.x_hi), -np.inf)
    charge = np.maximum(p, 0.0)

    def path_ok(k: int) -> bool:
        row = charge[k] - d[k]
        gain = np.where(row > 0, row * problem.eta_c[k], row / problem.eta_d[k]) * problem.dt_h
        e = problem.e0[k] + np.cumsum(gain)
        return bool(np.all(e >= problem.lower[k, 1:] - 1e-9) and np.all(e <= problem.cap[k] + 1e-9))

    for i, t in viol:
        r = d[i, t]
        if not (0 < r < dmin[i] - 1e-9):
            continue
        cand = np.flatnonzero((d[i] >= dmin[i]) & (d[i] + r <= dub[i] + 1e-9))
        cand = cand[cand != t]
        if cand.size == 0:
            continue
        short = cand[ref[cand] - export[cand] >= r - 1e-9]
        moved = False
        for t2 in short[:4]:
            d[i, t], d[i, t2] = 0.0, d[i, t2] + r
            if path_ok(i):
                export[t] -= r
                export[t2] += r
                moved = True
                break
            d[i, t], d[i, t2] = r, d[i, t2] - r
        if moved:
            continue
        at_t = (d[:, t] >= dmin) & (d[:, t] + r <= dub[:, t] + 1e-9)
        at_t[i] = False
        if not at_t.any():
            continue
        js = np.flatnonzero(at_t)
        ok = d[np.ix_(js, cand)] - r >= np.maximum(dmin[js], POWER_EPS_KW)[:, None]
        for jj, cc in np.argwhere(ok)[:8]:
            j, t2 = int(js[jj]), int(cand[cc])
            d[i, t], d[i, t2] = 0.0, d[i, t2] + r
            d[j, t2], d[j, t] = d[j, t2] - r, d[j, t] + r
            if path_ok(i) and path_ok(j):
                break
            d[i, t], d[i, t2] = r, d[i, t2] - r
            d[j, t2], d[j, t] = d[j, t2] + r, d[j, t] - r
    return np.where(d > 0, -d, np.maximum(p, 0.0))


def top_up(problem: Problem, power: np.ndarray, energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Use spare energy to close per-step shortfalls left by rounding (in place; returns the arrays).

    For every tracked step below its reference, export is raised -- first on
    cars already discharging (more discharge, within the derated limit), then
    on charging cars (less charge), then by switching idle cars on at no less
    than their minimum power -- but only by what each car can spare: after the
    change its energy must stay above its lower bound at every later edge and
    at or above its departure requirement, with all later planned powers
    unchanged. Nothing planned for later steps is taken away, so this never
    hurts another step.
    """
    n, n_t = problem.n_cars, problem.n_steps
    if n == 0:
        return power, energy
    export = -power.sum(axis=0)
    target = np.minimum(np.nan_to_num(problem.ref_kw), problem.x_hi)
    steps = np.flatnonzero(problem.track & (target - export > 1e-6))
    if steps.size == 0:
        return power, energy
    dub = problem.dmax_steps()
    # suffix minimum over edges (t, b_i] of energy above the lower line (floor, promise, departure)
    edges = np.arange(n_t + 1)
    head = np.where(edges[None, :] <= problem.b[:, None], energy - problem.lower, np.inf)
    suffix = np.minimum.accumulate(head[:, ::-1], axis=1)[:, ::-1]
    suffix = np.concatenate([suffix, np.full((n, 1), np.inf)], axis=1)
    used = np.zeros(n)  # energy already taken from each car by earlier top-ups
    for t in steps:
        pt = power[:, t]
        deficit = float(target[t] + pt.sum())
        if deficit <= 1e-6:
            continue
        dt = problem.dt_h[t]
        there = problem.b > t
        slack = np.where(there, suffix[:, t + 1] - used - 1e-7, 0.0)
        slack = np.maximum(slack, 0.0)
        factor = np.where(pt > 0, problem.eta_c, 1.0 / problem.eta_d) * dt
        max_up = np.where(pt > 0, pt, np.where(pt < 0, np.maximum(dub[:, t] + pt, 0.0), 0.0))
        max_up = np.minimum(max_up, slack / factor)
        delta = np.zeros(n)
        for group in (pt < 0, pt > 0):
            room = np.where(group, max_up, 0.0)
            total = float(room.sum())
            if total <= 0 or deficit <= 1e-6:
                continue
            take = room * min(1.0, deficit / total)
            delta += take
            deficit -= float(take.sum())
        if deficit > 1e-6:
            idle = np.flatnonzero((pt == 0) & there & (dub[:, t] > 0))
            cand = np.minimum(dub[idle, t], slack[idle] / factor[idle])
            for k in np.argsort(-cand):
                i = idle[k]
                room_i = min(float(cand[k]), deficit)
                if room_i < max(problem.dmin[i], 1e-3):
                    continue
                delta[i] = room_i
                deficit -= room_i
                if deficit <= 1e-6:
                    break
        if not delta.any():
            continue
        power[:, t] = pt - delta
        used += delta * factor
        energy[:, t + 1 :] -= (delta * factor)[:, None]
    return power, energy


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
