"""F - Remote control: the OCA test cases TC_F_*_CSMS on OCPP 2.0.1 and 2.1, plus negative cases.

The operator drives the CSMS over its HTTP API (RequestStartTransaction, UnlockConnector,
TriggerMessage); an OCTT-style station answers and sends the messages the test case scripts.
Each test asserts the request the CSMS sent, what the API returns, and what the CSMS made of
the station's follow-up messages."""

from __future__ import annotations

from typing import Any

from tests.support import raw_exchange

from .conftest import Rig, wait_for
from .octt import SESSION, Octt, api_get, command, connect, energy, new_tx_id, shared_rig, token, transaction

pytestmark = SESSION
rig = shared_rig()

VALID = token("OCTT-REMOTE", "Central")
ACCEPT = {"status": "Accepted"}


async def _accepted_token(rig: Rig) -> None:
    await rig.store.upsert_id_token(VALID["idToken"], VALID["type"], status="Accepted")


async def _remote_start(rig: Rig, st: Octt, **body: Any) -> dict[str, Any]:
    body = {"id_token": VALID["idToken"], "id_token_type": VALID["type"], "evse_id": 1, **body}
    out = await command(rig, st, "RequestStartTransaction", body)
    assert out["status"] == "Accepted", out
    request = st.got("RequestStartTransaction")[-1]
    assert request["idToken"] == VALID and request["evseId"] == 1 and isinstance(request["remoteStartId"], int)
    return request


async def _events(rig: Rig, st: Octt, kind: str) -> list[dict[str, Any]]:
    page = await api_get(rig, f"/api/v1/stations/{st.station_id}/events", kind=kind)
    return [e["payload"] for e in page["items"]]


# ------------------------------------------------------------------------------ F01/F02 remote start
async def test_TC_F_01_CSMS_remote_start_cable_plugin_first(rig: Rig) -> None:
    await _accepted_token(rig)
    tx_id = new_tx_id()
    st = await connect(rig, {"RequestStartTransaction": {"status": "Accepted", "transactionId": tx_id}})
    await st.status("Occupied")
    await st.tx("Started", "CablePluggedIn", tx_id, charging_state="EVConnected")
    request = await _remote_start(rig, st)
    r = await st.tx("Updated", "RemoteStart", tx_id, idToken=VALID, remote_start_id=request["remoteStartId"])
    assert r["idTokenInfo"]["status"] == "Accepted"
    await st.tx("Updated", "ChargingStateChanged", tx_id, charging_state="Charging")
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["id_token"] == VALID["idToken"] and tx["charging_state"] == "Charging"
    assert tx["events"][1]["payload"]["transactionInfo"]["remoteStartId"] == request["remoteStartId"]
    await st.close()


async def test_TC_F_02_CSMS_remote_start_first_authorize_remote_start_true(rig: Rig) -> None:
    await _accepted_token(rig)
    st = await connect(rig, {"RequestStartTransaction": ACCEPT})
    tx_id = new_tx_id()
    request = await _remote_start(rig, st)
    # AuthorizeRemoteStart = true: the station asks the CSMS before it starts
    assert (await st.call("Authorize", {"idToken": VALID}))["idTokenInfo"]["status"] == "Accepted"
    r = await st.tx("Started", "RemoteStart", tx_id, idToken=VALID, remote_start_id=request["remoteStartId"])
    assert r["idTokenInfo"]["status"] == "Accepted"
    await st.status("Occupied")
    await st.tx("Updated", "CablePluggedIn", tx_id, charging_state="EVConnected")
    await st.tx("Updated", "ChargingStateChanged", tx_id, charging_state="Charging")
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["charging_state"] == "Charging"
    await st.close()


async def test_TC_F_03_CSMS_remote_start_first_authorize_remote_start_false(rig: Rig) -> None:
    await _accepted_token(rig)
    st = await connect(rig, {"RequestStartTransaction": ACCEPT})
    tx_id = new_tx_id()
    request = await _remote_start(rig, st)
    r = await st.tx("Started", "RemoteStart", tx_id, idToken=VALID, remote_start_id=request["remoteStartId"])
    assert r["idTokenInfo"]["status"] == "Accepted"  # checked on the TransactionEvent instead
    await st.status("Occupied")
    await st.tx("Updated", "CablePluggedIn", tx_id, charging_state="EVConnected")
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["id_token"] == VALID["idToken"]
    await st.close()


