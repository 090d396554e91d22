"""E - Transactions: the OCA test cases TC_E_*_CSMS on OCPP 2.0.1 and 2.1, plus negative cases.

The OCTT plays the station here too: :class:`~tests.conformance.octt.Octt` sends the scripted
Authorize / StatusNotification / TransactionEvent messages over a real socket; each test
asserts what the CSMS answers (idTokenInfo) and what it then shows over its HTTP API
(transaction state, charging state, stopped reason, events)."""

from __future__ import annotations

from typing import Any

import orjson

from tests.support import raw_exchange

from .conftest import Rig, wait_for
from .octt import SESSION, Octt, command, connect, energy, new_tx_id, shared_rig, token, transaction

pytestmark = SESSION
rig = shared_rig()

VALID = token("OCTT-VALID")
INVALID = token("OCTT-UNKNOWN")


async def _accepted_token(rig: Rig) -> None:
    await rig.store.upsert_id_token(VALID["idToken"], VALID["type"], status="Accepted")


async def _authorize(st: Octt, tok: dict[str, str] = VALID) -> str:
    return (await st.call("Authorize", {"idToken": tok}))["idTokenInfo"]["status"]  # type: ignore[no-any-return]


async def _charging(rig: Rig, st: Octt, tx_id: str) -> None:
    """Reusable state EnergyTransferStarted: authorized, plugged in, charging."""
    await _accepted_token(rig)
    assert await _authorize(st) == "Accepted"
    await st.status("Occupied")
    r = await st.tx("Started", "Authorized", tx_id, idToken=VALID, charging_state="Charging", meterValue=energy(0))
    assert r["idTokenInfo"]["status"] == "Accepted"


async def _ended(rig: Rig, st: Octt, tx_id: str, reason: str) -> dict[str, Any]:
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] is False and tx["state"] == "Ended" and tx["stopped_reason"] == reason, tx
    assert tx["ended_at"] is not None
    return tx


# ------------------------------------------------------------------------------ start options (E01-E04)
async def test_TC_E_01_CSMS_start_powerpathclosed(rig: Rig) -> None:
    st = await connect(rig)
    await _accepted_token(rig)
    tx_id = new_tx_id()
    assert await _authorize(st) == "Accepted"
    await st.status("Occupied")
    r = await st.tx("Started", "ChargingStateChanged", tx_id, idToken=VALID, charging_state="SuspendedEVSE")
    assert r["idTokenInfo"]["status"] == "Accepted"
    assert await st.tx("Updated", "ChargingStateChanged", tx_id, charging_state="Charging") == {}
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["evse_id"] == 1 and tx["id_token"] == "OCTT-VALID" and tx["charging_state"] == "Charging"
    await st.close()


async def test_TC_E_02_CSMS_start_energytransfer(rig: Rig) -> None:
    st = await connect(rig)
    await _accepted_token(rig)
    tx_id = new_tx_id()
    assert await _authorize(st) == "Accepted"
    await st.status("Occupied")
    r = await st.tx("Started", "ChargingStateChanged", tx_id, idToken=VALID, charging_state="Charging")
    assert r["idTokenInfo"]["status"] == "Accepted"
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["charging_state"] == "Charging"
    assert [e["trigger_reason"] for e in tx["events"]] == ["ChargingStateChanged"]
    await st.close()


async def test_TC_E_03_CSMS_local_start_cable_plugin_first(rig: Rig) -> None:
    st = await connect(rig)
    await _accepted_token(rig)
    tx_id = new_tx_id()
    await st.status("Occupied")
    assert await st.tx("Started", "CablePluggedIn", tx_id, charging_state="EVConnected") == {}
    assert await _authorize(st) == "Accepted"
    r = await st.tx("Updated", "Authorized", tx_id, idToken=VALID)
    assert r["idTokenInfo"]["status"] == "Accepted"
    await st.tx("Updated", "ChargingStateChanged", tx_id, charging_state="Charging")
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["id_token"] == "OCTT-VALID" and tx["charging_state"] == "Charging"
    assert [e["seq_no"] for e in tx["events"]] == [0, 1, 2]
    await st.close()


