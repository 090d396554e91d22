"""O - Display messages: SetDisplayMessage (O01/O02/O06), GetDisplayMessages (O03) answered by
NotifyDisplayMessages (O03/O04), ClearDisplayMessage (O05).

Every NotifyDisplayMessages is stored as a ``DisplayMessages`` station event; a
GetDisplayMessages sent through :meth:`DisplayMessages.get` waits for the notifications with its
``requestId`` until one comes without ``tbc`` (or the wait ends) and returns the messages.
Accepted SetDisplayMessage and ClearDisplayMessage are recorded as ``DisplayMessageSet`` /
``DisplayMessageCleared`` station events, so the operator sees what each station shows.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from csms.blocks.context import Central, Session

from .report_parts import ReportParts

EXTENSION = "display_messages"
EVENT_REPORT = "DisplayMessages"
EVENT_SET = "DisplayMessageSet"
EVENT_CLEARED = "DisplayMessageCleared"


class DisplayMessages:
    def __init__(self, central: Central) -> None:
        self.central = central
        self._parts = ReportParts("GetDisplayMessages", "NotifyDisplayMessages", "messageInfo")
        self._parts.attach(central)
        self._ids = itertools.count(int(time.time()) % 1_000_000 * 1000 + 1)

    @classmethod
    def of(cls, central: Central) -> DisplayMessages:
        found = central.extensions.get(EXTENSION)
        if found is None:
            found = central.extensions[EXTENSION] = cls(central)
        return found  # type: ignore[no-any-return]

    def next_id(self) -> int:
        return next(self._ids)

    async def get(
        self, station_id: str, request: dict[str, Any], *, wait_s: float
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """GetDisplayMessages, then the messages of the NotifyDisplayMessages it causes."""
        return await self._parts.request(self.central.call, station_id, request, wait_s=wait_s)

    def notified(self, station_id: str, p: dict[str, Any]) -> None:
        self._parts.publish(self.central, station_id, p)

    async def record(self, station_id: str, kind: str, payload: dict[str, Any]) -> None:
        assert self.central.store is not None
        await self.central.store.add_station_event(station_id, kind, self.central.now(), payload)


async def notify_display_messages(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    await DisplayMessages.of(s.central).record(s.station_id, EVENT_REPORT, p)
    DisplayMessages.of(s.central).notified(s.station_id, p)
    s.central.emit("display_messages", s.station_id, {"request_id": p["requestId"], "tbc": p.get("tbc", False)})
    return {}


HANDLERS = {"NotifyDisplayMessages": notify_display_messages}
