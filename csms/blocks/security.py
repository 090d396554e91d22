"""A - Security: SecurityEventNotification (A04) kept per station."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.clock import parse_rfc3339

if TYPE_CHECKING:
    from csms.server.session import StationSession


async def security_event_notification(s: StationSession, p: dict[str, Any]) -> dict[str, Any]:
    await s.central.store.add_security_event(s.station_id, p["type"], parse_rfc3339(p["timestamp"]), p.get("techInfo"))
    s.log.warning("security event", type=p["type"], tech_info=p.get("techInfo"))
    s.central.emit("security", s.station_id, {"type": p["type"]})
    return {}


HANDLERS = {"SecurityEventNotification": security_event_notification}
