"""PowerIntent -> SetChargingProfileRequest, and dispatch profile id allocation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from csms.smartcharging.builder import (
    DISCHARGE_VENDOR_ID,
    BuilderError,
    PowerIntent,
    ProfileAllocator,
    StationCapabilities,
    build_dispatch_profile,
    build_set_charging_profile,
    validate_wire,
)
from csms.smartcharging.composite import effective_power_at
from csms.smartcharging.k01 import check_set_charging_profile
from csms.smartcharging.model import InstalledProfile, OperationMode
from tests.smartcharging.factories import T0, installed, profile

V21 = StationCapabilities(
    version="2.1",
    max_stack_level=8,
    max_periods=24,
    supported_operation_modes=frozenset({"ChargingOnly", "CentralSetpoint", "Idle"}),
    num_evses=2,
)
V201_NEG = StationCapabilities(
    version="2.0.1",
    max_stack_level=8,
    max_periods=24,
    v2x_adapter="negative-limit",
)
V201 = StationCapabilities(version="2.0.1", max_stack_level=8, max_periods=24)


def intent(periods: list[tuple[int, float]], **kw: Any) -> PowerIntent:
    fields: dict[str, Any] = {"evse_id": 1, "start": T0, "transaction_id": "tx-1"}
    fields.update(kw)
    return PowerIntent(periods=periods, **fields)


def build(i: PowerIntent, caps: StationCapabilities, **kw: Any) -> dict[str, Any]:
    req = build_set_charging_profile(i, caps, profile_id=1_000_000, stack_level=caps.max_stack_level, **kw)
    validate_wire("SetChargingProfile", req, caps.version)
    return req


def periods_of(req: dict[str, Any]) -> list[dict[str, Any]]:
    return req["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]


def test_v21_discharge_intent_uses_central_setpoint_with_tight_bounds() -> None:
    req = build(intent([(0, 7000), (900, -5000), (1800, 0)], duration_s=3600), V21)
    prof = req["chargingProfile"]
    assert prof["chargingProfilePurpose"] == "TxProfile" and prof["transactionId"] == "tx-1"
    assert prof["chargingProfileKind"] == "Absolute"
    assert prof["chargingSchedule"][0]["chargingRateUnit"] == "W"
    assert prof["chargingSchedule"][0]["startSchedule"] == "2026-06-01T12:00:00Z"
    assert prof["chargingSchedule"][0]["duration"] == 3600
    assert periods_of(req) == [
        {
            "startPeriod": 0,
            "operationMode": "CentralSetpoint",
            "setpoint": 7000.0,
            "limit": 7000.0,
            "dischargeLimit": 0.0,
        },
        {
            "startPeriod": 900,
            "operationMode": "CentralSetpoint",
            "setpoint": -5000.0,
            "limit": 0.0,
            "dischargeLimit": -5000.0,
        },
        {"startPeriod": 1800, "operationMode": "Idle"},
    ]
    assert prof["maxOfflineDuration"] == 300 and prof["invalidAfterOfflineDuration"] is True


def test_v21_charge_only_intent_uses_charging_only_limits() -> None:
    req = build(intent([(0, 11000), (600, 3000), (1200, 0)], max_offline_duration_s=60), V21)
    assert periods_of(req) == [
        {"startPeriod": 0, "operationMode": "ChargingOnly", "limit": 11000.0},
        {"startPeriod": 600, "operationMode": "ChargingOnly", "limit": 3000.0},
        {"startPeriod": 1200, "operationMode": "Idle"},
    ]
    assert req["chargingProfile"]["maxOfflineDuration"] == 60
    assert "invalidAfterOfflineDuration" not in req["chargingProfile"]


def test_v21_zero_power_without_idle_support() -> None:
    caps = StationCapabilities(
        version="2.1", max_stack_level=1, max_periods=8, supported_operation_modes={"CentralSetpoint"}
    )
    req = build(intent([(0, -1000), (60, 0)]), caps)
    assert periods_of(req)[1] == {
        "startPeriod": 60,
        "operationMode": "CentralSetpoint",
        "setpoint": 0.0,
        "limit": 0.0,
        "dischargeLimit": 0.0,
    }
    caps = StationCapabilities(version="2.1", max_stack_level=1, max_periods=8)
    req = build(intent([(0, 1000), (60, 0)]), caps)
    assert periods_of(req)[1] == {"startPeriod": 60, "operationMode": "ChargingOnly", "limit": 0.0}


def test_v21_discharge_without_central_setpoint_support_is_refused() -> None:
    caps = StationCapabilities(version="2.1", max_stack_level=1, max_periods=8)
    with pytest.raises(BuilderError) as err:
        build(intent([(0, -1000)]), caps)
    assert err.value.code == "UnsupportedMode"


def test_v201_negative_limit_adapter() -> None:
    req = build(intent([(0, 7000), (900, -5000)]), V201_NEG)
    assert periods_of(req) == [
        {"startPeriod": 0, "limit": 7000.0},
        {
            "startPeriod": 900,
            "limit": -5000.0,
            "customData": {"vendorId": DISCHARGE_VENDOR_ID, "mode": "discharge"},
        },
    ]
    assert "maxOfflineDuration" not in req["chargingProfile"]


def test_v201_without_adapter_cannot_discharge() -> None:
    with pytest.raises(BuilderError, match="station cannot discharge") as err:
        build(intent([(0, 7000), (900, -5000)]), V201)
    assert err.value.code == "CannotDischarge"
    assert periods_of(build(intent([(0, 7000), (900, 0)]), V201)) == [
        {"startPeriod": 0, "limit": 7000.0},
        {"startPeriod": 900, "limit": 0.0},
    ]


def test_merges_equal_consecutive_powers_and_sorts() -> None:
    req = build(intent([(1200, 5000), (0, 5000), (600, 5000.04), (1800, 2000)]), V21)
    assert [(p["startPeriod"], p["limit"]) for p in periods_of(req)] == [(0, 5000.0), (1800, 2000.0)]


def test_too_many_periods() -> None:
    caps = StationCapabilities(version="2.1", max_stack_level=1, max_periods=3)
    i = intent([(k * 60, 1000.0 * (k % 2 + 1)) for k in range(4)])
    with pytest.raises(BuilderError) as err:
        build(i, caps)
    assert err.value.code == "TooManyPeriods"
    build(intent([(k * 60, 1000.0) for k in range(40)]), caps)  # merges to one period


def test_first_offset_shifts_start_schedule_and_duration() -> None:
    req = build(intent([(600, 4000), (1200, 2000), (4000, 9000)], duration_s=3600), V21)
    sched = req["chargingProfile"]["chargingSchedule"][0]
    assert sched["startSchedule"] == "2026-06-01T12:10:00Z"
    assert sched["duration"] == 3000
    assert [p["startPeriod"] for p in sched["chargingSchedulePeriod"]] == [0, 600]


@pytest.mark.parametrize(
    ("periods", "kw"),
    [
        ([], {}),
        ([(0, 1.0), (0, 2.0)], {}),
        ([(-5, 1.0)], {}),
        ([(0, float("nan"))], {}),
        ([(600, 1.0)], {"duration_s": 600}),
        ([(0, 1.0)], {"start": datetime(2026, 6, 1, 12)}),
    ],
)
def test_invalid_intents(periods: list[tuple[int, float]], kw: dict[str, Any]) -> None:
    with pytest.raises(BuilderError) as err:
        build(intent(periods, **kw), V21)
    assert err.value.code == "InvalidIntent"


def test_tx_profile_needs_transaction() -> None:
    with pytest.raises(BuilderError) as err:
        build(intent([(0, 1000)], transaction_id=None), V21)
    assert err.value.code == "InvalidProfile"
    with pytest.raises(BuilderError) as err:
        build(intent([(0, 1000)]), V21, active_transactions={1: "other"})
    assert err.value.code == "TxNotFound"


def test_overlong_transaction_id_is_refused() -> None:
    with pytest.raises(BuilderError) as err:
        build(intent([(0, 1000)], transaction_id="x" * 37), V21)
    assert err.value.code == "FormatViolation"


def test_tx_default_profile_intent() -> None:
    req = build(intent([(0, 6000)], purpose="TxDefaultProfile", transaction_id=None, evse_id=0), V21)
    assert req["evseId"] == 0
    assert req["chargingProfile"]["chargingProfilePurpose"] == "TxDefaultProfile"
    assert "transactionId" not in req["chargingProfile"]


def test_amps_only_station_gets_amps_for_charging_and_refuses_discharge() -> None:
    caps = StationCapabilities(
        version="2.0.1", max_stack_level=1, max_periods=8, rate_units={"A"}, v2x_adapter="negative-limit"
    )
    req = build(intent([(0, 11040), (60, 7360)]), caps)
    sched = req["chargingProfile"]["chargingSchedule"][0]
    assert sched["chargingRateUnit"] == "A"
    assert sched["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 16.0, "numberPhases": 3},
        {"startPeriod": 60, "limit": 10.7, "numberPhases": 3},
    ]
    with pytest.raises(BuilderError) as err:
        build(intent([(0, -5000)]), caps)
    assert err.value.code == "UnsupportedRateUnit"


def test_builder_reports_k01_conflicts_with_installed_profiles() -> None:
    operator = installed(1, profile(id=5, stack=8, purpose="TxProfile", tx="tx-1", unit="W"))
    with pytest.raises(BuilderError) as err:
        build(intent([(0, 1000)]), V21, installed=[operator])
    assert err.value.code == "DuplicateProfile"


def test_emitted_profile_drives_the_simulated_station() -> None:
    req = build(intent([(0, 7000), (900, -5000), (1800, 0)], duration_s=3600), V21)
    inst = [InstalledProfile.from_request(req)]
    for offset, expected in [(0, 7000), (899, 7000), (900, -5000), (1800, 0)]:
        sp = effective_power_at(inst, evse_id=1, at=T0 + timedelta(seconds=offset), transaction_id="tx-1")
        assert sp.target_power_w(max_charge_w=22000, max_discharge_w=22000) == expected
    sp = effective_power_at(inst, evse_id=1, at=T0 + timedelta(seconds=1800))
    assert sp.operation_mode is OperationMode.IDLE
    after = effective_power_at(inst, evse_id=1, at=T0 + timedelta(seconds=3600))
    assert after.operation_mode is OperationMode.CHARGING_ONLY and after.charge_limit_w is None


# ------------------------------------------------------------------------------------- allocator


def test_allocator_stable_slot_ids_replace_each_other() -> None:
    alloc = ProfileAllocator(dispatch_stack_level=5)
    a1 = alloc.allocate("cs-1", 1, V21)
    a2 = alloc.allocate("cs-1", 1, V21)
    b = alloc.allocate("cs-1", 2, V21)
    c = alloc.allocate("cs-1", 1, V21, "TxDefaultProfile")
    other = alloc.allocate("cs-2", 1, V21)
    assert a1 == a2 and a1.stack_level == 5
    assert len({a1.profile_id, b.profile_id, c.profile_id}) == 3
    assert all(alloc.is_dispatch_owned(x.profile_id) for x in (a1, b, c, other))
    assert not alloc.is_dispatch_owned(7)
    assert alloc.operator_stack_levels(V21) == range(0, 5)

    first = build_dispatch_profile(intent([(0, 1000)]), V21, alloc, "cs-1")
    second = build_dispatch_profile(
        intent([(0, -2000)]), V21, alloc, "cs-1", installed=[InstalledProfile.from_request(first)]
    )
    assert first["chargingProfile"]["id"] == second["chargingProfile"]["id"] == a1.profile_id


def test_allocator_clamps_stack_level_and_clears_by_id_only() -> None:
    alloc = ProfileAllocator(dispatch_stack_level=50)
    small = StationCapabilities(version="2.1", max_stack_level=3, max_periods=8)
    assert alloc.allocate("cs", 1, small).stack_level == 3
    alloc.allocate("cs", 2, small)
    reqs = alloc.clear_requests("cs")
    assert reqs == [{"chargingProfileId": 1_000_000}, {"chargingProfileId": 1_000_001}]
    for r in reqs:
        validate_wire("ClearChargingProfile", r, "2.0.1")
        validate_wire("ClearChargingProfile", r, "2.1")
    assert alloc.clear_requests("cs", evse_id=2) == [{"chargingProfileId": 1_000_001}]
    alloc.release("cs", 1_000_000)
    assert alloc.owned_ids("cs") == [1_000_001]
    foreign = [installed(1, profile(id=3)), installed(1, profile(id=1_000_001))]
    assert [p.profile.id for p in alloc.foreign_profiles(foreign)] == [3]


def test_allocator_wraps_and_exhausts() -> None:
    alloc = ProfileAllocator(id_base=10, id_limit=13)
    ids = [alloc.allocate("cs", evse, V21).profile_id for evse in range(3)]
    assert ids == [10, 11, 12]
    with pytest.raises(BuilderError) as err:
        alloc.allocate("cs", 9, V21)
    assert err.value.code == "IdExhausted"
    alloc.release("cs", 11)
    assert alloc.allocate("cs", 9, V21).profile_id == 11


def test_allocator_state_round_trip() -> None:
    alloc = ProfileAllocator()
    alloc.allocate("cs", 1, V21)
    alloc.allocate("cs", 2, V21, "TxDefaultProfile")
    clone = ProfileAllocator()
    clone.import_state(alloc.export_state())
    assert clone.export_state() == alloc.export_state()
    assert clone.allocate("cs", 3, V21).profile_id == alloc.allocate("cs", 3, V21).profile_id


def test_capabilities_validation() -> None:
    with pytest.raises(ValueError):
        StationCapabilities(version="1.6", max_stack_level=1, max_periods=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        StationCapabilities(version="2.0.1", max_stack_level=1, max_periods=1, v2x_adapter="magic")
    limits = V201_NEG.to_limits()
    assert limits.allow_negative_limits and not V201.to_limits().allow_negative_limits
    req = build(intent([(0, -1000)]), V201_NEG)
    tx = {1: "tx-1"}
    found = check_set_charging_profile(req, version="2.0.1", limits=limits, active_transactions=tx, now=T0)
    assert found == []
