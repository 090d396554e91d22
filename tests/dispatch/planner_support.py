"""Helpers shared by the planner tests: random fleets and an independent check of a plan's guarantees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import strategies as st

from csms.dispatch.fleet import CarState, EventTarget, FleetSnapshot
from csms.dispatch.planner import Plan, plan

T0 = datetime(2025, 8, 1, 23, 0, tzinfo=UTC)  # 16:00 in California
E_TOL = 1e-6  # kWh
P_TOL = 1e-6  # kW


@st.composite
def cars_strategy(draw: st.DrawFn, min_cars: int = 5, max_cars: int = 40, t0: datetime = T0) -> list[CarState]:
    """Random plugged-in cars: SoC, capacities, limits, efficiencies, floors, targets, departures."""
    n = draw(st.integers(min_cars, max_cars))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    cars = []
    for i in range(n):
        cap = float(rng.choice([24.0, 40.0, 62.0, 75.0]))
        floor = float(rng.uniform(0.05, 0.35))
        soc = float(rng.uniform(0.02, 1.0))  # some start below their floor
        dmax = float(rng.choice([0.0, 6.0, 10.0, 15.0, 20.0]))
        cars.append(
            CarState(
                car_id=f"c{i}",
                station_id=f"s{i}",
                soc=soc,
                capacity_kwh=cap,
                max_charge_kw=float(rng.choice([3.7, 7.4, 11.0, 15.0, 22.0])),
                max_discharge_kw=dmax,
                min_discharge_kw=float(rng.choice([0.0, 1.0, 2.5, 4.0])),
                eta_charge=float(rng.uniform(0.85, 0.98)),
                eta_discharge=float(rng.uniform(0.85, 0.98)),
                soc_floor=floor,
                target_soc=float(rng.uniform(0.1, 1.0)),
                departure=t0 + timedelta(minutes=float(rng.uniform(10, 11 * 60))),
            )
        )
    return cars


def departure_edge(plan: Plan, car: CarState) -> int:
    """Index of the SoC edge at the car's departure (last step end not after it)."""
    ends = np.array([e.timestamp() for e in plan.step_ends])
    return int(np.searchsorted(ends, car.departure.timestamp() + 1e-6, side="right"))


def reachable_kwh(plan: Plan, car: CarState) -> float:
    """Most energy the car can hold at departure by charging at full power in every step before it."""
    k = departure_edge(plan, car)
    hours = sum((e - s).total_seconds() for s, e in zip(plan.step_starts[:k], plan.step_ends[:k], strict=True)) / 3600
    return min(car.capacity_kwh, car.soc * car.capacity_kwh + car.eta_charge * car.max_charge_kw * hours)


