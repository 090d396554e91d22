"""The cluster service part: one NATS connection, the lease, the station claims, forwarded
commands and the event bus, wired into a :class:`~csms.central.CentralSystem`.

It starts right after the central system (before dispatch and the API) and hooks in through
``central.router`` and the central system's event listeners only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import nats
import structlog
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg

from csms.cluster import wire
from csms.cluster.events import EventBus
from csms.cluster.forward import Forwarder
from csms.cluster.registry import Registry

if TYPE_CHECKING:
    from csms.central import CentralSystem
    from csms.config import ClusterSettings

log = structlog.get_logger("csms.cluster")

CLAIM_BATCH = 500


def default_node_id() -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40]
    return f"{host}-{os.getpid()}"


class ClusterNode:
    def __init__(self, central: CentralSystem, settings: ClusterSettings) -> None:
        self.central = central
        self.settings = settings
        self.node_id = settings.node_id or default_node_id()
        self.prefix = settings.prefix
        self.nc: Nats | None = None
        self.registry: Registry | None = None
        self.forwarder: Forwarder | None = None
        self.events: EventBus | None = None
        self._claims: asyncio.Queue[tuple[str, str, str | None]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Any = None
        self._renewed = time.monotonic()
        self._live: set[str] = set()
        self._conns: dict[str, tuple[float, str]] = {}  # local station -> (connected at, wall s; version)

    async def start(self) -> None:
        s = self.settings
        self.nc = await nats.connect(
            servers=[u.strip() for u in s.nats_url.split(",")],
            name=f"csms-{self.node_id}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=5,
        )
        js = self.nc.jetstream(timeout=5)
        self.registry = Registry(js, self.prefix, self.node_id, s.lease_ttl_s)
        await self.registry.open()
        await self.registry.renew()
        self.forwarder = Forwarder(self.nc, self.registry, self.central, self.prefix, s.forward_margin_s)
        await self.forwarder.start()
        self.events = EventBus(self.nc, self.central, self.prefix, self.node_id)
        await self.events.start()
        await self.nc.subscribe(f"{self.prefix}.taken", cb=self._on_taken)
        self._unsubscribe = self.central.subscribe(self._on_local)
        self.central.router = self.forwarder
        self.central.extensions["cluster"] = self
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="cluster:claims"),
            asyncio.create_task(self._lease_loop(), name="cluster:lease"),
        ]
        log.info("cluster node started", node=self.node_id, nats=s.nats_url, prefix=self.prefix)

    async def stop(self) -> None:
        self.central.router = None
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for part in (self.events, self.forwarder):
            if part is not None:
                with contextlib.suppress(Exception):
                    await part.stop()
        if self.registry is not None and self.nc is not None and self.nc.is_connected:
            for sid in list(self.registry.mine):
                with contextlib.suppress(Exception):
                    await self.registry.drop(sid)
            with contextlib.suppress(Exception):
                assert self.registry.nodes is not None
                await self.registry.nodes.delete(self.node_id)
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
        self.central.extensions.pop("cluster", None)
        log.info("cluster node stopped", node=self.node_id)

    # ------------------------------------------------------------------ station claims
    def _on_local(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        if kind == "connected":
            self._conns[station_id] = (time.time(), data.get("version") or "2.0.1")
            self._claims.put_nowait(("claim", station_id, data.get("version")))
        elif kind == "disconnected":
            self._conns.pop(station_id, None)
            self._claims.put_nowait(("drop", station_id, None))

    async def _claim_loop(self) -> None:
        """Claims and drops as the connections come and go: what is queued is taken at once
        (a reconnect storm), only the latest operation per station counts, and different
        stations are written side by side."""
        while True:
            batch = [await self._claims.get()]
            while not self._claims.empty() and len(batch) < CLAIM_BATCH:
                batch.append(self._claims.get_nowait())
            latest = {station_id: (op, version) for op, station_id, version in batch}
            await asyncio.gather(*(self._apply_claim(sid, op, v) for sid, (op, v) in latest.items()))

    async def _apply_claim(self, station_id: str, op: str, version: str | None) -> None:
        assert self.registry is not None and self.nc is not None
        try:
            if op == "claim":
                if station_id not in self.central.sessions:
                    return  # gone again already
                rev = await self.registry.claim(station_id, version or "2.0.1")
                since = self._conns.get(station_id, (0.0, ""))[0]
                taken = {"station": station_id, "node": self.node_id, "rev": rev, "since": since}
                await self.nc.publish(f"{self.prefix}.taken", wire.dumps(taken))
            elif station_id not in self.central.sessions:  # not reconnected here meanwhile
                await self.registry.drop(station_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("station claim not written", station=station_id, op=op, error=repr(exc))

    async def _on_taken(self, msg: Msg) -> None:
        assert self.registry is not None
        try:
            taken = wire.loads(msg.data)
        except Exception:
            return
        sid, node, rev = taken.get("station"), taken.get("node"), int(taken.get("rev") or 0)
        if node == self.node_id or sid not in self.central.sessions:
            return
        # The connection that opened last is the station's; the claims' order need not follow
        # (each node writes its claim when it gets to it).
        since, version = self._conns.get(sid, (0.0, "2.0.1"))
        if (since, self.node_id) > (float(taken.get("since") or 0.0), str(node)):
            mine = self.registry.mine.get(sid)
            if mine is not None and mine < rev:  # the older connection's late claim overwrote ours
                self._claims.put_nowait(("claim", sid, version))
            return
        self.registry.mine.pop(sid, None)
        self.central.background(self.central.release(sid, f"station reconnected to node {node}"))

    @property
    def live_nodes(self) -> set[str]:
        """The nodes holding a lease at the last check (every third of the lease)."""
        return set(self._live)

    # ------------------------------------------------------------------ lease
    async def _lease_loop(self) -> None:
        """Renew the lease every third of it. Unable to for a whole lease, this node is presumed
        dead by the others: it closes its stations' connections so that they reconnect to a live
        node instead of being held by one nobody can reach."""
        assert self.registry is not None
        ttl = self.settings.lease_ttl_s
        lapsed = False
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await self.registry.renew()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lease not renewed", node=self.node_id, error=repr(exc))
                if not lapsed and time.monotonic() - self._renewed > ttl:
                    lapsed = True
                    log.error("lease lapsed: closing every station connection", node=self.node_id)
                    for sid in list(self.central.sessions):
                        self.registry.mine.pop(sid, None)
                        await self.central.release(sid, "this node lost its cluster lease")
                continue
            self._renewed = time.monotonic()
            lapsed = False
            await self._watch_nodes()

    async def _watch_nodes(self) -> None:
        """Stations held by a node whose lease lapsed count as offline here."""
        assert self.registry is not None and self.events is not None
        try:
            live = set(await self.registry.live_nodes())
        except Exception as exc:  # the bucket could not be read: decide nothing this time
            log.warning("live nodes not read", error=repr(exc))
            return
        if self.node_id not in live:  # even this node's fresh lease is missing: not a view to act on
            return
        for node in self._live - live:
            log.warning("node left the cluster (lease lapsed)", node=node)
            self.events.node_gone(node)
        self._live = live
