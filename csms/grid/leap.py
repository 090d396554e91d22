"""Leap-style dispatch notifications -> canonical grid events.

Leap (a VPP aggregator) pushes dispatch notifications to a registered webhook (or they are
polled and forwarded, e.g. over MQTT). One notification holds, per recipient (a market group
or a meter), one or more **timeslots**; each timeslot has its own event id and becomes one
:class:`~csms.grid.model.GridEvent` with a single interval. Accepted JSON::

    {
      "integration_test_notification": false,
      "communication_test": false,
      "group_dispatches": [
        {
          "market_group_id": "3f6c1c2e-5b0e-4c43-9d55-0d5a1e0c9a10",
          "meter_ids": ["8d1f...", "..."],
          "timeslots": [
            {
              "market_group_event_id": "a2b9e3f0-7a5c-4a8e-9d1f-2b6c3d4e5f60",
              "start_time": "2026-07-14T23:00:00Z",
              "end_time": "2026-07-15T04:00:00Z",
              "cancelled": false,
              "priority": 1,
              "is_voluntary": false,
              "dispatch_event_types": ["day-ahead"],
              "programs": ["DSGS"],
              "energy_kw": 400,
              "nomination_kw": 500,
              "performance_compensation_cap": "grid-exports-allowed"
            }
          ]
        }
      ]
    }

Also accepted: ``meter_dispatches`` (``meter_id``, ``partner_reference``, timeslots with
``meter_event_id``), a single recipient object (``{"market_group_id": ..., "timeslots": [...]}``)
and a bare timeslot (``{"market_group_event_id": ..., "start_time": ...}``).

Mapping
-------
* ``id`` = ``market_group_event_id`` (or ``meter_event_id``); ``revision`` = the timeslot's
  ``revision`` if present (an extension), else the book assigns the next revision when the
  content changes (Leap sends none; a retry of the same notification is idempotent).
* ``target_kw`` = ``energy_kw`` (expected); ``committed_kw`` = ``nomination_kw``. ``energy_kw``
  null means "dispatch the maximum you can": ``max_effort`` is set and ``target_kw`` is the
  nomination (0 without one), noted in ``notes``.
* ``cancelled: true`` -> cancellation of that event id (a cancellation for an unknown id is
  stored as a cancelled event, so a late copy of the original cannot revive it).
* ``integration_test_notification: true`` -> ``is_test`` (runs the whole path, moves no power).
  A ``capacity-test`` dispatch event type is a real, measured test event and is *not* ``is_test``.
* ``performance_compensation_cap``: ``up-to-site-load`` -> ``direction = load_reduction``
  (exports beyond site load are not paid), otherwise ``export``; ``basis`` is
  ``delta_from_baseline`` (Leap measures performance against a baseline).
* ``priority`` as given (0 = highest), ``program`` = ``programs`` joined with ``+`` (or ``leap``);
  the group (``targets.group_ids``) or the meter (``targets.site_id`` = ``partner_reference`` or
  ``meter_id``) is the target. Every other field is kept in ``meta``.
* ``communication_test: true`` without dispatches is acknowledged and schedules nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from .book import EventBook, Submission
from .model import DEFAULT_PRIORITY, EventRejected, GridEvent, UnknownEvent, is_valid_id, validate_event
from .results import IntakeResult, Rejection

log = structlog.get_logger("csms.grid.leap")


@dataclass(frozen=True)
class LeapItem:
    """One timeslot: the mapped event, or why it was refused. ``explicit_revision`` is false
    when the book should number revisions itself."""

    path: str
    event_id: str | None
    event: GridEvent | None = None
    error: EventRejected | None = None
    explicit_revision: bool = False
    cancelled: bool = False


def _is_notification(doc: Mapping[str, Any]) -> bool:
    return "group_dispatches" in doc or "meter_dispatches" in doc


def _recipients(doc: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(path, kind, recipient) for every recipient; kind is "group" or "meter"."""
    out: list[tuple[str, str, Mapping[str, Any]]] = []
    if _is_notification(doc):
        for key, kind in (("group_dispatches", "group"), ("meter_dispatches", "meter")):
            items = doc.get(key) or []
            if not isinstance(items, list):
                raise EventRejected(key, "must be a list")
            for i, rec in enumerate(items):
                if not isinstance(rec, Mapping):
                    raise EventRejected(f"{key}[{i}]", "must be an object")
                out.append((f"{key}[{i}]", kind, rec))
    elif "timeslots" in doc:
        out.append(("", "meter" if "meter_id" in doc else "group", doc))
    else:  # a bare timeslot, maybe with its recipient's ids alongside
        kind = "meter" if "meter_event_id" in doc and "market_group_event_id" not in doc else "group"
        out.append(("", kind, {**doc, "timeslots": [doc]}))
    return out


