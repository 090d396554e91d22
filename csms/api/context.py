"""What the routes reach through ``request.app.state.ctx``: the running CentralSystem, its
store and (when the API runs under :class:`csms.service.Service`) the other parts."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from fastapi import Request

from .errors import ApiError

if TYPE_CHECKING:
    from csms.central import CentralSystem
    from csms.store.repository import Store
    from csms.store.rows import StationRow


class ApiContext:
    def __init__(self, service_or_central: Any) -> None:
        central = getattr(service_or_central, "central", None)
        if central is None:
            central = service_or_central
            self.service: Any = None
        else:
            self.service = service_or_central
        self.central: CentralSystem = central

    @property
    def store(self) -> Store:
        store = self.central.store
        if store is None:
            raise ApiError(503, "unavailable", "the CSMS is starting or stopping; retry in a moment")
        return store

    def event_book(self) -> Any:
        """The grid EventBook when a part provides one (``service.event_book``, a part of that
        type, or ``central.extensions['event_book']``)."""
        svc = self.service
        book = getattr(svc, "event_book", None) if svc is not None else None
        if book is None:
            book = self.central.extensions.get("event_book")
        if book is None and svc is not None:
            for part in getattr(svc, "parts", []):
                if type(part).__name__ == "EventBook":
                    return part
                inner = getattr(part, "event_book", None) or getattr(part, "book", None)
                if inner is not None and type(inner).__name__ == "EventBook":
                    return inner
        return book

    def close_matches(self, station_id: str) -> list[str]:
        ids = list(self.central.states)
        lowered = {i.lower(): i for i in ids}
        matches = difflib.get_close_matches(station_id, ids, n=3, cutoff=0.6)
        exact_ci = lowered.get(station_id.lower())
        if exact_ci is not None and exact_ci not in matches:
            matches.insert(0, exact_ci)
        return matches

    def unknown_station(self, station_id: str) -> ApiError:
        matches = self.close_matches(station_id)
        hint = f"; did you mean {', '.join(matches)}?" if matches else "; list stations with GET /api/v1/stations"
        return ApiError(
            404,
            "unknown_station",
            f"unknown station '{station_id}'{hint}",
            {"station_id": station_id, "close_matches": matches},
        )

    async def station_row(self, station_id: str) -> StationRow:
        row = await self.store.get_station(station_id)
        if row is None:
            raise self.unknown_station(station_id)
        return row

    async def require_station(self, station_id: str) -> None:
        if station_id in self.central.states and self.central.known(station_id):
            return
        await self.station_row(station_id)


def get_ctx(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]
