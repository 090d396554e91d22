"""The documented mapping from schema violation class to CALLERROR code."""

import copy

import fastjsonschema
import pytest

from csms.ocpp import schemas
from csms.ocpp.errors import ErrorCode

BOOT = {"chargingStation": {"model": "FE-20", "vendorName": "Fermata"}, "reason": "PowerUp"}


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda p: p.pop("reason"), ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION),
        (lambda p: p["chargingStation"].update(model=5), ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        (lambda p: p.update(reason="Sunshine"), ErrorCode.PROPERTY_CONSTRAINT_VIOLATION),
        (lambda p: p["chargingStation"].update(model="x" * 21), ErrorCode.PROPERTY_CONSTRAINT_VIOLATION),
        (lambda p: p.update(colour="blue"), ErrorCode.FORMAT_VIOLATION),
    ],
)
def test_violation_classes(version: str, mutate, code: ErrorCode) -> None:
    payload = {"chargingStation": dict(BOOT["chargingStation"]), "reason": "PowerUp"}
    schemas.validate(version, "BootNotification", "request", payload)
    mutate(payload)
    with pytest.raises(schemas.SchemaViolation) as info:
        schemas.validate(version, "BootNotification", "request", payload)
    assert info.value.code == code


def test_naive_timestamp_is_a_property_violation() -> None:
    with pytest.raises(schemas.SchemaViolation) as info:
        schemas.validate("2.0.1", "HeartbeatResponse"[:-8], "response", {"currentTime": "2026-06-01T16:00:00"})
    assert info.value.code == ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    schemas.validate("2.0.1", "Heartbeat", "response", {"currentTime": "2026-06-01T16:00:00Z"})


def test_action_sets_differ_by_version() -> None:
    assert "NotifyAllowedEnergyTransfer" in schemas.actions("2.1")
    assert "NotifyAllowedEnergyTransfer" not in schemas.actions("2.0.1")
    assert "BootNotification" in schemas.actions("2.0.1")


def test_mangled_21_field_names_validate_as_on_the_wire() -> None:
    """2.1 names the ocpp package mangles (setpoint_L2, ...) are accepted verbatim."""
    period = {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -5000, "setpoint_L2": -1000.0}
    request = {
        "evseId": 1,
        "chargingProfile": {
            "id": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "startSchedule": "2026-06-01T16:00:00Z",
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [period],
                }
            ],
        },
    }
    schemas.validate("2.1", "SetChargingProfile", "request", request)


def test_validation_never_writes_defaults_into_payloads() -> None:
    event = {
        "eventType": "Started",
        "timestamp": "2026-06-01T16:00:00Z",
        "triggerReason": "CablePluggedIn",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "T1"},
    }
    before = repr(event)
    schemas.validate("2.0.1", "TransactionEvent", "request", event)
    assert repr(event) == before  # no "offline": false added


def test_every_schema_compiles_in_both_validators() -> None:
    schemas.prepare()
    for version in schemas.VERSIONS:
        for action in schemas.actions(version):
            for kind in ("request", "response"):
                assert callable(schemas.checker(version, action, kind))
                assert callable(schemas.validator(version, action, kind))


SAMPLE = {"value": 1.5, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W", "multiplier": 0}}


def _meter_values() -> dict:
    mv = {"timestamp": "2026-06-01T16:00:00Z", "sampledValue": [dict(SAMPLE) for _ in range(3)]}
    return {"evseId": 1, "meterValue": [copy.deepcopy(mv), copy.deepcopy(mv)]}


def _fast_verdict(version: str, action: str, kind: str, payload) -> bool:
    try:
        schemas.validator(version, action, kind)(payload)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: None,
        lambda p: p["meterValue"][1]["sampledValue"][2].update(measurand="Power.Active.Imports"),
        lambda p: p["meterValue"][1]["sampledValue"][2].update(measurand=5),
        lambda p: p["meterValue"][0]["sampledValue"][1].update(phase="L4"),
        lambda p: p["meterValue"][0]["sampledValue"][1].update(location="Roof"),
        lambda p: p["meterValue"][0]["sampledValue"][1].update(context="Sample.Clock"),
        lambda p: p["meterValue"][0]["sampledValue"][1].update(context="Sample.Hourly"),
        lambda p: p["meterValue"][1]["sampledValue"][0]["unitOfMeasure"].update(unit="x" * 21),
        lambda p: p["meterValue"][1]["sampledValue"][0].update(colour="blue"),
        lambda p: p["meterValue"][1]["sampledValue"][0].update(value="12"),
        lambda p: p["meterValue"][1]["sampledValue"][0].update(value=True),
        lambda p: p.update(evseId=1.0),
        lambda p: p.update(evseId=-1),
        lambda p: p.update(evseId=2**70),
        lambda p: p["meterValue"][1].update(timestamp="2026-06-01T16:00:00"),
        lambda p: p["meterValue"][1].update(timestamp="2026-06-01t16:00:00z"),
        lambda p: p["meterValue"][1].update(timestamp="2026-06-01T16:00:00.123456789+02:00"),
        lambda p: p["meterValue"][1].update(timestamp="2026-06-01 16:00:00Z"),
        lambda p: p["meterValue"][1].update(timestamp="2026-02-30T16:00:00Z"),
        lambda p: p["meterValue"][1].update(timestamp="2026-06-01T24:00:00Z"),
        lambda p: p["meterValue"][1].update(sampledValue=[]),
        lambda p: p["meterValue"][1]["sampledValue"][1].pop("value"),
        lambda p: p.pop("meterValue"),
        lambda p: p.update(meterValue={}),
    ],
)
def test_the_two_validators_agree_on_every_verdict(version: str, mutate) -> None:
    """jsonschema-rs decides, fastjsonschema explains a rejection: they must agree on the verdict."""
    payload = _meter_values()
    mutate(payload)
    fast = schemas.checker(version, "MeterValues", "request")(copy.deepcopy(payload))
    assert fast == _fast_verdict(version, "MeterValues", "request", copy.deepcopy(payload))


@pytest.mark.parametrize(
    ("action", "kind", "payload"),
    [
        ("BootNotification", "request", BOOT),
        ("BootNotification", "request", {**BOOT, "reason": "Sunshine"}),
        ("Heartbeat", "response", {"currentTime": "2026-06-01T16:00:00.000Z"}),
        ("Heartbeat", "response", {"currentTime": "yesterday"}),
        (
            "StatusNotification",
            "request",
            {"timestamp": "2026-06-01T16:00:00Z", "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1},
        ),
        (
            "StatusNotification",
            "request",
            {"timestamp": "2026-06-01T16:00:00Z", "connectorStatus": "Occupied", "evseId": "1", "connectorId": 1},
        ),
        ("DataTransfer", "request", {"vendorId": "x" * 255, "data": {"any": [1, None, "thing"]}}),
        ("DataTransfer", "request", {"vendorId": "x" * 256}),
        ("Authorize", "request", {"idToken": {"idToken": "A" * 36, "type": "ISO14443"}}),
        ("Authorize", "request", {"idToken": {"idToken": "A" * 37, "type": "ISO14443"}}),
    ],
)
def test_the_two_validators_agree_on_other_messages(action: str, kind: str, payload) -> None:
    for version in schemas.VERSIONS:
        assert schemas.checker(version, action, kind)(payload) == _fast_verdict(version, action, kind, payload)
