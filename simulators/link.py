"""The station's link to the CSMS: connect (subprotocols, HTTP Basic, TLS), boot, reconnect
with back-off, drain the outbox one CALL at a time, answer the CSMS's requests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import ssl
from collections import deque
from typing import Any
from urllib.parse import quote

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from csms.ocpp.errors import CallError, CallErrorReceived, CallTimeout, ConnectionLost, ErrorCode, InvalidPayload
from csms.ocpp.rpc import RpcEndpoint

from .model import (
    Outgoing,
)

log = structlog.get_logger("simulators.station")


class Link:
    """The link task and the reader (mixed into :class:`~simulators.station.Station`)."""

    # ================================================================== link
    def _url(self) -> str:
        base = self.base_url.rstrip("/")
        if self.config.security_profile >= 2 and base.startswith("ws://"):
            base = "wss://" + base[len("ws://") :]
        return f"{base}/{quote(self.id, safe='')}"

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.config.ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.config.security_profile == 3:
            self.certificates.configure(ctx)
        return ctx

    async def _open(self) -> ClientConnection:
        token = base64.b64encode(f"{self.id}:{self.password}".encode()).decode()
        url = self._url()
        ping = self._dm_int("OCPPCommCtrlr", "WebSocketPingInterval", 0)
        return await connect(
            url,
            subprotocols=[f"ocpp{v}" for v in self.config.ocpp],  # type: ignore[misc]
            additional_headers={} if self.config.security_profile == 3 else {"Authorization": f"Basic {token}"},
            ssl=self._ssl_context() if url.startswith("wss://") else None,
            open_timeout=10,
            ping_interval=ping if ping > 0 else None,
            compression="deflate" if self.config.compression else None,
            max_queue=64,
        )

    async def _backoff(self, attempt: int) -> None:
        wait_min = self._dm_int("OCPPCommCtrlr", "RetryBackOffWaitMinimum", 3)
        repeats = self._dm_int("OCPPCommCtrlr", "RetryBackOffRepeatTimes", 5)
        spread = self._dm_int("OCPPCommCtrlr", "RetryBackOffRandomRange", 2)
        delay = wait_min * (2 ** min(max(attempt - 1, 0), repeats)) + random.uniform(0, spread)
        await self._sleep_sim(delay, min_wall=0.05)

    async def _sleep_sim(self, sim_s: float, *, min_wall: float = 0.0, event: asyncio.Event | None = None) -> None:
        wall = max(min_wall, sim_s / self.clock.speed)
        if event is None:
            await asyncio.sleep(wall)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wall):
                await event.wait()

    async def _link_loop(self) -> None:
        attempt = 0
        while not self._stopping:
            if self.rebooting:
                await asyncio.sleep(0.02)
                continue
            down = self._net_down_until
            if down is not None:
                now = self.now_t()
                if down > now:
                    self._boot_now.clear()
                    await self._sleep_sim(min(down - now, 3600.0), min_wall=0.01, event=self._boot_now)
                    continue
                self._net_down_until = None
            try:
                ws = await self._open()
            except asyncio.CancelledError:
                raise
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
                attempt += 1
                self.log.info("connection failed", attempt=attempt, error=str(exc)[:200])
                await self._backoff(attempt)
                continue
            if ws.subprotocol is None:
                self.log.warning("CSMS accepted none of the offered subprotocols", offered=self.config.ocpp)
                with contextlib.suppress(Exception):
                    await ws.close()
                attempt += 1
                await self._backoff(attempt)
                continue
            attempt = 0
            try:
                await self._run_connection(ws)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("connection handler failed")
            finally:
                await self._connection_closed(ws)
            if not self._stopping and not self.rebooting:
                await self._backoff(1)

    async def _run_connection(self, ws: ClientConnection) -> None:
        version = str(ws.subprotocol).removeprefix("ocpp")
        self.version = version
        self.connections += 1
        self._ws = ws

        async def send(text: str) -> None:
            await ws.send(text)

        from .handlers import handlers_for

        rpc = RpcEndpoint(
            version=version,
            send=send,
            handlers=handlers_for(version),
            context=self,
            identity=self.id,
            call_timeout=self.config.call_timeout_s,
            validate=self.config.validate_messages,
        )
        rpc.inbound_guard = self._inbound_guard
        self._rpc = rpc
        self._link_alive = True
        reader = asyncio.create_task(self._reader(ws, rpc), name=f"rx:{self.id}")
        self._aux.add(reader)
        reader.add_done_callback(self._aux.discard)
        self.log.info("connected", version=version)
        try:
            if self.registration != "Accepted":
                await self._boot(rpc)
            if not self._link_alive:
                return
            self._went_online()
            await self._sender(rpc)
        except ConnectionLost:
            pass
        finally:
            reader.cancel()

    async def _reader(self, ws: ClientConnection, rpc: RpcEndpoint) -> None:
        try:
            async for msg in ws:
                self.received_count += 1
                await rpc.feed(msg)
        except ConnectionClosed:
            pass
        finally:
            self._link_alive = False
            self._mark_offline()
            rpc.close(ConnectionLost(f"{self.id}: connection closed"))
            self._kick.set()
            self._boot_now.set()

    async def _connection_closed(self, ws: ClientConnection) -> None:
        self._mark_offline()
        self._link_alive = False
        self._ws = None
        if self._rpc is not None:
            self._rpc.close()
        self._rpc = None
        if self.offline_since_t is None:
            self.offline_since_t = self.now_t()
        # non-persistent messages are dropped; persistent (TransactionEvents) wait for the next connection
        kept: deque[Outgoing] = deque()
        dropped: list[Outgoing] = []
        for item in self._outbox:
            (kept if item.persistent else dropped).append(item)
        self._outbox = kept
        for item in dropped:
            if item.on_error is not None:
                try:
                    item.on_error(ConnectionLost("offline"))
                except Exception:
                    self.log.exception("on_error callback failed", action=item.action)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await ws.close()
        self.wake()

    def _inbound_guard(self, action: str) -> None:
        if self.registration == "Rejected":
            raise CallError(ErrorCode.SECURITY_ERROR, "station not accepted by the CSMS")

    def _boot_payload(self) -> dict[str, Any]:
        cs: dict[str, Any] = {
            "model": self.config.model[:20],
            "vendorName": self.config.vendor[:50],
            "serialNumber": self.serial_number,
            "firmwareVersion": self.firmware_version[:50],
        }
        return {"chargingStation": cs, "reason": self.boot_reason}

    async def _boot(self, rpc: RpcEndpoint) -> None:
        while self._link_alive:
            self._boot_now.clear()
            try:
                resp = await rpc.call("BootNotification", self._boot_payload())
            except (CallTimeout, CallErrorReceived, InvalidPayload) as exc:
                self.log.warning("BootNotification failed", error=str(exc))
                await self._sleep_sim(30.0, min_wall=0.05, event=self._boot_now)
                continue
            self.sent_count += 1
            self._record_sent("BootNotification", self._boot_payload())
            status = resp["status"]
            interval = int(resp.get("interval", 0))
            self.registration = status
            self._observe_time(resp)
            if status == "Accepted":
                self.boots += 1
                if interval > 0:
                    self.heartbeat_interval = interval
                    if self._dm is not None:
                        self._dm.set_internal("OCPPCommCtrlr", "HeartbeatInterval", str(interval))
                self._next_heartbeat_t = self.now_t() + self.heartbeat_interval
                self.boot_reason = "PowerUp"
                self.log.info("boot accepted", interval=interval)
                return
            wait = interval if interval > 0 else 30
            self.log.info("boot not accepted, retrying", status=status, retry_s=wait)
            await self._sleep_sim(float(wait), min_wall=0.01, event=self._boot_now)

    def _went_online(self) -> None:
        self.online = True
        self.connected_at = self.now_t()
        self.offline_since_t = None
        # StatusNotification for every connector whose state the CSMS does not know
        for evse in self.evses.values():
            status = evse.connector_status()
            if status != evse.status_reported and self._send_status(evse, status):
                evse.status_reported = status
        # the charging needs of cars that arrived while offline (cached from the ISO 15118 session)
        now_t = self.now_t()
        for evse in self.evses.values():
            tx = evse.tx
            if tx is not None and not tx.ended and tx.authorized and not tx.needs_sent:
                self._send_charging_needs(evse, now_t)
        if self._fw_installed_request is not None:
            req = self._fw_installed_request
            self._fw_installed_request = None
            self._send_if_online("FirmwareStatusNotification", {"status": "Installed", "requestId": req})
        self._kick.set()
        self.wake()

    def _record_sent(self, action: str, payload: dict[str, Any]) -> None:
        if self.record:
            self.sent.append((action, payload))

    async def _sender(self, rpc: RpcEndpoint) -> None:
        while self._link_alive and not self._stopping:
            if not self._outbox:
                self._kick.clear()
                if self._outbox or not self._link_alive:
                    continue
                await self._kick.wait()
                continue
            item = self._outbox[0]
            if item.action == "TransactionEvent" and rpc.version == "2.0.1":
                item.payload.get("transactionInfo", {}).pop("operationMode", None)
            try:
                resp = await rpc.call(item.action, item.payload)
            except ConnectionLost:
                return  # the item stays at the head of the outbox
            except InvalidPayload as exc:
                self._pop(item)
                self.error_count += 1
                self.log.error("dropping invalid outbound message", action=item.action, error=str(exc))
                self._fail(item, exc)
                continue
            except (CallTimeout, CallErrorReceived) as exc:
                self.error_count += 1
                if item.persistent:
                    item.attempts += 1
                    attempts = self._dm_int("OCPPCommCtrlr", "MessageAttempts", 3, instance="TransactionEvent")
                    if item.attempts < attempts:
                        gap = self._dm_int("OCPPCommCtrlr", "MessageAttemptInterval", 10, instance="TransactionEvent")
                        self.log.warning("TransactionEvent not acknowledged, retrying", error=str(exc),
                                         attempt=item.attempts)  # fmt: skip
                        await self._sleep_sim(gap * item.attempts, min_wall=0.01)
                        continue
                self._pop(item)
                self.log.warning("message failed", action=item.action, error=str(exc))
                self._fail(item, exc)
                continue
            self._pop(item)
            self.sent_count += 1
            self._record_sent(item.action, item.payload)
            if item.on_result is not None:
                try:
                    item.on_result(resp)
                except Exception:
                    self.log.exception("on_result callback failed", action=item.action)

    def _pop(self, item: Outgoing) -> None:
        if self._outbox and self._outbox[0] is item:
            self._outbox.popleft()
        else:
            with contextlib.suppress(ValueError):
                self._outbox.remove(item)

    def _fail(self, item: Outgoing, exc: Exception) -> None:
        if item.on_error is not None:
            try:
                item.on_error(exc)
            except Exception:
                self.log.exception("on_error callback failed", action=item.action)