def check_guarantees(snapshot: FleetSnapshot, plan: Plan, reserve: float = 0.0, *, shared_limit: bool = False) -> None:
    """Assert every hard rule of a plan, recomputing the SoC path from the powers.

    ``shared_limit``: a site import limit may make a departure unreachable that
    each car alone could reach; such cars must then be reported in
    ``plan.unmet_departures``. Without it no departure may go unmet.
    """
    if not shared_limit:
        assert not plan.unmet_departures, plan.unmet_departures
    starts = plan.step_starts
    dt_h = np.array([(e - s).total_seconds() / 3600 for s, e in zip(starts, plan.step_ends, strict=True)])
    horizon_end = plan.step_ends[-1]
    for car in snapshot.cars:
        i = plan.index(car.car_id)
        p = plan.power_kw[i]
        # power limits
        assert np.all(p <= car.max_charge_kw + P_TOL), car.car_id
        assert np.all(-p <= car.max_discharge_kw * (1 - reserve) + P_TOL), car.car_id
        dis = -p[p < 0]
        assert np.all(dis >= car.min_discharge_kw - P_TOL), (car.car_id, dis.min(), car.min_discharge_kw)
        # no power after departure
        k = departure_edge(plan, car)
        assert np.all(p[k:] == 0.0), car.car_id
        # recompute the energy path
        gain = np.where(p > 0, p * car.eta_charge, p / car.eta_discharge) * dt_h
        e = car.soc * car.capacity_kwh + np.concatenate([[0.0], np.cumsum(gain)])
        assert np.allclose(e / car.capacity_kwh, plan.soc[i], atol=1e-9), car.car_id
        floor_kwh = car.soc_floor * car.capacity_kwh
        e0 = car.soc * car.capacity_kwh
        assert np.all(e >= min(floor_kwh, e0) - E_TOL), (car.car_id, e.min(), floor_kwh)
        assert np.all(e <= car.capacity_kwh + E_TOL), car.car_id
        if e0 < floor_kwh:
            assert np.all(p >= 0), f"{car.car_id} below its floor was discharged"
        target_kwh = car.target_soc * car.capacity_kwh
        if car.departure <= horizon_end:
            feasible = reachable_kwh(plan, car) >= target_kwh - 1e-6
            if feasible:
                met = e[k] >= target_kwh - E_TOL
                assert met or (shared_limit and car.car_id in plan.unmet_departures), (
                    car.car_id,
                    e[k],
                    target_kwh,
                )
                assert car.car_id not in plan.infeasible_need
            elif reachable_kwh(plan, car) < target_kwh - 1e-5:
                assert car.car_id in plan.infeasible_need, car.car_id
                assert np.all(p >= 0), f"{car.car_id} with an unreachable target was discharged"
    # site export never above the target / cap on event steps, never exported outside events
    for t, direction in enumerate(plan.directions):
        if direction is None:
            assert plan.export_kw[t] <= 1e-6
        elif direction == "export":
            assert plan.delivered_kw[t] <= plan.target_kw[t] + 1e-5


def advance_soc(car: CarState, power_kw: float, hours: float) -> float:
    """SoC of ``car`` after ``hours`` at ``power_kw`` (grid side, + = charge)."""
    e = car.soc * car.capacity_kwh
    e += (power_kw * car.eta_charge if power_kw > 0 else power_kw / car.eta_discharge) * hours
    return min(1.0, max(0.0, e / car.capacity_kwh))


def online_loop(
    cars: list[CarState],
    t0: datetime,
    event: EventTarget,
    method: str,
    *,
    step_s: float = 300.0,
    told: dict[str, CarState] | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Replan every ``step_s`` from ``t0`` with only the cars plugged in, execute the first step.

    ``cars`` hold the truth (arrival, real departure); ``told`` optionally replaces
    what the planner is told about a car (e.g. a modelled departure), keyed by id.
    Returns the export delivered in every event step and each car's SoC when it
    leaves (or at the event end).
    """
    assert event.start is not None and event.end is not None
    soc = {c.car_id: c.soc for c in cars}
    left: dict[str, float] = {}
    delivered: list[float] = []
    t = t0
    while t < event.end:
        for c in cars:
            if c.departure <= t and c.car_id not in left:
                left[c.car_id] = soc[c.car_id]
        present = [c for c in cars if (c.plugged_in_at or t0) <= t < c.departure]
        shown = [(told or {}).get(c.car_id, c).model_copy(update={"soc": soc[c.car_id]}) for c in present]
        p = plan(FleetSnapshot(time=t, cars=shown), event, step_s=step_s, method=method)  # type: ignore[arg-type]
        end = min(t + timedelta(seconds=step_s), p.step_ends[0])
        hours = (end - t).total_seconds() / 3600
        for c in shown:
            soc[c.car_id] = advance_soc(c, float(p.power_kw[p.index(c.car_id), 0]), hours)
        if t >= event.start:
            delivered.append(float(p.export_kw[0]))
        t = end
    for c in cars:
        left.setdefault(c.car_id, soc[c.car_id])
    return np.array(delivered), left
