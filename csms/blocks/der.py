"""R - DER control (OCPP 2.1 only): SetDERControl, GetDERControl answered by ReportDERControl in
parts, ClearDERControl, and NotifyDERAlarm from the station.

What the CSMS keeps, as station events (so every CSMS process on the database sees the same):

- ``DERControlSet`` (the accepted SetDERControlRequest and the station's ``supersededIds``) and
  ``DERControlCleared`` (the accepted ClearDERControlRequest): :meth:`DerControls.controls`
  replays them into the controls the CSMS set and believes the station holds;
- ``DERControlReport``: every ReportDERControl part as received; :meth:`DerControls.get` sends a
  GetDERControl and collects its parts by ``requestId`` until one comes without ``tbc``
  (:class:`~csms.blocks.report_parts.ReportParts`);
- ``DERAlarm`` / ``DERAlarmEnded``: every NotifyDERAlarm, also logged as a warning and emitted as
  an ``alert`` listener event (``source`` DERAlarm, ``cleared`` when the alarm ended), as
  NotifyEvent alerts are by the monitoring block.

A 2.0.1 station never gets these calls: the API refuses them (409 ``not_in_version``) and a 2.0.1
connection answers a NotifyDERAlarm / ReportDERControl with NotImplemented (not in its schemas).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.clock import parse_rfc3339
from csms.domain import der

from .report_parts import ReportParts

if TYPE_CHECKING:
    from csms.blocks.context import Central, Session

EXTENSION = "der_control"
EVENT_SET = "DERControlSet"
EVENT_CLEARED = "DERControlCleared"
EVENT_REPORT = "DERControlReport"
EVENT_ALARM = "DERAlarm"
EVENT_ALARM_ENDED = "DERAlarmEnded"
HISTORY_LIMIT = 2000


class DerControls:
    def __init__(self, central: Central) -> None:
        self.central = central
        self._parts = ReportParts("GetDERControl", "ReportDERControl", None)
        self._parts.attach(central)

    @classmethod
    def of(cls, central: Central) -> DerControls:
        found = central.extensions.get(EXTENSION)
        if found is None:
            found = central.extensions[EXTENSION] = cls(central)
        return found  # type: ignore[no-any-return]

    async def _record(self, station_id: str, kind: str, payload: dict[str, Any], at: Any = None) -> None:
        assert self.central.store is not None
        await self.central.store.add_station_event(station_id, kind, at or self.central.now(), payload)

    async def record_set(self, station_id: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        if response.get("status") == "Accepted":
            facts = {"request": request, "supersededIds": response.get("supersededIds", [])}
            await self._record(station_id, EVENT_SET, facts)
            self.central.emit("der_control", station_id, {"set": request["controlId"]})

    async def record_clear(self, station_id: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        if response.get("status") == "Accepted":
            await self._record(station_id, EVENT_CLEARED, {"request": request})
            self.central.emit("der_control", station_id, {"cleared": request})

    async def controls(self, station_id: str) -> list[dict[str, Any]]:
        """The controls the CSMS set on the station and did not clear, by controlId."""
        assert self.central.store is not None
        store = self.central.store
        rows = [
            *await store.list_station_events(station_id, kind=EVENT_SET, limit=HISTORY_LIMIT),
            *await store.list_station_events(station_id, kind=EVENT_CLEARED, limit=HISTORY_LIMIT),
        ]
        rows.sort(key=lambda r: (r.timestamp, r.id))
        steps = [("set" if r.kind == EVENT_SET else "clear", r.payload["request"]) for r in rows]
        return sorted(der.replay(steps).values(), key=lambda c: (c["controlType"], c["controlId"]))

    async def get(
        self, station_id: str, request: dict[str, Any], *, wait_s: float
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """GetDERControl, then the controls of the ReportDERControl parts it causes."""
        response, parts = await self._parts.request(self.central.call, station_id, request, wait_s=wait_s)
        return response, der.flatten_report(parts)

    async def reported(self, s: Session, p: dict[str, Any]) -> None:
        await self._record(s.station_id, EVENT_REPORT, p)
        self._parts.publish(self.central, s.station_id, p)

    async def alarm(self, s: Session, p: dict[str, Any]) -> None:
        facts = der.alarm_facts(p)
        ended = facts["alarmEnded"]
        kind = EVENT_ALARM_ENDED if ended else EVENT_ALARM
        await self._record(s.station_id, kind, facts, parse_rfc3339(p["timestamp"]))
        if not ended:
            s.log.warning("DER alarm", control_type=facts["controlType"], fault=facts.get("gridEventFault"))
        self.central.emit("alert", s.station_id, {**facts, "source": "DERAlarm", "cleared": ended})


async def notify_der_alarm(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    await DerControls.of(s.central).alarm(s, p)
    return {}


async def report_der_control(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    await DerControls.of(s.central).reported(s, p)
    return {}


HANDLERS = {"NotifyDERAlarm": notify_der_alarm, "ReportDERControl": report_der_control}
