"""Conformance tests (named after the OCA test case ids, TC_<block>_<nn>_CSMS, and the spec's
requirement ids): a real CSMS (OCPP server + HTTP API, sockets on ephemeral ports) and the
bundled station simulator, on OCPP 2.0.1 and 2.1.

The CSMS and the simulated stations share one accelerated clock (``SPEED``) so that expiry
times the CSMS writes mean the same instant to the station."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from csms.api.apitokens import issue_token
from csms.clock import Clock
from csms.config import ClockSettings
from csms.service import Service
from simulators import Station, StationConfig
from tests.api.support import STATIONS, api_settings, server_logs_to_stderr, wait_for
from tests.support import PASSWORD

SPEED = 20.0
# httpx builds a fresh SSL context (loading the CA bundle, ~90 ms) for every client it creates unless
# it is given one; the rig's plain-HTTP clients share this one instead
_CLIENT_SSL = ssl.create_default_context()


@dataclass
class Rig:
    service: Service
    url: str
    token: str
    read_token: str
    version: str
    epoch: datetime
    anchor: datetime
    stations: list[Station] = field(default_factory=list)

    @property
    def central(self) -> Any:
        return self.service.central

    @property
    def store(self) -> Any:
        return self.service.central.store

    @property
    def port(self) -> int:
        return int(self.service.central.port)

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=30,
            verify=_CLIENT_SSL,
        )

    def clock(self) -> Clock:
        return Clock(self.epoch, SPEED, self.anchor)

    async def station(self, station_id: str = "FE-0001", **cfg: Any) -> Station:
        config = StationConfig(id=station_id, password=PASSWORD, ocpp=[self.version], reboot_s=2, **cfg)
        st = Station(config, self.clock(), f"ws://127.0.0.1:{self.port}/ocpp", record=True)
        await st.start()
        self.stations.append(st)
        await st.wait_online()
        return st

    async def post(self, path: str, body: Any = None, **params: Any) -> httpx.Response:
        async with self.client() as c:
            return await c.post(path, json=body, params=params)

    async def command(self, action: str, body: Any = None, station: str = "FE-0001") -> dict[str, Any]:
        r = await self.post(f"/api/v1/stations/{station}/commands/{action}", body if body is not None else {})
        assert r.status_code == 200, (action, r.status_code, r.text)
        return r.json()  # type: ignore[no-any-return]


def received(st: Station, action: str) -> list[dict[str, Any]]:
    return [p for a, p in st.received if a == action]


def sent(st: Station, action: str) -> list[dict[str, Any]]:
    return [p for a, p in st.sent if a == action]


@contextlib.asynccontextmanager
async def running_rig(tmp_path: Path, version: str, pnc: Any = None, **server: Any) -> AsyncIterator[Rig]:
    settings = api_settings(tmp_path, **server)
    if pnc is not None:
        settings.pnc = pnc
    epoch = anchor = datetime.now(UTC)
    settings.clock = ClockSettings(speed=SPEED, epoch=epoch, anchor=anchor)
    service = Service(settings)
    with server_logs_to_stderr():
        await service.start()
        try:
            store = service.central.store
            operator, _ = await issue_token(store, "operator", "operator")
            read, _ = await issue_token(store, "reader", "read")
            for sid in STATIONS:
                await service.central.register_station(sid, PASSWORD)
            assert service.api is not None
            rig = Rig(service, service.api.url, operator, read, version, epoch, anchor)
            try:
                yield rig
            finally:
                for st in rig.stations:
                    with contextlib.suppress(Exception):
                        await st.stop()
        finally:
            await service.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=["2.0.1", "2.1"])
async def octt_rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    """One CSMS per OCPP version for the whole session, shared by the OCTT-style test modules
    (tests/conformance/octt.py): each of their tests connects a fresh station id."""
    async with running_rig(tmp_path_factory.mktemp(f"octt-{request.param}"), request.param, call_timeout=5) as r:
        yield r


@pytest.fixture(params=["2.0.1", "2.1"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_rig(tmp_path, request.param, call_timeout=5) as r:
        yield r


__all__ = ["Rig", "received", "running_rig", "sent", "wait_for"]
