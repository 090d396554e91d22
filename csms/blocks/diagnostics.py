"""L - Firmware management (L01) and N - Diagnostics (N01): status notifications kept per
station and published to listeners so long operations can show progress."""

from __future__ import annotations

from typing import Any

from csms.blocks.context import Session


async def firmware_status_notification(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    await s.central.store.add_station_event(s.station_id, "FirmwareStatus", s.central.now(), p)
    s.central.emit("firmware", s.station_id, p)
    return {}


async def log_status_notification(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    await s.central.store.add_station_event(s.station_id, "LogStatus", s.central.now(), p)
    s.central.emit("log", s.station_id, p)
    return {}


HANDLERS = {
    "FirmwareStatusNotification": firmware_status_notification,
    "LogStatusNotification": log_status_notification,
}
