"""O - Display messages: SetDisplayMessage (O01/O02/O06), GetDisplayMessages (O03) answered by
NotifyDisplayMessages (O03/O04), ClearDisplayMessage (O05).

Every NotifyDisplayMessages is stored as a ``DisplayMessages`` station event; a
GetDisplayMessages sent through :meth:`DisplayMessages.get` waits for the notifications with its
``requestId`` until one comes without ``tbc`` (or the wait ends) and returns the messages.
Accepted SetDisplayMessage and ClearDisplayMessage are recorded as ``DisplayMessageSet`` /
``DisplayMessageCleared`` station events, so the operator sees what each station shows.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import TYPE_CHECKING, Any

from csms.ocpp.errors import CallTimeout

if TYPE_CHECKING:
    from csms.central import CentralSystem
    from csms.server.session import StationSession

EXTENSION = "display_messages"
EVENT_REPORT = "DisplayMessages"
EVENT_SET = "DisplayMessageSet"
EVENT_CLEARED = "DisplayMessageCleared"


class _Collect:
    __slots__ = ("done", "messages")

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.done = asyncio.Event()


class DisplayMessages:
    def __init__(self, central: CentralSystem) -> None:
        self.central = central
        self._waiting: dict[tuple[str, int], _Collect] = {}
        self._ids = itertools.count(int(time.time()) % 1_000_000 * 1000 + 1)

    @classmethod
    def of(cls, central: CentralSystem) -> DisplayMessages:
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
        key = (station_id, request["requestId"])
        collect = self._waiting[key] = _Collect()
        try:
            response = await self.central.call(station_id, "GetDisplayMessages", request)
            if response.get("status") != "Accepted":
                return response, []
            try:
                async with asyncio.timeout(wait_s):
                    await collect.done.wait()
            except TimeoutError:
                raise CallTimeout("NotifyDisplayMessages", wait_s) from None
            return response, collect.messages
        finally:
            self._waiting.pop(key, None)

    def notified(self, station_id: str, p: dict[str, Any]) -> None:
        collect = self._waiting.get((station_id, p["requestId"]))
        if collect is None:
            return
        collect.messages.extend(p.get("messageInfo", []))
        if not p.get("tbc", False):
            collect.done.set()

    async def record(self, station_id: str, kind: str, payload: dict[str, Any]) -> None:
        assert self.central.store is not None
        await self.central.store.add_station_event(station_id, kind, self.central.now(), payload)


async def notify_display_messages(s: StationSession, p: dict[str, Any]) -> dict[str, Any]:
    await DisplayMessages.of(s.central).record(s.station_id, EVENT_REPORT, p)
    DisplayMessages.of(s.central).notified(s.station_id, p)
    s.central.emit("display_messages", s.station_id, {"request_id": p["requestId"], "tbc": p.get("tbc", False)})
    return {}


HANDLERS = {"NotifyDisplayMessages": notify_display_messages}
