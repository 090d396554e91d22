"""Coalescing write-behind for hot, idempotent state (connector status).

A station re-sends its connector statuses after every reconnect (B01/G01), so persisting
only the latest status per connector every ``interval`` seconds loses nothing that matters
and keeps StatusNotification off the database's critical path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

log = structlog.get_logger("csms.writebehind")

Key = tuple[str, int, int]
Sink = Callable[[str, int, int, str, datetime], Awaitable[object]]


class StatusWriteBehind:
    def __init__(self, sink: Sink, interval: float = 0.5) -> None:
        self._sink = sink
        self._interval = interval
        self._pending: dict[Key, tuple[str, datetime]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, station_id: str, evse_id: int, connector_id: int, status: str, at: datetime) -> None:
        key = (station_id, evse_id, connector_id)
        prev = self._pending.get(key)
        if prev is None or at >= prev[1]:
            self._pending[key] = (status, at)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        for (sid, evse_id, conn_id), (status, at) in batch.items():
            try:
                await self._sink(sid, evse_id, conn_id, status, at)
            except Exception:
                log.exception("connector status write failed", station=sid)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
