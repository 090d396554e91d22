"""Linear-programming dispatch (HiGHS via ``highspy``).

Two equivalent formulations are built with numpy arrays and passed to HiGHS in
one call (``passModel`` of a row-wise ``HighsLp``).

Full formulation (all powers grid side, kW; energies kWh; ``dt`` step length, h)
-------------------------------------------------------------------------------
Variables, for every car ``i`` and every step ``t`` it is available for:

* ``c[i,t] in [0, max_charge_kw]`` charging power;
* ``d[i,t] in [0, (1 - r_t) * max_discharge_kw]`` discharging power, only on
  event steps and only for cars allowed to discharge (not below their floor,
  not infeasible-need); ``r_t`` is the event's reserve margin;
* ``e[i,t] in [floor_i, capacity_i]`` battery energy at the end of the step.

Per step: ``X[t] in [x_lo, x_hi]`` net fleet export (hard bounds from the site
limits and the event's ``max_kw`` / no-overshoot cap); ``su[t], so[t] >= 0`` the
shortfall / overshoot against the step's reference (the shortfall in 8 pieces); per car a
departure slack ``u[i] >= 0`` and four fairness pieces ``y[i,k]``.

Constraints::

    e[i,t] = e[i,t-1] + eta_c * c[i,t] * dt - d[i,t] / eta_d * dt      (e[i,a_i - 1] = e0_i)
    X[t]   = sum_i d[i,t] - sum_i c[i,t]
    X[t] + su[t] - so[t] = ref[t]                                     (steps with a reference)
    su[t] = sum_k su[t,k],  su[t,k] <= ref[t] / 8 (k < 7)                (tracked steps, ref > 0)
    e[i, last_i] + u[i] >= req_i                                      (departure / horizon end)
    sum_t d[i,t] * dt = sum_k y[i,k],   0 <= y[i,k] <= A_i / 4 (k < 3)

Objective (minimise)::

    sum_t dt * (w_under[t] * su[t] + w_over[t] * so[t])               tracking |ref - X|, weight 1
    + 1e3 * sum_i u[i]                                                driver guarantee (soft only so
                                                                      the LP is always feasible)
    + 1e-3 * sum (c + d) * dt                                         wear: no needless cycling
    + 1e-4 * sum c * dt * t / T                                       charge as early as possible
    + 1e-3 * sum_i sum_k (k+1)/4 * y[i,k]                             spread discharge across cars
                                                                      proportionally to available
                                                                      energy A_i (convex piecewise)
    + 1e-3 * sum_t dt * sum_k (k+1)/8 * su[t,k]                       spread any shortfall flat
    - 2e-3 * sum_i r[i]                                               reserve: energy held at the
                                                                      start of the first event block

``r[i] <= e[i, s0-1] - e0_i``, capped at what lets the car discharge at its
derated limit through its block steps and still keep its keep line: every
car that can discharge is pre-charged toward what it could export, not just
to what the current plan needs. Replanned online, the plan cannot see cars
that arrive during the event and must charge, nor departures earlier than
modelled; a plan that pre-charged only its own needs has nothing left to
cover them (on the Caltech benchmark at 1 kW per car this was the whole
regret against perfect foresight: +0.167 -> +0.007).

``req_i`` is the promised departure energy, lowered to what charging at full
power can reach when the promise is infeasible (the car then gets no
discharge and is reported in ``Plan.infeasible_need``).

Compact formulation (used whenever it is exact)
-----------------------------------------------
The full model has ~3 columns and an energy chain per car-step; simplex then
needs about one pivot per car-step (15k pivots for 200 cars x 96 steps, >1 s).
When the events form one contiguous block of tracked (export / load
reduction) steps and no site import limit binds outside it, the same optimum
is found with one row per car and no energy variables:

* outside the block a car only charges, and when it does so does not matter to
  the objective beyond the "early" tie-break, so per-car totals replace the
  per-step charging variables;
* inside the block a car either only discharges or only charges: a car that
  can reach its departure requirement by charging outside the block never
  charges inside it (charging during a tracked step costs tracking error one
  for one, and a discharge-then-recharge cycle inside the block loses
  ``1 - eta_c * eta_d`` of the energy), and a car that cannot (a "charger")
  never discharges (it would have to recharge even more inside the block).
  A discharging car's energy therefore falls monotonically through the block,
  so the floor and the departure requirement both reduce to one bound on the
  energy left at its last block step::

      K_i = max(floor_i, req_i - eta_c * max_charge_kw_i * hours available after the block)

  Discharging car without a pre-block charging window (the usual case once the
  event has started): ``sum_t d[i,t] * dt <= (e0_i - K_i) * eta_d`` is a
  constant budget, expressed as the upper bounds of its four fairness pieces
  (the fairness row is its only row). With a window, a pre-charge column
  ``C_pre`` (at most ``max_charge_kw`` x hours before the block, and up to
  capacity) adds the row ``sum_t d[i,t] * dt / eta_d - eta_c * C_pre <= e0_i - K_i``.
  Its discharge cost includes the recharge it may cause, ``1e-3 * (1 + 1/(eta_c eta_d))``;
  ``C_pre`` carries the reserve reward, bounded at what the car could export in the block.

  Charger: ``eta_c * (C_pre + sum_t c[i,t] * dt + C_post) + u[i] >= req_i - e0_i``.

The schedule is rebuilt by charging ``C_pre`` (or, for cars with no decision
to make, what they need) as early as possible before the block and what the
departure still needs as early as possible after it. Otherwise (several
disjoint events, import-limit events, a binding site import limit) the full
formulation is used. Tests check both give the same tracking error.

Not exact in one case the argument above misses: while the target is met with discharge power
to spare, a car may charge inside the block (others discharging more, no tracking cost) and
export that energy later, when the fleet's discharge power binds -- a car arriving during the
event, or any car once the event has started (no pre-block window). The compact model cannot
plan that; :func:`csms.dispatch.planner.perfect_foresight_plan` therefore always uses the full
one (on the Caltech benchmark the compact optimum was 0.07 NAE worse on average over the
dev days at 0.5 kW/car, issue 18).

Solver: dual simplex for small models; above ``IPM_MIN_COLS`` columns HiGHS'
interior point (IPX) with crossover, which returns a vertex like simplex but is
3-5x faster and much steadier on these transportation-like LPs (1,000 cars x
60 steps: ~0.8 s instead of 1-7 s).

Minimum stable discharge power
------------------------------
``d = 0 or d >= min`` is non-convex. A vertex solution leaves few discharges
below the minimum: typically one "remainder" step of a car whose energy budget
binds. They are post-processed in :mod:`csms.dispatch.repair`:
:func:`~csms.dispatch.repair.consolidate_min_power` moves each remainder
to a step where the same car already discharges and swaps an equal amount of
a partner car the other way (totals per car and per step unchanged, so the
LP optimum is kept); :func:`~csms.dispatch.repair.repair` sets what is
left to 0 (which only raises SoC paths); and
:func:`~csms.dispatch.repair.top_up` re-assigns the export lost that way
to cars with spare energy. Optionally (``MIN_POWER_ROUNDS`` > 0) the LP is
first re-solved from its basis with the remainders rounded -- to 0 below half
the minimum, up to the minimum otherwise -- undoing any round that is
infeasible or costs a driver energy; measured on 1,000-car fleets this changed
the delivered energy by <0.01 % at 4x the time, so it is off by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import highspy
import numpy as np

from csms.dispatch.lp_builder import LpBuilder
from csms.dispatch.problem import Problem

MIN_POWER_ROUNDS = 0
W_DEPARTURE = 1e3
#: Reward per battery kWh held at the start of an event block, up to what the car could
#: discharge in it (pre-charging headroom; net of the throughput cost it is still a reward).
W_RESERVE = 2e-3
W_THROUGHPUT = 1e-3
W_EARLY = 1e-4
W_FAIR = 1e-3
W_FLAT = 1e-3
N_FAIR = 4
N_SHORT = 8
#: Above this many columns the interior-point solver (with crossover to a vertex) is used:
#: on these transportation-like LPs dual simplex needs ~one pivot per car-step and its
#: time varies 5x with the data, while IPX + crossover stays around a second for 1,000 x 60.
IPM_MIN_COLS = 8000


@dataclass
class LPResult:
    """Outcome of :func:`solve_lp`: net power matrix (None when not solved), status and timing."""

    power: np.ndarray | None
    status: str
    optimal: bool
    solve_time_s: float
    notes: list[str]
    formulation: str


@dataclass
class _Model:
    """An LP plus what the solve loop needs to know about it."""

    builder: LpBuilder
    d_cols: np.ndarray  # discharge columns
    d_min: np.ndarray  # their minimum stable power
    u_cols: np.ndarray  # departure slack columns
    extract: Callable[[np.ndarray], np.ndarray]  # solution -> (N, T) net power
    name: str


def _tracking_block(b: LpBuilder, problem: Problem, steps: np.ndarray) -> np.ndarray:
    """Columns X[t] and the shortfall / overshoot slacks with their rows; returns each step's balance row.

    On tracked steps the shortfall is split into ``N_SHORT`` pieces of
    ``ref / N_SHORT`` with slightly increasing costs (the last piece unbounded),
    a convex penalty that spreads an unavoidable shortfall evenly over the steps
    instead of concentrating it (flat, predictable delivery).
    """
    dt = problem.dt_h
    x = b.cols(steps.size, 0.0, problem.x_lo[steps], problem.x_hi[steps])
    bal = b.rows(steps.size, 0.0, 0.0)
    b.coef(bal, x, -1.0)
    has_ref = ~np.isnan(problem.ref_kw[steps])
    rs = steps[has_ref]
    ref = problem.ref_kw[rs]
    rr = b.rows(rs.size, ref, ref)
    b.coef(rr, x[has_ref], 1.0)
    so = b.cols(rs.size, problem.w_over[rs] * dt[rs])
    b.coef(rr, so, -1.0)
    flat = problem.track[rs] & (ref > 0) & (W_FLAT > 0)
    plain = np.flatnonzero(~flat)
    su = b.cols(plain.size, problem.w_under[rs[plain]] * dt[rs[plain]])
    b.coef(rr[plain], su, 1.0)
    fl = np.flatnonzero(flat)
    if fl.size:
        k = np.arange(N_SHORT)
        cost = (problem.w_under[rs[fl]] * dt[rs[fl]])[:, None] * (1.0 + W_FLAT * (k[None, :] + 1) / N_SHORT)
        hi = np.repeat((ref[fl] / N_SHORT)[:, None], N_SHORT, axis=1)
        hi[:, -1] = np.inf
        pieces = b.cols(fl.size * N_SHORT, cost.ravel(), 0.0, hi.ravel())
        b.coef(np.repeat(rr[fl], N_SHORT), pieces, 1.0)
    return bal


def _fairness(b: LpBuilder, problem: Problem, d_cols: np.ndarray, d_car: np.ndarray, d_dt: np.ndarray) -> None:
    """Convex piecewise penalty on each car's discharged energy relative to what it has available."""
    if d_cols.size == 0:
        return
    cars, q_of = np.unique(d_car, return_inverse=True)
    ev_h = np.bincount(q_of, weights=d_dt)  # hours the car may discharge
    own = np.maximum(problem.e0[cars] - problem.lb[cars], 0.0) * problem.eta_d[cars]
    avail = np.maximum(0.1, np.minimum(own, problem.dmax[cars] * ev_h))
    n_q = cars.size
    hi = np.repeat(avail / N_FAIR, N_FAIR)
    hi[N_FAIR - 1 :: N_FAIR] = np.inf
    y = b.cols(N_FAIR * n_q, np.tile(W_FAIR * (np.arange(N_FAIR) + 1) / N_FAIR, n_q), 0.0, hi)
    fr = b.rows(n_q, 0.0, 0.0)
    b.coef(fr[q_of], d_cols, d_dt)
    b.coef(np.repeat(fr, N_FAIR), y, -1.0)


