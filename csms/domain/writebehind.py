"""Coalescing write-behind for hot, idempotent state: station rows (connect, disconnect,
boot facts) and connector statuses.

Updates are merged per key in memory (latest value per field wins) and written every
``interval`` seconds in one batch, and on close. A reconnect storm of thousands of stations
then costs a few bulk UPDATEs instead of two transactions per station. What could be lost in
a crash is at most ``interval`` seconds of facts a station re-sends anyway (connector status
after every reconnect, BootNotification after every reboot); transactions and meter values do
not go through here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import structlog

log = structlog.get_logger("csms.writebehind")

Batch = list[tuple[Any, dict[str, Any]]]


class WriteBehind:
    def __init__(self, name: str, sink: Callable[[Batch], Awaitable[object]], interval: float = 0.5) -> None:
        self.name = name
        self._sink = sink
        self._interval = interval
        self._pending: dict[Hashable, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, key: Hashable, **fields: Any) -> None:
        current = self._pending.get(key)
        if current is None:
            self._pending[key] = fields
        else:
            current.update(fields)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def pending(self, key: Hashable) -> dict[str, Any] | None:
        return self._pending.get(key)

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = list(self._pending.items()), {}
        try:
            await self._sink(batch)
        except Exception:
            log.exception("write-behind flush failed; retrying later", writer=self.name, rows=len(batch))
            for key, fields in batch:  # keep newer values that arrived meanwhile
                self._pending[key] = {**fields, **self._pending.get(key, {})}

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
