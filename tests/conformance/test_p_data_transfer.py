"""P - Data transfer: the OCA test cases TC_P_*_CSMS on OCPP 2.0.1 and 2.1, plus negative cases.

The OCTT-style station sends DataTransfer and messages with customData; each test asserts the
CSMS's answer and what it keeps."""

from __future__ import annotations

from tests.support import raw_exchange

from .conftest import Rig, wait_for
from .octt import SESSION, api_get, connect, now, shared_rig

pytestmark = SESSION
rig = shared_rig()


# ------------------------------------------------------------------------------ P - DataTransfer
async def test_TC_P_02_CSMS_data_transfer_to_csms_rejected_unknown(rig: Rig) -> None:
    st = await connect(rig)
    request = {"vendorId": "com.example.unknown", "messageId": "Ping", "data": {"n": 1}}
    answer = await st.call("DataTransfer", request)
    assert answer["status"] == "UnknownVendorId"
    page = await api_get(rig, f"/api/v1/stations/{st.station_id}/events", kind="DataTransfer")
    assert [e["payload"] for e in page["items"]] == [request]  # kept for diagnosis
    await st.close()


async def test_TC_P_03_CSMS_custom_data_received(rig: Rig) -> None:
    st = await connect(rig)
    custom = {"vendorId": "com.fermata", "cabinetTemperature": 31.5}
    answer = await st.call("Heartbeat", {"customData": custom})
    assert set(answer) == {"currentTime"}
    status = {
        "timestamp": now(),
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 1,
        "customData": {"vendorId": "com.fermata", "lidOpen": False},
    }
    assert await st.call("StatusNotification", status) == {}
    await wait_for(lambda: rig.central.state(st.station_id).evse(1).connectors.get(1) == "Available")
    await st.detach()  # customData without its vendorId breaks the schema
    bad = '[2,"c1","Heartbeat",{"customData":{"cabinetTemperature":31.5}}]'
    assert (await raw_exchange(st.ws, bad))[:3] == [4, "c1", "OccurrenceConstraintViolation"]
    await st.ws.close()


# ------------------------------------------------------------------------------ negative cases
async def test_unknown_data_transfer_and_malformed_data_transfer(rig: Rig) -> None:
    st = await connect(rig)
    await st.detach()
    no_vendor = '[2,"d1","DataTransfer",{"messageId":"x"}]'
    assert (await raw_exchange(st.ws, no_vendor))[:3] == [4, "d1", "OccurrenceConstraintViolation"]
    long_vendor = '[2,"d2","DataTransfer",{"vendorId":"' + "v" * 256 + '"}]'
    assert (await raw_exchange(st.ws, long_vendor))[:3] == [4, "d2", "PropertyConstraintViolation"]
    await st.ws.close()