def _pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(car, step) pairs for per-car step ranges ``[a_i, b_i)``; also the offset of each car's first pair."""
    n_i = np.maximum(b - a, 0)
    k = int(n_i.sum())
    offsets = np.concatenate([[0], np.cumsum(n_i)])[:-1]
    car = np.repeat(np.arange(a.size), n_i)
    step = a[car] + (np.arange(k) - offsets[car])
    return car, step, offsets


def _margin(problem: Problem, cars: np.ndarray) -> np.ndarray:
    """Tiny safety margin on departure rows (never beyond what is reachable)."""
    return np.clip(problem.reachable[cars] - problem.req[cars], 0.0, 1e-6)


def first_block(problem: Problem) -> tuple[int, int] | None:
    """Steps ``[s0, s1)`` of the first contiguous run of tracked event steps, or None."""
    tr = np.flatnonzero(problem.track & (problem.seg_idx >= 0))
    if tr.size == 0:
        return None
    s0 = int(tr[0])
    gaps = np.flatnonzero(np.diff(tr) != 1)
    s1 = int(tr[gaps[0]]) + 1 if gaps.size else int(tr[-1]) + 1
    return s0, s1


def _reserve(b: LpBuilder, problem: Problem, e: np.ndarray, offsets: np.ndarray) -> None:
    """Full model: reward energy held at the start of the first event block (see ``W_RESERVE``).

    Per car available before and at the block start, a column ``r_i <= e[i, s0-1] - e0_i``
    capped at the energy that would let it discharge at its derated limit through its
    block steps and still keep its keep line at the end of them.
    """
    blk = first_block(problem)
    if blk is None or blk[0] == 0 or not problem.precharge_headroom:
        return
    s0, s1 = blk
    dub = problem.dmax_steps()[:, s0:s1]
    useful = dub @ problem.dt_h[s0:s1] / problem.eta_d
    cars = np.flatnonzero((problem.a < s0) & (problem.b > s0) & (useful > 0))
    if cars.size == 0:
        return
    keep = problem.keep_line()[cars, np.minimum(problem.b[cars], s1)]
    hi = np.clip(keep + useful[cars] - problem.e0[cars], 0.0, problem.cap[cars] - problem.e0[cars])
    r = b.cols(cars.size, -W_RESERVE, 0.0, np.maximum(hi, 0.0))
    rows = b.rows(cars.size, -np.inf, -problem.e0[cars])
    b.coef(rows, r, 1.0)
    b.coef(rows, e[offsets[cars] + (s0 - 1 - problem.a[cars])], -1.0)


