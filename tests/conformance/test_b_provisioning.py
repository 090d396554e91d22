"""B - Provisioning: the OCA test cases TC_B_*_CSMS on OCPP 2.0.1 and 2.1, plus negative cases.

Boot (Accepted / Pending and what a Pending station may do), device-model reads and writes,
reports, resets of the station and of one EVSE (with and without a transaction), network
profiles and the WebSocket subprotocol. The OCTT-style station sends and answers exactly what
the test case scripts; each test asserts the CSMS's answers, the requests it sent and what its
HTTP API shows afterwards."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import PASSWORD, TestStation, open_ws, raw_exchange

from .conftest import Rig, wait_for
from .octt import SESSION, Octt, api_get, command, connect, new_tx_id, now, reconnect, shared_rig

pytestmark = SESSION
rig = shared_rig()

ACCEPT = {"status": "Accepted"}


def _var(component: str, variable: str, instance: str | None = None, value: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"component": component, "variable": variable}
    if instance is not None:
        out["variable_instance"] = instance
    if value is not None:
        out["value"] = value
    return out


def _get_answer(values: dict[tuple[str, str, str], str]) -> Any:
    """A GetVariables handler answering from ``values`` ((component, variable, instance) -> value)."""

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        results = []
        for d in request["getVariableData"]:
            key = (d["component"]["name"], d["variable"]["name"], d["variable"].get("instance", ""))
            r: dict[str, Any] = {"component": d["component"], "variable": d["variable"]}
            if key in values:
                r.update(attributeStatus="Accepted", attributeValue=values[key])
            else:
                r["attributeStatus"] = "UnknownVariable"
            results.append(r)
        return {"getVariableResult": results}

    return answer


def _set_answer(status: str = "Accepted") -> Any:
    def answer(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "setVariableResult": [
                {"attributeStatus": status, "component": d["component"], "variable": d["variable"]}
                for d in request["setVariableData"]
            ]
        }

    return answer


async def _variables(rig: Rig, st: Octt) -> list[dict[str, Any]]:
    return await api_get(rig, f"/api/v1/stations/{st.station_id}/variables")  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------ B01-B04 boot
async def test_TC_B_01_CSMS_cold_boot_accepted(rig: Rig) -> None:
    st = await connect(rig, boot=False)
    answer = await st.call(
        "BootNotification",
        {
            "chargingStation": {"model": "FE-20", "vendorName": "Fermata", "serialNumber": "SN-B01"},
            "reason": "PowerUp",
        },
    )
    assert answer["status"] == "Accepted" and answer["interval"] == rig.central.settings.boot.heartbeat_interval
    assert abs(answer["interval"]) > 0 and answer["currentTime"].endswith(("Z", "+00:00"))
    for evse_id in (1, 2):
        assert await st.status("Available", evse_id) == {}
    assert set(await st.call("Heartbeat", {})) == {"currentTime"}

    async def booted() -> dict[str, Any] | None:
        detail = await api_get(rig, f"/api/v1/stations/{st.station_id}")
        return detail if detail["boot_status"] == "Accepted" and detail["serial_number"] else None

    detail = await wait_for(booted)
    assert detail["vendor"] == "Fermata" and detail["model"] == "FE-20" and detail["serial_number"] == "SN-B01"
    assert detail["ocpp_version"] == rig.version and detail["last_boot_at"] is not None
    await st.close()


async def test_TC_B_02_CSMS_cold_boot_pending(rig: Rig) -> None:
    st = await connect(rig, {"GetVariables": _get_answer({}), "SetVariables": _set_answer()}, boot=False)
    await rig.central.set_boot_policy(st.station_id, "pending")
    answer = await st.boot()
    assert answer["status"] == "Pending" and answer["interval"] == rig.central.settings.boot.pending_retry_interval
    # while Pending the CSMS may configure the station (B02.FR.xx) ...
    out = await command(
        rig, st, "SetVariables", {"variables": [_var("OCPPCommCtrlr", "HeartbeatInterval", None, "60")]}
    )
    assert out["response"]["setVariableResult"][0]["attributeStatus"] == "Accepted"
    # ... but nothing that needs an accepted station
    r = await rig.post(f"/api/v1/stations/{st.station_id}/commands/RequestStartTransaction", {"id_token": "X"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_allowed"
    assert st.got("RequestStartTransaction") == []
    await rig.central.set_boot_policy(st.station_id, "accept")
    assert (await st.boot())["status"] == "Accepted"  # the next boot after the interval
    await st.close()


async def test_TC_B_30_CSMS_cold_boot_pending_security_error(rig: Rig) -> None:
    st = await connect(rig, boot=False)
    await rig.central.set_boot_policy(st.station_id, "pending")
    assert (await st.boot())["status"] == "Pending"
    await st.detach()
    authorize = '[2,"p1","Authorize",{"idToken":{"idToken":"X","type":"ISO14443"}}]'
    assert (await raw_exchange(st.ws, authorize))[:3] == [4, "p1", "SecurityError"]
    tx = (
        f'[2,"p2","TransactionEvent",{{"eventType":"Started","timestamp":"{now()}","triggerReason":"Authorized",'
        '"seqNo":0,"transactionInfo":{"transactionId":"T-P"}}]'
    )
    assert (await raw_exchange(st.ws, tx))[:3] == [4, "p2", "SecurityError"]
    assert (await raw_exchange(st.ws, '[2,"p3","Heartbeat",{}]'))[:2] == [3, "p3"]  # allowed while Pending
    await st.ws.close()


async def test_TC_B_31_CSMS_cold_boot_pending_trigger_message(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": ACCEPT}, boot=False)
    await rig.central.set_boot_policy(st.station_id, "pending")
    assert (await st.boot())["status"] == "Pending"
    await rig.central.set_boot_policy(st.station_id, "accept")
    out = await command(rig, st, "TriggerMessage", {"requested_message": "BootNotification"})
    assert out["status"] == "Accepted" and st.got("TriggerMessage") == [{"requestedMessage": "BootNotification"}]
    answer = await st.call(
        "BootNotification", {"chargingStation": {"model": "FE-20", "vendorName": "Fermata"}, "reason": "Triggered"}
    )
    assert answer["status"] == "Accepted"
    assert await st.status("Available") == {}
    await st.close()


# ------------------------------------------------------------------------------ B05/B06 variables
async def test_TC_B_06_CSMS_get_variables_single_value(rig: Rig) -> None:
    st = await connect(rig, {"GetVariables": _get_answer({("OCPPCommCtrlr", "HeartbeatInterval", ""): "300"})})
    out = await command(rig, st, "GetVariables", {"variables": [_var("OCPPCommCtrlr", "HeartbeatInterval")]})
    assert st.got("GetVariables") == [
        {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}
    ]
    assert out["response"]["getVariableResult"][0]["attributeValue"] == "300"
    assert [(v["variable"], v["value"]) for v in await _variables(rig, st)] == [("HeartbeatInterval", "300")]
    await st.close()


async def test_TC_B_07_CSMS_get_variables_multiple_values(rig: Rig) -> None:
    values = {("OCPPCommCtrlr", "HeartbeatInterval", ""): "300", ("AuthCtrlr", "AuthorizeRemoteStart", ""): "true"}
    st = await connect(rig, {"GetVariables": _get_answer(values)})
    body = {"variables": [_var("OCPPCommCtrlr", "HeartbeatInterval"), _var("AuthCtrlr", "AuthorizeRemoteStart")]}
    out = await command(rig, st, "GetVariables", body)
    assert len(st.got("GetVariables")) == 1 and len(st.got("GetVariables")[0]["getVariableData"]) == 2
    assert [r["attributeValue"] for r in out["response"]["getVariableResult"]] == ["300", "true"]
    await st.close()


async def test_TC_B_08_CSMS_get_variables_limit_to_maximum_number_of_values(rig: Rig) -> None:
    values = {
        ("DeviceDataCtrlr", "ItemsPerMessage", "GetReport"): "10",
        ("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"): "4",
        ("DeviceDataCtrlr", "BytesPerMessage", "GetReport"): "65000",
        ("DeviceDataCtrlr", "BytesPerMessage", "GetVariables"): "65000",
        ("AuthCtrlr", "AuthorizeRemoteStart", ""): "true",
    }
    st = await connect(rig, {"GetVariables": _get_answer(values)})
    # configuration state: the CSMS reads ItemsPerMessage[GetVariables] = 4
    limit = {"variables": [_var("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables")]}
    assert (await command(rig, st, "GetVariables", limit))["response"]["getVariableResult"][0]["attributeValue"] == "4"
    five = [
        _var("DeviceDataCtrlr", "ItemsPerMessage", "GetReport"),
        _var("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"),
        _var("DeviceDataCtrlr", "BytesPerMessage", "GetReport"),
        _var("DeviceDataCtrlr", "BytesPerMessage", "GetVariables"),
        _var("AuthCtrlr", "AuthorizeRemoteStart"),
    ]
    out = await command(rig, st, "GetVariables", {"variables": five})
    sizes = [len(r["getVariableData"]) for r in st.got("GetVariables")[1:]]
    assert sizes == [4, 1]  # B06.FR.05: never more than ItemsPerMessageGetVariables in one request
    assert [r["attributeValue"] for r in out["response"]["getVariableResult"]] == ["10", "4", "65000", "65000", "true"]
    await st.close()


async def test_TC_B_09_CSMS_set_variables_single_value(rig: Rig) -> None:
    st = await connect(rig, {"SetVariables": _set_answer()})
    out = await command(
        rig, st, "SetVariables", {"variables": [_var("OCPPCommCtrlr", "HeartbeatInterval", None, "60")]}
    )
    assert st.got("SetVariables") == [
        {
            "setVariableData": [
                {
                    "attributeValue": "60",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        }
    ]
    assert out["response"]["setVariableResult"][0]["attributeStatus"] == "Accepted"
    await st.close()


async def test_TC_B_10_CSMS_set_variables_multiple_values(rig: Rig) -> None:
    st = await connect(rig, {"SetVariables": _set_answer()})
    body = {
        "variables": [
            _var("OCPPCommCtrlr", "HeartbeatInterval", None, "60"),
            _var("AlignedDataCtrlr", "Interval", None, "900"),
        ]
    }
    out = await command(rig, st, "SetVariables", body)
    assert [d["attributeValue"] for d in st.got("SetVariables")[0]["setVariableData"]] == ["60", "900"]
    assert [r["attributeStatus"] for r in out["response"]["setVariableResult"]] == ["Accepted", "Accepted"]
    await st.close()


# ------------------------------------------------------------------------------ B07/B08 reports
def _report(request_id: int, seq_no: int, tbc: bool, variable: str, value: str) -> dict[str, Any]:
    return {
        "requestId": request_id,
        "generatedAt": now(),
        "seqNo": seq_no,
        "tbc": tbc,
        "reportData": [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": variable},
                "variableAttribute": [{"type": "Actual", "value": value, "mutability": "ReadWrite"}],
                "variableCharacteristics": {"dataType": "integer", "supportsMonitoring": False},
            }
        ],
    }


async def _base_report(rig: Rig, base: str) -> None:
    st = await connect(rig, {"GetBaseReport": ACCEPT})
    out = await command(rig, st, "GetBaseReport", {"report_base": base})
    request = st.got("GetBaseReport")[0]
    assert out["status"] == "Accepted" and request["reportBase"] == base and isinstance(request["requestId"], int)
    rid = request["requestId"]
    assert await st.call("NotifyReport", _report(rid, 0, True, "HeartbeatInterval", "300")) == {}
    assert await st.call("NotifyReport", _report(rid, 1, False, "MessageTimeout", "30")) == {}
    got = {v["variable"]: v for v in await _variables(rig, st)}
    assert got["HeartbeatInterval"]["value"] == "300" and got["MessageTimeout"]["value"] == "30"
    assert got["MessageTimeout"]["characteristics"]["dataType"] == "integer"
    await st.close()


async def test_TC_B_12_CSMS_get_base_report_configuration_inventory(rig: Rig) -> None:
    await _base_report(rig, "ConfigurationInventory")


async def test_TC_B_13_CSMS_get_base_report_full_inventory(rig: Rig) -> None:
    await _base_report(rig, "FullInventory")


async def test_TC_B_14_CSMS_get_base_report_summary_inventory(rig: Rig) -> None:
    await _base_report(rig, "SummaryInventory")


async def test_TC_B_18_CSMS_get_custom_report_criteria_and_component_variables(rig: Rig) -> None:
    answers = iter([{"status": "EmptyResultSet"}, ACCEPT])
    st = await connect(rig, {"GetReport": lambda _r: next(answers)})
    evse = {"component": "EVSE", "evse_id": 1, "variable": "AvailabilityState"}
    out = await command(rig, st, "GetReport", {"component_criteria": ["Problem"], "component_variables": [evse]})
    assert out["status"] == "EmptyResultSet"
    out = await command(rig, st, "GetReport", {"component_criteria": ["Available"], "component_variables": [evse]})
    assert out["status"] == "Accepted"
    first, second = st.got("GetReport")
    assert first["componentCriteria"] == ["Problem"] and second["componentCriteria"] == ["Available"]
    assert second["componentVariable"] == [
        {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "AvailabilityState"}}
    ]
    report = {
        "requestId": second["requestId"],
        "generatedAt": now(),
        "seqNo": 0,
        "reportData": [
            {
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "AvailabilityState"},
                "variableAttribute": [{"type": "Actual", "value": "Available"}],
            }
        ],
    }
    assert await st.call("NotifyReport", report) == {}
    (row,) = await _variables(rig, st)
    assert (row["component"], row["evse_id"], row["variable"], row["value"]) == (
        "EVSE",
        1,
        "AvailabilityState",
        "Available",
    )
    r = await rig.post(f"/api/v1/stations/{st.station_id}/commands/GetReport", {"component_criteria": ["Broken"]})
    assert r.status_code == 422
    await st.close()


# ------------------------------------------------------------------------------ B11/B12 reset
async def _reset(rig: Rig, st: Octt, kind: str, evse_id: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind}
    if evse_id is not None:
        body["evse_id"] = evse_id
    out = await command(rig, st, "Reset", body)
    expected = {"type": kind} if evse_id is None else {"type": kind, "evseId": evse_id}
    assert st.got("Reset")[-1] == expected
    return out  # type: ignore[no-any-return]


async def _reboots(rig: Rig, st: Octt) -> Octt:
    again, answer = await reconnect(rig, st, "RemoteReset")
    assert answer is not None and answer["status"] == "Accepted"
    assert await again.status("Available") == {}
    return again


async def _charging(st: Octt) -> str:
    tx_id = new_tx_id()
    await st.status("Occupied")
    await st.tx("Started", "CablePluggedIn", tx_id, charging_state="Charging")
    return tx_id


async def _tx(rig: Rig, st: Octt, tx_id: str) -> dict[str, Any]:
    return await api_get(rig, f"/api/v1/stations/{st.station_id}/transactions/{tx_id}")  # type: ignore[no-any-return]


async def test_TC_B_20_CSMS_reset_station_without_transaction_onidle(rig: Rig) -> None:
    st = await connect(rig, {"Reset": ACCEPT})
    assert (await _reset(rig, st, "OnIdle"))["status"] == "Accepted"
    st = await _reboots(rig, st)
    await st.close()


async def test_TC_B_21_CSMS_reset_station_with_transaction_onidle(rig: Rig) -> None:
    st = await connect(rig, {"Reset": {"status": "Scheduled"}})
    tx_id = await _charging(st)
    assert (await _reset(rig, st, "OnIdle"))["status"] == "Scheduled"
    assert (await _tx(rig, st, tx_id))["active"]  # the CSMS leaves the transaction alone
    await st.tx("Ended", "StopAuthorized", tx_id, stopped_reason="Local")
    st = await _reboots(rig, st)
    assert not (await _tx(rig, st, tx_id))["active"]
    await st.close()


async def test_TC_B_22_CSMS_reset_station_with_transaction_immediate(rig: Rig) -> None:
    st = await connect(rig, {"Reset": ACCEPT})
    tx_id = await _charging(st)
    assert (await _reset(rig, st, "Immediate"))["status"] == "Accepted"
    await st.tx("Ended", "ResetCommand", tx_id, stopped_reason="ImmediateReset")
    tx = await _tx(rig, st, tx_id)
    assert not tx["active"] and tx["stopped_reason"] == "ImmediateReset"
    st = await _reboots(rig, st)
    await st.close()


async def test_TC_B_25_CSMS_reset_evse_without_transaction(rig: Rig) -> None:
    st = await connect(rig, {"Reset": ACCEPT})
    assert (await _reset(rig, st, "OnIdle", 1))["status"] == "Accepted"
    await st.status("Unavailable")
    await st.status("Available")
    await wait_for(lambda: rig.central.state(st.station_id).evse(1).connectors.get(1) == "Available")
    assert rig.central.state(st.station_id).connected  # an EVSE reset keeps the connection
    await st.close()


async def test_TC_B_26_CSMS_reset_evse_with_transaction_onidle(rig: Rig) -> None:
    st = await connect(rig, {"Reset": {"status": "Scheduled"}})
    tx_id = await _charging(st)
    assert (await _reset(rig, st, "OnIdle", 1))["status"] == "Scheduled"
    await st.tx("Ended", "StopAuthorized", tx_id, stopped_reason="Local")
    await st.status("Unavailable")
    await st.status("Available")
    await wait_for(lambda: rig.central.state(st.station_id).evse(1).transaction_id is None)
    await st.close()


async def test_TC_B_27_CSMS_reset_evse_with_transaction_immediate(rig: Rig) -> None:
    st = await connect(rig, {"Reset": ACCEPT})
    tx_id = await _charging(st)
    assert (await _reset(rig, st, "Immediate", 1))["status"] == "Accepted"
    await st.tx("Ended", "ResetCommand", tx_id, stopped_reason="ImmediateReset")
    await st.status("Unavailable")
    await st.status("Available")
    tx = await _tx(rig, st, tx_id)
    assert not tx["active"] and tx["stopped_reason"] == "ImmediateReset"
    await st.close()


async def test_TC_B_103_CSMS_reset_immediate_and_resume_with_transaction(rig: Rig) -> None:
    st = await connect(rig, {"Reset": ACCEPT})
    if rig.version == "2.0.1":  # ImmediateAndResume is 2.1 only: refused before anything is sent
        r = await rig.post(f"/api/v1/stations/{st.station_id}/commands/Reset", {"type": "ImmediateAndResume"})
        assert r.status_code == 422 and st.got("Reset") == []
        await st.close()
        return
    tx_id = await _charging(st)
    assert (await _reset(rig, st, "ImmediateAndResume"))["status"] == "Accepted"
    st = await _reboots(rig, st)
    st.seq = itertools.count(1)  # the transaction's seqNo goes on after the reboot
    assert await st.tx("Updated", "TxResumed", tx_id, charging_state="Charging") == {}
    tx = await _tx(rig, st, tx_id)
    assert tx["active"] and tx["events"][-1]["trigger_reason"] == "TxResumed"
    await wait_for(lambda: rig.central.state(st.station_id).evse(1).transaction_id == tx_id)
    await st.close()


async def test_TC_B_104_CSMS_reset_immediate_and_resume_without_transaction(rig: Rig) -> None:
    st = await connect(rig, {"Reset": ACCEPT})
    if rig.version == "2.0.1":
        r = await rig.post(f"/api/v1/stations/{st.station_id}/commands/Reset", {"type": "ImmediateAndResume"})
        assert r.status_code == 422
        await st.close()
        return
    assert (await _reset(rig, st, "ImmediateAndResume"))["status"] == "Accepted"
    st = await _reboots(rig, st)
    await st.close()


# ------------------------------------------------------------------------------ B09 network profile
def _profile(rig: Rig, **extra: Any) -> dict[str, Any]:
    return {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": "wss://csms.example.com/ocpp",
        "messageTimeout": 30,
        "securityProfile": 2,
        "ocppInterface": "Wired0",
        **extra,
    }


async def test_TC_B_42_CSMS_set_network_profile_accepted(rig: Rig) -> None:
    st = await connect(rig, {"SetNetworkProfile": ACCEPT})
    out = await command(rig, st, "SetNetworkProfile", {"configuration_slot": 1, "connection_data": _profile(rig)})
    assert out["status"] == "Accepted"
    assert st.got("SetNetworkProfile") == [{"configurationSlot": 1, "connectionData": _profile(rig)}]
    await st.close()


async def test_TC_B_44_CSMS_set_network_profile_failed(rig: Rig) -> None:
    st = await connect(rig, {"SetNetworkProfile": {"status": "Failed"}})
    out = await command(rig, st, "SetNetworkProfile", {"configuration_slot": 2, "connection_data": _profile(rig)})
    assert out["status"] == "Failed"
    await st.close()


async def test_TC_B_100_CSMS_set_network_profile_identity_and_password(rig: Rig) -> None:
    st = await connect(rig, {"SetNetworkProfile": ACCEPT})
    data = _profile(rig, identity="FE-NEW-ID", basicAuthPassword="0123456789abcdef0123")
    body = {"configuration_slot": 1, "connection_data": data}
    r = await rig.post(f"/api/v1/stations/{st.station_id}/commands/SetNetworkProfile", body)
    if rig.version == "2.0.1":  # identity / basicAuthPassword are 2.1 fields
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_payload"
        assert st.got("SetNetworkProfile") == []
    else:
        assert r.status_code == 200 and r.json()["status"] == "Accepted"
        sent = st.got("SetNetworkProfile")[0]["connectionData"]
        assert sent["identity"] == "FE-NEW-ID" and sent["basicAuthPassword"] == "0123456789abcdef0123"
    await st.close()


async def test_TC_B_105_CSMS_add_network_configuration_using_set_variables(rig: Rig) -> None:
    st = await connect(rig, {"SetVariables": _set_answer()})
    body = {
        "variables": [
            {
                "component": "NetworkConfiguration",
                "component_instance": "1",
                "variable": "OcppCsmsUrl",
                "value": "wss://x/ocpp",
            },
            {
                "component": "NetworkConfiguration",
                "component_instance": "1",
                "variable": "SecurityProfile",
                "value": "2",
            },
            {"component": "OCPPCommCtrlr", "variable": "NetworkConfigurationPriority", "value": "0,1"},
        ]
    }
    out = await command(rig, st, "SetVariables", body)
    sent = st.got("SetVariables")[0]["setVariableData"]
    assert sent[0]["component"] == {"name": "NetworkConfiguration", "instance": "1"}
    assert [r["attributeStatus"] for r in out["response"]["setVariableResult"]] == ["Accepted"] * 3
    await st.close()


# ------------------------------------------------------------------------------ OCPP-J subprotocol
async def test_TC_B_58_CSMS_websocket_subprotocol_validation(rig: Rig) -> None:
    st = await connect(rig, boot=False)
    await st.close()
    await wait_for(lambda: not rig.central.state(st.station_id).connected)
    # only an unknown version: no subprotocol agreed, the CSMS closes at once (OCPP-J 3.1.2)
    ws = await open_ws(rig.port, st.station_id, protocols=("ocpp0.1",))
    assert ws.subprotocol is None
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(2):
            await ws.recv()
    assert ws.close_code == 1002 and not rig.central.state(st.station_id).connected
    # an unknown version first, then ours: the CSMS picks ours
    ws = await open_ws(rig.port, st.station_id, protocols=("ocpp0.1", f"ocpp{rig.version}"))
    assert ws.subprotocol == f"ocpp{rig.version}"
    station = TestStation(ws)
    assert (await station.boot())["status"] == "Accepted"
    await station.close()


# ------------------------------------------------------------------------------ negative cases
async def test_boot_notification_malformed_and_wrong_password(rig: Rig) -> None:
    st = await connect(rig, boot=False)
    await st.detach()
    no_station = '[2,"b1","BootNotification",{"reason":"PowerUp"}]'
    assert (await raw_exchange(st.ws, no_station))[:3] == [4, "b1", "OccurrenceConstraintViolation"]
    bad_reason = '[2,"b2","BootNotification",{"chargingStation":{"model":"M","vendorName":"V"},"reason":"Bored"}]'
    assert (await raw_exchange(st.ws, bad_reason))[:3] == [4, "b2", "PropertyConstraintViolation"]
    unknown = '[2,"b3","BootNotifications",{}]'
    assert (await raw_exchange(st.ws, unknown))[:3] == [4, "b3", "NotImplemented"]
    await st.ws.close()
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        await open_ws(rig.port, st.station_id, "wrong-password-0123456789")
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as unknown_station:
        await open_ws(rig.port, "NOT-REGISTERED", PASSWORD)
    assert unknown_station.value.response.status_code == 404


async def test_set_variables_rejected_and_get_variables_timeout(rig: Rig) -> None:
    st = await connect(rig, {"SetVariables": _set_answer("Rejected")})
    st.answers["GetVariables"] = None  # from now on the station never answers GetVariables
    out = await command(rig, st, "SetVariables", {"variables": [_var("OCPPCommCtrlr", "HeartbeatInterval", None, "x")]})
    assert out["response"]["setVariableResult"][0]["attributeStatus"] == "Rejected"
    path = f"/api/v1/stations/{st.station_id}/commands/GetVariables"
    r = await rig.post(path, {"variables": [_var("OCPPCommCtrlr", "HeartbeatInterval")]}, timeout=0.3)
    assert r.status_code == 504 and r.json()["error"]["code"] == "station_timeout"
    assert (await rig.post(path, {"variables": []})).status_code == 422
    assert await _variables(rig, st) == []
    await st.close()
