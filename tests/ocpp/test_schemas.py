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


def _outcome(validate, payload):
    try:
        validate(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        return (exc.rule, exc.name, exc.message, exc.path)
    return None


def test_every_schema_compiles_with_the_fast_rewrites() -> None:
    for version in schemas.VERSIONS:
        for action in schemas.actions(version):
            for suffix in ("Request", "Response"):
                source = fastjsonschema.compile_to_code(schemas._load(version, action + suffix), use_default=False)
                code, _enums = schemas.optimized_code(source)
                assert "**locals()" not in code, (version, action, suffix)
                schemas._compile_fast(schemas._load(version, action + suffix))


SAMPLE = {"value": 1.5, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W", "multiplier": 0}}


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
        lambda p: p["meterValue"][1].update(timestamp="2026-06-01T16:00:00"),
        lambda p: p["meterValue"][1].update(sampledValue=[]),
        lambda p: p["meterValue"][1]["sampledValue"][1].pop("value"),
    ],
)
def test_fast_validator_matches_fastjsonschema(version: str, mutate) -> None:
    """Same verdict, rule, path and message as the unmodified fastjsonschema validator."""
    plain = fastjsonschema.compile(schemas._load(version, "MeterValuesRequest"), use_default=False)
    mv = {"timestamp": "2026-06-01T16:00:00Z", "sampledValue": [dict(SAMPLE) for _ in range(3)]}
    payload = {"evseId": 1, "meterValue": [copy.deepcopy(mv), copy.deepcopy(mv)]}
    mutate(payload)
    fast = schemas.validator(version, "MeterValues", "request")
    assert _outcome(fast, copy.deepcopy(payload)) == _outcome(plain, copy.deepcopy(payload))
