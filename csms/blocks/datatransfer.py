"""P - DataTransfer (P01/P02). No vendor extension is handled over DataTransfer today, so
every vendorId is answered UnknownVendorId; the message is kept for diagnosis."""

from __future__ import annotations

from typing import Any

from csms.blocks.context import Session

KNOWN_VENDORS: dict[str, Any] = {}


async def data_transfer(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    await s.central.store.add_station_event(s.station_id, "DataTransfer", s.central.now(), p)
    handler = KNOWN_VENDORS.get(p["vendorId"])
    if handler is None:
        return {"status": "UnknownVendorId"}
    return await handler(s, p)


HANDLERS = {"DataTransfer": data_transfer}