async def test_TC_F_04_CSMS_remote_start_first_cable_plugin_timeout(rig: Rig) -> None:
    await _accepted_token(rig)
    st = await connect(rig, {"RequestStartTransaction": ACCEPT})
    tx_id = new_tx_id()
    request = await _remote_start(rig, st)
    r = await st.tx("Started", "RemoteStart", tx_id, idToken=VALID, remote_start_id=request["remoteStartId"])
    assert r["idTokenInfo"]["status"] == "Accepted"
    await st.tx("Ended", "EVConnectTimeout", tx_id, stopped_reason="Timeout")
    tx = await transaction(rig, st, tx_id)
    assert not tx["active"] and tx["stopped_reason"] == "Timeout"
    await st.close()


async def test_TC_F_06_CSMS_remote_unlock_connector_without_transaction(rig: Rig) -> None:
    st = await connect(rig, {"UnlockConnector": {"status": "Unlocked"}})
    out = await command(rig, st, "UnlockConnector", {"evse_id": 1, "connector_id": 1})
    assert out["status"] == "Unlocked"
    assert st.got("UnlockConnector") == [{"evseId": 1, "connectorId": 1}]
    await st.close()


# ------------------------------------------------------------------------------ F06 TriggerMessage
async def _trigger(rig: Rig, st: Octt, message: str, **body: Any) -> dict[str, Any]:
    out = await command(rig, st, "TriggerMessage", {"requested_message": message, **body})
    request = st.got("TriggerMessage")[-1]
    assert request["requestedMessage"] == message
    return out  # type: ignore[no-any-return]


async def _meter_samples(rig: Rig, st: Octt, evse_id: int) -> list[dict[str, Any]]:
    page = await api_get(rig, f"/api/v1/stations/{st.station_id}/meter-values", evse_id=evse_id)
    return page["items"]  # type: ignore[no-any-return]


