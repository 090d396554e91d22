"""The simulated station's reservations (OCPP H01-H04).

- ReserveNow for an EVSE: Rejected when ``ReservationCtrlr.Enabled`` is false or the EVSE or the
  connector type is unknown (this station has cG105 connectors), Faulted / Unavailable / Occupied
  from the EVSE's state (a car plugged in, or a reservation for another id), else Accepted and
  the connector goes Reserved. Without ``evseId`` (needs ``ReservationCtrlr.NonEvseSpecific``)
  the reservation takes the lowest free EVSE; Occupied when every EVSE is taken. The same id
  again replaces the reservation (H01.FR.02).
- CancelReservation: Accepted and the connector is Available again, Rejected for an unknown id.
- Expiry: at ``expiryDateTime`` the reservation is removed and ReservationStatusUpdate(Expired)
  sent (queued while offline); Removed when the EVSE goes Faulted or Inoperative.
- Use (H03): a transaction authorized on the reserved EVSE for the reservation's idToken (or
  its groupIdToken) consumes it and reports ``reservationId`` in its next TransactionEvent; any
  other token is refused on that EVSE.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from csms.clock import parse_rfc3339

from .devicemodel import READ_ONLY, READ_WRITE, Variable

if TYPE_CHECKING:
    from .devicemodel import DeviceModel
    from .model import Evse, Firmware

CONNECTOR_TYPE = "cG105"


@dataclass
class Held:
    id: int
    evse_id: int
    id_token: dict[str, Any]
    group_id_token: dict[str, Any] | None
    expiry_t: float
    task: asyncio.Task[None] | None = None


def _book(st: Firmware) -> dict[int, Held]:
    found = st.__dict__.get("reservations")
    if found is None:
        found = st.__dict__["reservations"] = {}
    return found  # type: ignore[no-any-return]


def _reports(st: Firmware) -> dict[str, int]:
    found = st.__dict__.get("reservation_reports")
    if found is None:
        found = st.__dict__["reservation_reports"] = {}
    return found  # type: ignore[no-any-return]


def add_variables(st: Firmware, dm: DeviceModel) -> None:
    dm.add(Variable("ReservationCtrlr", "Available", "true", READ_ONLY, "boolean"))
    dm.add(Variable("ReservationCtrlr", "Enabled", "true", READ_WRITE, "boolean"))
    dm.add(Variable("ReservationCtrlr", "NonEvseSpecific", "true", READ_WRITE, "boolean"))


def held_on(st: Firmware, evse_id: int) -> Held | None:
    return next((h for h in _book(st).values() if h.evse_id == evse_id), None)


def _busy(st: Firmware, evse: Evse) -> str | None:
    if evse.faulted:
        return "Faulted"
    if not evse.operative:
        return "Unavailable"
    if evse.ev is not None or (evse.tx is not None and not evse.tx.ended):
        return "Occupied"
    return None


def _rejected(text: str) -> dict[str, Any]:
    return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest", "additionalInfo": text[:512]}}


async def reserve_now(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    if not st._dm_bool("ReservationCtrlr", "Enabled", True):
        return _rejected("reservations are disabled (ReservationCtrlr.Enabled)")
    if p.get("connectorType") not in (None, CONNECTOR_TYPE):
        return _rejected(f"no {p['connectorType']} connector")
    book = _book(st)
    rid = p["id"]
    old = book.get(rid)
    evse_id = p.get("evseId")
    if evse_id is None and old is not None:
        evse_id = old.evse_id
    if evse_id is None:
        if not st._dm_bool("ReservationCtrlr", "NonEvseSpecific", True):
            return _rejected("only EVSE-specific reservations (ReservationCtrlr.NonEvseSpecific)")
        free = [
            e
            for e in sorted(st.evses.values(), key=lambda e: e.id)
            if _busy(st, e) is None and held_on(st, e.id) is None
        ]
        if not free:
            return {"status": "Occupied"}
        evse = free[0]
    else:
        found = st.evses.get(evse_id)
        if found is None:
            return _rejected(f"unknown EVSE {evse_id}")
        evse = found
        busy = _busy(st, evse)
        if busy is not None:
            return {"status": busy}
        other = held_on(st, evse.id)
        if other is not None and other.id != rid:
            return {"status": "Occupied"}
    if old is not None:
        _drop(st, old)
    now_t = st.now_t()
    expiry_t = now_t + (parse_rfc3339(p["expiryDateTime"]).timestamp() - st.clock.now().timestamp())
    held = Held(rid, evse.id, p["idToken"], p.get("groupIdToken"), expiry_t)
    book[rid] = held
    held.task = st._spawn(_expire(st, held))
    _status(st, evse.id)
    return {"status": "Accepted"}


def _status(st: Firmware, evse_id: int) -> None:
    st._status_changed(st.evses[evse_id])


def _drop(st: Firmware, held: Held) -> None:
    _book(st).pop(held.id, None)
    task = held.task
    if task is not None and task is not asyncio.current_task():
        task.cancel()


def _end(st: Firmware, held: Held, reason: str | None) -> None:
    from .model import Outgoing

    _drop(st, held)
    _status(st, held.evse_id)
    if reason is not None:
        payload = {"reservationId": held.id, "reservationUpdateStatus": reason}
        st._enqueue(Outgoing("ReservationStatusUpdate", payload))


async def _expire(st: Firmware, held: Held) -> None:
    while st.now_t() < held.expiry_t:
        await st._sleep_sim(held.expiry_t - st.now_t(), min_wall=0.01)
    if _book(st).get(held.id) is held:
        st.log.info("reservation expired", reservation=held.id, evse=held.evse_id)
        _end(st, held, "Expired")


async def cancel_reservation(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    held = _book(st).get(p["reservationId"])
    if held is None:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownReservation"}}
    _end(st, held, None)
    return {"status": "Accepted"}


def removed(st: Firmware, evse_id: int) -> None:
    """The EVSE became Faulted or Inoperative: its reservation is Removed (H04)."""
    held = held_on(st, evse_id)
    if held is not None:
        _end(st, held, "Removed")


def set_faulted(st: Firmware, evse_id: int, faulted: bool = True) -> None:
    """Fault switch for tests and demos: the EVSE goes Faulted (its reservation is Removed) or
    recovers."""
    evse = st.evses[evse_id]
    evse.faulted = faulted
    if faulted:
        removed(st, evse_id)
    st._status_changed(evse)


def admit(st: Firmware, evse: Evse, id_token: dict[str, Any], info: dict[str, Any]) -> bool:
    """H03: may ``id_token`` (authorized with ``info``) charge on ``evse``? Consumes the
    reservation when it is the reservation's token or group."""
    held = held_on(st, evse.id)
    if held is None:
        return True
    group = info.get("groupIdToken")
    mine = (id_token.get("idToken"), id_token.get("type")) == (held.id_token["idToken"], held.id_token["type"])
    same_group = (
        held.group_id_token is not None
        and group is not None
        and group.get("idToken") == held.group_id_token.get("idToken")
    )
    if not (mine or same_group):
        return False
    _drop(st, held)
    if evse.tx is not None:
        _reports(st)[evse.tx.id] = held.id
    return True


def report(st: Firmware, tx_id: str) -> int | None:
    """The reservation a transaction used, once (for its next TransactionEvent)."""
    return _reports(st).pop(tx_id, None)


HANDLERS = {"ReserveNow": reserve_now, "CancelReservation": cancel_reservation}
