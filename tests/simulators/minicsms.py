"""A minimal in-test CSMS: csms.ocpp.rpc.RpcEndpoint + websockets.asyncio.server.serve.

It answers what a station sends, records every CALL per station, checks HTTP Basic passwords,
picks the subprotocol by the station's preference, and lets a test call the station.
"""

from __future__ import annotations

import asyncio
import base64
import http
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from csms.clock import Clock
from csms.ocpp.rpc import RpcEndpoint

VERSION_OF = {"ocpp2.1": "2.1", "ocpp2.0.1": "2.0.1"}


class MiniCsms:
    __test__ = False

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        passwords: dict[str, str] | None = None,
        accept: tuple[str, ...] = ("ocpp2.1", "ocpp2.0.1"),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.passwords = passwords  # None: accept any password
        self.accept = accept
        self.ssl_context = ssl_context
        self.server: Server | None = None
        self.port = 0
        self.endpoints: dict[str, RpcEndpoint] = {}
        self.connections: dict[str, ServerConnection] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # (station, action, payload)
        self.connects: dict[str, int] = {}
        self.boot_status: Callable[[str, int], tuple[str, int]] = lambda sid, n: ("Accepted", 60)
        self.boots: dict[str, int] = {}
        self.authorize_status = "Accepted"
        self.allowed_energy_transfer: list[str] | None = ["DC", "DC_BPT"]
        self.fail_actions: set[str] = set()
        self.changed = asyncio.Event()
        self.handlers: dict[str, Any] = {
            "BootNotification": self._boot,
            "Heartbeat": self._heartbeat,
            "StatusNotification": self._empty,
            "TransactionEvent": self._tx,
            "MeterValues": self._empty,
            "Authorize": self._authorize,
            "NotifyEVChargingNeeds": self._needs,
            "NotifyReport": self._empty,
            "ReportChargingProfiles": self._empty,
            "FirmwareStatusNotification": self._empty,
            "LogStatusNotification": self._empty,
            "NotifyEvent": self._empty,
            "SecurityEventNotification": self._empty,
        }

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ocpp"

    async def start(self) -> None:
        self.server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            subprotocols=list(self.accept),  # type: ignore[arg-type]
            select_subprotocol=self._select,
            process_request=self._process_request,
            ssl=self.ssl_context,
            ping_interval=None,
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def __aenter__(self) -> MiniCsms:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ handshake
    def _select(self, connection: ServerConnection, offered: Any) -> str | None:
        for proto in offered:
            if proto in self.accept:
                return proto
        return None

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        sid = unquote(urlsplit(request.path).path.rsplit("/", 1)[-1])
        if self.passwords is not None:
            header = request.headers.get("Authorization", "")
            ok = False
            if header.startswith("Basic "):
                user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
                ok = user == sid and self.passwords.get(sid) == pw
            if not ok:
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "bad credentials\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        sid = unquote(urlsplit(ws.request.path).path.rsplit("/", 1)[-1])  # type: ignore[union-attr]
        if ws.subprotocol is None:
            await ws.close()
            return
        self.connects[sid] = self.connects.get(sid, 0) + 1
        version = VERSION_OF[ws.subprotocol]
        ep = RpcEndpoint(version=version, send=ws.send, handlers=self._wrapped(sid), context=sid, identity=sid)
        self.endpoints[sid] = ep
        self.connections[sid] = ws
        try:
            async for msg in ws:
                await ep.feed(msg)
        except Exception:
            pass
        finally:
            ep.close()
            if self.endpoints.get(sid) is ep:
                del self.endpoints[sid]
                del self.connections[sid]

    def _wrapped(self, sid: str) -> dict[str, Any]:
        def make(action: str, fn: Any) -> Any:
            async def run(ctx: str, payload: dict[str, Any]) -> dict[str, Any]:
                self.calls.append((sid, action, payload))
                self.changed.set()
                if action in self.fail_actions:
                    from csms.ocpp.errors import CallError, ErrorCode

                    raise CallError(ErrorCode.INTERNAL_ERROR, "test failure")
                return await fn(sid, payload)

            return run

        return {a: make(a, f) for a, f in self.handlers.items()}

    # ------------------------------------------------------------------ handlers
    def _now(self) -> str:
        return self.clock.timestamp()

    async def _boot(self, sid: str, p: dict[str, Any]) -> dict[str, Any]:
        n = self.boots.get(sid, 0)
        self.boots[sid] = n + 1
        status, interval = self.boot_status(sid, n)
        return {"currentTime": self._now(), "interval": interval, "status": status}

    async def _heartbeat(self, sid: str, p: dict[str, Any]) -> dict[str, Any]:
        return {"currentTime": self._now()}

    async def _empty(self, sid: str, p: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def _tx(self, sid: str, p: dict[str, Any]) -> dict[str, Any]:
        if "idToken" in p:
            return {"idTokenInfo": {"status": "Accepted"}}
        return {}

    async def _authorize(self, sid: str, p: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"idTokenInfo": {"status": self.authorize_status}}
        ep = self.endpoints.get(sid)
        if ep is not None and ep.version == "2.1" and self.allowed_energy_transfer is not None:
            out["allowedEnergyTransfer"] = self.allowed_energy_transfer
        return out

    async def _needs(self, sid: str, p: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted"}

    # ------------------------------------------------------------------ test helpers
    async def call(self, sid: str, action: str, payload: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        return await self.endpoints[sid].call(action, payload, timeout=timeout)

    def of(self, sid: str, action: str) -> list[dict[str, Any]]:
        return [p for s, a, p in self.calls if s == sid and a == action]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                value = predicate()
                if value:
                    return value
                self.changed.clear()
                try:
                    async with asyncio.timeout(0.05):
                        await self.changed.wait()
                except TimeoutError:
                    pass

    async def wait_connected(self, sid: str, timeout: float = 10.0) -> None:
        await self.wait_for(lambda: sid in self.endpoints and self.of(sid, "BootNotification"), timeout)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