async def test_TC_F_11_CSMS_trigger_metervalues_specific_evse(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": ACCEPT})
    assert (await _trigger(rig, st, "MeterValues", evse_id=1))["status"] == "Accepted"
    assert st.got("TriggerMessage")[-1]["evse"] == {"id": 1}
    r = await st.call("MeterValues", {"evseId": 1, "meterValue": energy(1234, "Trigger")})
    assert r == {}
    samples = await wait_for(lambda: _meter_samples(rig, st, 1))
    assert samples[0]["value"] == 1234 and samples[0]["context"] == "Trigger"
    await st.close()


async def test_TC_F_12_CSMS_trigger_metervalues_all_evse(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": ACCEPT})
    assert (await _trigger(rig, st, "MeterValues"))["status"] == "Accepted"
    assert "evse" not in st.got("TriggerMessage")[-1]
    for evse_id in (1, 2):
        assert await st.call("MeterValues", {"evseId": evse_id, "meterValue": energy(100 * evse_id, "Trigger")}) == {}
    for evse_id in (1, 2):
        samples = await wait_for(lambda evse_id=evse_id: _meter_samples(rig, st, evse_id))
        assert samples[0]["value"] == 100 * evse_id
    await st.close()


async def test_TC_F_13_CSMS_trigger_transactionevent_specific_evse(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": ACCEPT})
    tx_id = new_tx_id()
    await st.tx("Started", "CablePluggedIn", tx_id, charging_state="EVConnected")
    assert (await _trigger(rig, st, "TransactionEvent", evse_id=1))["status"] == "Accepted"
    assert await st.tx("Updated", "Trigger", tx_id, evse={"id": 1}, meterValue=energy(10, "Trigger")) == {}
    tx = await transaction(rig, st, tx_id)
    assert tx["events"][-1]["trigger_reason"] == "Trigger"
    await st.close()


async def test_TC_F_14_CSMS_trigger_transactionevent_all_evse(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": ACCEPT})
    txs = [new_tx_id(), new_tx_id()]
    for evse_id, tx_id in enumerate(txs, start=1):
        await st.tx("Started", "CablePluggedIn", tx_id, evse_id=evse_id, charging_state="EVConnected")
    assert (await _trigger(rig, st, "TransactionEvent"))["status"] == "Accepted"
    for tx_id in txs:
        assert await st.tx("Updated", "Trigger", tx_id) == {}
        assert (await transaction(rig, st, tx_id))["events"][-1]["trigger_reason"] == "Trigger"
    await st.close()


async def test_TC_F_15_CSMS_trigger_logstatusnotification_idle(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": ACCEPT})
    assert (await _trigger(rig, st, "LogStatusNotification"))["status"] == "Accepted"
    assert await st.call("LogStatusNotification", {"status": "Idle"}) == {}
    assert await _events(rig, st, "LogStatus") == [{"status": "Idle"}]
    await st.close()


async def test_TC_F_18_CSMS_trigger_firmwarestatusnotification_idle(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": ACCEPT})
    assert (await _trigger(rig, st, "FirmwareStatusNotification"))["status"] == "Accepted"
    assert await st.call("FirmwareStatusNotification", {"status": "Idle"}) == {}
    assert await _events(rig, st, "FirmwareStatus") == [{"status": "Idle"}]
    await st.close()


async def test_TC_F_20_CSMS_trigger_heartbeat(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": ACCEPT})
    assert (await _trigger(rig, st, "Heartbeat"))["status"] == "Accepted"
    r = await st.call("Heartbeat", {})
    assert set(r) == {"currentTime"}
    await st.close()


async def test_TC_F_23_CSMS_trigger_statusnotification_specific_evse_available(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": ACCEPT})
    out = await _trigger(rig, st, "StatusNotification", evse_id=1, connector_id=1)
    assert out["status"] == "Accepted" and st.got("TriggerMessage")[-1]["evse"] == {"id": 1, "connectorId": 1}
    assert await st.status("Available") == {}
    await wait_for(lambda: rig.central.state(st.station_id).evse(1).connectors.get(1) == "Available")
    await st.close()


async def test_TC_F_24_CSMS_trigger_statusnotification_specific_evse_occupied(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": ACCEPT})
    out = await _trigger(rig, st, "StatusNotification", evse_id=1, connector_id=1)
    assert out["status"] == "Accepted"
    assert await st.status("Occupied") == {}
    await wait_for(lambda: rig.central.state(st.station_id).evse(1).connectors.get(1) == "Occupied")
    live = await api_get(rig, f"/api/v1/stations/{st.station_id}/status")
    assert "Occupied" in str(live)
    await st.close()


async def test_TC_F_27_CSMS_trigger_message_not_implemented(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": {"status": "NotImplemented"}})
    out = await _trigger(rig, st, "SignChargingStationCertificate")
    assert out["status"] == "NotImplemented"  # passed through to the operator unchanged
    await st.close()


async def test_TC_F_100_CSMS_trigger_message_custom_trigger(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": ACCEPT})
    body = {"requested_message": "CustomTrigger", "custom_trigger": "com.fermata.Diagnostics"}
    if rig.version == "2.0.1":  # CustomTrigger is 2.1 only: refused before anything is sent
        r = await rig.post(f"/api/v1/stations/{st.station_id}/commands/TriggerMessage", body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_payload"
        assert st.got("TriggerMessage") == []
    else:
        out = await command(rig, st, "TriggerMessage", body)
        assert out["status"] == "Accepted"
        assert st.got("TriggerMessage") == [
            {"requestedMessage": "CustomTrigger", "customTrigger": "com.fermata.Diagnostics"}
        ]
    await st.close()


# ------------------------------------------------------------------------------ negative cases
async def test_remote_start_rejected_and_station_silent(rig: Rig) -> None:
    st = await connect(rig, {"RequestStartTransaction": {"status": "Rejected"}, "UnlockConnector": None})
    out = await command(rig, st, "RequestStartTransaction", {"id_token": "X", "evse_id": 1})
    assert out["status"] == "Rejected"
    r = await rig.post(f"/api/v1/stations/{st.station_id}/commands/UnlockConnector", {"evse_id": 1}, timeout=0.3)
    assert r.status_code == 504 and r.json()["error"]["code"] == "station_timeout"
    await st.close()


async def test_remote_start_evse_0_and_connector_without_evse_are_refused(rig: Rig) -> None:
    st = await connect(rig, {"RequestStartTransaction": ACCEPT, "TriggerMessage": ACCEPT})
    r = await rig.post(
        f"/api/v1/stations/{st.station_id}/commands/RequestStartTransaction", {"id_token": "X", "evse_id": 0}
    )
    assert r.status_code == 422
    r = await rig.post(
        f"/api/v1/stations/{st.station_id}/commands/TriggerMessage",
        {"requested_message": "StatusNotification", "connector_id": 1},
    )
    assert r.status_code == 422 and "connector_id" in r.text
    assert st.got("RequestStartTransaction") == [] and st.got("TriggerMessage") == []
    await st.close()


async def test_triggered_messages_with_bad_payloads_get_the_named_callerror(rig: Rig) -> None:
    st = await connect(rig, {"TriggerMessage": ACCEPT})
    assert (await _trigger(rig, st, "LogStatusNotification"))["status"] == "Accepted"
    await st.detach()
    reply = await raw_exchange(st.ws, '[2,"l1","LogStatusNotification",{"status":"Sleeping"}]')
    assert reply[:3] == [4, "l1", "PropertyConstraintViolation"]
    reply = await raw_exchange(st.ws, '[2,"l2","MeterValues",{"evseId":1}]')
    assert reply[:3] == [4, "l2", "OccurrenceConstraintViolation"]
    reply = await raw_exchange(st.ws, '[2,"l3","Heartbeat",{}')  # not even JSON
    assert reply[:3] == [4, "-1", "RpcFrameworkError"]
    assert await _events(rig, st, "LogStatus") == []
    await st.ws.close()