def _num(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventRejected(field, f"must be a number or null, got {value!r}")
    if value < 0:
        raise EventRejected(field, "must be >= 0")
    return float(value)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def map_timeslot(
    ts: Mapping[str, Any],
    recipient: Mapping[str, Any],
    kind: str,
    *,
    path: str = "",
    is_test: bool = False,
) -> GridEvent:
    """Map one timeslot (with its recipient) to a canonical event; :class:`EventRejected` on error.
    Field paths in errors are relative to the notification (``path`` is the timeslot's)."""
    id_key = "meter_event_id" if kind == "meter" and "meter_event_id" in ts else "market_group_event_id"
    if id_key not in ts and "meter_event_id" in ts:
        id_key = "meter_event_id"
    raw_id = ts.get(id_key)
    if raw_id is None:
        raise EventRejected(_join(path, "market_group_event_id"), "is required")
    event_id = str(raw_id)
    for key in ("start_time", "end_time"):
        if ts.get(key) is None:
            raise EventRejected(_join(path, key), "is required")
    energy = _num(ts.get("energy_kw"), _join(path, "energy_kw"))
    nomination = _num(ts.get("nomination_kw"), _join(path, "nomination_kw"))
    cancelled = ts.get("cancelled", False)
    if not isinstance(cancelled, bool):
        raise EventRejected(_join(path, "cancelled"), "must be true or false")
    priority = ts.get("priority")
    if priority is None:
        priority = DEFAULT_PRIORITY
    cap = ts.get("performance_compensation_cap")
    programs = ts.get("programs") or []
    if not isinstance(programs, list) or not all(isinstance(p, str) for p in programs):
        raise EventRejected(_join(path, "programs"), "must be a list of strings")
    types = ts.get("dispatch_event_types") or []
    if not isinstance(types, list):
        raise EventRejected(_join(path, "dispatch_event_types"), "must be a list of strings")

    notes: list[str] = []
    if energy is None:
        target = nomination or 0.0
        notes.append(
            f"energy_kw is null: deliver as much as possible (max_effort); target_kw = nomination_kw ({target:g} kW)"
        )
    else:
        target = energy
    targets: dict[str, Any] = {}
    if kind == "group":
        if recipient.get("market_group_id") is not None:
            targets["group_ids"] = [str(recipient["market_group_id"])]
    else:
        site = recipient.get("partner_reference") or recipient.get("meter_id")
        if site is not None:
            targets["site_id"] = str(site)
    direction = "load_reduction" if cap == "up-to-site-load" else "export"
    if cap == "up-to-site-load":
        notes.append("performance_compensation_cap up-to-site-load: only load reduction is paid, no net export")

    meta = {
        "format": "leap",
        "recipient": kind,
        "market_group_id": recipient.get("market_group_id"),
        "meter_id": recipient.get("meter_id"),
        "meter_ids": recipient.get("meter_ids"),
        "partner_reference": recipient.get("partner_reference"),
        "is_voluntary": ts.get("is_voluntary"),
        "dispatch_event_types": types,
        "programs": programs,
        "performance_compensation_cap": cap,
        "energy_kw": energy,
        "nomination_kw": nomination,
        "integration_test_notification": is_test,
    }
    doc = {
        "id": event_id,
        "revision": ts.get("revision", 0),
        "program": "+".join(programs) if programs else "leap",
        "is_test": is_test,
        "priority": priority,
        "status": "cancelled" if cancelled else "pending",
        "cancel_reason": "cancelled by Leap" if cancelled else None,
        "targets": targets,
        "direction": direction,
        "basis": "delta_from_baseline",
        "intervals": [{"start": ts["start_time"], "end": ts["end_time"], "target_kw": target}],
        "committed_kw": nomination,
        "max_effort": energy is None,
        "notes": notes,
        "meta": {k: v for k, v in meta.items() if v is not None},
    }
    try:
        return validate_event(doc)
    except EventRejected as exc:
        raise _translate(exc, path, id_key) from None


_FIELD_BACK = {
    "id": "{id_key}",
    "intervals[0].start": "start_time",
    "intervals[0].end": "end_time",
    "intervals[0].target_kw": "energy_kw",
    "committed_kw": "nomination_kw",
    "status": "cancelled",
}


def _translate(exc: EventRejected, path: str, id_key: str) -> EventRejected:
    """Name the Leap field, not the canonical one, in a validation error."""
    field = _FIELD_BACK.get(exc.field, exc.field).format(id_key=id_key)
    reason = exc.reason.replace("must be after start", "must be after start_time")
    return EventRejected(_join(path, field), reason)


def map_leap(doc: Mapping[str, Any]) -> list[LeapItem]:
    """Every timeslot of a notification, mapped or refused (one bad timeslot does not block
    the others). A structurally broken notification raises :class:`EventRejected`."""
    is_test = doc.get("integration_test_notification", False)
    if not isinstance(is_test, bool):
        raise EventRejected("integration_test_notification", "must be true or false")
    items: list[LeapItem] = []
    for rpath, kind, rec in _recipients(doc):
        slots = rec.get("timeslots")
        if not isinstance(slots, list):
            raise EventRejected(_join(rpath, "timeslots"), "must be a list")
        bare = rpath == "" and "timeslots" not in doc
        for j, ts in enumerate(slots):
            path = "" if bare else _join(rpath, f"timeslots[{j}]")
            if not isinstance(ts, Mapping):
                items.append(LeapItem(path, None, error=EventRejected(path or "timeslot", "must be an object")))
                continue
            raw_id = ts.get("market_group_event_id", ts.get("meter_event_id"))
            event_id = str(raw_id) if raw_id is not None and is_valid_id(str(raw_id)) else None
            cancelled = ts.get("cancelled") is True
            try:
                ev = map_timeslot(ts, rec, kind, path=path, is_test=is_test)
            except EventRejected as exc:
                items.append(LeapItem(path, event_id, error=exc, cancelled=cancelled))
                continue
            items.append(LeapItem(path, ev.id, event=ev, explicit_revision="revision" in ts, cancelled=cancelled))
    return items


async def submit_leap(book: EventBook, doc: Mapping[str, Any], *, source: str = "webhook") -> IntakeResult:
    """Map and submit a notification; per-timeslot results. A cancelled timeslot whose other
    fields are unusable still cancels the event when its id is known."""
    result = IntakeResult()
    try:
        items = map_leap(doc)
    except EventRejected as exc:
        result.rejected.append(Rejection(None, exc))
        return result
    if not items:
        what = "communication test" if doc.get("communication_test") else "notification without timeslots"
        result.notes.append(f"{what}: nothing to schedule")
        log.info("leap notification without timeslots", communication_test=bool(doc.get("communication_test")))
        return result
    for item in items:
        if item.event is None:
            assert item.error is not None
            if item.cancelled and item.event_id and item.event_id in book:
                try:
                    ev = await book.cancel(item.event_id, "cancelled by Leap")
                except UnknownEvent:
                    pass
                else:
                    result.accepted.append(Submission(ev, "cancelled"))
                    continue
            result.rejected.append(Rejection(item.event_id, item.error))
            continue
        try:
            sub = await book.submit_detailed(item.event, source=source, auto_revision=not item.explicit_revision)
        except EventRejected as exc:
            result.rejected.append(Rejection(item.event_id, EventRejected(_join(item.path, exc.field), exc.reason)))
            continue
        result.accepted.append(sub)
    return result
