"""Wire round trips and datetime handling of the light models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from csms.smartcharging.model import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedulePeriod,
    InstalledProfile,
    ModelError,
    OperationMode,
    format_datetime,
    parse_datetime,
)
from csms.smartcharging.schema import WireValidationError, validate_wire
from tests.smartcharging.factories import period, profile, request

V21_PROFILE = {
    "id": 1_000_001,
    "stackLevel": 3,
    "chargingProfilePurpose": "TxProfile",
    "chargingProfileKind": "Absolute",
    "transactionId": "tx-9",
    "maxOfflineDuration": 120,
    "invalidAfterOfflineDuration": True,
    "customData": {"vendorId": "acme", "note": 1},
    "chargingSchedule": [
        {
            "id": 1,
            "startSchedule": "2026-06-01T12:00:00.250Z",
            "duration": 3600,
            "chargingRateUnit": "W",
            "randomizedDelay": 0,
            "salesTariff": {"id": 1, "salesTariffEntry": [{"relativeTimeInterval": {"start": 0}}]},
            "chargingSchedulePeriod": [
                {
                    "startPeriod": 0,
                    "operationMode": "CentralSetpoint",
                    "setpoint": -3000,
                    "setpoint_L2": -3000,
                    "setpoint_L3": -3000,
                    "dischargeLimit": -3500.5,
                    "limit": 0,
                    "v2xFreqWattCurve": [{"frequency": 49.8, "power": 1000}],
                },
                {"startPeriod": 600, "operationMode": "Idle", "evseSleep": True},
            ],
        }
    ],
}


def test_v21_round_trip_keeps_every_field_and_l2_names() -> None:
    validate_wire("SetChargingProfile", {"evseId": 1, "chargingProfile": V21_PROFILE}, "2.1")
    prof = ChargingProfile.from_wire(V21_PROFILE)
    assert prof.purpose is ChargingProfilePurpose.TX_PROFILE
    assert prof.kind is ChargingProfileKind.ABSOLUTE
    first = prof.schedule.periods[0]
    assert first.operation_mode is OperationMode.CENTRAL_SETPOINT
    assert first.setpoint_l2 == -3000 and first.discharge_limit == -3500.5
    assert "v2xFreqWattCurve" in first.extra
    assert prof.schedule.start_schedule == datetime(2026, 6, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    assert prof.has_discharge()
    assert prof.to_wire() == V21_PROFILE


def test_v201_round_trip() -> None:
    wire = profile(id=5, periods=[period(0, 16.5, numberPhases=1, phaseToUse=2), (600, 32)])
    prof = ChargingProfile.from_wire(wire)
    assert prof.schedule.charging_rate_unit is ChargingRateUnit.A
    assert prof.to_wire() == wire
    assert not prof.has_discharge()


def test_absent_fields_are_omitted_never_null() -> None:
    p = ChargingSchedulePeriod(start_period=0, limit=10)
    assert p.to_wire() == {"startPeriod": 0, "limit": 10}
    assert p.effective_operation_mode is OperationMode.CHARGING_ONLY
    assert "null" not in str(ChargingProfile.from_wire(profile()).to_wire())


def test_installed_profile_request_round_trip() -> None:
    req = request(2, profile(id=3))
    inst = InstalledProfile.from_request(req)
    assert inst.evse_id == 2 and inst.to_request() == req


@pytest.mark.parametrize(
    "bad",
    [
        {"id": 1},
        profile(purpose="Bogus"),
        profile(periods=[{"startPeriod": "0", "limit": 1}]),
        profile(periods=[{"startPeriod": 0, "limit": True}]),
        {**profile(), "chargingSchedule": []},
        {**profile(), "validFrom": "2026-06-01T12:00:00"},
    ],
)
def test_malformed_profiles_raise_model_error(bad: dict[str, object]) -> None:
    with pytest.raises(ModelError):
        ChargingProfile.from_wire(bad)


def test_datetimes() -> None:
    assert parse_datetime("2026-06-01T16:00:00Z") == datetime(2026, 6, 1, 16, tzinfo=UTC)
    assert parse_datetime("2026-06-01T18:00:00+02:00") == datetime(2026, 6, 1, 16, tzinfo=UTC)
    assert parse_datetime("2026-06-01T18:00:00+02:00").tzinfo is UTC
    with pytest.raises(ModelError):
        parse_datetime("2026-06-01T16:00:00")
    with pytest.raises(ModelError):
        parse_datetime("yesterday")
    cest = timezone(timedelta(hours=2))
    assert format_datetime(datetime(2026, 6, 1, 18, tzinfo=cest)) == "2026-06-01T16:00:00Z"
    assert format_datetime(datetime(2026, 6, 1, 16, 0, 0, 5000, tzinfo=UTC)) == "2026-06-01T16:00:00.005Z"
    with pytest.raises(ValueError):
        format_datetime(datetime(2026, 6, 1, 16))


def test_validate_wire_reports_schema_errors() -> None:
    with pytest.raises(WireValidationError, match="dischargeLimit"):
        validate_wire(
            "SetChargingProfile",
            request(1, profile(periods=[period(0, 1, dischargeLimit=-1)])),
            "2.0.1",
        )
    with pytest.raises(WireValidationError):
        validate_wire("SetChargingProfileRequest", request(1, profile(start_schedule=None) | {"x": 1}), "2.1")
    validate_wire("SetChargingProfile", {"status": "Accepted"}, "2.1", response=True)
    with pytest.raises(ValueError, match="no OCPP"):
        validate_wire("NoSuchAction", {}, "2.1")
