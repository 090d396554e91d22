"""G - Availability: the OCA test cases TC_G_*_CSMS on OCPP 2.0.1 and 2.1, plus negative cases.

The operator sends ChangeAvailability through the HTTP API; the OCTT-style station answers
(Accepted, or Scheduled while a transaction runs) and reports its connectors with
StatusNotification. Each test asserts the request the CSMS sent and the connector states the CSMS
shows afterwards (live status and the stored station detail)."""

from __future__ import annotations

from typing import Any

from .conftest import Rig, wait_for
from .octt import SESSION, Octt, api_get, command, connect, new_tx_id, now, shared_rig

pytestmark = SESSION
rig = shared_rig()


async def _live(rig: Rig, st: Octt, evse_id: int = 1, connector_id: int = 1) -> str | None:
    live = await api_get(rig, f"/api/v1/stations/{st.station_id}/status")
    for evse in live["evses"]:
        if evse["evse_id"] == evse_id:
            for c in evse["connectors"]:
                if c["connector_id"] == connector_id:
                    return c["status"]  # type: ignore[no-any-return]
    return None


async def _shows(rig: Rig, st: Octt, status: str, evse_id: int = 1, connector_id: int = 1) -> None:
    await wait_for(lambda: _live(rig, st, evse_id, connector_id), timeout=5)
    assert await _live(rig, st, evse_id, connector_id) == status


async def _stored(rig: Rig, st: Octt) -> dict[tuple[int, int], str]:
    detail = await api_get(rig, f"/api/v1/stations/{st.station_id}")
    return {(e["evse_id"], c["connector_id"]): c["status"] for e in detail["evses"] for c in e["connectors"]}


async def _change(rig: Rig, st: Octt, status: str, **where: Any) -> dict[str, Any]:
    out = await command(rig, st, "ChangeAvailability", {"operational_status": status, **where})
    return out  # type: ignore[no-any-return]


async def _station(rig: Rig, answer: str = "Accepted", evses: int = 1) -> Octt:
    st = await connect(rig, {"ChangeAvailability": {"status": answer}})
    for evse_id in range(1, evses + 1):
        await st.status("Available", evse_id)
    return st


async def test_TC_G_01_CSMS_status_notification(rig: Rig) -> None:
    st = await connect(rig)
    for status in ("Available", "Occupied", "Reserved", "Unavailable", "Faulted"):
        assert await st.status(status) == {}
        await _shows(rig, st, status)

    async def stored_faulted() -> bool:
        return (await _stored(rig, st)).get((1, 1)) == "Faulted"

    await wait_for(stored_faulted)  # the newest status is also what the store keeps
    await st.close()


async def test_TC_G_03_CSMS_change_availability_evse_operative_to_inoperative(rig: Rig) -> None:
    st = await _station(rig)
    assert (await _change(rig, st, "Inoperative", evse_id=1))["status"] == "Accepted"
    assert st.got("ChangeAvailability") == [{"operationalStatus": "Inoperative", "evse": {"id": 1}}]
    await st.status("Unavailable")
    await _shows(rig, st, "Unavailable")
    await st.close()


async def test_TC_G_04_CSMS_change_availability_evse_inoperative_to_operative(rig: Rig) -> None:
    st = await _station(rig)
    await st.status("Unavailable")
    assert (await _change(rig, st, "Operative", evse_id=1))["status"] == "Accepted"
    assert st.got("ChangeAvailability") == [{"operationalStatus": "Operative", "evse": {"id": 1}}]
    await st.status("Available")
    await _shows(rig, st, "Available")
    await st.close()


async def test_TC_G_05_CSMS_change_availability_station_operative_to_inoperative(rig: Rig) -> None:
    st = await _station(rig, evses=2)
    assert (await _change(rig, st, "Inoperative"))["status"] == "Accepted"
    assert st.got("ChangeAvailability") == [{"operationalStatus": "Inoperative"}]  # no evse: the whole station
    for evse_id in (1, 2):
        await st.status("Unavailable", evse_id)
    for evse_id in (1, 2):
        await _shows(rig, st, "Unavailable", evse_id)
    await st.close()


async def test_TC_G_06_CSMS_change_availability_station_inoperative_to_operative(rig: Rig) -> None:
    st = await _station(rig, evses=2)
    for evse_id in (1, 2):
        await st.status("Unavailable", evse_id)
    assert (await _change(rig, st, "Operative"))["status"] == "Accepted"
    assert st.got("ChangeAvailability") == [{"operationalStatus": "Operative"}]
    for evse_id in (1, 2):
        await st.status("Available", evse_id)
        await _shows(rig, st, "Available", evse_id)
    await st.close()


