"""Composite schedule (K08) and instantaneous envelope semantics."""

from __future__ import annotations

from datetime import timedelta

import pytest

from csms.smartcharging.composite import (
    CompositeSchedule,
    Setpoint,
    composite_schedule,
    effective_power_at,
    next_change_after,
)
from csms.smartcharging.model import ChargingProfile, ChargingRateUnit, InstalledProfile, OperationMode
from csms.smartcharging.schema import validate_wire
from tests.smartcharging.factories import HOUR, T0, at, installed, period, profile

M = OperationMode


def compose(
    profiles: list[InstalledProfile | ChargingProfile],
    *,
    evse_id: int = 1,
    duration_s: int = 4 * HOUR,
    unit: str = "A",
    start_offset: int = 0,
    tx_start_offset: int | None = 0,
    **kw: object,
) -> CompositeSchedule:
    return composite_schedule(
        profiles,
        evse_id=evse_id,
        start=at(start_offset),
        duration_s=duration_s,
        rate_unit=unit,
        transaction_start=None if tx_start_offset is None else at(tx_start_offset),
        now=at(start_offset),
        **kw,  # type: ignore[arg-type]
    )


def limits(cs: CompositeSchedule) -> list[tuple[int, float | None]]:
    return [(p.start_period, p.limit) for p in cs.periods]


# ------------------------------------------------------------------------------------ stacking


def test_highest_stack_level_wins_within_purpose() -> None:
    base = installed(1, profile(id=1, stack=0, periods=[(0, 16)]))
    override = installed(1, profile(id=2, stack=1, periods=[(0, 10)], duration=HOUR))
    cs = compose([base, override])
    assert limits(cs) == [(0, 10), (HOUR, 16)]


def test_lower_stack_level_never_overrides_higher() -> None:
    high = installed(1, profile(id=1, stack=3, periods=[(0, 20)]))
    low = installed(1, profile(id=2, stack=1, periods=[(0, 6)]))
    assert limits(compose([low, high])) == [(0, 20)]


def test_station_wide_tx_default_applies_to_each_evse() -> None:
    station_wide = installed(0, profile(id=1, stack=0, periods=[(0, 16)]))
    evse2 = installed(2, profile(id=2, stack=1, periods=[(0, 8)]))
    assert limits(compose([station_wide, evse2], evse_id=1)) == [(0, 16)]
    assert limits(compose([station_wide, evse2], evse_id=2)) == [(0, 8)]


def test_tx_profile_overrides_tx_default_regardless_of_stack_level() -> None:
    default = installed(1, profile(id=1, stack=9, periods=[(0, 16)]))
    tx = installed(1, profile(id=2, stack=0, purpose="TxProfile", tx="t1", periods=[(0, 6)], duration=HOUR))
    cs = compose([default, tx])
    assert limits(cs) == [(0, 6), (HOUR, 16)]


def test_tx_profile_of_another_transaction_is_ignored_when_transaction_id_given() -> None:
    default = installed(1, profile(id=1, periods=[(0, 16)]))
    tx = installed(1, profile(id=2, purpose="TxProfile", tx="other", periods=[(0, 6)]))
    assert limits(compose([default, tx], transaction_id="mine")) == [(0, 16)]
    assert limits(compose([default, tx], transaction_id="other")) == [(0, 6)]


def test_capped_by_charging_station_max_profile() -> None:
    tx = installed(1, profile(id=1, purpose="TxProfile", tx="t", periods=[(0, 32), (HOUR, 10)]))
    cap = installed(0, profile(id=2, purpose="ChargingStationMaxProfile", periods=[(0, 20)]))
    assert limits(compose([tx, cap])) == [(0, 20), (HOUR, 10)]


def test_cap_is_minimum_of_max_profile_and_external_constraints() -> None:
    tx = installed(1, profile(id=1, purpose="TxProfile", tx="t", periods=[(0, 32)]))
    cap = installed(0, profile(id=2, purpose="ChargingStationMaxProfile", periods=[(0, 20), (2 * HOUR, 12)]))
    ext_wire = profile(id=-3, purpose="ChargingStationExternalConstraints", periods=[(0, 25), (HOUR, 14)])
    ext = installed(1, ext_wire)
    assert limits(compose([tx, cap, ext])) == [(0, 20), (HOUR, 14), (2 * HOUR, 12)]


def test_cap_without_demand_limits_unconstrained_charging() -> None:
    cap = installed(0, profile(id=2, purpose="ChargingStationMaxProfile", periods=[(0, 20)], duration=HOUR))
    cs = compose([cap])
    assert limits(cs) == [(0, 20), (HOUR, None)]
    assert all(p.operation_mode is M.CHARGING_ONLY for p in cs.periods)