def _full_model(problem: Problem) -> _Model:
    n, n_t = problem.n_cars, problem.n_steps
    dt = problem.dt_h
    b = LpBuilder()
    car, step, offsets = _pairs(problem.a, problem.b)
    k = car.size
    n_i = np.maximum(problem.b - problem.a, 0)
    present = np.flatnonzero(n_i > 0)
    dub = problem.dmax_steps()[car, step]
    pd = np.flatnonzero(dub > 0)
    mid = (np.cumsum(dt) - 0.5 * dt) / max(float(dt.sum()), 1e-9)

    c = b.cols(k, W_THROUGHPUT * dt[step] + W_EARLY * dt[step] * mid[step], 0.0, problem.cmax[car])
    d = b.cols(pd.size, W_THROUGHPUT * dt[step[pd]], 0.0, dub[pd])
    e = b.cols(k, 0.0, problem.lb[car], problem.cap[car])
    first = np.zeros(k, dtype=bool)
    first[offsets[present]] = True
    dyn = b.rows(k, np.where(first, problem.e0[car], 0.0), np.where(first, problem.e0[car], 0.0))
    b.coef(dyn, e, 1.0)
    b.coef(dyn[~first], e[np.flatnonzero(~first) - 1], -1.0)
    b.coef(dyn, c, -problem.eta_c[car] * dt[step])
    b.coef(dyn[pd], d, dt[step[pd]] / problem.eta_d[car[pd]])
    bal = _tracking_block(b, problem, np.arange(n_t))
    b.coef(bal[step], c, -problem.presence[car, step])
    b.coef(bal[step[pd]], d, problem.presence[car[pd], step[pd]])
    u = b.cols(present.size, W_DEPARTURE)
    dep = b.rows(present.size, problem.req[present] + _margin(problem, present), np.inf)
    b.coef(dep, e[offsets[present] + n_i[present] - 1], 1.0)
    b.coef(dep, u, 1.0)
    # earliest departures: e >= lower on the edges from bp to b (soft through the same slack u)
    u_of = np.full(n, -1, dtype=np.int64)
    u_of[present] = np.arange(present.size)
    edge = step + 1
    prom = np.flatnonzero(
        (edge >= problem.bp[car]) & (problem.bp[car] < problem.b[car]) & (problem.lower[car, edge] > problem.lb[car])
    )
    if prom.size:
        pr = b.rows(prom.size, problem.lower[car[prom], edge[prom]], np.inf)
        b.coef(pr, e[prom], 1.0)
        b.coef(pr, u[u_of[car[prom]]], 1.0)
    _fairness(b, problem, d, car[pd], dt[step[pd]])
    _reserve(b, problem, e, offsets)

    def extract(sol: np.ndarray) -> np.ndarray:
        p = np.zeros((n, n_t))
        p[car, step] = sol[c]
        p[car[pd], step[pd]] -= sol[d]
        return p

    return _Model(b, d, problem.dmin[car[pd]], u, extract, "full")


