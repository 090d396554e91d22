"""H - Reservation: ReserveNow for one EVSE or any EVSE (H01), CancelReservation (H02), use of a
reservation by a transaction (H03: ``reservationId`` in TransactionEvent), and
ReservationStatusUpdate from the station (H04: Expired / Removed, 2.1 also NoTransaction).

The CSMS allocates reservation ids (unique across the CSMS) and keeps every reservation with its
life cycle: the station's answer to ReserveNow (Accepted, Faulted, Occupied, Rejected,
Unavailable), then Cancelled, Expired, Removed, NoTransaction or Used. A reservation still
Accepted after its ``expiryDateTime`` is reported (and recorded) as Expired even if the station
never said so, since a station that was offline at the time cannot.

Reservation ids are counted in memory from the highest stored one: two CSMS processes sharing a
database must not both make reservations.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import structlog

from csms.blocks.context import Central, Session
from csms.clock import parse_rfc3339, to_rfc3339
from csms.store import operations as ops

log = structlog.get_logger("csms.reservation")

EXTENSION = "reservations"
OPEN = ("Accepted",)


class Reservations:
    def __init__(self, central: Central) -> None:
        self.central = central
        self._ids = asyncio.Lock()
        self._next: int | None = None

    @classmethod
    def of(cls, central: Central) -> Reservations:
        found = central.extensions.get(EXTENSION)
        if found is None:
            found = central.extensions[EXTENSION] = cls(central)
        return found  # type: ignore[no-any-return]

    @property
    def store(self) -> Any:
        assert self.central.store is not None
        return self.central.store

    @staticmethod
    def request(
        reservation_id: int,
        *,
        expiry_at: datetime,
        id_token: str,
        id_token_type: str,
        evse_id: int | None = None,
        connector_type: str | None = None,
        group_id_token: str | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": reservation_id,
            "expiryDateTime": to_rfc3339(expiry_at),
            "idToken": {"idToken": id_token, "type": id_token_type},
        }
        if evse_id is not None:
            payload["evseId"] = evse_id
        if connector_type is not None:
            payload["connectorType"] = connector_type
        if group_id_token is not None:
            payload["groupIdToken"] = {"idToken": group_id_token, "type": "Central"}
        return payload

    async def allocate(self) -> int:
        """The next reservation id (one past the highest ever stored, then counted in memory)."""
        async with self._ids:
            if self._next is None:
                self._next = await ops.next_reservation_id(self.store)
            rid, self._next = self._next, self._next + 1
            return rid

    async def record(self, station_id: str, payload: dict[str, Any], status: str) -> ops.ReservationRow:
        return await ops.put_reservation(
            self.store,
            id=payload["id"],
            station_id=station_id,
            evse_id=payload.get("evseId"),
            connector_type=payload.get("connectorType"),
            id_token=payload["idToken"]["idToken"],
            id_token_type=payload["idToken"]["type"],
            group_id_token=(payload.get("groupIdToken") or {}).get("idToken"),
            expiry_at=parse_rfc3339(payload["expiryDateTime"]),
            status=status,
        )

    async def cancelled(self, reservation_id: int) -> None:
        await ops.set_reservation_status(self.store, reservation_id, "Cancelled", only_if=OPEN)
        self.central.emit("reservation", "", {"id": reservation_id, "status": "Cancelled"})

    async def current(self, row: ops.ReservationRow) -> ops.ReservationRow:
        """The row, marked Expired when still open after its expiry time."""
        if row.status in OPEN and row.expiry_at <= self.central.now():
            await ops.set_reservation_status(self.store, row.id, "Expired", only_if=OPEN)
            return row.model_copy(update={"status": "Expired"})
        return row


async def reservation_status_update(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    rid, status = p["reservationId"], p["reservationUpdateStatus"]
    assert s.central.store is not None
    row = await ops.get_reservation(s.central.store, rid)
    if row is None or row.station_id != s.station_id:
        s.log.warning("ReservationStatusUpdate for a reservation this station does not hold", reservation=rid)
    else:
        await ops.set_reservation_status(s.central.store, rid, status)
    s.log.info("reservation status", reservation=rid, status=status)
    s.central.emit("reservation", s.station_id, {"id": rid, "status": status})
    return {}


async def used(s: Session, reservation_id: int) -> None:
    """H03: a transaction started on the reservation."""
    assert s.central.store is not None
    row = await ops.get_reservation(s.central.store, reservation_id)
    if row is not None and row.station_id == s.station_id and row.status in OPEN:
        await ops.set_reservation_status(s.central.store, reservation_id, "Used", only_if=OPEN)
        s.central.emit("reservation", s.station_id, {"id": reservation_id, "status": "Used"})


HANDLERS = {"ReservationStatusUpdate": reservation_status_update}
