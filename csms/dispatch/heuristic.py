"""Fast greedy dispatch (numpy, vectorised over cars, one pass over the steps).

Used for very large fleets or when the LP would not finish inside the time
budget. Per step ``t`` it:

1. computes each car's **keep line** (:meth:`Problem.keep_line`): the least
   battery energy from which charging at full power in every remaining step
   still meets the departure requirement. A car below its keep line at the end
   of the step must charge (``mandatory`` charge); this is what guarantees the
   driver's SoC at departure and the floor.
2. on event steps, gives each car a **discharge budget**: energy above the
   larger of its keep line and the keep line at the end of the event block
   (so it recharges only after the event, never inside it), converted to grid
   side. Its power cap this step is ``min(derated max_discharge_kw, budget/dt)``;
   a car whose cap is below its minimum stable discharge power cannot take part.
3. **paces** the fleet: if the present cars' budgets cannot cover the remaining
   target energy of the event block, every step's target is scaled by the same
   factor, so a shortfall is spread flat instead of running dry at the end.
4. allocates the step's need (target plus the fleet's mandatory charging)
   across cars **proportionally to their sustainable power** (budget divided by
   the hours they stay in the event), capped per car (water-filling). Cars that
   would get a non-zero discharge below their minimum stable power are dropped
   and the need re-allocated among the others (a few rounds).
5. outside event steps charges every car as early as possible toward its
   target (respecting the site import limit for the optional part); before an
   event block it also pre-charges every car that can discharge toward what it
   could export in the block (headroom for what the plan cannot see).

The result is passed through :func:`csms.dispatch.repair.repair` like the
LP's, so floor, capacity and minimum-power rules hold exactly.
"""

from __future__ import annotations

import numpy as np

from csms.dispatch.problem import POWER_EPS_KW, Problem

_MIN_POWER_ROUNDS = 6


