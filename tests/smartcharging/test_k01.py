"""K01 SetChargingProfile rules: every rule produces its violation."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from csms.smartcharging.k01 import (
    REASON_CODES,
    StationLimits,
    Violation,
    apply_set_charging_profile,
    check_set_charging_profile,
    rejection_response,
    replaced_profiles,
)
from csms.smartcharging.model import InstalledProfile
from csms.smartcharging.schema import validate_wire
from tests.smartcharging.factories import T0, at, installed, period, profile, request

LIMITS = StationLimits(
    rate_units=frozenset({"W", "A"}),
    max_stack_level=5,
    max_periods=4,
    max_profiles=None,
    supported_operation_modes=frozenset({"ChargingOnly", "CentralSetpoint", "Idle"}),
    supports_dynamic=False,
    num_evses=2,
    supported_additional_purposes=frozenset({"PriorityCharging"}),
)
ACTIVE = {1: "tx-1"}


def tx_request(**kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"purpose": "TxProfile", "tx": "tx-1", "unit": "W", "periods": [(0, 7000)]}
    fields.update(kw)
    return request(1, profile(**fields))


def check(
    req: dict[str, Any],
    *,
    version: str = "2.1",
    limits: StationLimits = LIMITS,
    inst: list[InstalledProfile] | None = None,
    active: dict[int, str] | None = None,
) -> list[Violation]:
    return check_set_charging_profile(
        req,
        version=version,  # type: ignore[arg-type]
        limits=limits,
        installed=inst or [],
        active_transactions=ACTIVE if active is None else active,
        now=T0,
    )


def codes(violations: list[Violation]) -> set[str]:
    return {v.code for v in violations}


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
@pytest.mark.parametrize(
    "req",
    [
        tx_request(),
        request(0, profile(purpose="ChargingStationMaxProfile", periods=[(0, 32)])),
        request(0, profile(purpose="TxDefaultProfile", periods=[(0, 16), (600, 32)])),
        request(2, profile(kind="Relative", start_schedule=None, periods=[(0, 16)])),
        request(1, profile(kind="Recurring", recurrency="Daily", periods=[(0, 16)], duration=3600)),
    ],
)
def test_valid_requests_pass(version: str, req: dict[str, Any]) -> None:
    validate_wire("SetChargingProfile", req, version)  # type: ignore[arg-type]
    assert check(req, version=version) == []


def mutate(req: dict[str, Any], fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    out = copy.deepcopy(req)
    fn(out)
    return out


def sched(req: dict[str, Any]) -> dict[str, Any]:
    return req["chargingProfile"]["chargingSchedule"][0]


CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    # (name, request, expected code, requirement)
    (
        "max profile on evse>0",
        request(1, profile(purpose="ChargingStationMaxProfile")),
        "InvalidProfile",
        None,
    ),
    (
        "max profile relative",
        request(0, profile(purpose="ChargingStationMaxProfile", kind="Relative", start_schedule=None)),
        "InvalidProfile",
        "K01.FR.38",
    ),
    (
        "tx profile on evse 0",
        request(0, profile(purpose="TxProfile", tx="tx-1")),
        "InvalidProfile",
        "K01.FR.16",
    ),
    ("tx profile without transactionId", tx_request(tx=None), "InvalidProfile", "K01.FR.03"),
    ("tx profile unknown transaction", tx_request(tx="tx-other"), "TxNotFound", "K01.FR.33"),
    (
        "tx profile on idle evse",
        request(2, profile(purpose="TxProfile", tx="tx-1")),
        "TxNotFound",
        "K01.FR.09",
    ),
    ("transactionId on default", request(1, profile(tx="tx-1")), "InvalidProfile", "K01.FR.03"),
    ("transactionId too long", tx_request(tx="x" * 37), "FormatViolation", None),
    (
        "external constraints from CSMS",
        request(0, profile(purpose="ChargingStationExternalConstraints")),
        "InvalidProfile",
        None,
    ),
    ("first startPeriod not 0", tx_request(periods=[(10, 7000)]), "InvalidSchedule", "K01.FR.31"),
    (
        "startPeriod not increasing",
        tx_request(periods=[(0, 1), (600, 2), (600, 3)]),
        "InvalidSchedule",
        "K01.FR.35",
    ),
    (
        "startPeriod decreasing",
        tx_request(periods=[(0, 1), (600, 2), (300, 3)]),
        "InvalidSchedule",
        "K01.FR.35",
    ),
    ("absolute without startSchedule", tx_request(start_schedule=None), "InvalidSchedule", "K01.FR.40"),
    (
        "recurring without startSchedule",
        tx_request(kind="Recurring", recurrency="Daily", start_schedule=None),
        "InvalidSchedule",
        "K01.FR.40",
    ),
    (
        "relative with startSchedule",
        mutate(
            tx_request(kind="Relative", start_schedule=None),
            lambda r: sched(r).__setitem__("startSchedule", "2026-06-01T12:00:00Z"),
        ),
        "InvalidSchedule",
        "K01.FR.41",
    ),
    ("recurring without recurrencyKind", tx_request(kind="Recurring"), "InvalidSchedule", None),
    ("unsupported rate unit", tx_request(unit="W"), "UnsupportedRateUnit", "K01.FR.26"),
    ("stack level too high", tx_request(stack=6), "InvalidStackLevel", None),
    ("stack level negative", tx_request(stack=-1), "InvalidStackLevel", None),
    ("too many periods", tx_request(periods=[(i * 60, 1000) for i in range(5)]), "TooManyPeriods", None),
    ("evse does not exist", request(3, profile()), "UnknownEvse", "K01.FR.28"),
    ("validFrom after validTo", tx_request(valid_from=at(7200), valid_to=at(3600)), "InvalidValue", None),
    ("validTo in the past", tx_request(valid_to=at(-1)), "InvalidValue", None),
    ("schedule duration zero", tx_request(duration=0), "InvalidSchedule", None),
    (
        "phaseToUse without numberPhases 1",
        tx_request(periods=[period(0, 7000, numberPhases=3, phaseToUse=1)]),
        "InvalidValue",
        "K01.FR.19",
    ),
]


@pytest.mark.parametrize(("name", "req", "code", "requirement"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_rule_violations(
    name: str,
    req: dict[str, Any],
    code: str,
    requirement: str | None,
    version: str,
) -> None:
    limits = LIMITS
    if code == "UnsupportedRateUnit":
        limits = StationLimits(max_stack_level=5, max_periods=4, rate_units=frozenset({"A"}), num_evses=2)
    found = check(req, version=version, limits=limits)
    assert code in codes(found), found
    if requirement is not None:
        assert any(v.requirement == requirement for v in found if v.code == code), found
    for v in found:
        assert len(v.code) <= 20 and len(v.message) <= 512
        assert v.code in REASON_CODES


# ------------------------------------------------------------------------------------ duplicates


def test_same_id_replaces_instead_of_conflicting() -> None:
    old = installed(1, profile(id=7, stack=2, purpose="TxProfile", tx="tx-1", unit="W"))
    req = tx_request(id=7, stack=2)
    assert check(req, inst=[old]) == []
    assert replaced_profiles(req, [old]) == [old]
    after = apply_set_charging_profile(req, [old])
    assert len(after) == 1 and after[0].profile.schedule.periods[0].limit == 7000


def test_tx_profile_same_stack_level_same_transaction_conflicts() -> None:
    old = installed(1, profile(id=7, stack=2, purpose="TxProfile", tx="tx-1", unit="W"))
    found = check(tx_request(id=8, stack=2), inst=[old])
    assert [(v.code, v.requirement) for v in found] == [("DuplicateProfile", "K01.FR.39")]
    assert check(tx_request(id=8, stack=3), inst=[old]) == []
    stale = installed(1, profile(id=7, stack=2, purpose="TxProfile", tx="tx-0", unit="W"))
    assert check(tx_request(id=8, stack=2), inst=[stale]) == []


def test_tx_default_same_stack_level_same_evse_conflicts() -> None:
    old = installed(1, profile(id=7, stack=2))
    found = check(request(1, profile(id=8, stack=2)), inst=[old])
    assert [(v.code, v.requirement) for v in found] == [("DuplicateProfile", "K01.FR.06")]
    assert check(request(2, profile(id=8, stack=2)), inst=[old]) == []
    assert check(request(1, profile(id=8, stack=1)), inst=[old]) == []


def test_tx_default_non_overlapping_validity_does_not_conflict() -> None:
    old = installed(1, profile(id=7, stack=2, valid_from=at(0), valid_to=at(3600)))
    assert check(request(1, profile(id=8, stack=2, valid_from=at(3600))), inst=[old]) == []
    overlapping = request(1, profile(id=8, stack=2, valid_from=at(1800)))
    assert codes(check(overlapping, inst=[old])) == {"DuplicateProfile"}


def test_tx_default_station_wide_and_evse_specific_same_stack_level_conflict() -> None:
    evse_specific = installed(1, profile(id=7, stack=2))
    found = check(request(0, profile(id=8, stack=2)), inst=[evse_specific])
    assert [(v.code, v.requirement) for v in found] == [("DuplicateProfile", "K01.FR.53")]
    station_wide = installed(0, profile(id=7, stack=2))
    assert codes(check(request(2, profile(id=8, stack=2)), inst=[station_wide])) == {"DuplicateProfile"}


def test_max_profile_same_stack_level_conflicts() -> None:
    old = installed(0, profile(id=7, purpose="ChargingStationMaxProfile", stack=0))
    req = request(0, profile(id=8, purpose="ChargingStationMaxProfile", stack=0))
    assert codes(check(req, inst=[old])) == {"DuplicateProfile"}


def test_cannot_overwrite_external_constraint_by_id() -> None:
    ext = installed(0, profile(id=-1, purpose="ChargingStationExternalConstraints"))
    found = check(request(1, profile(id=-1)), inst=[ext])
    assert ("DuplicateProfile", "K01.FR.05") in {(v.code, v.requirement) for v in found}
    assert replaced_profiles(request(1, profile(id=-1)), [ext]) == []


def test_external_constraints_allowed_when_not_from_csms() -> None:
    req = request(0, profile(id=-1, purpose="ChargingStationExternalConstraints"))
    assert check_set_charging_profile(req, version="2.1", limits=LIMITS, now=T0, from_csms=False) == []


def test_too_many_profiles() -> None:
    limits = StationLimits(max_stack_level=5, max_periods=4, max_profiles=2, num_evses=2)
    inst = [installed(1, profile(id=1, stack=0)), installed(1, profile(id=2, stack=1))]
    assert codes(check(request(1, profile(id=3, stack=2)), limits=limits, inst=inst)) == {"TooManyProfiles"}
    assert check(request(1, profile(id=2, stack=1)), limits=limits, inst=inst) == []


# ------------------------------------------------------------------------------------------ 2.1


def v21(*periods: dict[str, Any], purpose: str = "TxProfile", **kw: Any) -> dict[str, Any]:
    if purpose == "TxProfile":
        return tx_request(periods=list(periods), **kw)
    evse = 0 if purpose == "ChargingStationMaxProfile" else 1
    return request(evse, profile(purpose=purpose, unit="W", periods=list(periods), **kw))


V21_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("mode not supported", v21(period(0, 0, operationMode="LocalFrequency")), "UnsupportedMode"),
    (
        "central setpoint needs setpoint",
        v21(period(0, 7000, operationMode="CentralSetpoint")),
        "InvalidSetpoint",
    ),
    ("charging only needs limit", v21(period(0, operationMode="ChargingOnly")), "InvalidSetpoint"),
    ("absent mode needs limit", v21(period(0)), "InvalidSetpoint"),
    ("idle carries nothing", v21(period(0, 0, operationMode="Idle")), "InvalidSetpoint"),
    ("setpoint in charging only", v21(period(0, 10, setpoint=10)), "InvalidSetpoint"),
    (
        "max profile only charging only",
        v21(period(0, operationMode="CentralSetpoint", setpoint=1), purpose="ChargingStationMaxProfile"),
        "UnsupportedMode",
    ),
    (
        "priority charging only charging only",
        v21(period(0, operationMode="CentralSetpoint", setpoint=1), purpose="PriorityCharging"),
        "UnsupportedMode",
    ),
    (
        "priority charging without duration",
        v21(period(0, 1000), purpose="PriorityCharging", duration=60),
        "InvalidSchedule",
    ),
    ("local generation unsupported", v21(period(0, 1000), purpose="LocalGeneration"), "UnsupportedPurpose"),
    (
        "discharge limit positive",
        v21(period(0, operationMode="CentralSetpoint", setpoint=-5, dischargeLimit=5)),
        "InvalidValue",
    ),
    ("negative limit in 2.1", v21(period(0, -5000)), "InvalidValue"),
    ("dynamic unsupported", tx_request(kind="Dynamic"), "UnsupportedKind"),
    ("dynUpdateInterval without dynamic", tx_request(dynUpdateInterval=60), "InvalidProfile"),
    ("negative maxOfflineDuration", tx_request(maxOfflineDuration=-1), "InvalidValue"),
    (
        "randomized delay on max profile",
        mutate(
            request(0, profile(purpose="ChargingStationMaxProfile")),
            lambda r: sched(r).__setitem__("randomizedDelay", 60),
        ),
        "InvalidSchedule",
    ),
]


@pytest.mark.parametrize(("name", "req", "code"), V21_CASES, ids=[c[0] for c in V21_CASES])
def test_v21_rule_violations(name: str, req: dict[str, Any], code: str) -> None:
    assert code in codes(check(req, version="2.1")), check(req, version="2.1")


def test_v21_valid_setpoint_profiles() -> None:
    req = v21(
        period(0, 7000, operationMode="CentralSetpoint", setpoint=7000, dischargeLimit=0),
        period(600, 0, operationMode="CentralSetpoint", setpoint=-5000, dischargeLimit=-5000),
        period(1200, operationMode="Idle"),
        maxOfflineDuration=300,
        invalidAfterOfflineDuration=True,
    )
    validate_wire("SetChargingProfile", req, "2.1")
    assert check(req, version="2.1") == []


def test_v21_dynamic_when_supported() -> None:
    limits = StationLimits(max_stack_level=5, max_periods=4, supports_dynamic=True, num_evses=2)
    req = tx_request(kind="Dynamic", dynUpdateInterval=60)
    assert check(req, version="2.1", limits=limits) == []


def test_mode_check_skipped_when_modes_unknown() -> None:
    limits = StationLimits(max_stack_level=5, max_periods=4, supported_operation_modes=None)
    req = v21(period(0, operationMode="CentralSetpoint", setpoint=-1000))
    assert check(req, version="2.1", limits=limits) == []


def test_max_external_constraints_id() -> None:
    limits = StationLimits(max_stack_level=5, max_periods=4, max_external_constraints_id=100)
    found = check(tx_request(id=100), limits=limits)
    assert [(v.code, v.requirement) for v in found] == [("InvalidProfileId", "K01.FR.81")]
    assert check(tx_request(id=101), limits=limits) == []


# ----------------------------------------------------------------------------------------- 2.0.1


def test_v201_negative_limit_needs_the_vendor_convention() -> None:
    req = tx_request(periods=[(0, -5000)])
    assert codes(check(req, version="2.0.1")) == {"InvalidValue"}
    neg = StationLimits(max_stack_level=5, max_periods=4, allow_negative_limits=True)
    assert check(req, version="2.0.1", limits=neg) == []
    amps = tx_request(periods=[(0, -10)], unit="A")
    assert codes(check(amps, version="2.0.1", limits=neg)) == {"InvalidValue"}
    max_profile = request(0, profile(purpose="ChargingStationMaxProfile", unit="W", periods=[(0, -5000)]))
    assert codes(check(max_profile, version="2.0.1", limits=neg)) == {"InvalidValue"}


def test_v201_rejects_21_fields_and_purposes() -> None:
    with_mode = v21(period(0, 0, operationMode="ChargingOnly"))
    assert codes(check(with_mode, version="2.0.1")) == {"FormatViolation"}
    assert codes(check(tx_request(maxOfflineDuration=60), version="2.0.1")) == {"FormatViolation"}
    priority = v21(period(0, 10), purpose="PriorityCharging")
    assert "UnsupportedPurpose" in codes(check(priority, version="2.0.1"))
    assert "UnsupportedKind" in codes(check(tx_request(kind="Dynamic"), version="2.0.1"))
    assert codes(check(v21(period(0)), version="2.0.1")) == {"FormatViolation"}


def test_malformed_payload_is_a_format_violation() -> None:
    assert codes(check({"evseId": 1})) == {"FormatViolation"}
    assert codes(check(request(1, {"id": "x"}))) == {"FormatViolation"}
    bad_enum = request(1, profile(purpose="Nope"))
    assert codes(check(bad_enum)) == {"FormatViolation"}


# ------------------------------------------------------------------------------------- responses


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_rejection_response_is_schema_valid(version: str) -> None:
    found = check(tx_request(tx="nope", stack=9, periods=[(5, 1)] * 9), version=version)
    assert len(found) > 2
    resp = rejection_response(found, version)  # type: ignore[arg-type]
    validate_wire("SetChargingProfileResponse", resp, version)  # type: ignore[arg-type]
    assert resp["status"] == "Rejected" and resp["statusInfo"]["reasonCode"] == found[0].code
    assert rejection_response([], version) == {"status": "Accepted"}  # type: ignore[arg-type]


def test_violation_truncates() -> None:
    v = Violation("X" * 40, "m" * 2000)
    assert len(v.code) == 20 and len(v.message) == 512
