"""The perfect-foresight references: the full LP, and the bound with the promise kept at every moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.planner_bound import SLACK_H, pf_every_moment_plan
from csms.dispatch.fleet import CarState, EventTarget, FleetSnapshot
from csms.dispatch.planner import build_problem, perfect_foresight_plan, plan_nae, plan_problem

T0 = datetime(2025, 8, 1, 21, 0, tzinfo=UTC)  # 2 h before the event
START = T0 + timedelta(hours=2)
EVENT = EventTarget.flat(START, START + timedelta(hours=2), 20.0)


def _car(car_id: str, plug_h: float, leave_h: float, soc: float, target: float) -> CarState:
    return CarState(
        car_id=car_id,
        soc=soc,
        capacity_kwh=62.0,
        max_charge_kw=15.0,
        max_discharge_kw=15.0,
        min_discharge_kw=2.0,
        soc_floor=0.2,
        target_soc=target,
        departure=T0 + timedelta(hours=leave_h),
        plugged_in_at=T0 + timedelta(hours=plug_h),
    )


def _fleet() -> FleetSnapshot:
    """Two full cars carry the first event hour and leave; the car arriving with the event must carry the second.

    ``late`` arrives at its floor, so it can only export in the second hour what it charged in the
    first; ``ramp`` arrives mid-event below its target and stays long.
    """
    cars = [
        _car("full1", 0.0, 3.0, 0.9, 0.3),
        _car("full2", 0.0, 3.0, 0.9, 0.3),
        _car("late", 2.0, 6.0, 0.2, 0.2),
        _car("ramp", 2.5, 8.0, 0.3, 0.6),
    ]
    return FleetSnapshot(time=T0, cars=cars)


def test_perfect_foresight_charges_an_arrival_mid_event_to_export_later() -> None:
    snap = _fleet()
    compact = plan_problem(build_problem(snap, EVENT, step_s=300.0, tail_step_s=300.0), method="lp")
    pf = perfect_foresight_plan(snap, EVENT, tail_step_s=300.0)
    late = pf.index("late")
    first, second = slice(24, 36), slice(36, 48)  # 5-minute steps of the two event hours
    assert pf.power_kw[late, first].max() > 1.0  # charges while the full cars carry the target
    assert pf.power_kw[late, second].min() < -1.0  # and exports once they are gone
    assert plan_nae(pf, 300.0) < plan_nae(compact, 300.0) - 0.1


def test_every_moment_bound_is_a_restriction_of_perfect_foresight() -> None:
    snap = _fleet()
    pf = perfect_foresight_plan(snap, EVENT, tail_step_s=300.0)
    bound = pf_every_moment_plan(snap, EVENT, step_s=300.0, tail_step_s=300.0)
    assert plan_nae(bound, 300.0) > plan_nae(pf, 300.0) + 0.01
    # "ramp" holds min(target, charging at full power since plug-in, one step late) at every edge
    i = bound.index("ramp")
    car = snap.cars[3]
    edges = [bound.step_starts[0], *bound.step_ends]
    plug = car.plugged_in_at
    assert plug is not None
    for k, t in enumerate(edges):
        if not plug <= t <= car.departure:
            continue
        since_h = (t - plug).total_seconds() / 3600 - SLACK_H
        line = min(car.target_soc, car.soc + 0.9 * 15.0 * max(since_h, 0.0) / 62.0)
        assert bound.soc[i, k] >= line - 1e-6, (k, t)
    # while plain perfect foresight leaves it below that line during the event (it charges after)
    k_end = edges.index(START + timedelta(hours=2))
    assert pf.soc[pf.index("ramp"), k_end] < car.target_soc - 0.05
