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
        self.cluster: Any = None
        if settings.cluster.enabled:  # first part: dispatch and the API rely on it
            from csms.cluster.node import ClusterNode

            self.cluster = ClusterNode(self.central, settings.cluster)
            self.parts.append(self.cluster)
        self.sites: Any = None
        if settings.sites and not settings.cluster.enabled:  # site load balancing (csms/sites)
            from csms.sites.balancer import SiteBalancer

            self.sites = SiteBalancer(self.central)
            self.parts.append(self.sites)
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


class MqttIntake:
    """Service part: the MQTT bridge for grid events, on the dispatch controller's event book
    (so it starts after the controller); status and delivery go out through it."""

    def __init__(self, service: Service, controller: Any) -> None:
        self.service = service
        self.controller = controller
        self.bridge: Any = None

    async def start(self) -> None:
        from csms.grid.mqtt import MqttBridge

        central = self.service.central
        self.bridge = MqttBridge(self.service.settings.mqtt, self.controller.event_book, central.clock)
        await self.bridge.start()
        self.controller.publisher = self.bridge
        central.extensions["mqtt"] = self.bridge

    async def stop(self) -> None:
        if self.bridge is not None:
            await self.bridge.stop()


def add_grid_parts(service: Service) -> Any:
    """Grid-event intake and dispatch for ``csms serve``: the dispatch controller (with its
    event book, which the HTTP webhook and CLI use) and, when ``mqtt.enabled``, the MQTT bridge.
    In cluster mode every node keeps the book and one elected node runs the controller
    (:class:`~csms.cluster.leader.DispatchLeadership`, returned instead of the controller)."""
    controller: Any
    if service.cluster is not None:
        from csms.cluster.leader import DispatchLeadership

        controller = DispatchLeadership(service.central, service.cluster)
    else:
        from csms.dispatch.controller import DispatchController

        controller = DispatchController(service.central)
    service.parts.append(controller)
    if service.settings.mqtt.enabled:
        service.parts.append(MqttIntake(service, controller))
    if service.settings.openadr3.enabled:
        service.parts.append(openadr3_ven(service, controller))
    return controller


def openadr3_ven(service: Service, controller: Any) -> Any:
    """The OpenADR 3 VEN part (after the controller: it uses its event book), answering forecast
    requests from the stored sessions."""
    from csms.grid.forecast_store import store_forecast_rows
    from csms.grid.openadr3.ven import OpenAdr3Ven

    async def forecast(now: Any) -> list[dict[str, Any]]:
        return await store_forecast_rows(service.central, now)

    return OpenAdr3Ven(service, controller, forecast=forecast)
