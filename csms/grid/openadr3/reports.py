"""Delivery reports of the OpenADR 3 VEN: what the dispatch controller delivered for each event
that came from the VTN, one report per event (``POST /reports`` after its first 5-minute interval,
``PUT /reports/{id}`` with all intervals so far after each further one).

Intervals are queued in memory by their start (a repeated interval is reported once, the first
value standing) and sent by the VEN's loop (:meth:`DeliveryReports.flush`); after a CSMS restart
the report this VEN already holds at the VTN is continued rather than duplicated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from csms.grid.model import parse_time

from .client import VtnClient, VtnRefused
from .mapping import AGGREGATED, delivery_report, report_interval

log = structlog.get_logger("csms.grid.openadr3")


@dataclass
class ReportState:
    program_id: str
    by_start: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Report intervals by their start (RFC 3339): a repeated interval does not duplicate."""
    report_id: str | None = None
    looked_up: bool = False
    dirty: bool = False
    sent: int = 0
    """Intervals the VTN has acknowledged."""

    @property
    def intervals(self) -> list[dict[str, Any]]:
        """In time order, ``id`` = position."""
        return [{**iv, "id": k} for k, (_, iv) in enumerate(sorted(self.by_start.items()))]


class DeliveryReports:
    """The delivery reports of one VEN (``client_name``), by VTN event id."""

    def __init__(self, client_name: str) -> None:
        self.client_name = client_name
        self.by_event: dict[str, ReportState] = {}

    def add(self, event_id: str, program_id: str, payload: dict[str, Any]) -> None:
        """Queue one delivery interval (``start``, ``end``, ``target_kw``, ``delivered_kw``)."""
        st = self.by_event.setdefault(event_id, ReportState(program_id))
        start, end = parse_time(payload["start"]), parse_time(payload["end"])
        iv = report_interval(0, start, end, float(payload["target_kw"]), float(payload["delivered_kw"]))
        st.by_start.setdefault(iv["intervalPeriod"]["start"], iv)
        st.dirty = True

    def pending(self) -> int:
        """Reports with intervals the VTN has not seen."""
        return sum(1 for r in self.by_event.values() if r.dirty)

    async def flush(self, client: VtnClient) -> None:
        """Send every report with intervals the VTN has not seen (raises VtnUnavailable)."""
        for event_id, st in list(self.by_event.items()):
            if not st.dirty:
                continue
            try:
                if st.report_id is None and not st.looked_up:
                    await self._adopt(client, event_id, st)
                n = len(st.by_start)
                body = delivery_report(
                    program_id=st.program_id,
                    event_id=event_id,
                    client_name=self.client_name,
                    intervals=st.intervals,
                )
                if st.report_id is None:
                    created = await client.create_report(body)
                    st.report_id = str(created["id"])
                else:
                    await client.update_report(st.report_id, body)
            except VtnRefused as exc:
                st.dirty = False
                log.error("VTN refused the delivery report", event_id=event_id, error=str(exc))
                continue
            st.sent = n
            st.dirty = len(st.by_start) > n
            log.debug("delivery report sent", event_id=event_id, report_id=st.report_id, intervals=n)

    async def _adopt(self, client: VtnClient, event_id: str, st: ReportState) -> None:
        """After a restart of the CSMS: continue this VEN's report of the event at the VTN
        (``GET /reports?eventID=&clientName=``) instead of creating a second one; the intervals
        the VTN already holds stay as reported (the dispatch ledger of the new process has no
        meter data from before its start)."""
        found = await client.list_all("/reports", {"eventID": event_id, "clientName": self.client_name})
        st.looked_up = True
        if not found:
            return
        old = found[0]
        st.report_id = str(old["id"])
        for res in old.get("resources") or []:
            if res.get("resourceName") != AGGREGATED:
                continue
            for iv in res.get("intervals") or []:
                start = (iv.get("intervalPeriod") or {}).get("start")
                if isinstance(start, str):
                    st.by_start[start] = iv
        log.info("continuing the delivery report at the VTN", event_id=event_id, report_id=st.report_id)

    def status(self) -> dict[str, dict[str, Any]]:
        return {
            k: {"report_id": v.report_id, "intervals": len(v.by_start), "sent": v.sent}
            for k, v in self.by_event.items()
        }
