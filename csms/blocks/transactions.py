"""E - Transactions (E01-E15) and J - Meter values (J01-J03).

TransactionEvent: each (transaction, seqNo) is stored once; a resent event is acknowledged
again and changes nothing. Events flagged ``offline`` are applied as history in seqNo order
(the store keeps the transaction's state equal to its newest event); only live events move
the live EVSE state that dispatch reads.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from csms.blocks import reservation, tariff
from csms.blocks.authorization import token_info
from csms.blocks.context import Session
from csms.domain.metering import MeterRead
from csms.store.payloads import read_wire_meter_values


def _apply_live_meter(s: Session, evse_id: int, read: MeterRead) -> None:
    ts = read.at
    if ts is None:
        return
    evse = s.state.evse(evse_id)
    if evse.metered_at is not None and ts < evse.metered_at:
        return
    readings = read.readings
    for field, value in readings.items():
        setattr(evse, field, value)
    evse.metered_at = ts
    s.central.emit("meter", s.station_id, {"evse_id": evse_id, "at": ts, **readings})


async def transaction_event(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    central = s.central
    tx = p["transactionInfo"]
    tx_id = tx["transactionId"]
    evse_id = (p.get("evse") or {}).get("id")
    # the schema validated p (the store checks only what it leaves open), and its meterValue is
    # walked once: the store queues these rows, the live state and the tariff read the readings
    read = read_wire_meter_values(s.station_id, 0, tx_id, p["meterValue"]) if p.get("meterValue") else None
    inserted, row = await central.store.apply_transaction_event(
        s.station_id, p, validated=True, meter_rows=read.rows if read is not None else None
    )
    response: dict[str, Any] = {}
    allowed = None
    if "idToken" in p:
        info, allowed = await token_info(s, p["idToken"])
        response["idTokenInfo"] = info
    if not inserted:
        s.log.info("duplicate TransactionEvent acknowledged", transaction=tx_id, seq_no=p["seqNo"])
        return response
    if "reservationId" in p:
        await reservation.used(s, p["reservationId"])
    if evse_id is None:
        known = s.state.evse_of_transaction(tx_id)
        evse_id = known.evse_id if known else row.evse_id
    if evse_id is not None:
        evse = s.state.evse(evse_id)
        newest = p["seqNo"] >= row.last_seq_no
        if row.state == "Ended":
            if evse.transaction_id == tx_id:
                evse.transaction_id = None
                evse.charging_needs = None
                evse.allowed_energy_transfer = None
                evse.power_import_w = evse.power_export_w = 0.0
        elif newest:
            evse.transaction_id = tx_id
            if "chargingState" in tx:
                evse.charging_state = tx["chargingState"]
            if "operationMode" in tx:
                evse.operation_mode = tx["operationMode"]
            if "idToken" in p:
                evse.id_token = p["idToken"]["idToken"]
        if allowed and s.version == "2.1" and evse.allowed_energy_transfer is None and row.state != "Ended":
            # Q: a transaction authorized without an AuthorizeRequest (e.g. remote start, or a
            # token first seen here) learns its V2X permission by NotifyAllowedEnergyTransfer
            evse.allowed_energy_transfer = allowed
            central.background(central.charging.set_allowed_energy_transfer(s.station_id, tx_id, allowed))
        if read is not None and not p.get("offline", False):
            _apply_live_meter(s, evse_id, read)
    tariff.Tariffs.of(central).on_transaction_event(s, p, response, read.readings if read is not None else {})
    central.emit(
        "transaction",
        s.station_id,
        {
            "transaction_id": tx_id,
            "event_type": p["eventType"],
            "evse_id": evse_id,
            "offline": p.get("offline", False),
            "state": row.state,
            "trigger": p["triggerReason"],
        },
    )
    return response


def meter_values(s: Session, p: dict[str, Any]) -> dict[str, Any] | Awaitable[dict[str, Any]]:
    """Answered inline; only when the store's meter backlog is over its mark does the answer
    wait (in a task) until the backlog is written: backpressure instead of lost samples."""
    evse_id = p["evseId"]
    evse = s.state.evses.get(evse_id)
    tx_id = evse.transaction_id if evse is not None else None
    store = s.central.store
    # one walk: the rows the store writes and the live readings come from the same conversion
    read = read_wire_meter_values(s.station_id, evse_id, tx_id, p["meterValue"])
    store.meters.add_rows(read.rows)
    if evse_id > 0:
        _apply_live_meter(s, evse_id, read)
    backlog = store.meters.room()
    return {} if backlog is None else _answer_after(backlog)


async def _answer_after(backlog: Awaitable[None]) -> dict[str, Any]:
    await backlog
    return {}


HANDLERS = {"TransactionEvent": transaction_event, "MeterValues": meter_values}
