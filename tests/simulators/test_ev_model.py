"""EV model and power stage: exact energy integration, ramp, floor, ceiling, taper, efficiency."""

from __future__ import annotations

import math

import pytest

from simulators.cars import CARS, CarModel
from simulators.ev import EV
from simulators.evse import PowerStage

LEAF = CARS["nissan-leaf-62"]


def stage_with(ev: EV | None, **kw: float) -> PowerStage:
    st = PowerStage(**kw)
    st.ev = ev
    return st


def test_constant_charge_integrates_exactly_and_applies_both_efficiencies() -> None:
    ev = EV(LEAF, 50.0, target_soc=100.0)
    st = stage_with(ev, ramp_w_per_s=0.0, efficiency=0.95)
    st.set_target(10_000.0)
    for t in range(1, 3601):  # one hour in uneven pieces must give the same as one step
        st.advance(t * 1.0)
    assert st.import_wh == pytest.approx(10_000.0, abs=1e-6)
    assert ev.battery_in_wh == pytest.approx(10_000.0 * 0.95 * LEAF.charge_efficiency, abs=1e-6)
    assert st.export_wh == 0.0


def test_ramp_energy_is_the_trapezoid() -> None:
    ev = EV(LEAF, 50.0, target_soc=100.0)
    st = stage_with(ev, ramp_w_per_s=1_000.0)
    st.set_target(10_000.0)
    st.advance(5.0)  # halfway up the ramp
    assert st.power_w == pytest.approx(5_000.0)
    st.advance(20.0)  # 10 s ramp (50 kWs) + 10 s flat (100 kWs)
    assert st.power_w == 10_000.0
    assert st.import_wh == pytest.approx((50_000.0 + 100_000.0) / 3600.0, rel=1e-12)
    assert st.ramp_remaining_s() == 0.0


def test_ramp_through_zero_splits_import_and_export() -> None:
    ev = EV(LEAF, 50.0, target_soc=100.0)
    st = stage_with(ev, ramp_w_per_s=2_000.0)
    st.power_w = st.target_w = 4_000.0
    st.set_target(-6_000.0)
    st.advance(10.0)  # 2 s down to 0 (4 kWs import), 3 s to -6 kW (9 kWs export), 5 s flat (30 kWs)
    assert st.power_w == -6_000.0
    assert st.import_wh == pytest.approx(4_000.0 / 3600.0)
    assert st.export_wh == pytest.approx(39_000.0 / 3600.0)


def test_grid_export_is_eta_times_battery_discharge() -> None:
    ev = EV(LEAF, 80.0, target_soc=80.0)
    st = stage_with(ev, ramp_w_per_s=0.0, efficiency=0.95)
    st.set_target(-9_000.0)
    st.advance(1800.0)
    eta = 0.95 * LEAF.discharge_efficiency
    assert st.export_wh == pytest.approx(4_500.0)
    assert st.export_wh == pytest.approx(eta * ev.battery_out_wh)


def test_soc_floor_cut_is_exact_and_never_crossed() -> None:
    ev = EV(LEAF, 21.0, target_soc=80.0)  # 1 % above the 20 % floor = 590 Wh
    st = stage_with(ev, ramp_w_per_s=500.0, efficiency=0.95)
    st.set_target(-15_000.0)
    st.advance(3600.0)
    assert ev.soc == pytest.approx(20.0, abs=1e-9)
    assert ev.energy_wh >= ev.floor_wh - 1e-9
    assert st.limit_hit
    assert st.power_w == 0.0 and st.target_w == 0.0
    eta = 0.95 * LEAF.discharge_efficiency
    assert ev.battery_out_wh == pytest.approx(590.0)
    assert st.export_wh == pytest.approx(590.0 * eta)
    # capability is gone at the floor, and a new request is clamped to 0
    assert ev.discharge_capability_w() == 0.0
    assert st.clamp(-10_000.0) == 0.0


