"""Station events on the broker: every node publishes what its stations report (after its own
blocks handled and persisted it - once, on that node) on ``<prefix>.ev.<kind>``, and hands what
the other nodes publish to its cluster-wide listeners (``central.subscribe(..., cluster=True)``:
dispatch, live views). Core NATS, not JetStream: these are live views; what must not be lost
is already in PostgreSQL.

It also keeps this node's picture of remote stations current: after any event, the station's
live state (:mod:`csms.cluster.state`: EVSEs, transactions, meter readings, charging needs) goes
out on ``<prefix>.state``, coalesced every ``STATE_EVERY_S`` - so the API on any node answers
"is it online" the same way, and the dispatch leader plans the whole fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import structlog
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from csms.cluster import state as station_state
from csms.cluster import wire
from csms.domain.station import BootState

if TYPE_CHECKING:
    from csms.central import CentralSystem

log = structlog.get_logger("csms.cluster.events")

QUEUE_LIMIT = 100_000
STATE_EVERY_S = 0.2
STATES_PER_MESSAGE = 200


class EventBus:
    def __init__(self, nc: Nats, central: CentralSystem, prefix: str, node_id: str) -> None:
        self.nc = nc
        self.central = central
        self.prefix = prefix
        self.node_id = node_id
        self.published = 0
        self.received = 0
        self.dropped = 0
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(QUEUE_LIMIT)
        self._where: dict[str, str] = {}  # remote station -> node of its latest "connected"
        self._dirty: set[str] = set()  # local stations whose state changed since the last flush
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Any = None

    async def start(self) -> None:
        self._subs = [
            await self.nc.subscribe(f"{self.prefix}.ev.>", cb=self._on_message),
            await self.nc.subscribe(f"{self.prefix}.state", cb=self._on_states),
        ]
        self._tasks = [
            asyncio.create_task(self._publish_loop(), name="cluster:events"),
            asyncio.create_task(self._state_loop(), name="cluster:states"),
        ]
        self._unsubscribe = self.central.subscribe(self._on_local)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for sub in self._subs:
            await sub.unsubscribe()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_local(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        self._dirty.add(station_id)
        try:
            self._queue.put_nowait((kind, wire.event(self.node_id, kind, station_id, data)))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("event publishing is behind; events dropped from the live feed", dropped=self.dropped)

    async def _publish_loop(self) -> None:
        while True:
            kind, data = await self._queue.get()
            try:
                await self.nc.publish(f"{self.prefix}.ev.{kind}", data)
                self.published += 1
            except Exception as exc:  # the client buffers across reconnects; this is a closed client
                log.warning("event not published", kind=kind, error=repr(exc))

    async def _state_loop(self) -> None:
        while True:
            await asyncio.sleep(STATE_EVERY_S)
            if not self._dirty:
                continue
            dirty, self._dirty = sorted(self._dirty), set()
            states = self.central.states
            for i in range(0, len(dirty), STATES_PER_MESSAGE):
                chunk = {sid: station_state.encode(states[sid]) for sid in dirty[i : i + STATES_PER_MESSAGE]}
                try:
                    await self.nc.publish(f"{self.prefix}.state", wire.dumps({"node": self.node_id, "states": chunk}))
                except Exception as exc:
                    log.warning("station states not published", error=repr(exc))

    async def _on_states(self, msg: Msg) -> None:
        try:
            body = wire.loads(msg.data)
            node, states = body["node"], body["states"]
        except Exception as exc:
            log.error("unreadable station states", error=repr(exc))
            return
        if node == self.node_id:
            return
        central = self.central
        for sid, data in states.items():
            if sid in central.sessions:
                continue
            if data.get("connected"):
                self._where[sid] = node
            elif self._where.get(sid, node) != node:
                continue  # late news from a node the station has left since
            try:
                station_state.apply(central.state(sid), data)
            except Exception as exc:
                log.error("station state not applied", station=sid, error=repr(exc))

    def node_gone(self, node: str) -> None:
        """``node`` lost its lease: its stations are offline until they reconnect somewhere."""
        central = self.central
        for sid in [s for s, n in self._where.items() if n == node]:
            del self._where[sid]
            if sid in central.sessions:
                continue
            st = central.state(sid)
            st.connected = False
            central.emit_remote("disconnected", sid, {"node": node, "reason": "node lease lapsed"})

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
