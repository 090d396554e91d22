"""Each error class, sent as a raw frame over a real socket, gets exactly the specified
CALLERROR with the right message id, and the connection keeps working afterwards."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from csms.blocks import datatransfer
from csms.central import CentralSystem
from csms.ocpp.errors import CallTimeout
from tests.support import PASSWORD, TestStation, open_ws, raw_exchange

BOOT = '[2, "boot-1", "BootNotification", {"chargingStation": {"model": "FE", "vendorName": "F"}, "reason": "PowerUp"}]'


@pytest.fixture
async def booted_ws(central: CentralSystem):
    await central.register_station("CS-1", PASSWORD)
    ws = await open_ws(central.port, "CS-1", protocols=["ocpp2.0.1"])
    reply = await raw_exchange(ws, BOOT)
    assert reply[0] == 3 and reply[2]["status"] == "Accepted"
    yield ws
    await ws.close()


CASES = [
    ("{not json", "-1", "RpcFrameworkError"),
    ('{"an": "object"}', "-1", "RpcFrameworkError"),
    ('[2, "m-type", "Heartbeat"]', "m-type", "RpcFrameworkError"),
    ('[7, "m-7", "Heartbeat", {}]', "m-7", "MessageTypeNotSupported"),
    ('[2, "m-ni", "FlyToTheMoon", {}]', "m-ni", "NotImplemented"),
    (
        '[2, "m-ns", "NotifyCustomerInformation", {"data": "x", "seqNo": 0, '
        '"generatedAt": "2026-06-01T16:00:00Z", "requestId": 1}]',
        "m-ns",
        "NotSupported",
    ),
    ('[2, "m-occ", "Heartbeat", {"x": 1}]', "m-occ", "FormatViolation"),
    (
        '[2, "m-req", "StatusNotification", {"timestamp": "2026-06-01T16:00:00Z"}]',
        "m-req",
        "OccurrenceConstraintViolation",
    ),
    (
        '[2, "m-type2", "StatusNotification", {"timestamp": "2026-06-01T16:00:00Z", "connectorStatus": "Available", '
        '"evseId": "one", "connectorId": 1}]',
        "m-type2",
        "TypeConstraintViolation",
    ),
    (
        '[2, "m-prop", "StatusNotification", {"timestamp": "2026-06-01T16:00:00Z", "connectorStatus": "Happy", '
        '"evseId": 1, "connectorId": 1}]',
        "m-prop",
        "PropertyConstraintViolation",
    ),
    (
        '[2, "m-naive", "StatusNotification", {"timestamp": "2026-06-01T16:00:00", "connectorStatus": "Available", '
        '"evseId": 1, "connectorId": 1}]',
        "m-naive",
        "PropertyConstraintViolation",
    ),
]


@pytest.mark.parametrize(("raw", "mid", "code"), CASES)
async def test_error_class(booted_ws, raw: str, mid: str, code: str) -> None:
    reply = await raw_exchange(booted_ws, raw)
    assert reply[0] == 4
    assert reply[1] == mid
    assert reply[2] == code
    assert len(reply[3]) <= 255 and isinstance(reply[4], dict)
    # the connection keeps working
    ok = await raw_exchange(booted_ws, '[2, "hb-after", "Heartbeat", {}]')
    assert ok[0] == 3 and ok[1] == "hb-after" and "currentTime" in ok[2]


async def test_handler_exception_is_internal_error_without_internals(central: CentralSystem, booted_ws) -> None:
    async def explode(s, p):
        raise RuntimeError("secret database password is hunter2")

    datatransfer.KNOWN_VENDORS["test.explode"] = explode
    try:
        reply = await raw_exchange(booted_ws, '[2, "m-x", "DataTransfer", {"vendorId": "test.explode"}]')
    finally:
        del datatransfer.KNOWN_VENDORS["test.explode"]
    assert reply[:3] == [4, "m-x", "InternalError"]
    assert "hunter2" not in orjson.dumps(reply).decode()
    assert "RuntimeError" not in reply[3]


async def test_21_ignores_unknown_message_type(central: CentralSystem) -> None:
    await central.register_station("CS-2", PASSWORD)
    ws = await open_ws(central.port, "CS-2", protocols=["ocpp2.1"])
    await ws.send('[7, "m-7", "Heartbeat", {}]')
    reply = await raw_exchange(
        ws, '[2, "hb", "BootNotification", {"chargingStation": {"model": "m", "vendorName": "v"}, "reason": "PowerUp"}]'
    )
    assert reply[1] == "hb"  # nothing was sent for the type-7 frame
    await ws.close()


async def test_unbooted_station_gets_security_error(central: CentralSystem) -> None:
    await central.register_station("CS-3", PASSWORD)
    ws = await open_ws(central.port, "CS-3")
    reply = await raw_exchange(ws, '[2, "early", "Heartbeat", {}]')
    assert reply[:3] == [4, "early", "SecurityError"]
    await ws.close()


async def test_unknown_vendor_data_transfer(booted_ws) -> None:
    reply = await raw_exchange(booted_ws, '[2, "dt", "DataTransfer", {"vendorId": "com.acme"}]')
    assert reply == [3, "dt", {"status": "UnknownVendorId"}]


async def test_handler_calling_back_into_same_station_completes(central: CentralSystem) -> None:
    async def ask_back(s, p):
        result = await s.call(
            "GetVariables",
            {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]},
        )
        return {"status": "Accepted", "data": result["getVariableResult"][0]["attributeValue"]}

    async def get_variables(ctx, p):
        return {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "300",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        }

    datatransfer.KNOWN_VENDORS["test.callback"] = ask_back
    await central.register_station("CS-4", PASSWORD)
    station = TestStation(await open_ws(central.port, "CS-4"), {"GetVariables": get_variables})
    try:
        await station.boot()
        async with asyncio.timeout(3):
            reply = await station.call("DataTransfer", {"vendorId": "test.callback"})
        assert reply == {"status": "Accepted", "data": "300"}
    finally:
        del datatransfer.KNOWN_VENDORS["test.callback"]
        await station.close()


async def test_50_concurrent_calls_in_order_and_timeout_does_not_block(central: CentralSystem) -> None:
    seen: list[str] = []
    in_flight = 0
    peak = 0
    silent = {"on": False}
    release = asyncio.Event()

    async def get_variables(ctx, p):
        nonlocal in_flight, peak
        name = p["getVariableData"][0]["variable"]["name"]
        if silent["on"]:
            await release.wait()  # far beyond the CSMS's timeout
        in_flight += 1
        peak = max(peak, in_flight)
        seen.append(name)
        await asyncio.sleep(0.002)
        in_flight -= 1
        return {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": name,
                    "component": {"name": "C"},
                    "variable": {"name": name},
                }
            ]
        }

    await central.register_station("CS-5", PASSWORD)
    # the station queues a CALL that arrives while it still works on one the CSMS gave up on
    station = TestStation(await open_ws(central.port, "CS-5"), {"GetVariables": get_variables}, pipeline=1)
    await station.boot()

    def req(i: int) -> dict:
        return {"getVariableData": [{"component": {"name": "C"}, "variable": {"name": f"V{i:02d}"}}]}

    results = await asyncio.gather(*(central.call("CS-5", "GetVariables", req(i)) for i in range(50)))
    seen = [name for name in seen if name.startswith("V")]  # drop the capability discovery after boot
    assert seen == [f"V{i:02d}" for i in range(50)]
    assert [r["getVariableResult"][0]["attributeValue"] for r in results] == seen
    assert peak == 1

    silent["on"] = True
    with pytest.raises(CallTimeout):
        await central.call("CS-5", "GetVariables", req(99), timeout=0.3)
    silent["on"] = False
    release.set()  # the station's late answer to V99 is dropped; V100 is answered after it
    reply = await central.call("CS-5", "GetVariables", req(100), timeout=2)
    assert reply["getVariableResult"][0]["attributeValue"] == "V100"
    await station.close()
