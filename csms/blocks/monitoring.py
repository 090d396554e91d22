"""N - Monitoring: SetVariableMonitoring (N04), GetMonitoringReport answered by
NotifyMonitoringReport (N02), SetMonitoringBase (N03), SetMonitoringLevel (N05),
ClearVariableMonitoring (N06), and NotifyEvent (N07) stored with alerting.

- Every NotifyMonitoringReport is stored as a ``MonitoringReport`` station event; a report asked
  through :meth:`Monitoring.report` waits for the messages with its ``requestId`` (``tbc``).
- The CSMS remembers, per station, the monitors it set or saw reported (id -> severity), so an
  OCPP 2.0.1 event (which carries no severity) can be graded by its ``variableMonitoringId``.
- NotifyEvent (stored as ``NotifyEvent`` by the provisioning block) raises an alert for every
  ``eventData`` with trigger ``Alerting`` that is not ``cleared`` and whose severity (the event's
  own on 2.1, else its monitor's, else 5 "Alert"; hard-wired notifications without one count as
  0) is at most the station's ``alert_severity`` (station meta, default 4 "Error"): an ``Alert``
  station event, a warning in the log and an ``alert`` listener event; a ``cleared`` event
  records ``AlertCleared``.
"""

from __future__ import annotations

from typing import Any

import structlog

from csms.blocks.context import Central, Session
from csms.clock import parse_rfc3339

from .report_parts import ReportParts

log = structlog.get_logger("csms.monitoring")

EXTENSION = "monitoring"
EVENT_REPORT = "MonitoringReport"
EVENT_ALERT = "Alert"
EVENT_CLEARED = "AlertCleared"
DEFAULT_ALERT_SEVERITY = 4
DEFAULT_MONITOR_SEVERITY = 5


class Monitoring:
    def __init__(self, central: Central) -> None:
        self.central = central
        self.severities: dict[str, dict[int, int]] = {}
        self._parts = ReportParts("GetMonitoringReport", "NotifyMonitoringReport", "monitor")
        self._parts.attach(central)

    @classmethod
    def of(cls, central: Central) -> Monitoring:
        found = central.extensions.get(EXTENSION)
        if found is None:
            found = central.extensions[EXTENSION] = cls(central)
        return found  # type: ignore[no-any-return]

    def remember_set(self, station_id: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        known = self.severities.setdefault(station_id, {})
        for result in response.get("setMonitoringResult", []):
            if result.get("status") == "Accepted" and "id" in result:
                known[result["id"]] = result["severity"]

    def forget(self, station_id: str, ids: list[int], response: dict[str, Any]) -> None:
        known = self.severities.setdefault(station_id, {})
        for result in response.get("clearMonitoringResult", []):
            if result.get("status") == "Accepted":
                known.pop(result["id"], None)

    async def report(
        self, station_id: str, request: dict[str, Any], *, wait_s: float
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return await self._parts.request(self.central.call, station_id, request, wait_s=wait_s)

    def reported(self, station_id: str, p: dict[str, Any]) -> None:
        known = self.severities.setdefault(station_id, {})
        for item in p.get("monitor", []):
            for vm in item.get("variableMonitoring", []):
                known[vm["id"]] = vm["severity"]
        self._parts.publish(self.central, station_id, p)

    def severity_of(self, station_id: str, event: dict[str, Any]) -> int:
        if "severity" in event:
            return int(event["severity"])
        monitor = event.get("variableMonitoringId")
        if monitor is not None and monitor in self.severities.get(station_id, {}):
            return self.severities[station_id][monitor]
        if event.get("eventNotificationType") == "HardWiredNotification":
            return 0
        return DEFAULT_MONITOR_SEVERITY

    async def on_event(self, s: Session, p: dict[str, Any]) -> None:
        threshold = int((self.central.station_meta(s.station_id) or {}).get("alert_severity", DEFAULT_ALERT_SEVERITY))
        assert self.central.store is not None
        for event in p["eventData"]:
            if event["trigger"] != "Alerting":
                continue
            severity = self.severity_of(s.station_id, event)
            facts = {
                "eventId": event["eventId"],
                "component": event["component"],
                "variable": event["variable"],
                "actualValue": event["actualValue"],
                "severity": severity,
                "eventNotificationType": event["eventNotificationType"],
            }
            for extra in ("techCode", "techInfo", "transactionId", "variableMonitoringId", "cause"):
                if extra in event:
                    facts[extra] = event[extra]
            at = parse_rfc3339(event["timestamp"])
            if event.get("cleared"):
                await self.central.store.add_station_event(s.station_id, EVENT_CLEARED, at, facts)
                self.central.emit("alert", s.station_id, {**facts, "cleared": True})
                continue
            if severity > threshold:
                continue
            await self.central.store.add_station_event(s.station_id, EVENT_ALERT, at, facts)
            s.log.warning(
                "station alert",
                component=event["component"]["name"],
                variable=event["variable"]["name"],
                value=event["actualValue"],
                severity=severity,
            )
            self.central.emit("alert", s.station_id, {**facts, "cleared": False})


async def notify_monitoring_report(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    assert s.central.store is not None
    await s.central.store.add_station_event(s.station_id, EVENT_REPORT, parse_rfc3339(p["generatedAt"]), p)
    Monitoring.of(s.central).reported(s.station_id, p)
    return {}


HANDLERS = {"NotifyMonitoringReport": notify_monitoring_report}
