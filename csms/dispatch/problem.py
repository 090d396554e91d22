"""The planning problem of the V2G planner: time grid, per-step references and bounds, per-car limits.

The LP (:mod:`csms.dispatch.planner_lp`) and the greedy heuristic
(:mod:`csms.dispatch.heuristic`) both work on a :class:`Problem`: numpy arrays
describing the time grid, the per-step reference the fleet must track and each
car's limits and energy requirements; :func:`build_problem` builds it from a
fleet snapshot and its event(s).

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

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from csms.dispatch.fleet import EventTarget, FleetSnapshot
from csms.dispatch.targets import TargetSegment, as_segments

#: Tolerance (kWh) used when deciding whether a departure target is reachable.
ENERGY_TOL_KWH = 1e-6
#: Powers below this magnitude (kW) are treated as zero in the output.
POWER_EPS_KW = 1e-6


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
    segments = [s for s in as_segments(target) if s.end > t0]

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
