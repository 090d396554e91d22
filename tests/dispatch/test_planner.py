"""Example-based tests of the V2G planner: exact tracking, shortfall reports, priorities, replans."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

import csms.dispatch.planner as planner_mod
from csms.dispatch.fleet import CarState, EventTarget, FleetSnapshot, TargetInterval
from csms.dispatch.planner import (
    diff_plans,
    nae,
    perfect_foresight_nae,
    perfect_foresight_plan,
    plan,
    plan_heuristic,
    plan_nae,
    resolve_targets,
)
from csms.dispatch.planner_lp import solve_lp
from csms.dispatch.problem import build_problem
from tests.dispatch.planner_support import T0, check_guarantees, online_loop


def car(i: int, **kw: object) -> CarState:
    base: dict[str, object] = dict(
        car_id=f"c{i}",
        station_id=f"s{i}",
        soc=0.9,
        capacity_kwh=62.0,
        max_charge_kw=15.0,
        max_discharge_kw=15.0,
        min_discharge_kw=2.0,
        soc_floor=0.2,
        target_soc=0.5,
        departure=T0 + timedelta(hours=14),
    )
    base.update(kw)
    return CarState(**base)  # type: ignore[arg-type]


def event_steps(p) -> np.ndarray:
    return np.array([d is not None for d in p.directions])


@pytest.mark.parametrize("method", ["lp", "heuristic"])
@pytest.mark.parametrize("lead_h", [0.0, 1.0])
def test_feasible_flat_target_is_met_exactly(method: str, lead_h: float) -> None:
    cars = [car(i, soc=0.6 + 0.01 * i, max_discharge_kw=10.0 + i % 3 * 5, min_discharge_kw=i % 4) for i in range(12)]
    snap = FleetSnapshot(time=T0, cars=cars)
    start = T0 + timedelta(hours=lead_h)
    ev = EventTarget.flat(start, start + timedelta(hours=5), 60.0)
    p = plan(snap, ev, step_s=300, method=method)
    m = event_steps(p)
    assert m.sum() == 60
    np.testing.assert_allclose(p.delivered_kw[m], 60.0, atol=1e-4)
    assert p.shortfall.feasible and not p.infeasible
    assert p.shortfall.shortfall_kwh == pytest.approx(0.0, abs=1e-3)
    check_guarantees(snap, p)


def test_full_and_compact_lp_agree() -> None:
    rng = np.random.default_rng(3)
    cars = [
        car(
            i,
            soc=float(rng.uniform(0.3, 0.9)),
            target_soc=float(rng.uniform(0.4, 0.9)),
            departure=T0 + timedelta(hours=float(rng.uniform(1, 9))),
            min_discharge_kw=0.0,
        )
        for i in range(15)
    ]
    snap = FleetSnapshot(time=T0, cars=cars)
    ev = EventTarget.flat(T0 + timedelta(minutes=30), T0 + timedelta(hours=5), 120.0)
    prob = build_problem(snap, ev, step_s=300)
    errs = []
    for form in ("full", "compact"):
        res = solve_lp(prob, formulation=form)
        assert res.optimal and res.formulation == form
        m = prob.seg_idx >= 0
        errs.append(float(np.sum(np.abs(prob.ref_kw[m] + res.power[:, m].sum(axis=0)) * prob.dt_h[m])))
    assert errs[0] == pytest.approx(errs[1], abs=1e-4)


def test_infeasible_power_reports_sum_of_max_export() -> None:
    cars = [car(0, max_discharge_kw=10.0), car(1, max_discharge_kw=15.0), car(2, max_discharge_kw=7.0)]
    snap = FleetSnapshot(time=T0, cars=cars)
    ev = EventTarget.flat(T0, T0 + timedelta(hours=1), 1000.0)
    for method in ("lp", "heuristic"):
        p = plan(snap, ev, step_s=300, method=method)
        m = event_steps(p)
        np.testing.assert_allclose(p.achievable_kw[m], 32.0, atol=1e-6)
        assert p.infeasible and not p.shortfall.feasible
        assert len(p.shortfall.steps) == 12
        assert all(s.achievable_kw == pytest.approx(32.0) and s.target_kw == 1000.0 for s in p.shortfall.steps)
        assert p.shortfall.target_kwh == pytest.approx(1000.0)
        assert p.shortfall.achievable_kwh == pytest.approx(32.0, abs=1e-6)


def test_infeasible_energy_reports_deliverable_energy_spread_flat() -> None:
    # 62 kWh at 0.5 SoC, floor 0.2, no recharge needed (target 0.2): 18.6 kWh battery, 18.6*0.9 grid side
    c = car(0, soc=0.5, target_soc=0.2, eta_discharge=0.9, min_discharge_kw=0.0)
    snap = FleetSnapshot(time=T0, cars=[c])
    ev = EventTarget.flat(T0, T0 + timedelta(hours=4), 10.0)
    p = plan(snap, ev, step_s=300, method="lp")
    assert p.shortfall.achievable_kwh == pytest.approx(18.6 * 0.9, rel=1e-6)
    m = event_steps(p)
    # the shortfall is spread: every step delivers roughly the same (within one 1/8 band of the target)
    assert p.delivered_kw[m].max() - p.delivered_kw[m].min() <= 10.0 / 8 + 1e-6
    check_guarantees(snap, p)


def test_reserve_margin_derates_discharge() -> None:
    cars = [car(0, max_discharge_kw=20.0), car(1, max_discharge_kw=20.0)]
    snap = FleetSnapshot(time=T0, cars=cars)
    ev = EventTarget.flat(T0, T0 + timedelta(hours=1), 100.0, reserve_margin=0.1)
    p = plan(snap, ev, step_s=300, method="lp")
    np.testing.assert_allclose(p.delivered_kw[event_steps(p)], 36.0, atol=1e-6)
    check_guarantees(snap, p, reserve=0.1)


def test_infeasible_need_car_charges_at_max_and_never_discharges() -> None:
    needy = car(0, soc=0.1, target_soc=1.0, departure=T0 + timedelta(hours=2), max_charge_kw=7.0)
    snap = FleetSnapshot(time=T0, cars=[needy, car(1)])
    ev = EventTarget.flat(T0, T0 + timedelta(hours=2), 20.0)
    for method in ("lp", "heuristic"):
        p = plan(snap, ev, step_s=300, method=method)
        assert "c0" in p.infeasible_need and p.infeasible
        row = p.power_kw[p.index("c0")]
        assert np.all(row[:24] == pytest.approx(7.0))
        expected_soc = (0.1 * 62 + 0.9 * 7.0 * 2) / 62
        assert p.infeasible_need["c0"] == pytest.approx(expected_soc)


def test_resolve_targets_priority() -> None:
    a = EventTarget.flat(T0, T0 + timedelta(hours=5), 100.0, priority=1, event_id="A")
    b = EventTarget.flat(T0 + timedelta(hours=1), T0 + timedelta(hours=2), 50.0, priority=0, event_id="B")
    c = EventTarget.flat(T0 + timedelta(hours=3), T0 + timedelta(hours=6), 70.0, priority=1, event_id="C")
    segs = resolve_targets([a, b, c])
    got = [
        (s.event_id, (s.start - T0).total_seconds() / 3600, (s.end - T0).total_seconds() / 3600, s.target_kw)
        for s in segs
    ]
    # B (priority 0) beats A; C ties with A on priority and comes later in the list, so it wins the overlap
    assert got == [("A", 0, 1, 100.0), ("B", 1, 2, 50.0), ("A", 2, 3, 100.0), ("C", 3, 6, 70.0)]
    # order matters only on ties
    segs_rev = resolve_targets([c, b, a])
    assert [(s.event_id, s.start) for s in segs_rev][:3] == [
        ("A", T0),
        ("B", T0 + timedelta(hours=1)),
        ("A", T0 + timedelta(hours=2)),
    ]
    # zero-length (cancelled) intervals are ignored
    cancelled = EventTarget(intervals=[TargetInterval(start=T0, end=T0, target_kw=500.0)], priority=0)
    assert resolve_targets([cancelled]) == []

    snap = FleetSnapshot(time=T0, cars=[car(i) for i in range(10)])
    p = plan(snap, [a, b, c], step_s=300, method="lp")
    tgt = {round((s - T0).total_seconds() / 3600, 3): v for s, v in zip(p.step_starts, p.target_kw, strict=True)}
    assert tgt[0.5] == 100.0 and tgt[1.5] == 50.0 and tgt[2.5] == 100.0 and tgt[4.0] == 70.0


def test_multi_interval_event_tracks_each_interval() -> None:
    ivs = [
        TargetInterval(start=T0 + timedelta(minutes=30 * k), end=T0 + timedelta(minutes=30 * (k + 1)), target_kw=v)
        for k, v in enumerate([20.0, 60.0, 0.0, 40.0])
    ]
    snap = FleetSnapshot(time=T0, cars=[car(i) for i in range(6)])
    p = plan(snap, EventTarget(intervals=ivs), step_s=300)
    m = event_steps(p)
    np.testing.assert_allclose(p.delivered_kw[m], np.repeat([20.0, 60.0, 0.0, 40.0], 6), atol=1e-4)


def test_load_reduction_and_import_limit_directions() -> None:
    cars = [car(i) for i in range(4)]
    snap = FleetSnapshot(time=T0, cars=cars, baseline_kw=30.0)
    lr = EventTarget.flat(T0, T0 + timedelta(hours=1), 25.0, direction="load_reduction")
    p = plan(snap, lr, step_s=300)
    np.testing.assert_allclose(p.delivered_kw[event_steps(p)], 25.0, atol=1e-4)
    np.testing.assert_allclose(p.export_kw[event_steps(p)], 25.0, atol=1e-4)
    ex = EventTarget.flat(T0, T0 + timedelta(hours=1), 25.0, direction="export")
    p = plan(snap, ex, step_s=300)  # meter export = fleet export - baseline
    np.testing.assert_allclose(p.export_kw[event_steps(p)], 55.0, atol=1e-4)
    # import limit of 10 kW at the meter while the site draws 30 kW: the fleet exports >= 20 kW
    il = EventTarget.flat(T0, T0 + timedelta(hours=1), 10.0, direction="import_limit")
    needy = [car(i, soc=0.3, target_soc=0.9, departure=T0 + timedelta(hours=6)) for i in range(4, 8)]
    snap2 = FleetSnapshot(time=T0, cars=cars + needy, baseline_kw=30.0)
    for method in ("lp", "heuristic"):
        p = plan(snap2, il, step_s=300, method=method)
        m = event_steps(p)
        assert np.all(p.delivered_kw[m] <= 10.0 + 1e-4), method  # meter import
        assert p.shortfall.feasible
        check_guarantees(snap2, p)


def test_site_export_limit_caps_export() -> None:
    snap = FleetSnapshot(time=T0, cars=[car(i) for i in range(8)], site_export_limit_kw=40.0)
    p = plan(snap, EventTarget.flat(T0, T0 + timedelta(hours=1), 100.0), step_s=300)
    np.testing.assert_allclose(p.export_kw[event_steps(p)], 40.0, atol=1e-6)


def test_diff_plans_only_changed_cars() -> None:
    cars = [car(i, soc=0.5 + 0.03 * i, min_discharge_kw=0.0) for i in range(8)]
    snap = FleetSnapshot(time=T0, cars=cars)
    ev = EventTarget.flat(T0, T0 + timedelta(hours=2), 40.0)
    p1 = plan(snap, ev, step_s=300)
    assert diff_plans(p1, plan(snap, ev, step_s=300), tol_kw=0.01) == set()
    # c3 leaves early: the rest must cover for it
    gone = [c for c in cars if c.car_id != "c3"]
    p2 = plan(FleetSnapshot(time=T0, cars=gone), ev, step_s=300)
    changed = diff_plans(p1, p2, tol_kw=0.01)
    assert "c3" in changed
    assert changed <= {c.car_id for c in cars}
    # later 'now': only the remaining schedule counts
    now = T0 + timedelta(hours=3)
    assert diff_plans(p1, p1, tol_kw=0.01, now=now) == set()


def test_future_arrivals_and_perfect_foresight() -> None:
    early = [car(i, soc=0.8, departure=T0 + timedelta(hours=1)) for i in range(3)]
    late = [
        car(10 + i, soc=0.8, plugged_in_at=T0 + timedelta(hours=1), departure=T0 + timedelta(hours=8)) for i in range(3)
    ]
    ev = EventTarget.flat(T0, T0 + timedelta(hours=2), 60.0)
    snap = FleetSnapshot(time=T0, cars=early + late)
    pf = perfect_foresight_plan(snap, ev)
    # nobody moves power before plugging in
    for c in late:
        row = pf.power_kw[pf.index(c.car_id)]
        assert np.all(row[:12] == 0.0)
    check_guarantees(snap, pf)
    pf_nae = perfect_foresight_nae(snap, ev)
    assert pf_nae == pytest.approx(plan_nae(pf, 300))
    # the early cars give 45 kW in the first hour, the late ones 45 kW in the second: 15 kW short in both
    assert pf_nae == pytest.approx(30.0 / 120.0, abs=1e-6)
    # an online planner that does not know the late arrivals cannot do better
    online = plan(FleetSnapshot(time=T0, cars=early), ev, step_s=300)
    assert plan_nae(online, 300) >= pf_nae - 1e-9


def test_nae_helper() -> None:
    assert nae([10, 10, 10], [10, 5, 15]) == pytest.approx(10 / 30)
    assert nae([10, np.nan, 10], [10, 99, 0]) == pytest.approx(0.5)
    assert nae([0, 0], [1, 1]) == 0.0
    assert nae([10, 20], [10, 10], dt=[1, 3]) == pytest.approx(30 / 70)


def test_auto_switches_to_heuristic(monkeypatch: pytest.MonkeyPatch) -> None:
    snap = FleetSnapshot(time=T0, cars=[car(i) for i in range(5)])
    ev = EventTarget.flat(T0, T0 + timedelta(hours=1), 20.0)
    assert plan(snap, ev, step_s=300).method == "lp"
    monkeypatch.setattr(planner_mod, "LP_MAX_PAIRS", 10)
    p = plan(snap, ev, step_s=300)
    assert p.method == "heuristic" and any("heuristic used" in n for n in p.notes)
    assert plan_heuristic(snap, ev, step_s=300).method == "heuristic"


def test_lp_timeout_falls_back_to_heuristic(monkeypatch: pytest.MonkeyPatch) -> None:
    from csms.dispatch.planner_lp import LPResult

    monkeypatch.setattr(
        planner_mod, "solve_lp", lambda *a, **k: LPResult(None, "Time limit reached", False, 9.9, [], "x")
    )
    snap = FleetSnapshot(time=T0, cars=[car(i) for i in range(5)])
    p = plan(snap, EventTarget.flat(T0, T0 + timedelta(hours=1), 20.0), step_s=300, method="lp")
    assert p.method == "heuristic" and any("Time limit" in n for n in p.notes)
    check_guarantees(snap, p)


def test_no_event_plans_charging_only() -> None:
    cars = [car(0, soc=0.3, target_soc=0.8), car(1, soc=0.9, target_soc=0.5)]
    snap = FleetSnapshot(time=T0, cars=cars)
    for method in ("lp", "heuristic"):
        p = plan(snap, None, method=method)
        assert np.all(p.power_kw >= 0) and np.all(p.export_kw <= 1e-9)
        check_guarantees(snap, p)
        assert p.power_kw[1].sum() == 0.0  # already above its target: left alone


def test_departed_cars_and_empty_fleet() -> None:
    gone = car(0, departure=T0 - timedelta(minutes=5))
    snap = FleetSnapshot(time=T0, cars=[gone])
    p = plan(snap, EventTarget.flat(T0, T0 + timedelta(hours=1), 20.0), step_s=300)
    assert np.all(p.power_kw == 0) and p.shortfall.achievable_kwh == 0.0 and p.infeasible
    empty = plan(FleetSnapshot(time=T0), EventTarget.flat(T0, T0 + timedelta(hours=1), 20.0), step_s=300)
    assert empty.power_kw.shape[0] == 0 and len(empty.shortfall.steps) == 12


def test_steps_align_to_event_and_schedule_accessors() -> None:
    snap = FleetSnapshot(time=T0 + timedelta(seconds=90), cars=[car(0), car(1)])
    ev = EventTarget.flat(T0, T0 + timedelta(minutes=30), 10.0)
    p = plan(snap, ev, step_s=300)
    assert p.step_starts[0] == T0 + timedelta(seconds=90)
    assert p.step_starts[1] == T0 + timedelta(minutes=5)
    sched = p.schedules()
    assert set(sched) == {"c0", "c1"} and len(sched["c0"]) == p.n_steps
    assert p.power_at("c0", T0 + timedelta(minutes=7)) == sched["c0"][1]
    assert p.power_at("nobody", T0) == 0.0
    assert len(p.soc_path("c1")) == p.n_steps + 1


@pytest.mark.parametrize("method", ["lp", "heuristic"])
def test_precharge_headroom_covers_a_car_arriving_mid_event(method: str) -> None:
    """Replanning online, a car that arrives during the event and must charge is covered.

    Three cars at their target SoC carry a 20 kW, 2-hour event that starts 2 h
    after control begins; a fourth car arrives at 17:00 needing 12 kWh before it
    leaves at 17:55, so the fleet must export 20 kW plus that car's charging.
    Only energy pre-charged beyond what the plan at 14:00 needed can pay for it.
    """
    start = T0 + timedelta(hours=2)
    ev = EventTarget.flat(start, start + timedelta(hours=2), 20.0)
    fleet = [car(i, soc=0.5, target_soc=0.5, departure=start + timedelta(hours=2.5)) for i in range(3)]
    late = car(
        9,
        soc=0.2,
        target_soc=0.2 + 12.0 / 62.0,
        plugged_in_at=start + timedelta(hours=1),
        departure=start + timedelta(hours=1, minutes=55),
    )
    delivered, final = online_loop([*fleet, late], T0, ev, method)
    assert delivered.size == 24
    np.testing.assert_allclose(delivered, 20.0, atol=0.2)
    for c in [*fleet, late]:
        assert final[c.car_id] >= c.target_soc - 1e-6, c.car_id


def test_lp_precharges_to_what_each_car_can_export() -> None:
    """Before an event the LP fills each discharging car to what it can export in the event, no more."""
    start = T0 + timedelta(hours=3)
    ev = EventTarget.flat(start, start + timedelta(hours=1), 10.0)
    cars = [car(i, soc=0.4, target_soc=0.4, departure=start + timedelta(hours=1)) for i in range(2)]
    for form in ("compact", "full"):
        prob = build_problem(FleetSnapshot(time=T0, cars=cars), ev, step_s=300)
        res = solve_lp(prob, formulation=form)
        assert res.optimal and res.power is not None
        m = prob.seg_idx >= 0
        before = (~m) & (np.arange(prob.n_steps) < np.flatnonzero(m)[0])
        charged = res.power[:, before] @ prob.dt_h[before] * 0.9  # battery kWh per car
        # 15 kW for 1 h at 0.9 discharge efficiency: 16.67 kWh above the 24.8 kWh target each
        np.testing.assert_allclose(charged, 15.0 / 0.9, rtol=1e-3)
        # without the headroom: only what the 10 kWh event needs, 11.1 kWh in all
        prob = build_problem(FleetSnapshot(time=T0, cars=cars), ev, step_s=300, precharge_headroom=False)
        res = solve_lp(prob, formulation=form)
        assert res.optimal and res.power is not None
        charged = res.power[:, before] @ prob.dt_h[before] * 0.9
        assert charged.sum() == pytest.approx(10.0 / 0.9, rel=1e-3)