def test_evse_zero_applies_only_station_wide_caps() -> None:
    default = installed(0, profile(id=1, periods=[(0, 16)]))
    tx = installed(1, profile(id=2, purpose="TxProfile", tx="t", periods=[(0, 6)]))
    cap = installed(0, profile(id=3, purpose="ChargingStationMaxProfile", periods=[(0, 40)]))
    assert limits(compose([default, tx, cap], evse_id=0)) == [(0, 40)]


def test_bare_profiles_are_all_applied() -> None:
    default = ChargingProfile.from_wire(profile(id=1, periods=[(0, 16)]))
    cap = ChargingProfile.from_wire(profile(id=2, purpose="ChargingStationMaxProfile", periods=[(0, 10)]))
    assert limits(compose([default, cap])) == [(0, 10)]


# --------------------------------------------------------------------------------------- kinds


def test_absolute_profile_starts_at_start_schedule_and_ends_at_duration() -> None:
    default = installed(1, profile(id=1, stack=0, periods=[(0, 16)]))
    later = installed(1, profile(id=2, stack=1, start_schedule=at(HOUR), periods=[(0, 8)], duration=HOUR))
    assert limits(compose([default, later])) == [(0, 16), (HOUR, 8), (2 * HOUR, 16)]


def test_absolute_periods_step_through() -> None:
    p = installed(1, profile(periods=[(0, 6), (600, 10), (1200, 16)]))
    cs = compose([p], duration_s=HOUR, start_offset=300)
    assert limits(cs) == [(0, 6), (300, 10), (900, 16)]


def test_relative_profile_is_anchored_at_transaction_start() -> None:
    rel = installed(1, profile(kind="Relative", periods=[(0, 6), (HOUR, 16)], start_schedule=None))
    cs = compose([rel], start_offset=0, tx_start_offset=-1800)
    assert limits(cs) == [(0, 6), (1800, 16)]


def test_relative_profile_without_transaction_is_anchored_at_start() -> None:
    rel = installed(1, profile(kind="Relative", periods=[(0, 6), (HOUR, 16)], start_schedule=None))
    cs = compose([rel], start_offset=900, tx_start_offset=None)
    assert limits(cs) == [(0, 6), (HOUR, 16)]


def test_relative_profile_before_transaction_start_is_inactive() -> None:
    rel = installed(1, profile(kind="Relative", periods=[(0, 6)], start_schedule=None))
    cs = compose([rel], start_offset=0, tx_start_offset=600)
    assert limits(cs) == [(0, None), (600, 6)]


def test_recurring_daily_repeats_every_day() -> None:
    # 22:00 -> 06:00 cheap night charging at 32 A, 6 A during the day; started two days before T0.
    night = installed(
        0,
        profile(
            kind="Recurring",
            recurrency="Daily",
            start_schedule=T0.replace(hour=22) - timedelta(days=2),
            periods=[(0, 32), (8 * HOUR, 6)],
        ),
    )
    cs = compose([night], duration_s=48 * HOUR)  # T0 is 12:00
    assert limits(cs) == [(0, 6), (10 * HOUR, 32), (18 * HOUR, 6), (34 * HOUR, 32), (42 * HOUR, 6)]


def test_recurring_daily_duration_shorter_than_a_day_falls_back() -> None:
    base = installed(1, profile(id=1, stack=0, periods=[(0, 16)]))
    peak = installed(
        1,
        profile(
            id=2,
            stack=1,
            kind="Recurring",
            recurrency="Daily",
            start_schedule=T0.replace(hour=17) - timedelta(days=30),
            periods=[(0, 0)],
            duration=3 * HOUR,
        ),
    )
    cs = compose([base, peak], duration_s=30 * HOUR)
    assert limits(cs) == [(0, 16), (5 * HOUR, 0), (8 * HOUR, 16), (29 * HOUR, 0)]


def test_recurring_weekly() -> None:
    weekly = installed(
        1,
        profile(
            kind="Recurring",
            recurrency="Weekly",
            start_schedule=T0 - timedelta(days=7),
            periods=[(0, 10), (24 * HOUR, 20)],
        ),
    )
    cs = compose([weekly], duration_s=8 * 24 * HOUR)
    assert limits(cs) == [(0, 10), (24 * HOUR, 20), (7 * 24 * HOUR, 10)]


def test_valid_from_and_valid_to_bound_a_profile() -> None:
    base = installed(1, profile(id=1, stack=0, periods=[(0, 16)]))
    window = installed(1, profile(id=2, stack=1, periods=[(0, 8)], valid_from=at(600), valid_to=at(1800)))
    assert limits(compose([base, window], duration_s=HOUR)) == [(0, 16), (600, 8), (1800, 16)]