def test_charging_stops_exactly_at_the_ceiling() -> None:
    ev = EV(LEAF, 79.0, target_soc=80.0)
    st = stage_with(ev, ramp_w_per_s=0.0)
    st.ceiling_wh = ev.target_wh
    st.set_target(20_000.0)
    st.advance(3600.0)
    assert ev.soc == pytest.approx(80.0, abs=1e-9)
    assert st.power_w == 0.0
    assert st.import_wh == pytest.approx(590.0 / (0.95 * LEAF.charge_efficiency))


def test_taper_reduces_charge_acceptance_near_full() -> None:
    car = CarModel(name="t", capacity_kwh=50, max_charge_kw=50, max_discharge_kw=10, taper_start_soc=80,
                   taper_end_kw=5)  # fmt: skip
    assert EV(car, 50.0).charge_acceptance_w() == 50_000.0
    assert EV(car, 90.0).charge_acceptance_w() == pytest.approx(27_500.0)
    assert EV(car, 99.999).charge_acceptance_w() == pytest.approx(5_000.0, rel=1e-3)
    assert EV(car, 100.0).charge_acceptance_w() == 0.0
    # at the grid side the station rating binds first, then the taper
    st = stage_with(EV(car, 95.0), charge_rating_w=20_000.0, efficiency=0.95)
    assert st.max_import_w() == pytest.approx(min(20_000.0, (50_000 - 45_000 * 0.75) / 0.95))


def test_minimum_stable_discharge_and_charge_only_car() -> None:
    ev = EV(LEAF, 60.0)
    st = stage_with(ev, min_discharge_w=1_500.0, discharge_rating_w=15_000.0, efficiency=0.95)
    assert st.clamp(-1_000.0) == 0.0
    assert st.clamp(-1_500.0) == -1_500.0
    assert st.clamp(-50_000.0) == -min(15_000.0, LEAF.max_discharge_kw * 1000 * 0.95)
    only = stage_with(EV(CARS["generic-charge-only"], 60.0))
    assert only.max_export_w() == 0.0
    assert only.clamp(-5_000.0) == 0.0


def test_seconds_to_limit_predicts_the_floor() -> None:
    ev = EV(LEAF, 30.0)
    st = stage_with(ev, ramp_w_per_s=0.0, efficiency=1.0)
    st.set_target(-10_000.0)
    predicted = st.seconds_to_limit()
    assert predicted is not None
    st.advance(predicted + 1.0)
    assert ev.soc == pytest.approx(20.0)
    expected_s = (0.10 * ev.capacity_wh) * LEAF.discharge_efficiency * 3600.0 / 10_000.0
    assert predicted == pytest.approx(expected_s)


def test_needs_follow_iso15118_signs() -> None:
    ev = EV(LEAF, 50.0, target_soc=80.0)
    needs = ev.needs()
    cap = LEAF.capacity_kwh * 1000
    assert needs["target"] == pytest.approx(0.3 * cap)
    assert needs["min_v2x"] == pytest.approx(-0.3 * cap)  # above the floor: negative
    assert needs["max"] == pytest.approx(0.5 * cap)
    assert not math.isnan(needs["max_v2x"])


def test_no_energy_without_a_car() -> None:
    st = stage_with(None)
    st.set_target(10_000.0)
    st.advance(100.0)
    assert st.import_wh == 0.0 and st.export_wh == 0.0


def test_synced_clock_follows_the_csms_within_bounds() -> None:
    from datetime import UTC, datetime, timedelta

    from simulators.clock import SyncedClock

    clock = SyncedClock(datetime(2026, 8, 18, tzinfo=UTC), speed=300)
    assert clock.min_step_s == 15.0
    now = clock.now()
    assert clock.observe(now + timedelta(seconds=5)) == 0.0  # latency noise: ignored
    step = clock.observe(now + timedelta(minutes=10))
    assert step == pytest.approx(600.0, abs=1.0)
    assert (clock.now() - now).total_seconds() == pytest.approx(600.0, abs=5.0)
    assert clock.observe(now + timedelta(days=30)) == 0.0  # different epochs: not followed
