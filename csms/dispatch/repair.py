"""Post-processing of a planned schedule: forward simulation, repair, minimum-power consolidation, top-up.

The LP and the heuristic return a net power matrix ``(n_cars, n_steps)`` in kW
(positive = charge); :func:`repair` then makes the schedule exactly consistent
with the hard guarantees (SoC floor, capacity, the minimum stable discharge
power) by forward simulation. :func:`consolidate_min_power` (before it) and
:func:`top_up` (after it) keep what the minimum power rule would otherwise cost.
"""

from __future__ import annotations

import numpy as np

from csms.dispatch.problem import POWER_EPS_KW, Problem


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