async def test_TC_E_04_CSMS_local_start_authorization_first(rig: Rig) -> None:
    st = await connect(rig)
    await _accepted_token(rig)
    tx_id = new_tx_id()
    assert await _authorize(st) == "Accepted"
    r = await st.tx("Started", "Authorized", tx_id, idToken=VALID)
    assert r["idTokenInfo"]["status"] == "Accepted"
    await st.status("Occupied")
    await st.tx("Updated", "CablePluggedIn", tx_id, charging_state="EVConnected")
    await st.tx("Updated", "ChargingStateChanged", tx_id, charging_state="Charging")
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["charging_state"] == "Charging" and tx["id_token"] == "OCTT-VALID"
    await wait_for(lambda: rig.central.state(st.station_id).evse(1).connectors.get(1) == "Occupied")
    await st.close()


async def test_TC_E_09_CSMS_start_evconnected(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await st.status("Occupied")
    assert await st.tx("Started", "CablePluggedIn", tx_id, charging_state="EVConnected") == {}
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["charging_state"] == "EVConnected" and tx["id_token"] is None
    await st.close()


async def test_TC_E_10_CSMS_start_authorized_local(rig: Rig) -> None:
    st = await connect(rig)
    await _accepted_token(rig)
    tx_id = new_tx_id()
    assert await _authorize(st) == "Accepted"
    r = await st.tx("Started", "Authorized", tx_id, idToken=VALID)
    assert r["idTokenInfo"]["status"] == "Accepted"
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["id_token"] == "OCTT-VALID" and tx["id_token_type"] == "ISO14443"
    await st.close()


async def test_TC_E_11_CSMS_start_datasigned(rig: Rig) -> None:
    st = await connect(rig)
    await _accepted_token(rig)
    tx_id = new_tx_id()
    assert await _authorize(st) == "Accepted"
    await st.status("Occupied")
    signed = {
        "signedMeterData": "U0lHTkVELU1FVEVSLURBVEE=",
        "signingMethod": "ECDSA-secp256r1-SHA256",
        "encodingMethod": "OCMF",
        "publicKey": "UFVCTElDLUtFWQ==",
    }
    r = await st.tx(
        "Started",
        "SignedDataReceived",
        tx_id,
        idToken=VALID,
        charging_state="SuspendedEVSE",
        meterValue=energy(1000, "Transaction.Begin", signedMeterValue=signed),
    )
    assert r["idTokenInfo"]["status"] == "Accepted"
    await st.tx("Updated", "ChargingStateChanged", tx_id, charging_state="Charging")
    tx = await transaction(rig, st, tx_id)
    kept = tx["events"][0]["payload"]["meterValue"][0]["sampledValue"][0]
    assert kept["signedMeterValue"] == signed  # the signed data is kept with the event, unchanged
    assert tx["charging_state"] == "Charging"
    await st.close()


async def test_TC_E_12_CSMS_start_parkingbayoccupied(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    assert await st.tx("Started", "EVDetected", tx_id) == {}
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["events"][0]["trigger_reason"] == "EVDetected"
    await st.close()


async def test_TC_E_38_CSMS_local_start_ev_not_ready(rig: Rig) -> None:
    st = await connect(rig)
    await _accepted_token(rig)
    tx_id = new_tx_id()
    assert await _authorize(st) == "Accepted"
    r = await st.tx("Started", "Authorized", tx_id, idToken=VALID)
    assert r["idTokenInfo"]["status"] == "Accepted"
    await st.status("Occupied")
    await st.tx("Updated", "CablePluggedIn", tx_id, charging_state="EVConnected")
    await st.tx("Updated", "ChargingStateChanged", tx_id, charging_state="SuspendedEV")
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["charging_state"] == "SuspendedEV"
    await st.close()


# ------------------------------------------------------------------------------ stop options (E06-E08)
async def test_TC_E_07_CSMS_stop_powerpathclosed_local_stop(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    assert await _authorize(st) == "Accepted"
    r = await st.tx("Ended", "StopAuthorized", tx_id, idToken=VALID, stopped_reason="Local", meterValue=energy(5000))
    assert r["idTokenInfo"]["status"] == "Accepted"
    await _ended(rig, st, tx_id, "Local")
    await st.close()


async def test_TC_E_08_CSMS_stop_energytransfer_stopped_stopauthorized(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    assert await _authorize(st) == "Accepted"
    r = await st.tx("Updated", "StopAuthorized", tx_id, idToken=VALID)
    assert r["idTokenInfo"]["status"] == "Accepted"
    await st.tx("Ended", "ChargingStateChanged", tx_id, charging_state="EVConnected", stopped_reason="Local")
    tx = await _ended(rig, st, tx_id, "Local")
    assert tx["charging_state"] == "EVConnected"
    await st.close()


async def test_TC_E_14_CSMS_stop_evdisconnected_station_side(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    r = await st.tx("Ended", "EVCommunicationLost", tx_id, charging_state="Idle", stopped_reason="EVDisconnected")
    assert r == {}
    await st.status("Available")
    await _ended(rig, st, tx_id, "EVDisconnected")
    await wait_for(lambda: rig.central.state(st.station_id).evse(1).transaction_id is None)
    await wait_for(lambda: rig.central.state(st.station_id).evse(1).connectors.get(1) == "Available")
    await st.close()


async def test_TC_E_15_CSMS_stop_stopauthorized_local(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    assert await _authorize(st) == "Accepted"
    r = await st.tx("Ended", "StopAuthorized", tx_id, idToken=VALID, stopped_reason="Local")
    assert r["idTokenInfo"]["status"] == "Accepted"
    await _ended(rig, st, tx_id, "Local")
    await st.close()


async def test_TC_E_16_CSMS_stop_deauthorized_invalid_idtoken(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await st.status("Occupied")
    r = await st.tx("Started", "Authorized", tx_id, idToken=INVALID, charging_state="EVConnected")
    assert r["idTokenInfo"]["status"] == "Unknown"  # the CSMS refuses the unknown token
    await st.tx("Ended", "Deauthorized", tx_id, stopped_reason="DeAuthorized")
    await _ended(rig, st, tx_id, "DeAuthorized")
    await st.close()


async def test_TC_E_17_CSMS_stop_deauthorized_ev_side_disconnect(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    await st.tx("Ended", "EVCommunicationLost", tx_id, charging_state="Idle", stopped_reason="EVDisconnected")
    tx = await _ended(rig, st, tx_id, "EVDisconnected")
    assert tx["charging_state"] == "Idle"
    await st.close()


async def test_TC_E_19_CSMS_stop_parkingbayunoccupied(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    await st.status("Available")
    await st.tx("Updated", "EVCommunicationLost", tx_id, charging_state="Idle")
    assert (await transaction(rig, st, tx_id))["active"]  # unplugged, but the bay is still occupied
    await st.tx("Ended", "EVDeparted", tx_id, stopped_reason="Local")
    await _ended(rig, st, tx_id, "Local")
    await st.close()


async def test_TC_E_20_CSMS_stop_evdisconnected_ev_side(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    await st.tx("Ended", "EVCommunicationLost", tx_id, charging_state="Idle", stopped_reason="EVDisconnected")
    await _ended(rig, st, tx_id, "EVDisconnected")
    await st.status("Available")
    await st.close()


async def test_TC_E_21_CSMS_stop_stopauthorized_remote(rig: Rig) -> None:
    st = await connect(rig, {"RequestStopTransaction": {"status": "Accepted"}})
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    out = await command(rig, st, "RequestStopTransaction", {"transaction_id": tx_id})
    assert out["status"] == "Accepted"
    assert st.got("RequestStopTransaction") == [{"transactionId": tx_id}]
    await st.tx("Updated", "RemoteStop", tx_id, charging_state="EVConnected")
    await st.tx("Ended", "RemoteStop", tx_id, stopped_reason="Remote")
    await _ended(rig, st, tx_id, "Remote")
    await st.close()


async def test_TC_E_22_CSMS_stop_energytransfer_stopped_suspendedev(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    await st.tx("Ended", "ChargingStateChanged", tx_id, charging_state="SuspendedEV", stopped_reason="StoppedByEV")
    tx = await _ended(rig, st, tx_id, "StoppedByEV")
    assert tx["charging_state"] == "SuspendedEV"
    await st.close()


async def test_TC_E_26_CSMS_disconnect_cable_ev_side_suspend_transaction(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    await st.tx("Updated", "EVCommunicationLost", tx_id, charging_state="Idle")
    await st.status("Available")
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["charging_state"] == "Idle"  # suspended, not ended
    await st.status("Occupied")
    await st.tx("Updated", "CablePluggedIn", tx_id, charging_state="EVConnected")
    await st.tx("Updated", "ChargingStateChanged", tx_id, charging_state="Charging")
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["charging_state"] == "Charging" and len(tx["events"]) == 4
    await st.close()


async def test_TC_E_39_CSMS_stop_deauthorized_timeout(rig: Rig) -> None:
    st = await connect(rig)
    await _accepted_token(rig)
    tx_id = new_tx_id()
    assert await _authorize(st) == "Accepted"
    r = await st.tx("Started", "Authorized", tx_id, idToken=VALID)
    assert r["idTokenInfo"]["status"] == "Accepted"
    await st.tx("Ended", "EVConnectTimeout", tx_id, stopped_reason="Timeout")
    await _ended(rig, st, tx_id, "Timeout")
    await st.close()


# ------------------------------------------------------------------------------ E14 GetTransactionStatus
def _status_answer(ongoing: bool, queued: bool) -> dict[str, Any]:
    return {"ongoingIndicator": ongoing, "messagesInQueue": queued}


async def test_TC_E_29_CSMS_transaction_status_ongoing_with_messages_in_queue(rig: Rig) -> None:
    st = await connect(rig, {"GetTransactionStatus": _status_answer(True, True)})
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    out = await command(rig, st, "GetTransactionStatus", {"transaction_id": tx_id})
    assert out["response"] == {"ongoingIndicator": True, "messagesInQueue": True}
    assert st.got("GetTransactionStatus") == [{"transactionId": tx_id}]
    # the queued event arrives afterwards, flagged offline, and is stored as history
    await st.tx("Updated", "MeterValuePeriodic", tx_id, offline=True, meterValue=energy(2000))
    tx = await transaction(rig, st, tx_id)
    assert tx["active"] and tx["events"][-1]["offline"] is True
    await st.close()


async def test_TC_E_30_CSMS_transaction_status_ongoing_without_messages_in_queue(rig: Rig) -> None:
    st = await connect(rig, {"GetTransactionStatus": _status_answer(True, False)})
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    out = await command(rig, st, "GetTransactionStatus", {"transaction_id": tx_id})
    assert out["response"] == {"ongoingIndicator": True, "messagesInQueue": False}
    assert st.got("GetTransactionStatus") == [{"transactionId": tx_id}]
    await st.close()


async def test_TC_E_31_CSMS_transaction_status_ended_with_messages_in_queue(rig: Rig) -> None:
    st = await connect(rig, {"GetTransactionStatus": _status_answer(False, True)})
    tx_id = new_tx_id()
    await _charging(rig, st, tx_id)
    out = await command(rig, st, "GetTransactionStatus", {"transaction_id": tx_id})
    assert out["response"] == {"ongoingIndicator": False, "messagesInQueue": True}
    await st.tx("Ended", "StopAuthorized", tx_id, stopped_reason="Local", offline=True)
    await _ended(rig, st, tx_id, "Local")
    await st.close()


async def test_TC_E_33_CSMS_transaction_status_without_id_with_messages_in_queue(rig: Rig) -> None:
    st = await connect(rig, {"GetTransactionStatus": {"messagesInQueue": True}})
    out = await command(rig, st, "GetTransactionStatus", {})
    assert out["response"] == {"messagesInQueue": True}
    assert st.got("GetTransactionStatus") == [{}]  # no transactionId: any queued message
    await st.close()


async def test_TC_E_34_CSMS_transaction_status_without_id_without_messages_in_queue(rig: Rig) -> None:
    st = await connect(rig, {"GetTransactionStatus": {"messagesInQueue": False}})
    out = await command(rig, st, "GetTransactionStatus", {})
    assert out["response"] == {"messagesInQueue": False}
    await st.close()


# ------------------------------------------------------------------------------ E.FR: sequence numbers
async def test_TC_E_53_CSMS_accepts_seqno_0_at_start_of_each_transaction(rig: Rig) -> None:
    st = await connect(rig)
    await _accepted_token(rig)
    for _ in range(2):
        tx_id = new_tx_id()
        r = await st.tx("Started", "Authorized", tx_id, idToken=VALID, seq_no=0)
        assert r["idTokenInfo"]["status"] == "Accepted"
        await st.tx("Ended", "StopAuthorized", tx_id, stopped_reason="Local", seq_no=1)
        tx = await _ended(rig, st, tx_id, "Local")
        assert [e["seq_no"] for e in tx["events"]] == [0, 1]
    await st.close()


# ------------------------------------------------------------------------------ negative cases
async def test_duplicate_transaction_event_is_acknowledged_once(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await st.tx("Started", "CablePluggedIn", tx_id, seq_no=0, charging_state="EVConnected")
    await st.tx("Updated", "ChargingStateChanged", tx_id, seq_no=1, charging_state="Charging")
    assert await st.tx("Updated", "ChargingStateChanged", tx_id, seq_no=1, charging_state="Charging") == {}
    tx = await transaction(rig, st, tx_id)
    assert [e["seq_no"] for e in tx["events"]] == [0, 1]
    await st.close()


async def test_out_of_order_events_keep_the_newest_state(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await st.tx("Started", "CablePluggedIn", tx_id, seq_no=0, charging_state="EVConnected")
    await st.tx("Updated", "ChargingStateChanged", tx_id, seq_no=2, charging_state="SuspendedEV")
    await st.tx("Updated", "ChargingStateChanged", tx_id, seq_no=1, charging_state="Charging")  # late
    tx = await transaction(rig, st, tx_id)
    assert tx["charging_state"] == "SuspendedEV" and tx["last_seq_no"] == 2
    assert sorted(e["seq_no"] for e in tx["events"]) == [0, 1, 2]
    await st.close()


async def test_malformed_transaction_events_get_the_named_callerror(rig: Rig) -> None:
    st = await connect(rig)
    ws = st.ws
    base = {
        "eventType": "Started",
        "timestamp": "2026-01-01T00:00:00Z",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "T-BAD"},
    }
    missing = {k: v for k, v in base.items() if k != "transactionInfo"}
    bad_enum = {**base, "eventType": "Begun"}
    wrong_type = {**base, "seqNo": "zero"}
    await st.detach()  # read the replies ourselves
    for mid, payload, code in (
        ("m1", missing, "OccurrenceConstraintViolation"),
        ("m2", bad_enum, "PropertyConstraintViolation"),
        ("m3", wrong_type, "TypeConstraintViolation"),
    ):
        reply = await raw_exchange(ws, orjson.dumps([2, mid, "TransactionEvent", payload]).decode())
        assert reply[:3] == [4, mid, code], reply
    async with rig.client() as c:
        r = await c.get(f"/api/v1/stations/{st.station_id}/transactions/T-BAD")
    assert r.status_code == 404  # nothing stored from a refused message
    await ws.close()


async def test_transaction_event_before_boot_is_a_security_error(rig: Rig) -> None:
    st = await connect(rig, boot=False)
    await st.detach()
    payload = {
        "eventType": "Started",
        "timestamp": "2026-01-01T00:00:00Z",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "T-EARLY"},
    }
    reply = await raw_exchange(st.ws, orjson.dumps([2, "e1", "TransactionEvent", payload]).decode())
    assert reply[:3] == [4, "e1", "SecurityError"]
    await st.ws.close()


async def test_request_stop_for_a_rejected_or_silent_station(rig: Rig) -> None:
    st = await connect(rig, {"RequestStopTransaction": {"status": "Rejected"}})
    out = await command(rig, st, "RequestStopTransaction", {"transaction_id": "NOT-RUNNING"})
    assert out["status"] == "Rejected"
    r = await rig.post(f"/api/v1/stations/{st.station_id}/commands/GetTransactionStatus", {"transaction_id": "x" * 37})
    assert r.status_code == 422  # transactionId is at most 36 characters
    st.answers.pop("RequestStopTransaction")
    r = await rig.post(f"/api/v1/stations/{st.station_id}/commands/RequestStopTransaction", {"transaction_id": "T"})
    assert r.status_code == 502 and r.json()["error"]["details"]["ocpp_code"] == "NotSupported"
    await st.close()
