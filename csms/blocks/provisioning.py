"""B - Provisioning: BootNotification (B01-B03), Heartbeat (G02), StatusNotification (G01),
NotifyReport (B07/B08) and NotifyEvent (N07: monitoring events)."""

from __future__ import annotations

from typing import Any

from csms.blocks import local_auth_list, monitoring
from csms.blocks.context import Session
from csms.clock import parse_rfc3339, to_rfc3339
from csms.domain.station import BootState
from csms.store.payloads import parse_report_data
from csms.store.types import utcnow

_STATUS = {"accept": BootState.ACCEPTED, "pending": BootState.PENDING, "reject": BootState.REJECTED}


async def boot_notification(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    central = s.central
    status = _STATUS[central.boot_policy(s.station_id)]
    now = central.now()
    cs = p["chargingStation"]
    s.state.boot = status
    s.state.ocpp_version = s.version
    s.state.vendor, s.state.model = cs.get("vendorName"), cs.get("model")
    central.station_writer.add(
        s.station_id,
        vendor=cs.get("vendorName"),
        model=cs.get("model"),
        serial_number=cs.get("serialNumber"),
        firmware_version=cs.get("firmwareVersion"),
        ocpp_version=s.version,
        boot_status=status.value,
        last_boot_at=now,
        last_seen_at=now,
    )
    interval = (
        central.settings.boot.heartbeat_interval
        if status is BootState.ACCEPTED
        else central.settings.boot.pending_retry_interval
    )
    s.log.info("boot", status=status.value, reason=p.get("reason"), model=cs.get("model"))
    central.emit("boot", s.station_id, {"status": status.value, "reason": p.get("reason"), "station": cs})
    if status is BootState.ACCEPTED:
        local_auth_list.after_boot(s)
    return {"currentTime": to_rfc3339(now), "interval": interval, "status": status.value}


def heartbeat(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    now = s.central.now()
    s.state.last_seen = now
    s.central.store.touch(s.station_id, now)
    return {"currentTime": to_rfc3339(now)}


def status_notification(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    evse_id, connector_id, status = p["evseId"], p["connectorId"], p["connectorStatus"]
    at = parse_rfc3339(p["timestamp"])
    s.state.evse(evse_id).connectors[connector_id] = status
    s.central.status_writer.add((s.station_id, evse_id, connector_id), status=status, at=at)
    s.central.emit("status", s.station_id, {"evse_id": evse_id, "connector_id": connector_id, "status": status})
    return {}


async def notify_report(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    # flattened once, by the store's parser (which keeps each attribute's mutability, persistent
    # and constant flags next to the variableCharacteristics); the event carries the same rows
    rows = parse_report_data(s.station_id, p.get("reportData", ()), utcnow())
    if rows:
        await s.central.store.write_variable_rows(rows)
    s.central.emit(
        "report",
        s.station_id,
        {"request_id": p["requestId"], "seq_no": p["seqNo"], "tbc": p.get("tbc", False), "rows": rows},
    )
    return {}


async def notify_event(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    await s.central.store.add_station_event(s.station_id, "NotifyEvent", parse_rfc3339(p["generatedAt"]), p)
    await monitoring.Monitoring.of(s.central).on_event(s, p)
    return {}


HANDLERS = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "NotifyReport": notify_report,
    "NotifyEvent": notify_event,
}
