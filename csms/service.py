"""Everything ``csms serve`` runs in one process and one event loop: the OCPP server and,
as they are enabled, the HTTP API, grid-event intake and dispatch."""

from __future__ import annotations

from typing import Any

import structlog

from csms.central import CentralSystem
from csms.clock import Clock
from csms.config import Settings

log = structlog.get_logger("csms.service")


class Service:
    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.central = CentralSystem(settings, clock=clock)
        self.parts: list[Any] = []

    async def start(self) -> None:
        await self.central.start()
        for part in self.parts:
            await part.start()

    async def stop(self) -> None:
        for part in reversed(self.parts):
            try:
                await part.stop()
            except Exception:
                log.exception("part failed to stop", part=type(part).__name__)
        await self.central.stop()