async def test_TC_G_07_CSMS_change_availability_connector_operative_to_inoperative(rig: Rig) -> None:
    st = await _station(rig)
    assert (await _change(rig, st, "Inoperative", evse_id=1, connector_id=1))["status"] == "Accepted"
    assert st.got("ChangeAvailability") == [{"operationalStatus": "Inoperative", "evse": {"id": 1, "connectorId": 1}}]
    await st.status("Unavailable")
    await _shows(rig, st, "Unavailable")
    await st.close()


async def test_TC_G_08_CSMS_change_availability_connector_inoperative_to_operative(rig: Rig) -> None:
    st = await _station(rig)
    await st.status("Unavailable")
    assert (await _change(rig, st, "Operative", evse_id=1, connector_id=1))["status"] == "Accepted"
    assert st.got("ChangeAvailability") == [{"operationalStatus": "Operative", "evse": {"id": 1, "connectorId": 1}}]
    await st.status("Available")
    await _shows(rig, st, "Available")
    await st.close()


async def _scheduled_after_transaction(rig: Rig, **where: Any) -> None:
    st = await _station(rig, "Scheduled")
    tx_id = new_tx_id()
    await st.status("Occupied")
    await st.tx("Started", "CablePluggedIn", tx_id, charging_state="EVConnected")
    out = await _change(rig, st, "Inoperative", **where)
    assert out["status"] == "Scheduled"  # the station waits for the transaction to end
    await _shows(rig, st, "Occupied")
    await st.tx("Ended", "EVCommunicationLost", tx_id, stopped_reason="EVDisconnected")
    await st.status("Unavailable")
    await _shows(rig, st, "Unavailable")
    await st.close()


async def test_TC_G_11_CSMS_change_availability_evse_with_ongoing_transaction(rig: Rig) -> None:
    await _scheduled_after_transaction(rig, evse_id=1)


async def test_TC_G_14_CSMS_change_availability_station_with_ongoing_transaction(rig: Rig) -> None:
    await _scheduled_after_transaction(rig)


async def test_TC_G_17_CSMS_change_availability_connector_with_ongoing_transaction(rig: Rig) -> None:
    await _scheduled_after_transaction(rig, evse_id=1, connector_id=1)


async def test_TC_G_20_CSMS_connector_status_notification_lock_failure(rig: Rig) -> None:
    st = await connect(rig)
    event = {
        "generatedAt": now(),
        "seqNo": 0,
        "eventData": [
            {
                "eventId": 1,
                "timestamp": now(),
                "trigger": "Delta",
                "actualValue": "true",
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": "ConnectorPlugRetentionLock", "evse": {"id": 1, "connectorId": 1}},
                "variable": {"name": "Problem"},
            }
        ],
    }
    assert await st.call("NotifyEvent", event) == {}
    page = await api_get(rig, f"/api/v1/stations/{st.station_id}/events", kind="NotifyEvent")
    assert [e["payload"]["eventData"][0]["component"]["name"] for e in page["items"]] == ["ConnectorPlugRetentionLock"]
    await st.status("Faulted")
    await _shows(rig, st, "Faulted")
    await st.close()


# ------------------------------------------------------------------------------ negative cases
async def test_change_availability_rejected_and_bad_requests(rig: Rig) -> None:
    st = await _station(rig, "Rejected")
    assert (await _change(rig, st, "Inoperative", evse_id=1))["status"] == "Rejected"
    await _shows(rig, st, "Available")  # nothing changes without the station's StatusNotification
    path = f"/api/v1/stations/{st.station_id}/commands/ChangeAvailability"
    assert (await rig.post(path, {"operational_status": "Broken"})).status_code == 422
    assert (await rig.post(path, {"operational_status": "Inoperative", "connector_id": 1})).status_code == 422
    assert len(st.got("ChangeAvailability")) == 1
    await st.close()
    await wait_for(lambda: not rig.central.state(st.station_id).connected)
    r = await rig.post(path, {"operational_status": "Operative"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "station_offline"


async def test_status_notification_with_bad_status_is_refused(rig: Rig) -> None:
    from tests.support import raw_exchange

    st = await connect(rig)
    await st.status("Available")
    await st.detach()
    body = f'"timestamp":"{now()}","connectorStatus":"Charging","evseId":1,"connectorId":1'
    frame = f'[2,"s1","StatusNotification",{{{body}}}]'
    assert (await raw_exchange(st.ws, frame))[:3] == [4, "s1", "PropertyConstraintViolation"]
    frame = f'[2,"s2","StatusNotification",{{"timestamp":"{now()}","connectorStatus":"Available","evseId":1}}]'
    assert (await raw_exchange(st.ws, frame))[:3] == [4, "s2", "OccurrenceConstraintViolation"]
    assert await _live(rig, st) == "Available"
    await st.ws.close()
