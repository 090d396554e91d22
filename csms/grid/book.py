"""The event book: every grid event the CSMS knows, its revisions and its status over time.

All intake channels (MQTT, webhooks, files, CLI via the HTTP API) end in :meth:`EventBook.submit`
or :meth:`EventBook.cancel`; the dispatch loop reads :meth:`EventBook.resolve` /
:meth:`EventBook.active_at` / :meth:`EventBook.upcoming` and calls :meth:`EventBook.tick` once per
control interval (or runs :meth:`EventBook.run`).

Rules
-----
* **Validation first, then the store, then memory.** A submission that fails validation or the
  revision rules raises :class:`~csms.grid.model.EventRejected` and changes nothing; if the
  store write fails, the exception propagates and the book is unchanged too.
* **Revisions.** Same id with a higher revision replaces the current one, which is kept in
  :meth:`EventBook.history` with status ``superseded``. Same or lower revision is refused
  (``EventRejected("revision", ...)``) unless it is identical in content (an idempotent
  resubmission returns the stored event) or it is a cancellation of the same revision.
  ``auto_revision=True`` (Leap and OpenADR, which carry no revision number) turns "same id,
  different content" into the next revision; it refuses to resurrect a cancelled event and to
  apply a revision whose ``issued_at`` is not newer than the stored one.
* **Cancellation** (``cancel()`` or a submission with ``status: "cancelled"``) is terminal for
  that revision and idempotent; cancelling a completed event changes nothing.
* **Precedence** where live events overlap at an instant: real events before test events, then
  the lower ``priority`` number, then the most recently received. Cancelled and superseded
  events never count.
* **Status over time.** ``pending`` -> ``active`` at the first interval's start -> ``completed``
  at the last interval's end, applied by :meth:`EventBook.tick` (submissions get the status of
  the moment they arrive).

Persistence: one store row per event id (``store.put_grid_event(id, revision, status,
payload)``); ``payload`` is the event's canonical JSON plus ``history`` (the superseded
revisions, newest last, at most ``history_limit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import structlog
from pydantic import ValidationError

from csms.clock import Clock

from .model import (
    SOURCES,
    STATUSES,
    EventRejected,
    GridEvent,
    Interval,
    UnknownEvent,
    validate_event,
)

log = structlog.get_logger("csms.grid.book")

ChangeKind = Literal["submitted", "revised", "cancelled", "activated", "completed"]
OnChange = Callable[[GridEvent, str], Awaitable[None] | None]
Outcome = Literal["submitted", "revised", "cancelled", "duplicate"]


class GridEventStore(Protocol):
    """The part of :class:`csms.store.repository.Store` the book uses."""

    async def put_grid_event(self, event_id: str, revision: int, status: str, payload: Mapping[str, Any]) -> Any: ...

    async def list_grid_events(self, status: str | None = None, limit: int = 100, offset: int = 0) -> Sequence[Any]: ...


@dataclass(frozen=True)
class Submission:
    """What :meth:`EventBook.submit_detailed` did: ``event`` is the stored (current) event;
    ``outcome`` is ``submitted`` (new id), ``revised`` (replaced ``previous``), ``cancelled``
    or ``duplicate`` (identical resubmission: nothing changed)."""

    event: GridEvent
    outcome: Outcome
    previous: GridEvent | None = None

    @property
    def changed(self) -> bool:
        return self.outcome != "duplicate"


@dataclass(frozen=True)
class Resolution:
    """The winning event and interval at instant ``at``; ``overridden`` are the other live
    events with an interval at ``at``, in precedence order."""

    at: datetime
    event: GridEvent
    index: int
    interval: Interval
    overridden: tuple[GridEvent, ...] = field(default=())

    @property
    def target_kw(self) -> float:
        return self.interval.target_kw


def precedence_key(event: GridEvent) -> tuple[bool, int, float, int, str]:
    """Sort key: real before test, lower priority number, newest received, higher revision."""
    received = event.received_at.timestamp() if event.received_at else 0.0
    return (event.is_test, event.priority, -received, -event.revision, event.id)


class EventBook:
    def __init__(
        self,
        store: GridEventStore,
        clock: Clock,
        *,
        on_change: OnChange | None = None,
        history_limit: int = 20,
    ) -> None:
        self.store = store
        self.clock = clock
        self.on_change = on_change
        self.history_limit = history_limit
        self._events: dict[str, GridEvent] = {}
        self._history: dict[str, list[GridEvent]] = {}
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ loading
    async def load(self) -> int:
        """(Re)load every event from the store; returns how many were loaded."""
        events: dict[str, GridEvent] = {}
        history: dict[str, list[GridEvent]] = {}
        offset, page = 0, 500
        while True:
            rows = await self.store.list_grid_events(limit=page, offset=offset)
            for row in rows:
                payload = dict(row.payload or {})
                raw_history = payload.pop("history", []) or []
                payload["revision"], payload["status"] = row.revision, row.status
                try:
                    ev = GridEvent.model_validate(payload)
                except ValidationError as exc:
                    log.error("stored grid event is unreadable; skipped", event_id=row.id, error=str(exc))
                    continue
                events[ev.id] = ev
                olds: list[GridEvent] = []
                for h in raw_history:
                    with contextlib.suppress(ValidationError):
                        olds.append(GridEvent.model_validate(h))
                if olds:
                    history[ev.id] = olds
            if len(rows) < page:
                break
            offset += page
        async with self._lock:
            self._events, self._history = events, history
        log.info("grid events loaded", count=len(events))
        return len(events)

    # ------------------------------------------------------------------ reading
    def get(self, event_id: str) -> GridEvent | None:
        return self._events.get(event_id)

    def list(self, status: str | None = None) -> list[GridEvent]:
        """Current revisions (optionally only one status), by start time then id."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        out = [e for e in self._events.values() if status is None or e.status == status]
        if status == "superseded":
            out = [h for hs in self._history.values() for h in hs]
        return sorted(out, key=lambda e: (e.start, e.id, e.revision))

    def history(self, event_id: str) -> list[GridEvent]:
        """Superseded revisions of ``event_id``, oldest first."""
        return list(self._history.get(event_id, []))

    def __len__(self) -> int:
        return len(self._events)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._events

    def active_at(self, t: datetime) -> list[GridEvent]:
        """Live events with an interval containing ``t``, in precedence order (winner first)."""
        hits = [e for e in self._events.values() if e.live and e.interval_at(t) is not None]
        return sorted(hits, key=precedence_key)

    def resolve(self, t: datetime) -> Resolution | None:
        """The winning interval at ``t`` across overlapping events, or None.

        Targets and directions are not compared: the dispatcher decides whether two events for
        different groups can both be served; ``overridden`` lists the losers for that purpose.
        A test event only wins when no real event is active (check ``event.is_test``).
        """
        ranked = self.active_at(t)
        if not ranked:
            return None
        win = ranked[0]
        hit = win.interval_at(t)
        assert hit is not None
        return Resolution(at=t, event=win, index=hit[0], interval=hit[1], overridden=tuple(ranked[1:]))

    def upcoming(self, now: datetime, horizon: timedelta | None = None) -> list[GridEvent]:
        """Live events not yet over at ``now`` (starting before ``now + horizon`` if given)."""
        out = [
            e for e in self._events.values() if e.live and e.end > now and (horizon is None or e.start < now + horizon)
        ]
        return sorted(out, key=lambda e: (e.start, precedence_key(e)))

    # ------------------------------------------------------------------ changing
    def check(
        self,
        event: GridEvent | Mapping[str, Any],
        *,
        source: str | None = None,
        auto_revision: bool = False,
    ) -> GridEvent:
        """Dry run of :meth:`submit`: the event as it would be stored, or :class:`EventRejected`."""
        ev = self._prepare(event, source)
        return self._decide(ev, auto_revision, self.clock.now())[0].event

    async def submit(
        self,
        event: GridEvent | Mapping[str, Any],
        *,
        source: str | None = None,
        auto_revision: bool = False,
    ) -> GridEvent:
        """Validate and store an event (canonical dict or :class:`GridEvent`); returns the stored
        current revision. Raises :class:`EventRejected` (field + reason) and changes nothing."""
        return (await self.submit_detailed(event, source=source, auto_revision=auto_revision)).event

    async def submit_detailed(
        self,
        event: GridEvent | Mapping[str, Any],
        *,
        source: str | None = None,
        auto_revision: bool = False,
    ) -> Submission:
        ev = self._prepare(event, source)
        async with self._lock:
            now = self.clock.now()
            result, superseded = self._decide(ev, auto_revision, now)
            if result.changed:
                await self._persist(result.event, superseded)
        if result.changed:
            log.info(
                "grid event " + result.outcome,
                event_id=result.event.id,
                revision=result.event.revision,
                status=result.event.status,
                source=result.event.source,
                test=result.event.is_test,
            )
            await self._notify(result.event, result.outcome)
        return result

    async def cancel(self, event_id: str, reason: str | None = None) -> GridEvent:
        """Cancel the current revision of ``event_id`` (idempotent). Raises :class:`UnknownEvent`."""
        async with self._lock:
            cur = self._events.get(event_id)
            if cur is None:
                raise UnknownEvent(event_id)
            if cur.status in ("cancelled", "completed"):
                return cur
            new = cur.model_copy(update={"status": "cancelled", "cancel_reason": reason})
            await self._persist(new, None)
        log.info("grid event cancelled", event_id=event_id, revision=new.revision, reason=reason)
        await self._notify(new, "cancelled")
        return new

    async def tick(self, now: datetime | None = None) -> list[GridEvent]:
        """Apply time-driven transitions (pending -> active -> completed); returns the changed events."""
        changed: list[tuple[GridEvent, str]] = []
        async with self._lock:
            now = now or self.clock.now()
            for ev in list(self._events.values()):
                status = ev.status_at(now)
                if status != ev.status:
                    new = ev.model_copy(update={"status": status})
                    await self._persist(new, None)
                    changed.append((new, "activated" if status == "active" else "completed"))
        for ev, kind in changed:
            log.info("grid event " + kind, event_id=ev.id, revision=ev.revision)
            await self._notify(ev, kind)
        return [ev for ev, _ in changed]

    async def run(self, period_s: float = 1.0) -> None:
        """Call :meth:`tick` every ``period_s`` simulated seconds until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("grid event tick failed")
            await self.clock.sleep(period_s)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _prepare(event: GridEvent | Mapping[str, Any], source: str | None) -> GridEvent:
        ev = validate_event(event)
        if source is not None:
            if source not in SOURCES:
                raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
            ev = ev.model_copy(update={"source": source})
        if ev.status == "superseded":
            raise EventRejected("status", "superseded is set by the CSMS; submit pending or cancelled")
        return ev

    def _decide(self, ev: GridEvent, auto_revision: bool, now: datetime) -> tuple[Submission, GridEvent | None]:
        """Pure decision (no I/O): the submission result and the revision it supersedes."""
        cur = self._events.get(ev.id)
        wants_cancel = ev.status == "cancelled"
        fresh = {"received_at": now, "cancel_reason": ev.cancel_reason if wants_cancel else None}

        if cur is None:
            status = "cancelled" if wants_cancel else ev.status_at(now)
            new = ev.model_copy(update={**fresh, "status": status})
            return Submission(new, "cancelled" if wants_cancel else "submitted"), None

        same_content = ev.same_as(cur, ignore_revision=True)
        if ev.revision == cur.revision or (auto_revision and ev.revision <= cur.revision):
            if wants_cancel:
                if cur.status in ("cancelled", "completed"):
                    return Submission(cur, "duplicate"), None
                new = cur.model_copy(update={"status": "cancelled", "cancel_reason": ev.cancel_reason})
                return Submission(new, "cancelled", cur), None
            if same_content:
                return Submission(cur, "duplicate"), None
            if not auto_revision:
                raise EventRejected(
                    "revision",
                    f"event {ev.id} already has revision {cur.revision} with different content; "
                    f"send revision {cur.revision + 1} or higher to replace it",
                )
            if cur.status == "cancelled":
                raise EventRejected(
                    "status",
                    f"event {ev.id} was cancelled; an update without an explicit higher revision does not revive it",
                )
            if ev.issued_at and cur.issued_at and ev.issued_at <= cur.issued_at:
                raise EventRejected(
                    "revision",
                    f"stale update: issued at {ev.issued_at.isoformat()}, "
                    f"not after the stored revision (issued at {cur.issued_at.isoformat()})",
                )
            ev = ev.model_copy(update={"revision": cur.revision + 1})
        elif ev.revision < cur.revision:
            raise EventRejected(
                "revision",
                f"revision {ev.revision} is older than the stored revision {cur.revision} of event {ev.id}",
            )

        # a genuinely newer revision replaces the current one
        status = "cancelled" if wants_cancel else ev.status_at(now)
        new = ev.model_copy(update={**fresh, "status": status})
        old = cur.model_copy(update={"status": "superseded"})
        return Submission(new, "cancelled" if wants_cancel else "revised", cur), old

    async def _persist(self, event: GridEvent, superseded: GridEvent | None) -> None:
        history = list(self._history.get(event.id, []))
        if superseded is not None:
            history = [*history, superseded][-self.history_limit :] if self.history_limit > 0 else []
        payload = event.to_json()
        payload["history"] = [h.to_json() for h in history]
        await self.store.put_grid_event(event.id, event.revision, event.status, payload)
        self._events[event.id] = event
        if history:
            self._history[event.id] = history

    async def _notify(self, event: GridEvent, kind: str) -> None:
        if self.on_change is None:
            return
        try:
            result = self.on_change(event, kind)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("grid event on_change callback failed", event_id=event.id, kind=kind)
