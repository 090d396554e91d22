"""Every command through the real API, the real CentralSystem and a station over a real socket:
the station's own answer comes back; offline / timeout / CALLERROR / schema / state errors map
onto clear JSON errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.api.support import Env, wait_for

BASE = "/api/v1/stations/FE-0001/commands"


async def command(env: Env, action: str, body: dict[str, Any], station: str = "FE-0001", **params: Any) -> Any:
    async with env.client() as c:
        return await c.post(f"/api/v1/stations/{station}/commands/{action}", json=body, params=params)


CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # action, API body, expected OCPP request sent, expected OCPP answer (subset)
    ("Reset", {"type": "Immediate"}, {"type": "Immediate"}, {"status": "Accepted"}),
    ("Reset", {"type": "OnIdle", "evse_id": 1}, {"type": "OnIdle", "evseId": 1}, {"status": "Accepted"}),
    ("UnlockConnector", {"evse_id": 1}, {"evseId": 1, "connectorId": 1}, {"status": "Unlocked"}),
    (
        "UnlockConnector",
        {"evse_id": 1, "connector_id": 2},
        {"evseId": 1, "connectorId": 2},
        {"status": "UnknownConnector"},
    ),
    (
        "ChangeAvailability",
        {"operational_status": "Inoperative", "evse_id": 1},
        {"operationalStatus": "Inoperative", "evse": {"id": 1}},
        {"status": "Accepted"},
    ),
    (
        "ChangeAvailability",
        {"operational_status": "Operative"},
        {"operationalStatus": "Operative"},
        {"status": "Accepted"},
    ),
    (
        "TriggerMessage",
        {"requested_message": "StatusNotification", "evse_id": 1, "connector_id": 1},
        {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}},
        {"status": "Accepted"},
    ),
    (
        "TriggerMessage",
        {"requested_message": "MeterValues"},
        {"requestedMessage": "MeterValues"},
        {"status": "NotImplemented"},
    ),
    (
        "GetVariables",
        {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
        {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]},
        {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "300",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        },
    ),
    (
        "SetVariables",
        {
            "variables": [
                {
                    "component": "OCPPCommCtrlr",
                    "variable": "HeartbeatInterval",
                    "value": "60",
                    "attribute_type": "Actual",
                    "evse_id": 1,
                    "component_instance": "main",
                }
            ]
        },
        {
            "setVariableData": [
                {
                    "attributeValue": "60",
                    "attributeType": "Actual",
                    "component": {"name": "OCPPCommCtrlr", "instance": "main", "evse": {"id": 1}},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        },
        {"setVariableResult": [{"attributeStatus": "Accepted"}]},
    ),
    (
        "GetBaseReport",
        {"report_base": "FullInventory", "request_id": 42},
        {"requestId": 42, "reportBase": "FullInventory"},
        {"status": "Accepted"},
    ),
    (
        "RequestStartTransaction",
        {"id_token": "04A2B3", "id_token_type": "ISO14443", "evse_id": 1, "remote_start_id": 7},
        {"idToken": {"idToken": "04A2B3", "type": "ISO14443"}, "remoteStartId": 7, "evseId": 1},
        {"status": "Accepted", "transactionId": "TX-7"},
    ),
    (
        "RequestStopTransaction",
        {"transaction_id": "TX-unknown"},
        {"transactionId": "TX-unknown"},
        {"status": "Rejected"},
    ),
    (
        "ClearChargingProfile",
        {"evse_id": 1, "purpose": "TxDefaultProfile", "stack_level": 2},
        {"chargingProfileCriteria": {"evseId": 1, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 2}},
        {"status": "Accepted"},
    ),
    (
        "GetCompositeSchedule",
        {"evse_id": 1, "duration": 3600, "charging_rate_unit": "W"},
        {"duration": 3600, "evseId": 1, "chargingRateUnit": "W"},
        {"status": "Accepted"},
    ),
    (
        "GetLog",
        {"remote_location": "https://logs.example.com/upload", "request_id": 9},
        {"logType": "DiagnosticsLog", "requestId": 9, "log": {"remoteLocation": "https://logs.example.com/upload"}},
        {"status": "Accepted", "filename": "diagnostics-0001.log"},
    ),
]


def subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(subset, expected, actual))
    return expected == actual


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
async def test_every_command_returns_the_stations_answer(env: Env, version: str) -> None:
    station = await env.connect(version=version)
    for action, body, wire, answer in CASES:
        r = await command(env, action, body)
        assert r.status_code == 200, (action, r.text)
        data = r.json()
        assert data["station_id"] == "FE-0001" and data["action"] == action and data["ocpp_version"] == version
        assert data["request"] == wire, action
        assert station.calls_of(action)[-1] == wire, action
        assert subset(answer, data["response"]), (action, data["response"])
        assert data["status"] == data["response"].get("status")


async def test_set_and_clear_charging_profile_update_the_record(env: Env) -> None:
    await env.connect()
    await env.quiet()  # the CSMS's post-boot profile reconciliation would race the operator's profile
    profile = {
        "id": 11,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": "2026-06-01T16:00:00Z",
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7000.0}],
            }
        ],
    }
    r = await command(env, "SetChargingProfile", {"evse_id": 1, "charging_profile": profile})
    assert r.status_code == 200, r.text
    assert r.json()["request"] == {"evseId": 1, "chargingProfile": profile}
    assert r.json()["response"] == {"status": "Accepted"}
    async with env.client("read") as c:
        rows = (await c.get("/api/v1/stations/FE-0001/profiles")).json()
        assert [(p["profile_id"], p["evse_id"], p["purpose"], p["source"]) for p in rows] == [
            (11, 1, "TxDefaultProfile", "operator")
        ]
        assert rows[0]["profile"] == profile
        comp = (await c.get("/api/v1/stations/FE-0001/composite-schedule", params={"evse_id": 1})).json()
        assert comp["profiles_used"] == 1 and comp["periods"][0]["limit"] == 7000.0
    charging = getattr(env.central, "charging", None)
    if charging is not None:  # the smart-charging layer sees operator profiles too (K01 checks)
        assert [p.profile.id for p in charging.installed["FE-0001"]] == [11]
    r = await command(env, "ClearChargingProfile", {"charging_profile_id": 11})
    assert r.json()["request"] == {"chargingProfileId": 11}
    async with env.client("read") as c:
        assert (await c.get("/api/v1/stations/FE-0001/profiles")).json() == []
    if charging is not None:
        assert charging.installed["FE-0001"] == []


async def test_update_firmware_and_get_log_progress_is_visible_as_station_events(env: Env) -> None:
    station = await env.connect()
    r = await command(env, "UpdateFirmware", {"location": "https://fw.example.com/fe20-2.5.0.bin"})
    assert r.status_code == 200, r.text
    sent = r.json()["request"]
    assert sent["firmware"]["location"] == "https://fw.example.com/fe20-2.5.0.bin"
    assert sent["firmware"]["retrieveDateTime"].endswith("Z") and isinstance(sent["requestId"], int)
    r2 = await command(env, "GetLog", {"remote_location": "ftp://logs.example.com/", "log_type": "SecurityLog"})
    assert r2.json()["response"]["filename"] == "diagnostics-0001.log"
    await station.settle()
    async with env.client("read") as c:
        fw = (await c.get("/api/v1/stations/FE-0001/events", params={"kind": "FirmwareStatus"})).json()["items"]
        assert [e["payload"]["status"] for e in reversed(fw)] == [
            "Downloading",
            "Downloaded",
            "Installing",
            "Installed",
        ]
        assert {e["payload"]["requestId"] for e in fw} == {sent["requestId"]}
        logs = (await c.get("/api/v1/stations/FE-0001/events", params={"kind": "LogStatus"})).json()["items"]
        assert [e["payload"]["status"] for e in logs] == ["Uploaded", "Uploading"]
        newer = await c.get(
            "/api/v1/stations/FE-0001/events", params={"kind": "FirmwareStatus", "after_id": fw[1]["id"]}
        )
        assert [e["payload"]["status"] for e in newer.json()["items"]] == ["Installed"]


async def test_offline_station_is_409_with_last_seen(env: Env) -> None:
    r = await command(env, "Reset", {"type": "Immediate"})
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "station_offline" and "never connected" in err["message"]
    station = await env.connect()
    await station.close()
    await wait_for(lambda: "FE-0001" not in env.central.sessions)
    r = await command(env, "UnlockConnector", {"evse_id": 1})
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "station_offline" and "last seen" in err["message"]
    assert err["details"]["station_id"] == "FE-0001" and err["details"]["last_seen"]


async def test_unknown_station_is_404_with_close_matches(env: Env) -> None:
    r = await command(env, "Reset", {"type": "Immediate"}, station="FE-001")
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "unknown_station"
    assert err["details"]["close_matches"][0] in ("FE-0001", "FE-0002", "FE-0003")
    assert "did you mean" in err["message"]
    r = await command(env, "Reset", {"type": "Immediate"}, station="fe-0002")
    assert r.json()["error"]["details"]["close_matches"][0] == "FE-0002"
    r = await command(env, "Reset", {"type": "Immediate"}, station="XYZ")
    assert r.json()["error"]["details"]["close_matches"] == []


async def test_timeout_is_504(env: Env) -> None:
    await env.connect(delay={"Reset": 2.0})
    r = await command(env, "Reset", {"type": "Immediate"}, timeout=0.5)
    assert r.status_code == 504
    err = r.json()["error"]
    assert err["code"] == "station_timeout" and err["details"]["timeout_s"] == 0.5
    assert "did not answer Reset within 0.5 s" in err["message"]


async def test_callerror_is_502_with_the_ocpp_code(env: Env) -> None:
    await env.connect(errors={"UnlockConnector": "NotSupported", "Reset": "InternalError"})
    r = await command(env, "UnlockConnector", {"evse_id": 1})
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "station_callerror"
    assert err["details"]["ocpp_code"] == "NotSupported" and err["details"]["action"] == "UnlockConnector"
    assert "CALLERROR NotSupported" in err["message"]
    r = await command(env, "Reset", {"type": "Immediate"})
    assert r.json()["error"]["details"]["ocpp_code"] == "InternalError"


async def test_schema_violation_of_the_ocpp_request_is_422_naming_the_field(env: Env) -> None:
    station = await env.connect(version="2.0.1")
    # ImmediateAndResume exists only in OCPP 2.1
    r = await command(env, "Reset", {"type": "ImmediateAndResume"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_payload" and err["details"]["field"] == "type"
    assert err["details"]["ocpp_code"] == "PropertyConstraintViolation" and "OCPP 2.0.1" in err["message"]
    # component names are at most 50 characters
    r = await command(env, "GetVariables", {"variables": [{"component": "C" * 51, "variable": "V"}]})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "getVariableData.0.component.name"
    # a charging profile missing a required field
    r = await command(env, "SetChargingProfile", {"evse_id": 1, "charging_profile": {"id": 1}})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["ocpp_code"] == "OccurrenceConstraintViolation"
    # nothing invalid reached the station
    assert station.calls_of("Reset") == [] and station.calls_of("SetChargingProfile") == []
    assert all(
        len(c["component"]["name"]) <= 50 for p in station.calls_of("GetVariables") for c in p["getVariableData"]
    )


async def test_api_body_validation_is_422_in_the_error_format(env: Env) -> None:
    await env.connect()
    for body in ({}, {"type": "Sometime"}, {"type": "Immediate", "bogus": 1}, {"type": "Immediate", "evse_id": -1}):
        r = await command(env, "Reset", body)
        assert r.status_code == 422, body
        err = r.json()["error"]
        assert err["code"] == "validation_error" and err["details"]["errors"][0]["field"].startswith("body")
    r = await command(env, "TriggerMessage", {"requested_message": "Heartbeat", "connector_id": 1})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "connector_id"
    r = await command(env, "Reset", {"type": "Immediate"}, timeout=0)
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "query.timeout"


async def test_pending_station_refuses_what_pending_forbids(env: Env) -> None:
    await env.central.set_boot_policy("FE-0002", "pending")
    await env.connect("FE-0002")
    assert env.central.states["FE-0002"].boot.value == "Pending"
    r = await command(env, "UnlockConnector", {"evse_id": 1}, station="FE-0002")
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "not_allowed" and err["details"]["boot"] == "Pending"
    # B02: device-model reads are allowed while Pending
    r = await command(
        env, "GetVariables", {"variables": [{"component": "Identity", "variable": "SerialNumber"}]}, station="FE-0002"
    )
    assert r.status_code == 200 and r.json()["response"]["getVariableResult"][0]["attributeValue"] == "SN-0001"


async def test_station_disconnecting_during_a_call_is_station_offline(env: Env) -> None:
    station = await env.connect(delay={"Reset": 5})

    async def drop() -> None:
        await asyncio.sleep(0.3)
        await station.ws.close()

    task = asyncio.create_task(drop())
    r = await command(env, "Reset", {"type": "Immediate"})
    await task
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "station_offline"


async def test_two_stations_commands_in_parallel(env: Env) -> None:
    a = await env.connect("FE-0001", delay={"Reset": 0.3})
    b = await env.connect("FE-0002", version="2.1", delay={"Reset": 0.3})
    results = await asyncio.gather(
        *(command(env, "Reset", {"type": "Immediate"}, station=s) for s in ("FE-0001", "FE-0002", "FE-0001"))
    )
    assert [r.status_code for r in results] == [200, 200, 200]
    assert len(a.calls_of("Reset")) == 2 and len(b.calls_of("Reset")) == 1