def _waterfill(need: float, weight: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Split ``need`` proportionally to ``weight``, each share capped at ``cap``.

    Returns ``min(cap, lam * weight)`` with the largest ``lam`` whose total does
    not exceed ``need`` (everything at ``cap`` when the caps sum below ``need``).
    """
    out = np.zeros_like(cap)
    if need <= 0 or cap.size == 0:
        return out
    if cap.sum() <= need:
        return cap.copy()
    w = np.where(cap > 0, np.maximum(weight, 0.0), 0.0)
    if w.sum() <= 0:
        w = cap.copy()
    pos = w > 0
    ratio = np.full(cap.shape, np.inf)
    ratio[pos] = cap[pos] / w[pos]
    order = np.argsort(ratio[pos])
    r_sorted = ratio[pos][order]
    w_sorted = w[pos][order]
    c_sorted = cap[pos][order]
    # total(lam) = sum_{ratio<=lam} cap + lam * sum_{ratio>lam} w ; find the breakpoint where it passes need
    cap_cum = np.concatenate([[0.0], np.cumsum(c_sorted)])
    w_rest = np.concatenate([np.cumsum(w_sorted[::-1])[::-1], [0.0]])
    totals = cap_cum[:-1] + r_sorted * w_rest[:-1]  # total at lam = r_sorted[j]
    j = min(int(np.searchsorted(totals, need, side="left")), totals.size - 1)
    lam = (need - cap_cum[j]) / w_rest[j] if w_rest[j] > 0 else 0.0
    out[pos] = np.minimum(cap[pos], lam * w[pos])
    return out


def _pre_event_goal(
    problem: Problem,
    e: np.ndarray,
    keep: np.ndarray,
    dub: np.ndarray,
    avail: np.ndarray,
    bs: int,
    be: int,
    rows: np.ndarray,
) -> np.ndarray:
    """Energy each car should hold before the event block ``[bs, be)``.

    A car's useful maximum is what it must keep at the end of its time in the
    block plus what it could export there at its (derated) limit. Every car is
    charged toward it, not just enough to close today's gap between the
    fleet's deliverable energy and the block's target: what the plan cannot
    see (cars arriving during the event that must charge, departures earlier
    than modelled) eats into exactly that headroom. Without
    ``problem.precharge_headroom`` only that gap is closed (every car the same
    fraction of the way).
    """
    dt = problem.dt_h
    in_block = avail[:, bs:be]
    hours = in_block @ dt[bs:be]
    potential = (dub[:, bs:be] * in_block) @ dt[bs:be]  # grid-side kWh at full derated power
    last = np.clip(np.minimum(problem.b, be), 0, problem.n_steps)
    keep_end = keep[rows, last]
    useful = np.where(hours > 0, np.minimum(problem.cap, keep_end + potential / problem.eta_d), 0.0)
    room = np.maximum(useful - np.maximum(e, keep_end), 0.0)
    if not problem.precharge_headroom:  # only what closes the gap to the block's target energy
        deliverable = np.minimum(potential, np.maximum(e - keep_end, 0.0) * problem.eta_d)
        need = float(np.sum(np.nan_to_num(problem.ref_kw[bs:be]) * dt[bs:be]))
        gap = need - float(deliverable.sum())
        room_grid = float(np.sum(room * problem.eta_d))
        if gap <= 0 or room_grid <= 0:
            return np.zeros_like(e)
        return np.where(room > 0, np.maximum(e, keep_end) + min(1.0, gap / room_grid) * room, 0.0)
    return np.where(room > 0, np.maximum(e, keep_end) + room, 0.0)


def heuristic_schedule(problem: Problem) -> np.ndarray:
    """Greedy schedule (N, T) in kW, positive = charge (see the module docstring)."""
    n, n_t = problem.n_cars, problem.n_steps
    power = np.zeros((n, n_t))
    if n == 0 or n_t == 0:
        return power
    dt_all = problem.dt_h
    avail = problem.avail()
    keep = problem.keep_line()
    dub_all = problem.dmax_steps()
    eta_c, eta_d = problem.eta_c, problem.eta_d
    cmax, dmin = problem.cmax, problem.dmin
    goal = np.maximum(problem.req, np.minimum(problem.target_kwh, problem.cap))
    cum_h = np.concatenate([[0.0], np.cumsum(dt_all)])
    event = problem.seg_idx >= 0
    tracked = ~np.isnan(problem.ref_kw)

    # event blocks: maximal runs of consecutive event steps
    block_end = np.zeros(n_t, dtype=np.int64)
    t = n_t - 1
    while t >= 0:
        if event[t]:
            end = t + 1
            while t >= 0 and event[t]:
                block_end[t] = end
                t -= 1
        else:
            t -= 1

    # next event block after each step: (start, end) step indices, or (-1, -1)
    next_block = np.full((n_t, 2), -1, dtype=np.int64)
    nb = (-1, -1)
    for t in range(n_t - 1, -1, -1):
        if event[t] and (t == 0 or not event[t - 1]):
            nb = (t, int(block_end[t]))
        next_block[t] = nb
    rows = np.arange(n)

    e = problem.e0.copy()
    for t in range(n_t):
        dt = dt_all[t]
        pres = avail[:, t]
        mand = np.where(pres, np.clip((keep[:, t + 1] - e) / (eta_c * dt), 0.0, cmax), 0.0)
        mand[mand < POWER_EPS_KW] = 0.0
        p = mand.copy()
        if event[t] and tracked[t]:
            be = int(block_end[t])
            last = np.minimum(problem.b, be)  # one past the car's last step in this block
            keep_be = keep[np.arange(n), np.clip(last, 0, n_t)]
            floor_e = np.maximum(keep_be, keep[:, t + 1])
            budget = np.where(pres & (mand == 0), np.maximum(0.0, e - floor_e) * eta_d, 0.0)
            dcap = np.minimum(dub_all[:, t], budget / dt)
            dcap[dcap < np.maximum(dmin, POWER_EPS_KW)] = 0.0
            hours_left = np.maximum(cum_h[np.maximum(last, t + 1)] - cum_h[t], dt)
            sustain = np.minimum(dcap, budget / hours_left)
            ref = float(problem.ref_kw[t])
            if problem.track[t]:
                remaining = float(np.sum(problem.ref_kw[t:be] * dt_all[t:be]))
                fleet_budget = float(np.sum(np.minimum(budget, dub_all[:, t] * hours_left)))
                pace = 1.0 if remaining <= 0 else min(1.0, fleet_budget / remaining)
                level = min(pace * ref, float(problem.x_hi[t]))
            else:  # import limit: only export what keeps the meter under the limit
                level = ref
            need = level + float(mand.sum())
            if not problem.track[t]:
                need = max(0.0, need)
            cap_now = dcap.copy()
            d = _waterfill(need, sustain, cap_now)
            for _ in range(_MIN_POWER_ROUNDS):
                low = (d > 0) & (d < dmin - 1e-9)
                if not low.any():
                    break
                cap_now[low] = 0.0
                d = _waterfill(need, sustain, cap_now)
            d[(d > 0) & (d < dmin - 1e-9)] = 0.0
            p = p - d
        elif not event[t]:
            goal_t = goal
            bs, be = next_block[t]
            if bs > t and tracked[bs]:
                goal_t = np.maximum(goal, _pre_event_goal(problem, e, keep, dub_all, avail, bs, be, rows))
            want = np.where(pres, np.clip((goal_t - e) / (eta_c * dt), 0.0, cmax), 0.0)
            extra = np.maximum(want - mand, 0.0)
            room = -float(problem.x_lo[t]) - float(mand.sum())
            if np.isfinite(room) and extra.sum() > max(room, 0.0):
                extra *= max(room, 0.0) / extra.sum()
            p = mand + extra
        power[:, t] = p
        gain = np.where(p > 0, p * eta_c, p / eta_d) * dt
        e = np.clip(e + gain, problem.lb, problem.cap)
    return power
