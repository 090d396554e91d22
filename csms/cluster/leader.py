"""The one dispatch controller of the cluster, elected with a PostgreSQL advisory lock.

Every node runs a :class:`DispatchLeadership` part. Each keeps the grid-event book (so grid
events may arrive on any node: HTTP webhook, API, CLI) and tells the others of every change
over the broker (``<prefix>.grid``; they reload the book from PostgreSQL). Each tries
``pg_try_advisory_lock`` on its own connection every ``cluster.leader_poll_s``; the one that
holds it runs the :class:`~csms.dispatch.controller.DispatchController`. PostgreSQL releases the
lock when the holder's session ends - its process killed, its machine gone (TCP keepalive) - so
a standby takes over within one poll. The new controller starts from PostgreSQL: the running
events from the book and, through ``central.charging``, the dispatch profiles each station
holds (it re-sends only what differs).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
from sqlalchemy.engine import make_url

from csms.cluster import wire

if TYPE_CHECKING:
    from csms.central import CentralSystem
    from csms.cluster.node import ClusterNode
    from csms.dispatch.controller import DispatchController

log = structlog.get_logger("csms.cluster.leader")


def lock_key(prefix: str) -> int:
    """The advisory lock's 64-bit key, from the cluster prefix."""
    return int.from_bytes(hashlib.sha256(f"{prefix}:dispatch".encode()).digest()[:8], "big", signed=True)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class DispatchLeadership:
    def __init__(self, central: CentralSystem, node: ClusterNode) -> None:
        self.central = central
        self.node = node
        self.book: Any = None
        self.controller: DispatchController | None = None
        self._publisher: Any = None
        self.leader_since: float | None = None
        self.terms = 0
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None

    @property
    def event_book(self) -> Any:
        return self.book

    @property
    def publisher(self) -> Any:
        """The MQTT bridge, when enabled: status and delivery go out through the leader's controller."""
        return self._publisher

    @publisher.setter
    def publisher(self, value: Any) -> None:
        self._publisher = value
        if self.controller is not None:
            self.controller.publisher = value

    @property
    def is_leader(self) -> bool:
        return self.controller is not None

    async def start(self) -> None:
        from csms.grid.book import EventBook

        central = self.central
        assert central.store is not None and self.node.nc is not None
        self.book = EventBook(central.store, central.clock, on_change=self._on_local_change)
        await self.book.load()
        central.extensions["event_book"] = self.book
        self._sub = await self.node.nc.subscribe(f"{self.node.prefix}.grid", cb=self._on_remote_change)
        self._task = asyncio.create_task(self._run(), name="cluster:leader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._step_down("stopping")
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()  # releases the lock
        if self.central.extensions.get("event_book") is self.book:
            del self.central.extensions["event_book"]

    # ------------------------------------------------------------------ grid events on any node
    async def _on_local_change(self, event: Any, kind: str) -> None:
        assert self.node.nc is not None
        msg = {"node": self.node.node_id, "event_id": event.id, "kind": kind}
        await self.node.nc.publish(f"{self.node.prefix}.grid", wire.dumps(msg))

    async def _on_remote_change(self, msg: Any) -> None:
        try:
            change = wire.loads(msg.data)
        except Exception:
            return
        if change.get("node") == self.node.node_id:
            return
        await self.book.load()
        event = self.book.get(change["event_id"])
        if event is not None and self.controller is not None:
            self.controller.on_event_change(event, change["kind"])

    # ------------------------------------------------------------------ election
    async def _run(self) -> None:
        key = lock_key(self.node.prefix)
        dsn = asyncpg_dsn(self.central.settings.database_url)
        poll = self.node.settings.leader_poll_s
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(dsn, timeout=5)
                if self.controller is None:
                    if await self._conn.fetchval("select pg_try_advisory_lock($1)", key):
                        await self._lead()
                else:
                    await asyncio.wait_for(self._conn.fetchval("select 1"), timeout=max(poll, 1.0))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the lock went with the connection: someone else may lead now
                log.warning("leader election: database connection lost", node=self.node.node_id, error=repr(exc))
                await self._step_down("database connection lost")
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        self._conn.terminate()
                self._conn = None
            await asyncio.sleep(poll)

    async def _lead(self) -> None:
        from csms.dispatch.controller import DispatchController

        loop = asyncio.get_running_loop()
        self.terms += 1
        await self.book.load()  # what was submitted on other nodes up to now
        controller = DispatchController(self.central, self.book, publisher=self.publisher)
        await controller.start()
        self.controller = controller
        self.leader_since = loop.time()
        log.info("dispatch leader: this node runs the controller", node=self.node.node_id, events=len(controller.runs))

    async def _step_down(self, reason: str) -> None:
        controller, self.controller = self.controller, None
        self.leader_since = None
        if controller is not None:
            log.warning("dispatch leader stepping down", node=self.node.node_id, reason=reason)
            with contextlib.suppress(Exception):
                await controller.stop()