def test_expired_profile_is_ignored() -> None:
    base = installed(1, profile(id=1, stack=0, periods=[(0, 16)]))
    old = installed(1, profile(id=2, stack=1, periods=[(0, 8)], valid_to=at(-1)))
    assert limits(compose([base, old])) == [(0, 16)]


# ------------------------------------------------------------------------------------- units


def test_amps_to_watts_uses_voltage_and_phases() -> None:
    p = installed(1, profile(periods=[(0, 16), period(600, 16, numberPhases=1)]))
    cs = compose([p], unit="W", duration_s=HOUR)
    assert limits(cs) == [(0, 16 * 230 * 3), (600, 16 * 230)]
    cs = compose([p], unit="W", duration_s=HOUR, voltage=240, phases=1)
    assert limits(cs) == [(0, 16 * 240)]


def test_watts_to_amps() -> None:
    p = installed(1, profile(unit="W", periods=[(0, 11040), (600, 7360)]))
    cs = compose([p], unit="A", duration_s=HOUR)
    assert limits(cs) == [(0, 16), (600, pytest.approx(10.6667, abs=1e-3))]


def test_mixed_units_cap() -> None:
    tx = installed(1, profile(id=1, purpose="TxProfile", tx="t", unit="W", periods=[(0, 22000)]))
    cap = installed(0, profile(id=2, purpose="ChargingStationMaxProfile", unit="A", periods=[(0, 16)]))
    assert limits(compose([tx, cap], unit="W")) == [(0, 11040)]


def test_adjacent_equal_periods_are_merged() -> None:
    a = installed(1, profile(id=1, stack=1, periods=[(0, 10), (600, 10), (1200, 12)], duration=1800))
    b = installed(1, profile(id=2, stack=0, periods=[(0, 12)]))
    assert limits(compose([a, b], duration_s=HOUR)) == [(0, 10), (1200, 12)]


# ------------------------------------------------------------------------------ discharge / V2X


def test_v201_negative_limit_is_discharge_not_capped_by_charging_cap() -> None:
    tx_wire = profile(id=1, purpose="TxProfile", tx="t", unit="W", periods=[(0, 7000), (HOUR, -5000)])
    tx = installed(1, tx_wire)
    cap = installed(0, profile(id=2, purpose="ChargingStationMaxProfile", unit="W", periods=[(0, 3000)]))
    cs = compose([tx, cap], unit="W")
    got = [(p.start_period, p.operation_mode, p.limit, p.discharge_limit, p.setpoint) for p in cs.periods]
    assert got == [
        (0, M.CHARGING_ONLY, 3000, 0.0, None),
        (HOUR, M.CENTRAL_SETPOINT, 0.0, -5000, -5000),
    ]
    wire = cs.to_wire("2.0.1")
    assert [p["limit"] for p in wire["chargingSchedulePeriod"]] == [3000, -5000]
    validate_wire("GetCompositeScheduleResponse", {"status": "Accepted", "schedule": wire}, "2.0.1")
    sp = effective_power_at([tx, cap], evse_id=1, at=at(HOUR + 10))
    assert sp == Setpoint(0.0, -5000, -5000, M.CENTRAL_SETPOINT)


def test_v21_setpoint_clamped_by_caps() -> None:
    tx = installed(
        1,
        profile(
            id=1,
            purpose="TxProfile",
            tx="t",
            unit="W",
            periods=[
                period(0, operationMode="CentralSetpoint", setpoint=11000),
                period(HOUR, operationMode="CentralSetpoint", setpoint=-9000),
                period(2 * HOUR, operationMode="CentralSetpoint", setpoint=-2000),
            ],
        ),
    )
    cap = installed(0, profile(id=2, purpose="ChargingStationMaxProfile", unit="W", periods=[(0, 7000)]))
    ext = installed(
        1,
        profile(
            id=-1,
            purpose="ChargingStationExternalConstraints",
            unit="W",
            periods=[period(0, operationMode="ExternalSetpoint", dischargeLimit=-4000)],
        ),
    )
    cs = compose([tx, cap, ext], unit="W")
    assert [(p.start_period, p.limit, p.discharge_limit, p.setpoint) for p in cs.periods] == [
        (0, 7000, -4000, 7000),
        (HOUR, 7000, -4000, -4000),
        (2 * HOUR, 7000, -4000, -2000),
    ]
    wire = cs.to_wire("2.1")
    validate_wire("GetCompositeScheduleResponse", {"status": "Accepted", "schedule": wire}, "2.1")
    assert wire["chargingSchedulePeriod"][1] == {
        "startPeriod": HOUR,
        "operationMode": "CentralSetpoint",
        "limit": 7000,
        "dischargeLimit": -4000,
        "setpoint": -4000,
    }