def compact_applicable(problem: Problem) -> bool:
    """True when the compact formulation is exact for ``problem`` (see the module docstring)."""
    ev = np.flatnonzero(problem.seg_idx >= 0)
    if ev.size == 0 or ev[-1] - ev[0] + 1 != ev.size:
        return False
    if not np.all(problem.track[ev]):
        return False
    outside = problem.seg_idx < 0
    total_charge = float(problem.cmax.sum())
    # a car that may leave before its modelled departure while still below its requirement
    # has a ramp to follow (charge at full power until it is there): only the full model has it
    early = (problem.bp < problem.b) & (problem.e0 < problem.promise - 1e-9)
    return bool(np.all(problem.x_lo[outside] <= -total_charge - 1e-9)) and not bool(early.any())


def _asap(amount: np.ndarray, window: np.ndarray, rate: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Spread ``amount`` kWh per car over the ``window`` (N, T) steps as early as possible at ``rate`` kW."""
    cap_e = window * rate[:, None] * dt[None, :]
    before = np.cumsum(cap_e, axis=1) - cap_e
    energy = np.clip(amount[:, None] - before, 0.0, cap_e)
    return np.where(window, energy / dt[None, :], 0.0)


def _compact_model(problem: Problem) -> _Model:
    n, n_t = problem.n_cars, problem.n_steps
    dt = problem.dt_h
    cum_h = np.concatenate([[0.0], np.cumsum(dt)])
    ev = np.flatnonzero(problem.seg_idx >= 0)
    s0, s1 = int(ev[0]), int(ev[-1]) + 1
    a, bb = problem.a, problem.b
    pre_end = np.clip(np.minimum(bb, s0), 0, n_t)
    post_start = np.clip(np.maximum(a, s1), 0, n_t)
    pre_h = np.maximum(cum_h[pre_end] - cum_h[a], 0.0)
    post_h = np.maximum(cum_h[bb] - cum_h[post_start], 0.0)
    ea, eb = np.maximum(a, s0), np.minimum(bb, s1)
    present = np.flatnonzero(bb > a)
    eta_c, eta_d, cmax = problem.eta_c, problem.eta_d, problem.cmax
    pre_max = np.minimum(cmax * pre_h, np.maximum(problem.cap - problem.e0, 0.0) / eta_c)
    e_nonev = np.minimum(problem.cap, problem.e0 + eta_c * pre_max + eta_c * cmax * post_h)
    charger = (problem.req > e_nonev + 1e-9) & (eb > ea)
    # least energy a non-charger must keep at the end of its block steps (floor, or what
    # charging at full power after the block cannot add before departure)
    # (charging after the block counts only until the earliest departure)
    post_h_req = np.maximum(cum_h[np.maximum(problem.bp, post_start)] - cum_h[post_start], 0.0)
    keep_end = np.maximum(problem.lb, problem.promise - eta_c * cmax * post_h_req + _margin(problem, np.arange(n)))
    budget = (problem.e0 - keep_end) * eta_d  # grid-side energy dischargeable without pre-charging
    with_pre = pre_max > 1e-9

    b = LpBuilder()
    car, step, _ = _pairs(ea, eb)
    dub = problem.dmax_steps()[car, step]
    can = ~charger & ((budget > 1e-9) | with_pre)
    pd = np.flatnonzero((dub > 0) & can[car])
    pc = np.flatnonzero(charger[car])
    mid = (np.cumsum(dt) - 0.5 * dt) / max(float(dt.sum()), 1e-9)
    horizon = max(float(cum_h[-1]), 1e-9)
    pre_mid = 0.5 * (cum_h[a] + cum_h[pre_end]) / horizon
    post_mid = 0.5 * (cum_h[post_start] + cum_h[bb]) / horizon

    # discharge also pays for the recharge it will (at worst) cause
    d_cost = W_THROUGHPUT * dt[step[pd]] * (1.0 + 1.0 / (eta_c[car[pd]] * eta_d[car[pd]]))
    d = b.cols(pd.size, d_cost, 0.0, dub[pd])
    c = b.cols(pc.size, W_THROUGHPUT * dt[step[pc]] + W_EARLY * dt[step[pc]] * mid[step[pc]], 0.0, cmax[car[pc]])

    # discharging cars: fairness pieces y (sum y = discharged grid-side energy); without a
    # pre-charging window their budget is a constant and becomes the bounds of the pieces
    dcars, q_of = np.unique(car[pd], return_inverse=True)
    n_q = dcars.size
    ev_h = np.bincount(q_of, weights=dt[step[pd]], minlength=n_q)
    pre_q = with_pre[dcars]
    bud_q = np.maximum(budget[dcars], 0.0)
    scale = np.maximum(np.where(pre_q, np.minimum(np.maximum(bud_q, 0.1), problem.dmax[dcars] * ev_h), bud_q), 1e-9)
    y_hi = np.repeat(scale / N_FAIR, N_FAIR)
    y_hi[N_FAIR - 1 :: N_FAIR] = np.where(pre_q, np.inf, scale / N_FAIR)
    y = b.cols(N_FAIR * n_q, np.tile(W_FAIR * (np.arange(N_FAIR) + 1) / N_FAIR, n_q), 0.0, y_hi)
    fr = b.rows(n_q, 0.0, 0.0)
    b.coef(fr[q_of], d, dt[step[pd]])
    b.coef(np.repeat(fr, N_FAIR), y, -1.0)
    # ... with a pre-charging window: sum d*dt/eta_d - eta_c*C_pre <= e0 - keep_end
    pq = np.flatnonzero(pre_q)
    pre_cars = dcars[pq]
    # reserve: pre-charge every discharging car up to what it could export in the block (at its
    # derated limit), not just what today's plan needs -- headroom for what the plan cannot see
    # (arrivals that must charge during the event, departures earlier than modelled)
    useful = problem.dmax_steps()[pre_cars, s0:s1] @ dt[s0:s1] / eta_d[pre_cars]
    short_of_useful = np.maximum(useful - (problem.e0 - keep_end)[pre_cars], 0.0)
    pre_hi = np.minimum(pre_max[pre_cars], short_of_useful / eta_c[pre_cars])
    pre_cost = W_THROUGHPUT + W_EARLY * pre_mid[pre_cars]
    if problem.precharge_headroom:
        pre_cost = pre_cost - W_RESERVE * eta_c[pre_cars]
    else:
        pre_hi = pre_max[pre_cars]
    c_pre_d = b.cols(pq.size, pre_cost, 0.0, np.maximum(pre_hi, 0.0))
    br = b.rows(pq.size, -np.inf, problem.e0[pre_cars] - keep_end[pre_cars])
    row_of_q = np.full(n_q, -1, dtype=np.int64)
    row_of_q[pq] = np.arange(pq.size)
    sel = pre_q[q_of]
    b.coef(br[row_of_q[q_of[sel]]], d[sel], dt[step[pd[sel]]] / eta_d[car[pd[sel]]])
    b.coef(br, c_pre_d, -eta_c[pre_cars])

    # chargers: eta_c * (C_pre + sum c*dt + C_post) + u >= req - e0
    ccars, qc_of = np.unique(car[pc], return_inverse=True)
    c_pre_c = b.cols(ccars.size, W_THROUGHPUT + W_EARLY * pre_mid[ccars], 0.0, pre_max[ccars])
    c_post_c = b.cols(ccars.size, W_THROUGHPUT + W_EARLY * post_mid[ccars], 0.0, cmax[ccars] * post_h[ccars])
    u = b.cols(ccars.size, W_DEPARTURE)
    dep = b.rows(ccars.size, problem.req[ccars] - problem.e0[ccars] + _margin(problem, ccars), np.inf)
    b.coef(dep, c_pre_c, eta_c[ccars])
    b.coef(dep, c_post_c, eta_c[ccars])
    b.coef(dep, u, 1.0)
    b.coef(dep[qc_of], c, eta_c[car[pc]] * dt[step[pc]])

    bal = _tracking_block(b, problem, np.arange(s0, s1))
    b.coef(bal[step[pc] - s0], c, -problem.presence[car[pc], step[pc]])
    b.coef(bal[step[pd] - s0], d, problem.presence[car[pd], step[pd]])

    steps = np.arange(n_t)
    avail = (steps[None, :] >= a[:, None]) & (steps[None, :] < bb[:, None])
    pre_win = avail & (steps[None, :] < s0)
    post_win = avail & (steps[None, :] >= s1)
    others = np.setdiff1d(present, np.concatenate([pre_cars, ccars]))

    def extract(sol: np.ndarray) -> np.ndarray:
        out = np.zeros((n, n_t))
        out[car[pc], step[pc]] = sol[c]
        out[car[pd], step[pd]] = -sol[d]
        pre = np.zeros(n)
        post = np.zeros(n)
        pre[pre_cars] = sol[c_pre_d]
        pre[ccars] = sol[c_pre_c]
        post[ccars] = sol[c_post_c]
        # cars without a pre-charge decision charge what they need as early as possible
        need = np.maximum(problem.req[others] + _margin(problem, others) - problem.e0[others], 0.0) / eta_c[others]
        pre[others] = np.minimum(need, pre_max[others])
        # after the block, charge what the departure still needs
        gain = np.where(out > 0, out * eta_c[:, None], out / eta_d[:, None]) * dt[None, :]
        e_end = problem.e0 + eta_c * pre + gain[:, s0:s1].sum(axis=1)
        need_post = np.maximum(problem.promise + _margin(problem, np.arange(n)) - e_end, 0.0) / eta_c
        post = np.where(np.isin(np.arange(n), ccars), post, np.minimum(need_post, cmax * post_h))
        out += _asap(pre, pre_win, cmax, dt) + _asap(post, post_win, cmax, dt)
        return out

    return _Model(b, d, problem.dmin[car[pd]], u, extract, "compact")


def solve_lp(
    problem: Problem,
    *,
    time_budget_s: float | None = None,
    threads: int | None = None,
    formulation: str = "auto",
) -> LPResult:
    """Build and solve the LP (compact when exact, else full); returns the net power matrix (N, T).

    ``formulation`` may force ``"full"`` or ``"compact"`` (the latter only when
    :func:`compact_applicable`).
    """
    t_start = time.perf_counter()
    use_compact = formulation != "full" and compact_applicable(problem)
    model = _compact_model(problem) if use_compact else _full_model(problem)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if model.builder.n_col > IPM_MIN_COLS:
        h.setOptionValue("solver", "ipm")
        h.setOptionValue("run_crossover", "on")
    if threads:
        h.setOptionValue("threads", int(threads))
    if time_budget_s is not None:
        h.setOptionValue("time_limit", max(0.05, float(time_budget_s) - (time.perf_counter() - t_start)))
    h.passModel(model.builder.lp())
    h.run()
    notes: list[str] = []
    optimal = highspy.HighsModelStatus.kOptimal
    if h.getModelStatus() != optimal:
        status = h.modelStatusToString(h.getModelStatus())
        return LPResult(None, status, False, time.perf_counter() - t_start, notes, model.name)

    def solution() -> np.ndarray:
        return np.asarray(h.getSolution().col_value)

    sol = solution()
    d_cols, d_min = model.d_cols, model.d_min
    d_hi = model.builder.col_upper()[d_cols] if d_cols.size else np.zeros(0)
    try_up = True
    if d_cols.size and np.any(d_min > 0):
        for rnd in range(MIN_POWER_ROUNDS):
            dv = sol[d_cols]
            viol = (dv > 1e-6) & (dv < d_min - 1e-6)
            if not viol.any():
                break
            u_before = float(sol[model.u_cols].sum())
            up = viol & (dv >= 0.5 * d_min) if try_up else np.zeros_like(viol)
            off = np.flatnonzero(viol & ~up)
            on = np.flatnonzero(up)
            idx = np.concatenate([off, on])
            new_lo = np.concatenate([np.zeros(off.size), d_min[on]])
            new_hi = np.concatenate([np.zeros(off.size), d_hi[on]])
            h.changeColsBounds(idx.size, d_cols[idx].astype(np.int32), new_lo, new_hi)
            h.setOptionValue("solver", "simplex")  # warm start from the current basis
            h.run()
            ok = h.getModelStatus() == optimal and float(solution()[model.u_cols].sum()) <= u_before + 1e-6
            if not ok and on.size:
                zeros = np.zeros(on.size)
                h.changeColsBounds(on.size, d_cols[on].astype(np.int32), zeros, zeros)
                h.run()
                ok = h.getModelStatus() == optimal
                try_up = False
                notes.append(f"min-power round {rnd + 1}: rounding up undone, {on.size} discharges set to 0")
            if not ok:
                notes.append("min-power re-solve failed; residual small discharges zeroed by repair")
                break
            sol = solution()
        else:
            if MIN_POWER_ROUNDS:
                notes.append("min-power rounding hit the round limit; residual small discharges zeroed by repair")
    status = h.modelStatusToString(h.getModelStatus())
    return LPResult(model.extract(sol), status, True, time.perf_counter() - t_start, notes, model.name)
