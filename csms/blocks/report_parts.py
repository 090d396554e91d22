"""Requests a station answers in parts: a CALL (GetDisplayMessages, GetMonitoringReport) that is
Accepted and then followed by notifications carrying the same ``requestId``, the last one without
``tbc`` (OCPP 2.0.1 / 2.1 part 2, "to be continued").

:class:`ReportParts` keeps the open requests of one kind: :meth:`ReportParts.request` sends the
CALL and waits for the last part; the block's notification handler passes every notification to
:meth:`ReportParts.feed`. ``ChargingControl.get_profiles`` (ReportChargingProfiles) follows the
same shape but keeps its own bookkeeping: it reports a timeout as ``TimeoutError``, not
``CallTimeout``. A notification that spreads its items over several fields (ReportDERControl) is
collected whole: ``field=None``.

The parts reach the collector as ``report_part`` station events (:meth:`ReportParts.publish`),
which cluster mode carries over the broker: the request may be made on one node while the
station is connected to another, and the parts still reach the node that waits for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from csms.ocpp.errors import CallTimeout

from .context import Central

Call = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]
PART_EVENT = "report_part"


class _Parts:
    __slots__ = ("done", "items")

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.done = asyncio.Event()


class ReportParts:
    """Open ``action`` requests whose ``notification`` parts carry their items in ``field`` (or,
    ``field=None``, whose parts are the items)."""

    def __init__(self, action: str, notification: str, field: str | None) -> None:
        self.action, self.notification, self.field = action, notification, field
        self._waiting: dict[tuple[str, int], _Parts] = {}

    def attach(self, central: Central) -> None:
        """Collect the parts that stations report on any node (``report_part`` events)."""
        central.subscribe(self._on_event, cluster=True)

    def publish(self, central: Central, station_id: str, payload: dict[str, Any]) -> None:
        """One notification part received here: to whichever node waits for its request."""
        central.emit(PART_EVENT, station_id, {"notification": self.notification, "payload": payload})

    def _on_event(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        if kind == PART_EVENT and data.get("notification") == self.notification:
            self.feed(station_id, data["payload"])

    async def request(
        self, call: Call, station_id: str, request: dict[str, Any], *, wait_s: float
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Send the request; returns its response and, when Accepted, the items of every part
        (raises :class:`CallTimeout` naming the notification when the last part does not come)."""
        key = (station_id, request["requestId"])
        parts = self._waiting[key] = _Parts()
        try:
            response = await call(station_id, self.action, request)
            if response.get("status") != "Accepted":
                return response, []
            try:
                async with asyncio.timeout(wait_s):
                    await parts.done.wait()
            except TimeoutError:
                raise CallTimeout(self.notification, wait_s) from None
            return response, parts.items
        finally:
            self._waiting.pop(key, None)

    def feed(self, station_id: str, payload: dict[str, Any]) -> None:
        """One notification part; ignored when nobody waits for its request."""
        parts = self._waiting.get((station_id, payload["requestId"]))
        if parts is None:
            return
        if self.field is None:
            parts.items.append(dict(payload))
        else:
            parts.items.extend(payload.get(self.field, []))
        if not payload.get("tbc", False):
            parts.done.set()
