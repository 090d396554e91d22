"""Handshake rules over real sockets: auth, unknown ids, subprotocols, replacement."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csms.central import CentralSystem
from csms.server.connection import station_id_from_path
from tests.support import PASSWORD, TestStation, open_ws


def test_station_id_from_path() -> None:
    assert station_id_from_path("/ocpp/CS%2001") == "CS 01"
    assert station_id_from_path("/ocpp/CS-1/") == "CS-1"
    assert station_id_from_path("/CS-1?x=1") == "CS-1"
    assert station_id_from_path("/ocpp/" + "x" * 49) is None
    assert station_id_from_path("/ocpp/a%3Ab") is None
    assert station_id_from_path("/") is None


async def test_wrong_password_is_401_and_unknown_station_404(central: CentralSystem) -> None:
    await central.register_station("CS-1", PASSWORD)
    with pytest.raises(InvalidStatus) as info:
        await open_ws(central.port, "CS-1", "wrong-password-123456")
    assert info.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as info:
        await open_ws(central.port, "CS-1", None)
    assert info.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as info:
        await open_ws(central.port, "CS-404")
    assert info.value.response.status_code == 404
    ws = await open_ws(central.port, "CS-1")
    assert ws.subprotocol == "ocpp2.0.1"
    await ws.close()


async def test_subprotocol_follows_station_preference(central: CentralSystem) -> None:
    await central.register_station("CS-1", PASSWORD)
    ws = await open_ws(central.port, "CS-1", protocols=["ocpp1.6", "ocpp2.1", "ocpp2.0.1"])
    assert ws.subprotocol == "ocpp2.1"
    await ws.close()
    ws = await open_ws(central.port, "CS-1", protocols=["ocpp2.0.1", "ocpp2.1"])
    assert ws.subprotocol == "ocpp2.0.1"
    await ws.close()


async def test_no_common_subprotocol_completes_handshake_then_closes(central: CentralSystem) -> None:
    await central.register_station("CS-1", PASSWORD)
    ws = await open_ws(central.port, "CS-1", protocols=["ocpp1.6"])  # handshake succeeds: no HTTP 400
    assert ws.subprotocol is None
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(2):
            await ws.recv()
    assert ws.close_code == 1002


async def test_auto_registration_answers_pending(tmp_path) -> None:
    from tests.conftest import make_settings

    settings = make_settings(tmp_path)
    settings.security.auto_register = True
    central = CentralSystem(settings)
    await central.start()
    try:
        station = TestStation(await open_ws(central.port, "NEW-1"))
        assert (await station.boot())["status"] == "Pending"
        assert central.known("NEW-1")
        await station.close()
    finally:
        await central.stop()


async def test_second_connection_replaces_first(central: CentralSystem) -> None:
    await central.register_station("CS-1", PASSWORD)
    first = TestStation(await open_ws(central.port, "CS-1"))
    assert (await first.boot())["status"] == "Accepted"
    second = TestStation(await open_ws(central.port, "CS-1"))
    async with asyncio.timeout(2):
        await first._task  # the old socket is closed by the server
    assert first.ws.close_code == 4000
    for _ in range(100):  # the new session registers once the old one is fully torn down
        if "CS-1" in central.sessions and central.sessions["CS-1"].ws.remote_address == second.ws.local_address:
            break
        await asyncio.sleep(0.01)
    assert central.sessions["CS-1"].ws.remote_address == second.ws.local_address
    # state is intact: the station is still Accepted and answers calls on the new socket
    await second.call("Heartbeat", {})
    assert central.state("CS-1").connected
    await second.close()
    await asyncio.sleep(0.1)
    assert not central.state("CS-1").connected
    assert "CS-1" not in central.sessions