def test_v21_setpoint_bounded_by_own_limit_and_discharge_limit() -> None:
    tx = installed(
        1,
        profile(
            purpose="TxProfile",
            tx="t",
            unit="W",
            periods=[
                period(0, 5000, operationMode="CentralSetpoint", setpoint=8000, dischargeLimit=0),
                period(600, 0, operationMode="CentralSetpoint", setpoint=-8000, dischargeLimit=-6000),
            ],
        ),
    )
    cs = compose([tx], unit="W", duration_s=1200)
    assert [p.setpoint for p in cs.periods] == [5000, -6000]


def test_v21_idle_and_charging_only() -> None:
    tx = installed(
        1,
        profile(
            purpose="TxProfile",
            tx="t",
            unit="W",
            periods=[period(0, 7000, operationMode="ChargingOnly"), period(600, operationMode="Idle")],
        ),
    )
    cs = compose([tx], unit="W", duration_s=1200)
    assert [(p.operation_mode, p.limit, p.discharge_limit) for p in cs.periods] == [
        (M.CHARGING_ONLY, 7000, 0.0),
        (M.IDLE, 0.0, 0.0),
    ]
    assert cs.to_wire("2.1")["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "operationMode": "ChargingOnly", "limit": 7000},
        {"startPeriod": 600, "operationMode": "Idle", "limit": 0.0},
    ]
    assert cs.to_wire("2.0.1")["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 7000},
        {"startPeriod": 600, "limit": 0.0},
    ]


def test_discharge_setpoint_in_amps_converts_to_watts() -> None:
    tx = installed(
        1,
        profile(
            purpose="TxProfile",
            tx="t",
            unit="A",
            periods=[period(0, operationMode="CentralSetpoint", setpoint=-10, dischargeLimit=-16)],
        ),
    )
    sp = effective_power_at([tx], evse_id=1, at=T0)
    assert sp.setpoint_w == -10 * 690
    assert sp.discharge_limit_w == -16 * 690


def test_priority_charging_only_when_enabled() -> None:
    tx = installed(1, profile(id=1, purpose="TxProfile", tx="t", unit="W", periods=[(0, 3000)]))
    prio = installed(1, profile(id=2, purpose="PriorityCharging", unit="W", periods=[(0, 22000)]))
    assert limits(compose([tx, prio], unit="W")) == [(0, 3000)]
    assert limits(compose([tx, prio], unit="W", priority_charging=True)) == [(0, 22000)]


def test_unconstrained_period_needs_default_limit_in_v201() -> None:
    cs = compose([], duration_s=60)
    with pytest.raises(ValueError, match="default_limit"):
        cs.to_wire("2.0.1")
    v201 = cs.to_wire("2.0.1", default_limit=32)["chargingSchedulePeriod"]
    assert v201 == [{"startPeriod": 0, "limit": 32}]
    v21 = cs.to_wire("2.1")["chargingSchedulePeriod"]
    assert v21 == [{"startPeriod": 0, "operationMode": "ChargingOnly"}]


def test_composite_metadata_and_period_at() -> None:
    p = installed(1, profile(periods=[(0, 6), (600, 10)]))
    cs = compose([p], duration_s=HOUR, start_offset=0)
    assert cs.evse_id == 1 and cs.duration == HOUR and cs.charging_rate_unit is ChargingRateUnit.A
    assert cs.schedule_start == T0
    assert cs.period_at(599).limit == 6 and cs.period_at(600).limit == 10
    wire = cs.to_wire("2.1")
    assert wire["scheduleStart"] == "2026-06-01T12:00:00Z"


# -------------------------------------------------------------------------------- simulator aids


def test_target_power_follows_setpoint_within_capabilities() -> None:
    caps = {"max_charge_w": 11000, "max_discharge_w": 0}
    assert Setpoint(None, 0.0, None, M.CHARGING_ONLY).target_power_w(**caps) == 11000
    assert Setpoint(7000, 0.0, None, M.CHARGING_ONLY).target_power_w(**caps) == 7000
    assert Setpoint(0.0, 0.0, None, M.IDLE).target_power_w(max_charge_w=11000, max_discharge_w=9000) == 0
    sp = Setpoint(0.0, -9000, -9000, M.CENTRAL_SETPOINT)
    assert sp.target_power_w(max_charge_w=11000, max_discharge_w=5000) == -5000
    sp = Setpoint(None, None, 4000, M.CENTRAL_SETPOINT)
    assert sp.target_power_w(max_charge_w=3000, max_discharge_w=5000) == 3000


def test_next_change_after() -> None:
    p = installed(1, profile(periods=[(0, 6), (600, 10)], duration=HOUR))
    assert next_change_after([p], evse_id=1, at=at(10)) == at(600)
    assert next_change_after([p], evse_id=1, at=at(600)) == at(HOUR)
    assert next_change_after([p], evse_id=1, at=at(HOUR)) is None
