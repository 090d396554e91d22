"""Perfect foresight with the promise kept at every moment: a bound for planners blind to departures.

A planner that does not know when a driver leaves, and must never leave one
stranded, has to assume the driver may leave at any moment. The benchmark's
stranded rule (``_stranded`` in :mod:`bench.planner`) counts a driver who
leaves at ``t`` below a target they could have reached by charging at full
power from plug-in, with one 5-minute step of allowance. So at every moment
``t`` while the car is plugged in such a planner must hold at least::

    min(target, e_plug + eta_c * max_charge_kw * (t - plugged_in_at - slack))

(at the highest energy charging can reach; the car's own floor when that is
lower): were its energy below that line at ``t``, a driver leaving once the
target had just become reachable would leave short, whatever happens after
``t``. The perfect-foresight LP with that line as a hard lower bound at every
step edge -- it still knows every arrival, departure and SoC in advance --
therefore delivers no worse than any such planner (up to the step
discretisation: the line is checked at the 5-minute edges), and its NAE minus
the plain perfect-foresight NAE is the least regret a zero-stranded planner
blind to departures can reach on the same day.
"""

from __future__ import annotations

import numpy as np

from csms.dispatch.fleet import EventTarget, FleetSnapshot
from csms.dispatch.planner import Plan, build_problem
from csms.dispatch.planner import plan_problem as _plan_problem
from csms.dispatch.problem import Problem

#: Allowance of the stranded rule: a target counts as reachable one 5-minute step after full power
#: from plug-in reaches it (``_stranded`` in :mod:`bench.planner`).
SLACK_H = 5 / 60


def every_moment_problem(problem: Problem, plug_s: np.ndarray, slack_h: float = SLACK_H) -> Problem:
    """``problem`` with every car's promise held from plug-in on (in place; returned for chaining).

    ``plug_s`` is each car's real plug-in time in seconds after ``problem.t0``
    (before ``t0``: clipped to it, the SoC ``e0`` being the one at ``t0``). From
    the car's first available edge to its departure edge its energy must stay
    at or above ``min(promise, e0 + eta_c * cmax * (hours since plug-in - slack_h))``
    (never below its floor ``lb``), where ``promise`` is the full target capped at
    the highest energy charging reaches (``cap``). Everything ``problem`` already
    asks stays (the lower line is raised, never lowered: a car whose target is out
    of reach is still charged to what it can reach), so the result is a
    restriction of ``problem``.
    """
    n_edges = problem.n_steps + 1
    k = np.arange(n_edges)[None, :]
    a, b = problem.a[:, None], problem.b[:, None]
    since_h = (problem.edges_s[None, :] - np.maximum(plug_s, 0.0)[:, None]) / 3600.0
    rate = (problem.eta_c * problem.cmax)[:, None]
    ramp = problem.e0[:, None] + rate * np.maximum(since_h - slack_h, 0.0)
    promise = np.minimum(problem.target_kwh, problem.cap)
    line = np.maximum(problem.lb[:, None], np.minimum(promise[:, None], ramp))
    present = (k >= a) & (k <= b) & (b > a)
    problem.lower = np.maximum(problem.lower, np.where(present, line, problem.lb[:, None]))
    problem.bp = problem.a.copy()
    problem.promise = np.where(problem.b > problem.a, promise, problem.req)
    return problem


def pf_every_moment_plan(
    snapshot: FleetSnapshot,
    target: EventTarget,
    *,
    step_s: float = 300.0,
    tail_step_s: float | None = None,
    slack_h: float = SLACK_H,
) -> Plan:
    """The perfect-foresight LP plan (full formulation) with the promise kept at every moment.

    ``snapshot`` holds every car of the scenario with its real ``departure``
    (no ``earliest_departure``: each car is weighed as present until it leaves)
    and its ``plugged_in_at``; see the module docstring for the bound.
    """
    problem = build_problem(snapshot, target, step_s=step_s, tail_step_s=tail_step_s)
    t0 = snapshot.time
    plug_s = np.array(
        [(c.plugged_in_at - t0).total_seconds() if c.plugged_in_at is not None else 0.0 for c in snapshot.cars],
        dtype=float,
    )
    return _plan_problem(
        every_moment_problem(problem, plug_s, slack_h), method="lp", time_budget_s=3600.0, formulation="full"
    )
