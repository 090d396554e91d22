"""Commands to stations held by other nodes: NATS request-reply on ``<prefix>.rpc.<node>``.

:class:`Forwarder` is the cluster's :class:`csms.central.StationRouter`. The asking node looks
the station's holder up in the registry and sends the call there; the holder runs it through the
station's own RPC endpoint - so OCPP-J's one outstanding CALL per station holds across nodes, and
the holder's timeouts apply - and answers with the response or the typed error, which the asking
node raises as if the call had been local. No holder, a holder without a lease or no responder:
:class:`~csms.central.StationOffline` (the API's 409). A holder that dies mid-call:
:class:`~csms.ocpp.errors.ConnectionLost`, as when a local station's connection drops.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from csms.central import StationOffline
from csms.cluster import wire
from csms.ocpp.errors import ConnectionLost

if TYPE_CHECKING:
    from csms.central import CentralSystem
    from csms.cluster.registry import Registry

log = structlog.get_logger("csms.cluster.forward")


class Forwarder:
    def __init__(self, nc: Nats, registry: Registry, central: CentralSystem, prefix: str, margin_s: float) -> None:
        self.nc = nc
        self.registry = registry
        self.central = central
        self.prefix = prefix
        self.margin_s = margin_s
        self.forwarded = 0
        self.served = 0
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def subject(self, node: str) -> str:
        return f"{self.prefix}.rpc.{node}"

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self.subject(self.registry.node_id), cb=self._on_request)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        for task in list(self._tasks):
            task.cancel()

    # ------------------------------------------------------------------ asking side
    async def locate(self, station_id: str) -> str | None:
        holder = await self.registry.holder(station_id)
        if holder is None or holder.node == self.registry.node_id:
            return None
        return holder.version

    async def call(
        self, station_id: str, action: str, payload: dict[str, Any], timeout: float | None
    ) -> dict[str, Any]:
        holder = await self.registry.holder(station_id)
        if holder is None or holder.node == self.registry.node_id:
            raise StationOffline(station_id)
        server = self.central.settings.server
        wait = (server.call_timeout if timeout is None else timeout) + server.queue_timeout + self.margin_s
        self.forwarded += 1
        try:
            msg = await self.nc.request(
                self.subject(holder.node), wire.call_request(station_id, action, payload, timeout), timeout=wait
            )
        except NoRespondersError:  # the node is gone (its lease has not lapsed yet)
            self.registry.forget(holder.node)
            raise StationOffline(station_id) from None
        except NatsTimeout:
            self.registry.forget(holder.node)
            raise ConnectionLost(f"{station_id}: node {holder.node} did not answer {action}") from None
        return wire.call_outcome(msg.data)

    # ------------------------------------------------------------------ serving side
    async def _on_request(self, msg: Msg) -> None:
        # one task per request: calls to different stations run side by side
        task = asyncio.create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, msg: Msg) -> None:
        try:
            req = wire.loads(msg.data)
            station_id = req["station"]
        except Exception as exc:
            log.error("unreadable forwarded call", error=repr(exc))
            await msg.respond(wire.call_failure(exc))
            return
        self.served += 1
        sess = self.central.sessions.get(station_id)
        try:
            if sess is None:  # it left (or reconnected to another node) since the lookup
                raise StationOffline(station_id)
            response = await sess.call(req["action"], req["payload"], timeout=req.get("timeout"))
        except Exception as exc:
            if not isinstance(exc, StationOffline):
                log.info("forwarded call failed", station=station_id, action=req["action"], error=repr(exc))
            await msg.respond(wire.call_failure(exc))
            return
        await msg.respond(wire.call_result(response))
