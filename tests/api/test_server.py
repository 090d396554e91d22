"""The API runs inside the CSMS's event loop (its own port, 0 = ephemeral), serves Prometheus
metrics, and starts / stops with the service."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from csms.api.server import ApiServer
from csms.central import CentralSystem
from csms.config import ApiSettings
from csms.service import Service
from tests.api.support import Env, api_settings
from tests.conftest import make_settings


async def test_metrics_after_traffic(env: Env) -> None:
    await env.connect(errors={"UnlockConnector": "NotSupported"})
    async with env.client() as c:
        await c.post("/api/v1/stations/FE-0001/commands/Reset", json={"type": "Immediate"})
        await c.post("/api/v1/stations/FE-0001/commands/UnlockConnector", json={"evse_id": 1})
    async with env.client(None) as c:
        await c.get("/api/v1/stations")  # a 401, counted too
        text = (await c.get("/metrics")).text
    assert "csms_connected_stations 1.0" in text
    assert 'csms_ocpp_messages_in_total{action="BootNotification"}' in text
    assert 'csms_ocpp_messages_out_total{action="Reset",outcome="ok"}' in text
    assert 'csms_ocpp_messages_out_total{action="UnlockConnector",outcome="NotSupported"}' in text
    assert 'csms_ocpp_call_seconds_bucket{action="Reset",le=' in text
    assert "csms_dispatch_target_kw" in text and "csms_dispatch_delivered_kw" in text
    assert 'csms_api_requests_total{method="GET",route="/api/v1/stations",status="401"}' in text
    assert 'route="/api/v1/stations/{station_id}/commands/Reset",status="200"' in text


async def test_callerrors_sent_are_counted(env: Env) -> None:
    station = await env.connect()
    await station.ws.send('[2,"x-1","Heartbeat",{"unexpected":true}]')
    async with env.client(None) as c:
        for _ in range(50):
            text = (await c.get("/metrics")).text
            if 'csms_ocpp_callerrors_sent_total{code="FormatViolation"}' in text:
                break
        assert 'csms_ocpp_callerrors_sent_total{code="FormatViolation"}' in text


async def test_service_starts_api_on_an_ephemeral_port_and_stops_it(tmp_path: Path) -> None:
    service = Service(api_settings(tmp_path))
    await service.start()
    assert service.api is not None and service.api.port and service.api.port != 8080
    url = service.api.url
    async with httpx.AsyncClient(base_url=url) as c:
        assert (await c.get("/health")).status_code == 200
    await service.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=url) as c:
            await c.get("/health")


async def test_api_disabled(tmp_path: Path) -> None:
    service = Service(make_settings(tmp_path))  # api.enabled = false
    assert service.api is None
    await service.start()
    await service.stop()


async def test_busy_port_fails_start_with_a_clear_message_and_cleans_up(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    settings = api_settings(tmp_path)
    settings.api = ApiSettings(host="127.0.0.1", port=port)
    service = Service(settings)
    try:
        with pytest.raises(RuntimeError, match=f"HTTP API cannot listen on 127.0.0.1:{port}"):
            await service.start()
        assert service.central.store is None  # the OCPP side was stopped again
    finally:
        blocker.close()


async def test_api_server_around_a_bare_central_system(tmp_path: Path) -> None:
    central = CentralSystem(make_settings(tmp_path))
    await central.start()
    server = ApiServer(central, ApiSettings(host="127.0.0.1", port=0))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as c:
            assert (await c.get("/health")).json()["known_stations"] == 0
    finally:
        await server.stop()
        await central.stop()
