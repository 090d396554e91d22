"""Node leases and the station connection registry, in two NATS JetStream KV buckets.

* ``<prefix>_nodes``: one key per live node, written every third of ``lease_ttl_s``; the bucket's
  max age is the lease, so a node that dies (or loses the broker) drops out by itself.
* ``<prefix>_conns``: station -> the node holding its WebSocket (and the OCPP version). A node
  claims a station when it connects and deletes its claim when the connection ends, only if the
  claim is still its own (optimistic concurrency on the KV revision). A claim whose node has no
  lease is stale: the station counts as offline.

A claim is also announced on ``<prefix>.taken``, with the time its connection opened: the node
that held the station before (a half-open connection it has not noticed yet) closes its copy, so
a stale node never answers for a station. The connection that opened last wins, whatever order
the claims were written in: a node whose newer connection's claim was overwritten by an older
one's late claim claims again (:mod:`csms.cluster.node`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, BadRequestError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from csms.cluster import wire

log = structlog.get_logger("csms.cluster.registry")


@dataclass(frozen=True, slots=True)
class Holder:
    """Where a station's connection lives."""

    node: str
    version: str
    revision: int


async def _bucket(js: JetStreamContext, name: str, **config: Any) -> KeyValue:
    try:
        return await js.create_key_value(bucket=name, **config)
    except BadRequestError:  # exists with another configuration (another node's lease_ttl_s): use it
        return await js.key_value(name)


class Registry:
    def __init__(self, js: JetStreamContext, prefix: str, node_id: str, lease_ttl_s: float) -> None:
        self.js = js
        self.prefix = prefix
        self.node_id = node_id
        self.lease_ttl_s = lease_ttl_s
        self.nodes: KeyValue | None = None
        self.conns: KeyValue | None = None
        self.mine: dict[str, int] = {}  # station -> revision of this node's claim
        self._alive: dict[str, float] = {}  # node -> monotonic time its lease was last seen

    async def open(self) -> None:
        self.nodes = await _bucket(
            self.js, f"{self.prefix}_nodes", history=1, ttl=self.lease_ttl_s, description="csms node leases"
        )
        self.conns = await _bucket(self.js, f"{self.prefix}_conns", history=1, description="csms station -> node")

    # ------------------------------------------------------------------ leases
    async def renew(self) -> None:
        assert self.nodes is not None
        await self.nodes.put(self.node_id, wire.dumps({"at": datetime.now(UTC), "stations": len(self.mine)}))
        self._alive[self.node_id] = time.monotonic()

    async def alive(self, node: str) -> bool:
        """Whether ``node`` holds a lease (looked up at most every third of the lease)."""
        seen = self._alive.get(node)
        if seen is not None and time.monotonic() - seen < self.lease_ttl_s / 3:
            return True
        assert self.nodes is not None
        try:
            await self.nodes.get(node)
        except KeyNotFoundError:
            self._alive.pop(node, None)
            return False
        self._alive[node] = time.monotonic()
        return True

    def forget(self, node: str) -> None:
        """``node`` did not answer: look its lease up again next time."""
        self._alive.pop(node, None)

    async def live_nodes(self) -> list[str]:
        """Nodes holding a lease; raises when the bucket cannot be read (never guess "none")."""
        assert self.nodes is not None
        try:
            return sorted(await self.nodes.keys())
        except NoKeysError:  # no live node (not even this one: its lease lapsed)
            return []

    # ------------------------------------------------------------------ claims
    async def claim(self, station_id: str, version: str) -> int:
        assert self.conns is not None
        value = wire.dumps({"node": self.node_id, "version": version, "since": datetime.now(UTC)})
        rev = await self.conns.put(wire.station_key(station_id), value)
        self.mine[station_id] = rev
        return rev

    async def drop(self, station_id: str) -> None:
        """Delete this node's claim on the station, unless another node claimed it since."""
        assert self.conns is not None
        rev = self.mine.pop(station_id, None)
        if rev is None:
            return
        try:
            await self.conns.delete(wire.station_key(station_id), last=rev)
        except APIError:  # wrong last sequence
            pass  # the station is held elsewhere now: that claim stays

    async def holder(self, station_id: str) -> Holder | None:
        """The node holding the station's connection, if that node is alive."""
        assert self.conns is not None
        try:
            entry = await self.conns.get(wire.station_key(station_id))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        value = wire.loads(entry.value)
        node = value["node"]
        if node != self.node_id and not await self.alive(node):
            return None
        return Holder(node, value["version"], entry.revision or 0)
