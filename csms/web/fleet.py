"""The fleet view's data and its live feed.

:func:`station_row` turns a station's in-memory state into one row of the fleet table (no
database access: the page for 1,000 stations is built from memory).

:class:`FleetHub` is the server side of the live updates. It listens to the CentralSystem's
events (connected, disconnected, boot, status, meter, transaction, ...) and only marks the
station dirty; every ``interval_s`` it builds the rows of the dirty stations once, serialises
them once, and hands the same bytes to every connected browser (server-sent events). A burst
of 1,000 meter values therefore costs one JSON document per interval, not 1,000 messages per
browser. Every ``sweep_s`` it also sends the stations whose "last seen" moved without an event
(heartbeats). A browser that cannot keep up (its queue is full) gets its backlog dropped and one
full snapshot instead, so it never falls behind by more than one interval's worth of rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog

if TYPE_CHECKING:
    from csms.central import CentralSystem
    from csms.domain.station import StationState

log = structlog.get_logger("csms.web")

FAULTED = frozenset({"Faulted"})


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def station_row(state: StationState) -> dict[str, Any]:
    """One fleet-table row (JSON-ready; every string is shown as text by the page)."""
    evses = []
    imp = exp = 0.0
    soc: float | None = None
    faulted = False
    for eid in sorted(state.evses):
        if eid == 0:
            continue
        evse = state.evses[eid]
        statuses = [evse.connectors[c] for c in sorted(evse.connectors)]
        status = statuses[0] if len(set(statuses)) == 1 else "/".join(statuses) if statuses else "Unknown"
        faulted = faulted or any(s in FAULTED for s in statuses)
        imp += evse.power_import_w
        exp += evse.power_export_w
        if evse.soc is not None and evse.transaction_id:
            soc = evse.soc if soc is None else min(soc, evse.soc)
        evses.append({"id": eid, "status": status, "tx": evse.transaction_id})
    net_kw = round((imp - exp) / 1000.0, 2) if state.connected else 0.0
    return {
        "id": state.station_id,
        "connected": state.connected,
        "boot": state.boot.value,
        "version": state.ocpp_version,
        "vendor": state.vendor,
        "model": state.model,
        "evses": evses,
        "power_kw": net_kw,
        "discharging": state.connected and exp - imp > 50.0,
        "faulted": faulted,
        "soc": round(soc, 1) if soc is not None else None,
        "last_seen": _iso(state.last_seen),
    }


def fleet_rows(central: CentralSystem) -> list[dict[str, Any]]:
    return [station_row(central.states[sid]) for sid in sorted(central.states) if central.known(sid)]


class _Client:
    __slots__ = ("queue", "resync")

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize)
        self.resync = False


class FleetHub:
    """Coalesces station events into one batch of changed rows per ``interval_s`` (see module doc)."""

    def __init__(
        self, central: CentralSystem, *, interval_s: float = 0.25, queue_size: int = 64, sweep_s: float = 15.0
    ) -> None:
        self.central = central
        self.interval_s = interval_s
        self.sweep_s = sweep_s
        self._seen_sent: dict[str, datetime | None] = {}
        self.queue_size = queue_size
        self._dirty: set[str] = set()
        self._clients: set[_Client] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None
        self._closed = False
        self.batches = 0

    # ------------------------------------------------------------------ event intake
    def _on_event(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        self._dirty.add(station_id)
        if not self._wake.is_set():
            self._wake.set()

    def _ensure_running(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.central.subscribe(self._on_event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="csms-console-fleet")

    # ------------------------------------------------------------------ fan-out
    def _snapshot(self) -> bytes:
        return _sse("snapshot", {"rows": fleet_rows(self.central), "at": time.time(), "now": self._now()})

    def _now(self) -> float:
        """The CSMS clock (simulated in a demo), for the page's header."""
        return self.central.now().timestamp()

    def _push(self, client: _Client, data: bytes) -> None:
        if client.resync:
            return
        try:
            client.queue.put_nowait(data)
        except asyncio.QueueFull:
            # this browser is behind: drop its backlog, send it one full snapshot instead
            while not client.queue.empty():
                client.queue.get_nowait()
            client.resync = True
            client.queue.put_nowait(b"")

    def _sweep(self) -> None:
        """Mark stations whose ``last_seen`` moved without an event (heartbeats) as dirty."""
        for sid, state in self.central.states.items():
            if state.last_seen is not None and state.last_seen != self._seen_sent.get(sid):
                self._dirty.add(sid)

    async def _run(self) -> None:
        next_sweep = time.monotonic() + self.sweep_s
        try:
            while not self._closed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_sweep - time.monotonic())):
                        await self._wake.wait()
                self._wake.clear()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_s
                    if self._clients:
                        self._sweep()
                if self._dirty and self._clients:
                    ids, self._dirty = self._dirty, set()
                    states = self.central.states
                    rows = [station_row(states[s]) for s in sorted(ids) if s in states]
                    for s in ids:
                        if s in states:
                            self._seen_sent[s] = states[s].last_seen
                    if rows:
                        data = _sse("rows", {"rows": rows, "at": time.time(), "now": self._now()})
                        self.batches += 1
                        for client in list(self._clients):
                            self._push(client, data)
                elif not self._clients:
                    self._dirty.clear()
                await asyncio.sleep(self.interval_s)  # coalesce: at most one batch per interval
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("console fleet feed failed")

    async def stream(self) -> AsyncIterator[bytes]:
        """The SSE byte stream for one browser: a snapshot, then batches of changed rows."""
        if self._closed:
            return
        self._ensure_running()
        client = _Client(self.queue_size)
        self._clients.add(client)
        try:
            yield b"retry: 2000\n\n" + self._snapshot()
            while True:
                try:
                    async with asyncio.timeout(15):
                        data = await client.queue.get()
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if data is None:
                    return
                if client.resync:
                    client.resync = False
                    yield self._snapshot()
                    continue
                yield data
        finally:
            self._clients.discard(client)

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def close(self) -> None:
        """End every stream (the server is stopping) and stop listening."""
        self._closed = True
        for client in list(self._clients):
            while not client.queue.empty():
                client.queue.get_nowait()
            client.queue.put_nowait(None)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._wake.set()
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None


def _sse(event: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
