"""K - Smart charging and Q - V2X: what stations report about cars and limits.

- NotifyEVChargingNeeds (K15-K17, Q): normalised by :mod:`csms.smartcharging.needs`, kept on
  the EVSE and the transaction as the car's current needs. Answer: ``Rejected`` without an
  active transaction on that EVSE; ``Processing`` when a controller (dispatch) has claimed
  the EVSE and will send a profile; otherwise ``NoChargingProfile`` on 2.1 (the car follows
  its own schedule) and ``Accepted`` on 2.0.1 (which has no such status).
- NotifyEVChargingSchedule: kept for diagnosis, Accepted.
- NotifyChargingLimit / ClearedChargingLimit (K12/K13): an external limit caps what we command.
- ReportChargingProfiles (K09): collected by :class:`~csms.services.charging_control.ChargingControl`.
"""

from __future__ import annotations

from typing import Any

from csms.blocks.context import Session
from csms.smartcharging.needs import parse_needs


def _status(reason: str, info: str) -> dict[str, Any]:
    return {"reasonCode": reason, "additionalInfo": info[:512]}


async def notify_ev_charging_needs(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    central = s.central
    evse = s.state.evse(p["evseId"])
    if evse.transaction_id is None:
        return {"status": "Rejected", "statusInfo": _status("NoTransaction", f"no transaction on EVSE {p['evseId']}")}
    needs = parse_needs(p, s.version)
    evse.charging_needs = needs
    evse.needs_at = central.now()
    await central.store.set_transaction_fields(s.station_id, evse.transaction_id, charging_needs=needs.to_json())
    claimed = central.charging.claimed(s.station_id, evse.evse_id)
    central.emit("needs", s.station_id, {"evse_id": evse.evse_id, "needs": needs})
    s.log.info(
        "charging needs",
        evse=evse.evse_id,
        mode=needs.requested_energy_transfer,
        soc=needs.soc,
        departure=needs.departure_time.isoformat() if needs.departure_time else None,
    )
    if claimed:
        return {"status": "Processing"}
    return {"status": "NoChargingProfile" if s.version == "2.1" else "Accepted"}


async def notify_ev_charging_schedule(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    await s.central.store.add_station_event(s.station_id, "NotifyEVChargingSchedule", s.central.now(), p)
    return {"status": "Accepted"}


async def notify_charging_limit(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    evse_ids = [p["evseId"]] if p.get("evseId") else list(s.state.evses) or [0]
    for evse_id in evse_ids:
        s.state.evse(evse_id).external_limit = {
            "source": p["chargingLimit"]["chargingLimitSource"],
            "grid_critical": p["chargingLimit"].get("isGridCritical", False),
            "schedules": p.get("chargingSchedule", []),
        }
    await s.central.store.add_station_event(s.station_id, "NotifyChargingLimit", s.central.now(), p)
    s.central.emit("limit", s.station_id, {"evse_ids": evse_ids, "cleared": False})
    return {}


async def cleared_charging_limit(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    evse_ids = [p["evseId"]] if p.get("evseId") else list(s.state.evses)
    for evse_id in evse_ids:
        s.state.evse(evse_id).external_limit = None
    await s.central.store.add_station_event(s.station_id, "ClearedChargingLimit", s.central.now(), p)
    s.central.emit("limit", s.station_id, {"evse_ids": evse_ids, "cleared": True})
    return {}


async def report_charging_profiles(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    s.central.charging.on_report(s.station_id, p)
    return {}


HANDLERS = {
    "NotifyEVChargingNeeds": notify_ev_charging_needs,
    "NotifyEVChargingSchedule": notify_ev_charging_schedule,
    "NotifyChargingLimit": notify_charging_limit,
    "ClearedChargingLimit": cleared_charging_limit,
    "ReportChargingProfiles": report_charging_profiles,
}
