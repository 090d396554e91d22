"""Station events on the broker: every node publishes what its stations report (after its own
blocks handled and persisted it - once, on that node) on ``<prefix>.ev.<kind>``, and hands what
the other nodes publish to its cluster-wide listeners (``central.subscribe(..., cluster=True)``:
dispatch, live views). Core NATS, not JetStream: these are live views; what must not be lost
is already in PostgreSQL.

It also keeps this node's picture of remote stations current (connected, boot, OCPP version),
so that the API on any node answers "is it online" the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import structlog
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from csms.cluster import wire
from csms.domain.station import BootState

if TYPE_CHECKING:
    from csms.central import CentralSystem

log = structlog.get_logger("csms.cluster.events")

QUEUE_LIMIT = 100_000


class EventBus:
    def __init__(self, nc: Nats, central: CentralSystem, prefix: str, node_id: str) -> None:
        self.nc = nc
        self.central = central
        self.prefix = prefix
        self.node_id = node_id
        self.published = 0
        self.received = 0
        self.dropped = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_LIMIT)
        self._where: dict[str, str] = {}  # remote station -> node of its latest "connected"
        self._sub: Subscription | None = None
        self._pump: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(f"{self.prefix}.ev.>", cb=self._on_message)
        self._pump = asyncio.create_task(self._publish_loop(), name="cluster:events")
        self._unsubscribe = self.central.subscribe(self._on_local)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._sub is not None:
            await self._sub.unsubscribe()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    def _on_local(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(wire.event(self.node_id, kind, station_id, data))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("event publishing is behind; events dropped from the live feed", dropped=self.dropped)

    async def _publish_loop(self) -> None:
        while True:
            data = await self._queue.get()
            kind = wire.loads(data)["kind"]
            try:
                await self.nc.publish(f"{self.prefix}.ev.{kind}", data)
                self.published += 1
            except Exception as exc:  # the client buffers across reconnects; this is a closed client
                log.warning("event not published", kind=kind, error=repr(exc))

    async def _on_message(self, msg: Msg) -> None:
        try:
            node, kind, station_id, data = wire.event_of(msg.data)
        except Exception as exc:
            log.error("unreadable station event", error=repr(exc))
            return
        if node == self.node_id:
            return
        self.received += 1
        self._mirror(node, kind, station_id, data)
        self.central.emit_remote(kind, station_id, data)

    def _mirror(self, node: str, kind: str, station_id: str, data: dict[str, Any]) -> None:
        central = self.central
        if station_id in central.sessions:  # connected here: this node knows better
            return
        if kind == "connected":
            self._where[station_id] = node
            st = central.state(station_id)
            now = central.now()
            st.connected, st.connected_since, st.last_seen = True, now, now
            st.ocpp_version = data.get("version") or st.ocpp_version
        elif kind == "disconnected":
            if self._where.get(station_id) != node:  # late news from a node it has left since
                return
            del self._where[station_id]
            st = central.state(station_id)
            st.connected, st.last_seen = False, central.now()
        elif kind == "boot" and data.get("status"):
            with contextlib.suppress(ValueError):
                central.state(station_id).boot = BootState(data["status"])
