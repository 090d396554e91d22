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
        # The HTTP API starts after every other part (so what it serves exists) and stops first.
        self.api: Any = None
        if settings.api.enabled:
            from csms.api.server import ApiServer

            self.api = ApiServer(self)
        self._started: list[Any] = []

    async def start(self) -> None:
        await self.central.start()
        try:
            for part in self.parts:
                await part.start()
                self._started.append(part)
            if self.api is not None:
                await self.api.start()
                self._started.append(self.api)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for part in reversed(self._started):
            try:
                await part.stop()
            except Exception:
                log.exception("part failed to stop", part=type(part).__name__)
        self._started.clear()
        await self.central.stop()
