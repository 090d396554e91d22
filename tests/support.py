"""A minimal OCPP station for core tests, built on the same RPC runtime over real sockets."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Sequence
from ssl import SSLContext
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from csms.ocpp.rpc import RpcEndpoint

PASSWORD = "correct-horse-battery-staple"
_ids = itertools.count(1)


def basic(station_id: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{station_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def open_ws(
    port: int,
    station_id: str,
    password: str | None = PASSWORD,
    protocols: Sequence[str] = ("ocpp2.0.1",),
    *,
    ssl: SSLContext | None = None,
) -> ClientConnection:
    """Connect as ``station_id``: ``ws://`` with HTTP Basic, or ``wss://`` when ``ssl`` is given
    (pass ``password=None`` for security profile 3, where the client certificate authenticates)."""
    headers = basic(station_id, password) if password else {}
    return await connect(
        f"{'wss' if ssl is not None else 'ws'}://127.0.0.1:{port}/ocpp/{station_id}",
        subprotocols=list(protocols),  # type: ignore[arg-type]
        additional_headers=headers,
        open_timeout=5,
        ssl=ssl,
    )


class TestStation:
    """A station with an RpcEndpoint; ``handlers`` answer the CSMS's CALLs."""

    __test__ = False

    def __init__(self, ws: ClientConnection, handlers: dict[str, Any] | None = None, *, pipeline: int = 0) -> None:
        self.ws = ws
        version = {"ocpp2.1": "2.1", "ocpp2.0.1": "2.0.1"}[ws.subprotocol]  # type: ignore[index]
        self.version = version
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.endpoint = RpcEndpoint(
            version=version, send=ws.send, handlers=handlers or {}, identity="sim", pipeline=pipeline
        )
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for msg in self.ws:
                await self.endpoint.feed(msg)
        except Exception:
            pass
        finally:
            self.endpoint.close()

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.endpoint.call(action, payload)

    async def boot(self) -> dict[str, Any]:
        return await self.call(
            "BootNotification",
            {"chargingStation": {"model": "FE-20", "vendorName": "Fermata"}, "reason": "PowerUp"},
        )

    async def close(self) -> None:
        await self.ws.close()
        await self._task


async def raw_exchange(ws: ClientConnection, text: str, timeout: float = 2) -> list[Any]:
    """Send one raw frame and return the reply; CALLs the CSMS sends meanwhile (e.g. capability
    discovery after boot) are answered NotSupported, as a minimal station would."""
    await ws.send(text)
    async with asyncio.timeout(timeout):
        while True:
            frame = orjson.loads(await ws.recv())
            if frame[0] != 2:
                return frame
            await ws.send(orjson.dumps([4, frame[1], "NotSupported", "", {}]).decode())


async def wait_for_api(port: int, seconds: float = 15.0) -> None:
    """Wait until a CSMS process's HTTP API answers ``/health`` on 127.0.0.1:``port``."""
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for _ in range(int(seconds * 10)):
            try:
                if (await http.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"the CSMS API on port {port} did not come up within {seconds} s")
