"""The OpenADR 3 VEN: a :class:`~csms.service.Service` part between a VTN and the event book.

What it does, in order, once started (in the background: a VTN that is down does not stop the
CSMS from starting):

1. **Token**: OAuth2 client credentials at ``<vtn_url>/auth/token`` (:class:`VtnClient`).
2. **Registration**: finds its VEN by ``venName`` (``GET /vens?venName=``) or creates it
   (``POST /vens``), then registers its resources (``POST /vens/{venID}/resources``): one per
   station (``resourceName`` = station id) or one for the site, only those missing.
3. **Programs**: ``GET /programs`` (again at every poll); follows those named in
   ``openadr3.programs`` (all if empty). An event targeted (``VEN_NAME``) at other VENs only
   is ignored.
4. **Subscription** (when a callback URL is configured): one subscription per program for
   ``EVENT`` ``POST`` / ``PUT`` / ``DELETE`` with a fresh random ``bearerToken``; an existing
   subscription of this VEN is updated (``PUT``), not duplicated. The VTN then calls
   ``POST /grid/openadr3/notify`` on the CSMS API (:mod:`csms.grid.openadr3.callback`).
5. **Polling**, every ``poll_interval_s`` even with a subscription (a VTN that cannot reach
   us, or a lost notification): ``GET /events?programID=`` for each program. An event seen
   before with the same ``modificationDateTime`` is skipped; an event that disappeared from
   the listing is cancelled (OpenADR: deletion is cancellation).
6. **Events -> grid events**: SIMPLE / PRICE are translated (:mod:`.mapping`), then
   :func:`csms.grid.openadr.submit_openadr` maps and submits (source ``openadr``). A refused
   event is logged with the field named, kept in :attr:`OpenAdr3Ven.rejections` and changes
   nothing in the book (a previous good revision stays planned).
7. **Reports**: the dispatch controller publishes each 5-minute delivery interval; for events
   that came from the VTN the VEN posts a report after the first interval (``POST /reports``)
   and updates it after each further interval (``PUT /reports/{id}``, all intervals so far;
   :mod:`.reports`).
   A *forecast request* (an event asking for ``STORAGE_MAX_DISCHARGE_POWER`` with
   ``historical: false``) is answered with the 24-hour flexibility forecast.

**The VTN going away.** Every call is retried a couple of times at once; then the VEN logs one
warning (``VTN unreachable``), retries with exponential back-off (``backoff_initial_s`` up to
``backoff_max_s``, on the CSMS clock) and logs ``VTN reachable again`` with the outage length
when it answers. Meanwhile planned events keep running from the book and report intervals
queue up; on return it polls at once (catching up with changes made meanwhile) and sends the
queued intervals. Pending report intervals are kept in memory: a CSMS restart during an outage
loses them (the delivery report in the store still has every interval); after a restart the VEN
continues its existing report of an event at the VTN rather than starting a second one, and an
interval is reported once (by its start), the first value standing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError

from csms.config import OpenAdr3Settings
from csms.grid.model import EventRejected, format_loc, is_valid_id
from csms.grid.openadr import submit_openadr
from csms.grid.results import IntakeResult, Rejection

from .client import VtnClient, VtnError, VtnRefused, VtnUnavailable, backoff_delays
from .mapping import forecast_report, is_forecast_request, prepare_event
from .models import Notification
from .reports import DeliveryReports

log = structlog.get_logger("csms.grid.openadr3")

ForecastProvider = Callable[[datetime], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class RefusedEvent:
    event_id: str | None
    field: str
    reason: str
    via: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.event_id, "field": self.field, "reason": self.reason, "via": self.via, "at": self.at}


class _FanOut:
    """Publishes to several publishers (the MQTT bridge and the VEN)."""

    def __init__(self, *targets: Any) -> None:
        self.targets = [t for t in targets if t is not None]

    async def _each(self, method: str, event_id: str, payload: dict[str, Any]) -> None:
        for t in self.targets:
            fn = getattr(t, method, None)
            if fn is None:
                continue
            res = fn(event_id, payload)
            if inspect.isawaitable(res):
                await res

    async def publish_status(self, event_id: str, payload: dict[str, Any]) -> None:
        await self._each("publish_status", event_id, payload)

    async def publish_delivery(self, event_id: str, payload: dict[str, Any]) -> None:
        await self._each("publish_delivery", event_id, payload)


class OpenAdr3Ven:
    """See the module docstring. ``service`` gives the central system (clock, stations, API
    URL); ``controller`` the event book and the delivery intervals."""

    def __init__(
        self,
        service: Any,
        controller: Any,
        settings: OpenAdr3Settings | None = None,
        *,
        forecast: ForecastProvider | None = None,
    ) -> None:
        self.service = service
        self.central = service.central
        self.controller = controller
        self.settings = settings or self.central.settings.openadr3
        self.clock = self.central.clock
        self.forecast = forecast
        self.client: VtnClient | None = None
        self.ven_id: str | None = None
        self.programs: dict[str, str] = {}
        """programID -> programName of the programs followed."""
        self.resources: set[str] = set()
        self.subscriptions: dict[str, str] = {}
        """programID -> subscription id."""
        self.callback_token = secrets.token_urlsafe(24)
        self.known: dict[str, str] = {}
        """VTN event id -> programID, for events accepted into the book."""
        self.seen: dict[str, str | None] = {}
        """VTN event id -> modificationDateTime last processed (accepted or refused)."""
        self.rejections: list[RefusedEvent] = []
        self.arrivals: dict[str, str] = {}
        """VTN event id -> how it first arrived (``webhook`` or ``poll``)."""
        self.reports = DeliveryReports(self.settings.ven_name)
        self.forecasts_sent: dict[str, str] = {}
        self.registered = False
        self.down_since: datetime | None = None
        self.outages: list[tuple[datetime, datetime]] = []
        self.polls = 0
        self.notifications = 0
        self._missing_programs: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def book(self) -> Any:
        return self.controller.book

    @property
    def callback_url(self) -> str | None:
        url = self.settings.callback_url
        if not self.settings.subscribe or url is None:
            return None
        if url == "auto":  # this CSMS's own API (a VTN on the same host: tests, the demo)
            api = getattr(self.service, "api", None)
            return f"{api.url}/grid/openadr3/notify" if api is not None and api.port else None
        return url

    # ------------------------------------------------------------------ service part
    async def start(self) -> None:
        s = self.settings
        self.client = VtnClient(
            s.vtn_url, s.client_id, s.client_secret, timeout_s=s.request_timeout_s, token_url=s.token_url
        )
        self.controller.publisher = _FanOut(self.controller.publisher, self)
        self.central.extensions["openadr3"] = self
        for ev in self.book.list():
            if ev.meta.get("format") == "openadr3" and ev.source == "openadr" and ev.live:
                self.known[ev.id] = str(ev.meta.get("programID"))
        self._task = asyncio.create_task(self._run(), name="openadr3:ven")
        log.info("OpenADR 3 VEN started", vtn=s.vtn_url, ven_name=s.ven_name, subscribe=s.subscribe)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        pub = self.controller.publisher
        if isinstance(pub, _FanOut):
            rest = [t for t in pub.targets if t is not self]
            self.controller.publisher = rest[0] if len(rest) == 1 else (_FanOut(*rest) if rest else None)
        if self.central.extensions.get("openadr3") is self:
            del self.central.extensions["openadr3"]
        if self.client is not None:
            await self.client.aclose()
        log.info("OpenADR 3 VEN stopped")

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ main loop
    async def _run(self) -> None:
        s = self.settings
        delays = backoff_delays(s.backoff_initial_s, s.backoff_max_s)
        next_poll = self.clock.now()
        while True:
            try:
                if not self.registered:
                    await self.register()
                    next_poll = self.clock.now()
                if self.clock.now() >= next_poll or self.down_since is not None:
                    await self.poll()
                    next_poll = self._after(s.poll_interval_s)
                await self.flush_reports()
                if self.down_since is not None:
                    back = self.clock.now()
                    self.outages.append((self.down_since, back))
                    log.warning(
                        "VTN reachable again: caught up",
                        vtn=s.vtn_url,
                        outage_s=round((back - self.down_since).total_seconds(), 1),
                        reports_pending=self.reports.pending(),
                    )
                    self.down_since = None
                    delays = backoff_delays(s.backoff_initial_s, s.backoff_max_s)
                wait = max(0.0, (next_poll - self.clock.now()).total_seconds())
            except VtnUnavailable as exc:
                wait = next(delays)
                if self.down_since is None:
                    self.down_since = self.clock.now()
                    log.warning(
                        "VTN unreachable: events already planned keep running; retrying with back-off",
                        vtn=s.vtn_url,
                        error=str(exc),
                        retry_in_s=round(wait, 1),
                    )
                else:
                    log.info("VTN still unreachable", vtn=s.vtn_url, error=str(exc), retry_in_s=round(wait, 1))
            except VtnRefused as exc:
                wait = s.poll_interval_s
                log.error("VTN refused a request", vtn=s.vtn_url, error=str(exc), retry_in_s=wait)
            except Exception:
                wait = s.poll_interval_s
                log.exception("OpenADR 3 VEN loop failed", vtn=s.vtn_url)
            await self._sleep(wait, wakeable=self.down_since is None)  # no shortcut while backing off

    def _after(self, seconds: float) -> datetime:
        return self.clock.now() + timedelta(seconds=seconds)

    async def _sleep(self, sim_seconds: float, *, wakeable: bool = True) -> None:
        """Sleep ``sim_seconds`` of the CSMS clock; when ``wakeable``, less if :meth:`wake` is
        called (also before: a report interval queued while the loop was busy goes out at once)."""
        if not wakeable:
            await self.clock.sleep(sim_seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.clock.wall_seconds(sim_seconds))
        self._wake.clear()

    # ------------------------------------------------------------------ registration
    def _resource_names(self) -> list[str]:
        if self.settings.resources == "site":
            return ["site"]
        return sorted(self.central.states)

    async def register(self) -> None:
        """Register the VEN, its resources, find the programs, subscribe (idempotent)."""
        assert self.client is not None
        s = self.settings
        vens = await self.client.vens(s.ven_name)
        mine = next((v for v in vens if v.get("venName") == s.ven_name), None)
        if mine is None:
            try:
                mine = await self.client.create_ven({"objectType": "VEN", "venName": s.ven_name})
                log.info("VEN registered with the VTN", ven_name=s.ven_name, ven_id=mine.get("id"))
            except VtnRefused as exc:
                if exc.status != 409:
                    raise
                mine = next(v for v in await self.client.vens(s.ven_name) if v.get("venName") == s.ven_name)
        self.ven_id = str(mine["id"])
        await self.register_resources()
        await self.refresh_programs()
        url = self.callback_url
        self.registered = True
        log.info(
            "OpenADR 3 VEN ready",
            ven_id=self.ven_id,
            programs=sorted(self.programs.values()),
            resources=len(self.resources),
            callback=url,
        )

    async def refresh_programs(self) -> None:
        """Follow the configured programs the VTN offers (a program created later is picked up
        at the next poll) and subscribe to the new ones."""
        assert self.client is not None
        wanted = set(self.settings.programs)
        found = {
            str(p["id"]): str(p.get("programName"))
            for p in await self.client.programs()
            if p.get("id") and (not wanted or p.get("programName") in wanted)
        }
        missing = wanted - set(found.values())
        if missing and missing != self._missing_programs:
            log.warning("programs not offered by the VTN (yet)", missing=sorted(missing))
        self._missing_programs = missing
        url = self.callback_url
        for pid in found:
            if url is not None and pid not in self.subscriptions:
                await self._subscribe(pid, url)
            if pid not in self.programs:
                log.info("following OpenADR 3 program", program_id=pid, program=found[pid])
        self.programs = found

    async def register_resources(self) -> None:
        assert self.client is not None and self.ven_id is not None
        names = self._resource_names()
        if set(names) <= self.resources:
            return
        existing = {r.get("resourceName") for r in await self.client.resources(self.ven_id)}
        for name in names:
            if name not in existing:
                kind = "SITE" if name == "site" else "EV_CHARGER_BIDIRECTIONAL"
                attrs = [{"type": "RESOURCE_TYPE", "values": [kind]}]
                try:
                    await self.client.create_resource(
                        self.ven_id, {"objectType": "RESOURCE", "resourceName": name, "attributes": attrs}
                    )
                except VtnRefused as exc:
                    if exc.status != 409:
                        raise
        self.resources = set(names)
        log.info("VEN resources registered", ven_id=self.ven_id, resources=len(names))

    async def _subscribe(self, program_id: str, url: str) -> None:
        assert self.client is not None
        body = {
            "objectType": "SUBSCRIPTION",
            "clientName": self.settings.ven_name,
            "programID": program_id,
            "objectOperations": [
                {
                    "objects": ["EVENT"],
                    "operations": ["POST", "PUT", "DELETE"],
                    "callbackUrl": url,
                    "bearerToken": self.callback_token,
                }
            ],
        }
        existing = await self.client.subscriptions(self.settings.ven_name, program_id)
        if existing:
            sub = await self.client.update_subscription(str(existing[0]["id"]), body)
        else:
            sub = await self.client.create_subscription(body)
        self.subscriptions[program_id] = str(sub["id"])

    # ------------------------------------------------------------------ events in
    async def poll(self) -> None:
        """Read every followed program's events and apply what changed."""
        assert self.client is not None
        if self.settings.resources == "stations":
            await self.register_resources()
        await self.refresh_programs()
        for pid in list(self.programs):
            events = await self.client.events(pid)
            listed = set()
            for obj in events:
                if isinstance(obj, Mapping) and is_valid_id(obj.get("id")):
                    listed.add(str(obj["id"]))
                await self.ingest(obj, via="poll")
            for eid, prog in list(self.known.items()):
                if prog == pid and eid not in listed:
                    await self._cancel(eid, "no longer listed by the VTN (deleted)")
        self.polls += 1

    async def _cancel(self, event_id: str, reason: str) -> None:
        self.known.pop(event_id, None)
        self.seen.pop(event_id, None)
        ev = self.book.get(event_id)
        if ev is not None and ev.live and ev.status != "completed":
            await self.book.cancel(event_id, reason)
            log.info("OpenADR 3 event cancelled", event_id=event_id, reason=reason)

    async def ingest(self, obj: Any, *, via: str) -> IntakeResult:
        """Apply one event object from the VTN (``via`` poll or webhook)."""
        async with self._lock:
            return await self._ingest(obj, via)

    async def _ingest(self, obj: Any, via: str) -> IntakeResult:
        result = IntakeResult()
        if not isinstance(obj, Mapping):
            return self._refuse(result, None, EventRejected("object", "must be a JSON object"), via)
        eid = obj.get("id") if is_valid_id(obj.get("id")) else None
        program_id = obj.get("programID")
        if program_id not in self.programs:
            result.notes.append(f"event {eid} is for program {program_id!r}, which this VEN does not follow")
            return result
        other = _other_ven(obj.get("targets"), self.settings.ven_name)
        if other:
            result.notes.append(f"event {eid} targets VEN {', '.join(other)}, not this VEN: ignored")
            return result
        version = str(obj.get("modificationDateTime") or obj.get("createdDateTime") or "")
        if eid is not None and self.seen.get(eid) == version and version:
            return result
        if eid is not None:
            self.seen[eid] = version
        if is_forecast_request(obj):
            await self._answer_forecast(obj)
            result.notes.append("forecast request answered")
            return result
        s = self.settings
        try:
            doc, notes = prepare_event(
                obj,
                simple_levels_kw=s.simple_levels_kw,
                price_export_threshold=s.price_export_threshold,
                price_export_kw=s.price_export_kw,
            )
        except EventRejected as exc:
            return self._refuse(result, eid, exc, via)
        sub = await submit_openadr(self.book, doc, source="openadr")
        sub.notes = notes + sub.notes
        for r in sub.rejected:
            self._refuse(result, r.event_id, r.error, via)
        for a in sub.accepted:
            if a.event.status != "cancelled":
                self.known[a.event.id] = str(program_id)
            self.arrivals.setdefault(a.event.id, via)
            log.info(
                "OpenADR 3 event " + a.outcome,
                event_id=a.event.id,
                revision=a.event.revision,
                via=via,
                intervals=len(a.event.intervals),
                direction=a.event.direction,
            )
        result.accepted += sub.accepted
        result.notes += sub.notes
        return result

    def _refuse(self, result: IntakeResult, eid: str | None, exc: EventRejected, via: str) -> IntakeResult:
        rec = RefusedEvent(eid, exc.field, exc.reason, via, self.clock.now())
        self.rejections.append(rec)
        del self.rejections[:-100]
        result.rejected.append(Rejection(eid, exc))
        log.error(
            "OpenADR 3 event refused: nothing planned was changed",
            event_id=eid,
            field=exc.field,
            reason=exc.reason,
            via=via,
        )
        return result

    async def on_notification(self, doc: Any, bearer: str | None) -> tuple[int, dict[str, Any]]:
        """A VTN callback: ``(HTTP status, body)``. 403 for a wrong bearer token, 400 (naming the
        field) for a notification or event this VEN refuses, 200 otherwise."""
        if bearer is None or not secrets.compare_digest(bearer, self.callback_token):
            return 403, {"title": "Forbidden", "status": 403, "detail": "wrong or missing bearer token"}
        self.notifications += 1
        try:
            note = Notification.model_validate(doc)
        except ValidationError as exc:
            err = exc.errors()[0]
            detail = f"{format_loc(err['loc'])}: {err['msg']}"
            log.error("VTN notification refused", detail=detail)
            return 400, {"title": "Bad Request", "status": 400, "detail": detail}
        if note.objectType != "EVENT":
            return 200, {"ignored": f"{note.objectType} notifications are not used"}
        if note.operation == "DELETE":
            eid = note.object.get("id")
            if isinstance(eid, str) and eid in self.known:
                await self._cancel(eid, "deleted by the VTN")
            return 200, {"cancelled": eid}
        result = await self.ingest(note.object, via="webhook")
        if result.rejected:
            r = result.rejected[0]
            return 400, {
                "title": "Bad Request",
                "status": 400,
                "detail": r.error.message,
                "field": f"object.{r.error.field}",
            }
        return 200, {"accepted": [a.event.id for a in result.accepted], "notes": result.notes}

    # ------------------------------------------------------------------ reports out
    async def publish_status(self, event_id: str, payload: dict[str, Any]) -> None:
        return None

    async def publish_delivery(self, event_id: str, payload: dict[str, Any]) -> None:
        """A 5-minute delivery interval from the dispatch controller (queued, sent by the loop)."""
        program_id = self.known.get(event_id)
        if program_id is None or not self.settings.report:
            return
        self.reports.add(event_id, program_id, payload)
        self.wake()

    async def flush_reports(self) -> None:
        """Send every report with intervals the VTN has not seen (raises VtnUnavailable)."""
        assert self.client is not None
        await self.reports.flush(self.client)

    async def _answer_forecast(self, obj: Mapping[str, Any]) -> None:
        assert self.client is not None
        eid = str(obj.get("id"))
        if self.forecast is None:
            log.warning("forecast requested by the VTN but no forecast source is configured", event_id=eid)
            return
        hours = await self.forecast(self.clock.now())
        body = forecast_report(
            program_id=str(obj.get("programID")), event_id=eid, client_name=self.settings.ven_name, hours=hours
        )
        try:
            created = await self.client.create_report(body)
        except VtnError as exc:
            self.seen.pop(eid, None)  # ask again at the next poll
            log.warning("forecast report not delivered", event_id=eid, error=str(exc))
            if isinstance(exc, VtnUnavailable):
                raise
            return
        self.forecasts_sent[eid] = str(created.get("id"))
        log.info("flexibility forecast sent to the VTN", event_id=eid, hours=len(hours))

    def status(self) -> dict[str, Any]:
        return {
            "vtn": self.settings.vtn_url,
            "ven_id": self.ven_id,
            "registered": self.registered,
            "programs": self.programs,
            "subscriptions": self.subscriptions,
            "vtn_down_since": self.down_since,
            "outages": len(self.outages),
            "polls": self.polls,
            "notifications": self.notifications,
            "events": dict(self.known),
            "rejections": [r.to_dict() for r in self.rejections[-10:]],
            "reports": self.reports.status(),
        }


def _other_ven(targets: Any, ven_name: str) -> list[str]:
    """The VEN names an event is targeted at when this VEN is not among them (else [])."""
    names: list[str] = []
    for t in targets or []:
        if isinstance(t, Mapping) and t.get("type") == "VEN_NAME" and isinstance(t.get("values"), list):
            names += [str(v) for v in t["values"]]
    return [] if not names or ven_name in names else names
