"""Departure model, the promise kept from an earliest departure, and presence-weighted planning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from csms.dispatch.departure import DepartureModel, SessionRecord
from csms.dispatch.fleet import CarState, EventTarget, FleetSnapshot
from csms.dispatch.planner import plan
from csms.dispatch.problem import build_problem
from tests.dispatch.planner_support import T0, check_guarantees, online_loop

LA = ZoneInfo("America/Los_Angeles")


def sessions(n_days: int = 40) -> list[SessionRecord]:
    """Weekday mornings: arrivals at 08:xx staying 6, 8 or 10 h (equal shares); one Saturday noon arrival per week."""
    out = []
    day0 = datetime(2019, 5, 6, tzinfo=LA)  # a Monday
    for d in range(n_days):
        day = day0 + timedelta(days=d)
        if day.weekday() < 5:
            for k, stay in enumerate((6.0, 8.0, 10.0) * 4):
                arr = day + timedelta(hours=8, minutes=4 * k)
                out.append(SessionRecord(arrival=arr, departure=arr + timedelta(hours=stay), energy_kwh=10.0))
        elif day.weekday() == 5:
            arr = day + timedelta(hours=12)
            out.append(SessionRecord(arrival=arr, departure=arr + timedelta(hours=1), energy_kwh=5.0))
    return out


def test_departure_model_is_conditional_on_the_car_still_being_here() -> None:
    model = DepartureModel.fit(sessions(), "America/Los_Angeles", q_earliest=0.0, q_expected=0.5, q_latest=0.95)
    arrival = datetime(2019, 7, 3, 8, 10, tzinfo=LA)  # a Wednesday
    at_arrival = model.forecast(arrival, arrival)
    assert at_arrival.cell == "wd/2/8"
    assert at_arrival.expected == arrival + timedelta(hours=8)  # median of 6/8/10 h
    assert at_arrival.latest == arrival + timedelta(hours=10)
    assert at_arrival.earliest == arrival  # q_earliest 0: the driver may unplug at any moment
    assert model.forecast(arrival, arrival + timedelta(hours=1)).earliest == arrival + timedelta(hours=1)
    model = DepartureModel.fit(sessions(), "America/Los_Angeles", q_earliest=0.01, q_expected=0.5, q_latest=0.95)
    assert model.forecast(arrival, arrival).earliest == arrival + timedelta(hours=6)
    # still here after 7 h: the 6 h stays are ruled out
    later = model.forecast(arrival, arrival + timedelta(hours=7))
    assert later.expected == arrival + timedelta(hours=9)
    assert later.earliest == arrival + timedelta(hours=8)
    # longer than anyone before: may leave any minute
    overdue = model.forecast(arrival, arrival + timedelta(hours=11))
    assert overdue.earliest == arrival + timedelta(hours=11)
    assert overdue.expected - overdue.earliest == timedelta(seconds=model.overdue_s)
    # a driver's estimate in the future moves the middle, not the early end
    est = arrival + timedelta(hours=9, minutes=30)
    with_est = model.forecast(arrival, arrival + timedelta(hours=1), estimate=est)
    assert with_est.expected == est and with_est.earliest == arrival + timedelta(hours=6)


def test_departure_model_backs_off_from_sparse_cells() -> None:
    model = DepartureModel.fit(sessions(), LA, min_samples=20)
    sat = datetime(2019, 7, 6, 12, 30, tzinfo=LA)
    assert model.forecast(sat, sat).cell == "all"  # 6 Saturday sessions < 20: the pooled cell
    assert DepartureModel.fit(sessions(), LA, min_samples=3).forecast(sat, sat).cell == "wd/5/12"


def test_model_apply_plans_until_late_quantile_and_promises_from_early_one() -> None:
    model = DepartureModel.fit(sessions(), LA, q_earliest=0.01, q_latest=0.95)
    arrival = datetime(2019, 7, 3, 8, 0, tzinfo=LA)
    now = arrival + timedelta(hours=7)
    car = CarState(
        car_id="x",
        soc=0.5,
        capacity_kwh=40,
        max_charge_kw=7,
        max_discharge_kw=7,
        target_soc=0.8,
        departure=now + timedelta(hours=1),
        plugged_in_at=arrival,
    )
    told = model.apply(car, now)
    assert told.earliest_departure == arrival + timedelta(hours=8)
    assert told.departure == arrival + timedelta(hours=10)
    assert told.expected_departure == arrival + timedelta(hours=9)


def car(i: int, **kw: object) -> CarState:
    base: dict[str, object] = dict(
        car_id=f"c{i}",
        soc=0.5,
        capacity_kwh=62.0,
        max_charge_kw=15.0,
        max_discharge_kw=15.0,
        min_discharge_kw=2.0,
        soc_floor=0.2,
        target_soc=0.5,
        departure=T0 + timedelta(hours=8),
    )
    base.update(kw)
    return CarState(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["lp", "heuristic"])
def test_promise_from_now_charges_first_and_never_dips_below_target(method: str) -> None:
    """A car that may leave any minute charges at full power until its target and is never taken below it."""
    ev = EventTarget.flat(T0, T0 + timedelta(hours=3), 40.0)
    needy = car(0, soc=0.3, target_soc=0.5, earliest_departure=T0)
    full = car(1, soc=0.8, target_soc=0.8, earliest_departure=T0)
    free = car(2, soc=0.9, target_soc=0.3)  # known departure after the event: may go to its floor
    snap = FleetSnapshot(time=T0, cars=[needy, full, free])
    p = plan(snap, ev, step_s=300, method=method)
    check_guarantees(snap, p)
    i, j = p.index("c0"), p.index("c1")
    # 12.4 kWh at 0.9 x 15 kW: 55 min at full power, then it stays at its target
    np.testing.assert_allclose(p.power_kw[i, :11], 15.0, atol=1e-6)
    assert p.soc[i, 12] == pytest.approx(0.5, abs=1e-6)
    assert np.all(p.soc[i, 12:] >= 0.5 - 1e-6)
    assert np.all(p.soc[j] >= 0.8 - 1e-6)
    assert np.all(p.power_kw[j] >= 0)  # nothing pre-charged above its target: nothing to give


def test_without_promise_the_same_car_would_dip() -> None:
    """Control for the test above: the known-departure twin of the full car is used down toward its floor."""
    ev = EventTarget.flat(T0, T0 + timedelta(hours=3), 40.0)
    twin = car(1, soc=0.8, target_soc=0.8)
    p = plan(FleetSnapshot(time=T0, cars=[twin, car(2, soc=0.9, target_soc=0.3)]), ev, step_s=300, method="lp")
    assert p.soc[p.index("c1")].min() < 0.8 - 0.05


def test_presence_weighs_uncertain_cars_and_front_loads_them() -> None:
    ev = EventTarget.flat(T0, T0 + timedelta(hours=4), 10.0)
    sure = car(0, soc=0.9, target_soc=0.3, departure=T0 + timedelta(hours=6))
    early = T0 + timedelta(minutes=30)
    unsure = car(1, soc=0.9, target_soc=0.3, earliest_departure=early, departure=T0 + timedelta(hours=4))
    snap = FleetSnapshot(time=T0, cars=[sure, unsure])
    prob = build_problem(snap, ev, step_s=300)
    assert np.all(prob.presence[0] == 1.0)
    assert np.all(prob.presence[1, :6] == 1.0) and prob.presence[1, 6] < 1.0
    assert np.all(np.diff(prob.presence[1, 6:48]) < 0)
    p = plan(snap, ev, step_s=300, method="lp")
    u = -np.minimum(p.power_kw[p.index("c1")], 0.0)
    assert u[:24].sum() > u[24:].sum()  # the car that may leave gives its energy early


@pytest.mark.parametrize("method", ["lp", "heuristic"])
def test_drivers_leaving_before_their_modelled_departure_are_not_short(method: str) -> None:
    """Online replanning told only a late modelled departure; every driver really leaves earlier."""
    start = T0 + timedelta(hours=1)
    ev = EventTarget.flat(start, start + timedelta(hours=3), 25.0)
    truth = [
        car(0, soc=0.3, target_soc=0.6, departure=start + timedelta(hours=1, minutes=40)),
        car(1, soc=0.5, target_soc=0.5, departure=start + timedelta(minutes=50)),
        car(2, soc=0.7, target_soc=0.4, departure=start + timedelta(hours=2, minutes=10)),
        car(
            3,
            soc=0.45,
            target_soc=0.55,
            plugged_in_at=start + timedelta(minutes=30),
            departure=start + timedelta(hours=1, minutes=30),
        ),
    ]
    late = {"departure": start + timedelta(hours=6), "earliest_departure": T0}
    told = {c.car_id: c.model_copy(update=late) for c in truth}
    delivered, final = online_loop(truth, T0, ev, method, told=told)
    assert delivered.max() <= 25.0 + 1e-6
    assert delivered.sum() > 0
    for c in truth:
        assert final[c.car_id] >= c.target_soc - 1e-6, c.car_id
    # the same run told nothing about the early end strands somebody
    naive = {c.car_id: c.model_copy(update={"departure": start + timedelta(hours=6)}) for c in truth}
    _, final_naive = online_loop(truth, T0, ev, method, told=naive)
    assert any(final_naive[c.car_id] < c.target_soc - 1e-3 for c in truth)


def test_earliest_after_departure_is_rejected() -> None:
    with pytest.raises(ValueError, match="earliest_departure"):
        car(0, earliest_departure=T0 + timedelta(hours=9))
    assert car(0, earliest_departure=datetime(2025, 8, 1, 23, 0, tzinfo=UTC)).earliest_departure == T0
