"""Property tests of the V2G planner: driver guarantees and limits hold for random fleets."""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.dispatch.fleet import EventTarget, FleetSnapshot
from csms.dispatch.planner import plan
from tests.dispatch.planner_support import T0, cars_strategy, check_guarantees

SETTINGS = settings(
    max_examples=int(os.environ.get("PLANNER_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SETTINGS
@given(
    cars=cars_strategy(),
    per_car_kw=st.sampled_from([0.5, 3.0, 12.0]),
    lead_min=st.sampled_from([0, 45]),
    reserve=st.sampled_from([0.0, 0.1]),
    method=st.sampled_from(["lp", "heuristic"]),
)
def test_guarantees_single_event(cars, per_car_kw, lead_min, reserve, method) -> None:
    """Floor, departure SoC, power limits and minimum discharge hold (compact LP and heuristic)."""
    snap = FleetSnapshot(time=T0, cars=cars)
    start = T0 + timedelta(minutes=lead_min)
    ev = EventTarget.flat(start, start + timedelta(hours=5), per_car_kw * len(cars), reserve_margin=reserve)
    p = plan(snap, ev, step_s=300, method=method)
    assert p.method == method
    check_guarantees(snap, p, reserve)


@SETTINGS
@given(
    cars=cars_strategy(max_cars=25),
    import_limit=st.sampled_from([None, 60.0]),
    method=st.sampled_from(["lp", "heuristic"]),
)
def test_guarantees_split_events_and_limits(cars, import_limit, method) -> None:
    """Two disjoint events with a site import limit take the full LP path; the guarantees still hold."""
    snap = FleetSnapshot(time=T0, cars=cars, site_import_limit_kw=import_limit, site_export_limit_kw=80.0)
    events = [
        EventTarget.flat(T0 + timedelta(minutes=10), T0 + timedelta(hours=1), 40.0, priority=1),
        EventTarget.flat(T0 + timedelta(hours=2), T0 + timedelta(hours=3), 120.0, priority=0),
    ]
    p = plan(snap, events, step_s=300, method=method)
    check_guarantees(snap, p, shared_limit=import_limit is not None)
    # the site export limit is never exceeded
    assert max(p.export_kw) <= 80.0 + 1e-6


@settings(max_examples=6, deadline=None)
@given(cars=cars_strategy(min_cars=5, max_cars=20))
def test_replanning_after_partial_discharge(cars) -> None:
    """Executing the first steps and replanning from the new state keeps every guarantee."""
    snap = FleetSnapshot(time=T0, cars=cars)
    ev = EventTarget.flat(T0, T0 + timedelta(hours=3), 4.0 * len(cars))
    first = plan(snap, ev, step_s=300, method="lp")
    now = first.step_ends[2]
    moved = []
    for car in cars:
        soc = float(first.soc[first.index(car.car_id), 3])
        if car.departure > now:
            moved.append(car.model_copy(update={"soc": min(1.0, max(0.0, soc))}))
    snap2 = FleetSnapshot(time=now, cars=moved)
    second = plan(snap2, ev, step_s=300, method="lp")
    check_guarantees(snap2, second)
