"""OpenADR 3 events -> canonical grid events.

Accepted JSON: an OpenADR 3 ``event`` object, or a VTN subscription notification wrapping one
(``{"objectType": "EVENT", "operation": "POST" | "PUT" | "DELETE", "object": {...}}``)::

    {
      "id": "evt-2026-07-14-sv",
      "programID": "dsgs-option-3",
      "eventName": "evening export",
      "priority": 1,
      "modificationDateTime": "2026-07-13T18:00:00Z",
      "targets": [{"type": "GROUP", "values": ["garage-a"]}],
      "payloadDescriptors": [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                              "payloadType": "EXPORT_CAPACITY_LIMIT", "units": "KW"}],
      "intervalPeriod": {"start": "2026-07-14T23:00:00Z", "duration": "PT1H"},
      "intervals": [
        {"id": 0, "payloads": [{"type": "EXPORT_CAPACITY_LIMIT", "values": [400]}]},
        {"id": 1, "payloads": [{"type": "EXPORT_CAPACITY_LIMIT", "values": [300]}]}
      ]
    }

Mapping
-------
* ``id`` = the VTN's event ``id`` (required); ``program`` = ``programID``; ``priority`` as given
  (0 highest; missing = lowest, :data:`~csms.grid.model.DEFAULT_PRIORITY`);
  ``issued_at`` = ``modificationDateTime`` (else ``createdDateTime``). OpenADR has no revision
  number: the book numbers revisions itself and refuses an update whose ``issued_at`` is not
  newer than the stored one.
* Timing: an interval without its own ``intervalPeriod`` starts where the previous one ended
  (the first at the event's ``intervalPeriod.start``) and lasts the event's ``duration``.
  A start of ``0001-01-01`` means "now" (the moment the event is first received; a repeat
  keeps the first anchor). A duration of ``P9999Y`` means open-ended: **capped to 24 h** from
  the interval's start, recorded in ``notes`` and logged; re-send the event to extend it.
  ``randomizeStart`` is not applied (noted). Zero-length intervals are dropped; an event whose
  every interval is zero-length is a **cancellation**, as is ``operation: DELETE``.
* Payloads (values[0] of each, in the units of the matching ``payloadDescriptors`` entry:
  KW default, W, MW):

  - ``DISPATCH_SETPOINT`` v (absolute consumption): v < 0 -> ``export`` |v| kW; v >= 0 ->
    ``import_limit`` v kW (keep consumption at or below v).
  - ``EXPORT_CAPACITY_LIMIT`` v: with an export setpoint it is the cap (``max_kw``); alone it
    is an export request up to the limit (``target_kw = max_kw = v``).
  - ``IMPORT_CAPACITY_LIMIT`` v -> ``import_limit`` v kW (ignored next to an export payload).
  - ``DISPATCH_SETPOINT_RELATIVE`` v < 0 -> ``load_reduction`` |v| kW from baseline
    (``basis = delta_from_baseline``); v > 0 is refused.
  - other types (PRICE, SIMPLE, ALERT_*, ...) are kept in ``meta`` and ignored; an interval
    with none of the above is refused. All intervals must agree on direction and basis.
* ``targets``: ``GROUP`` -> ``group_ids``, ``RESOURCE_NAME`` -> ``station_ids``; other target
  types (``VEN_NAME``, OpenADR 3.1 plain strings) are kept in ``meta``: the event is for the
  whole site. A non-standard boolean ``testEvent`` (as OpenADR 2.0b's ``test_event``) sets
  ``is_test``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from .book import EventBook, Submission
from .model import (
    DEFAULT_PRIORITY,
    EventRejected,
    GridEvent,
    UnknownEvent,
    check_id,
    is_valid_id,
    parse_iso_duration,
    parse_time,
    validate_event,
)
from .results import IntakeResult, Rejection

log = structlog.get_logger("csms.grid.openadr")

OPEN_ENDED_CAP = timedelta(hours=24)
SUPPORTED = ("EXPORT_CAPACITY_LIMIT", "DISPATCH_SETPOINT", "IMPORT_CAPACITY_LIMIT", "DISPATCH_SETPOINT_RELATIVE")
_UNIT_KW = {"KW": 1.0, "W": 0.001, "MW": 1000.0}


@dataclass(frozen=True)
class OpenAdrMapped:
    """A mapped event, or a cancellation (``event`` None, ``cancel`` True) of ``event_id``."""

    event_id: str
    event: GridEvent | None = None
    cancel: bool = False
    notes: list[str] = field(default_factory=list)


def _is_now(text: str) -> bool:
    return text.strip().startswith("0001-01-01")


def _time(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise EventRejected(path, "must be an RFC 3339 timestamp string")
    try:
        return parse_time(value)
    except ValueError as exc:
        raise EventRejected(path, str(exc)) from None


def _duration(value: Any, path: str) -> tuple[timedelta, bool]:
    if not isinstance(value, str):
        raise EventRejected(path, "must be an ISO 8601 duration string such as PT1H")
    try:
        return parse_iso_duration(value)
    except ValueError as exc:
        raise EventRejected(path, str(exc)) from None


def _units(descriptors: Any) -> dict[str, float]:
    if descriptors is None:
        return {}
    if not isinstance(descriptors, list):
        raise EventRejected("payloadDescriptors", "must be a list")
    out: dict[str, float] = {}
    for j, d in enumerate(descriptors):
        if not isinstance(d, Mapping):
            raise EventRejected(f"payloadDescriptors[{j}]", "must be an object")
        ptype, units = d.get("payloadType"), d.get("units")
        if ptype not in SUPPORTED or units is None:
            continue
        factor = _UNIT_KW.get(str(units).upper())
        if factor is None:
            raise EventRejected(
                f"payloadDescriptors[{j}].units", f"{units!r} is not a power unit this CSMS accepts (KW, W, MW)"
            )
        out[ptype] = factor
    return out


def _targets(raw: Any) -> tuple[dict[str, Any], list[Any]]:
    if raw is None:
        return {}, []
    if not isinstance(raw, list):
        raise EventRejected("targets", "must be a list")
    groups: list[str] = []
    stations: list[str] = []
    other: list[Any] = []
    for k, t in enumerate(raw):
        if isinstance(t, Mapping):
            values = t.get("values") or []
            if not isinstance(values, list):
                raise EventRejected(f"targets[{k}].values", "must be a list")
            kind = str(t.get("type", "")).upper()
            if kind == "GROUP":
                groups += [str(v) for v in values]
            elif kind == "RESOURCE_NAME":
                stations += [str(v) for v in values]
            else:
                other.append(t)
        else:
            other.append(t)
    targets: dict[str, Any] = {}
    if groups:
        targets["group_ids"] = groups
    if stations:
        targets["station_ids"] = stations
    return targets, other


def _interval_payload(
    payloads: Any, units: Mapping[str, float], path: str
) -> tuple[str, str, float, float | None, dict[str, Any]]:
    """(direction, basis, target_kw, max_kw, ignored payloads) for one interval."""
    if not isinstance(payloads, list) or not payloads:
        raise EventRejected(path, "must be a non-empty list")
    values: dict[str, float] = {}
    ignored: dict[str, Any] = {}
    for p, item in enumerate(payloads):
        if not isinstance(item, Mapping):
            raise EventRejected(f"{path}[{p}]", "must be an object")
        ptype = item.get("type")
        vals = item.get("values")
        if ptype not in SUPPORTED:
            ignored[str(ptype)] = vals
            continue
        if not isinstance(vals, list) or not vals:
            raise EventRejected(f"{path}[{p}].values", "must be a non-empty list")
        v = vals[0]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise EventRejected(f"{path}[{p}].values[0]", f"must be a number, got {v!r}")
        values[ptype] = float(v) * units.get(ptype, 1.0)

    setpoint = values.get("DISPATCH_SETPOINT")
    export_cap = values.get("EXPORT_CAPACITY_LIMIT")
    import_cap = values.get("IMPORT_CAPACITY_LIMIT")
    relative = values.get("DISPATCH_SETPOINT_RELATIVE")
    if export_cap is not None and export_cap < 0:
        raise EventRejected(path, "EXPORT_CAPACITY_LIMIT must be >= 0")
    if import_cap is not None and import_cap < 0:
        raise EventRejected(path, "IMPORT_CAPACITY_LIMIT must be >= 0")
    if setpoint is not None and setpoint < 0:
        target = -setpoint
        if export_cap is not None and export_cap < target:
            raise EventRejected(path, f"DISPATCH_SETPOINT exports {target:g} kW, above EXPORT_CAPACITY_LIMIT")
        return "export", "absolute", target, export_cap, ignored
    if export_cap is not None:
        return "export", "absolute", export_cap, export_cap, ignored
    if setpoint is not None:
        limit = setpoint if import_cap is None else min(setpoint, import_cap)
        return "import_limit", "absolute", limit, None, ignored
    if import_cap is not None:
        return "import_limit", "absolute", import_cap, None, ignored
    if relative is not None:
        if relative > 0:
            raise EventRejected(path, "DISPATCH_SETPOINT_RELATIVE > 0 (more consumption) is not supported")
        return "load_reduction", "delta_from_baseline", -relative, None, ignored
    kinds = ", ".join(sorted(ignored)) or "none"
    raise EventRejected(path, f"needs one of {', '.join(SUPPORTED)} (got {kinds})")


def unwrap(doc: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
    """``(event, operation)`` of a notification envelope, or ``(doc, None)`` for a bare event."""
    if "operation" in doc and isinstance(doc.get("object"), Mapping):
        op = str(doc.get("operation", "")).upper()
        if doc.get("objectType") not in (None, "EVENT"):
            raise EventRejected("objectType", f"only EVENT notifications are accepted, got {doc.get('objectType')!r}")
        return doc["object"], op
    return doc, None


def map_openadr(doc: Mapping[str, Any], *, now: datetime, start_anchor: datetime | None = None) -> OpenAdrMapped:
    """Map an OpenADR 3 event (or notification); raise :class:`EventRejected` naming the
    OpenADR field. ``start_anchor`` replaces "now" for a start of ``0001-01-01``."""
    obj, op = unwrap(doc)
    event_id = check_id(obj.get("id"), "id") if obj.get("id") is not None else None
    if event_id is None:
        raise EventRejected("id", "is required (the VTN assigns it)")
    if op == "DELETE":
        return OpenAdrMapped(event_id, cancel=True, notes=["deleted by the VTN"])
    program = obj.get("programID")
    if not isinstance(program, str) or not program:
        raise EventRejected("programID", "is required")
    units = _units(obj.get("payloadDescriptors"))
    period = obj.get("intervalPeriod") or {}
    if not isinstance(period, Mapping):
        raise EventRejected("intervalPeriod", "must be an object")
    intervals = obj.get("intervals")
    if not isinstance(intervals, list) or not intervals:
        raise EventRejected("intervals", "must be a non-empty list")

    notes: list[str] = []
    start_is_now = False
    anchor = start_anchor or now.replace(microsecond=0)
    canonical: list[dict[str, Any]] = []
    origin: list[int] = []
    directions: set[tuple[str, str]] = set()
    ignored_payloads: dict[str, Any] = {}
    prev_end: datetime | None = None
    for i, iv in enumerate(intervals):
        if not isinstance(iv, Mapping):
            raise EventRejected(f"intervals[{i}]", "must be an object")
        own = iv.get("intervalPeriod") or {}
        if not isinstance(own, Mapping):
            raise EventRejected(f"intervals[{i}].intervalPeriod", "must be an object")
        if own.get("start") is not None:
            raw_start, start_path = own["start"], f"intervals[{i}].intervalPeriod.start"
        elif prev_end is not None:
            raw_start, start_path = None, ""
        else:
            raw_start, start_path = period.get("start"), "intervalPeriod.start"
            if raw_start is None:
                raise EventRejected("intervalPeriod.start", "is required (or give intervals[0].intervalPeriod.start)")
        if raw_start is None:
            assert prev_end is not None
            start = prev_end
        elif isinstance(raw_start, str) and _is_now(raw_start):
            start, start_is_now = anchor, True
        else:
            start = _time(raw_start, start_path)
        raw_duration = own.get("duration", period.get("duration"))
        dur_path = f"intervals[{i}].intervalPeriod.duration" if "duration" in own else "intervalPeriod.duration"
        if raw_duration is None:
            raise EventRejected(dur_path, "is required")
        span, open_ended = _duration(raw_duration, dur_path)
        if open_ended:
            span = OPEN_ENDED_CAP
            notes.append(
                f"intervals[{i}]: open-ended duration {raw_duration} capped to 24 h "
                f"(ends {(start + span).isoformat()}); a new event or revision is needed to continue"
            )
            log.warning("open-ended OpenADR interval capped to 24 h", event_id=event_id, interval=i)
        randomize = own.get("randomizeStart", period.get("randomizeStart"))
        if randomize:
            notes.append(f"intervals[{i}]: randomizeStart {randomize} not applied")
        prev_end = start + span
        direction, basis, target, max_kw, ignored = _interval_payload(
            iv.get("payloads"), units, f"intervals[{i}].payloads"
        )
        ignored_payloads.update(ignored)
        if span <= timedelta(0):
            notes.append(f"intervals[{i}]: zero-length interval dropped")
            continue
        directions.add((direction, basis))
        if len(directions) > 1:
            raise EventRejected(
                f"intervals[{i}].payloads",
                f"asks for {direction} ({basis}) while earlier intervals ask for something else; send separate events",
            )
        canonical.append({"start": start, "end": start + span, "target_kw": target, "max_kw": max_kw})
        origin.append(i)
    if start_is_now:
        notes.append(f"start 0001-01-01 means now: anchored at {anchor.isoformat()}")
    if not canonical:
        return OpenAdrMapped(event_id, cancel=True, notes=[*notes, "zero-length window: cancellation"])

    issued_raw = obj.get("modificationDateTime") or obj.get("createdDateTime")
    issued_at = _time(issued_raw, "modificationDateTime") if issued_raw is not None else None
    targets, other_targets = _targets(obj.get("targets"))
    is_test = obj.get("testEvent", False)
    if not isinstance(is_test, bool):
        raise EventRejected("testEvent", "must be true or false")
    priority = obj.get("priority")
    direction, basis = next(iter(directions))
    meta: dict[str, Any] = {
        "format": "openadr3",
        "eventName": obj.get("eventName"),
        "programID": program,
        "start_is_now": start_is_now,
        "other_targets": other_targets or None,
        "ignored_payloads": ignored_payloads or None,
        "reportDescriptors": obj.get("reportDescriptors"),
    }
    canon = {
        "id": event_id,
        "program": program,
        "is_test": is_test,
        "priority": DEFAULT_PRIORITY if priority is None else priority,
        "targets": targets,
        "direction": direction,
        "basis": basis,
        "intervals": canonical,
        "issued_at": issued_at,
        "notes": notes,
        "meta": {k: v for k, v in meta.items() if v is not None},
    }
    try:
        ev = validate_event(canon)
    except EventRejected as exc:
        raise _translate(exc, origin) from None
    return OpenAdrMapped(event_id, ev, notes=notes)


def _translate(exc: EventRejected, origin: list[int]) -> EventRejected:
    field = exc.field
    if field.startswith("intervals["):
        k = int(field[len("intervals[") : field.index("]")])
        rest = field[field.index("]") + 1 :]
        i = origin[k] if k < len(origin) else k
        sub = {".start": ".intervalPeriod.start", ".end": ".intervalPeriod.duration"}.get(rest, ".payloads")
        field = f"intervals[{i}]{sub}"
    return EventRejected(field, exc.reason)


async def submit_openadr(book: EventBook, doc: Mapping[str, Any], *, source: str = "openadr") -> IntakeResult:
    """Map and submit (or cancel) an OpenADR 3 event."""
    result = IntakeResult()
    try:
        obj, _ = unwrap(doc)
        raw_id = obj.get("id")
        existing = book.get(raw_id) if isinstance(raw_id, str) else None
        anchor = existing.start if existing is not None and existing.meta.get("start_is_now") else None
        mapped = map_openadr(doc, now=book.clock.now(), start_anchor=anchor)
    except EventRejected as exc:
        inner = doc.get("object") if isinstance(doc.get("object"), Mapping) else doc
        rid = inner.get("id")
        result.rejected.append(Rejection(rid if is_valid_id(rid) else None, exc))
        return result
    result.notes += mapped.notes
    if mapped.cancel:
        try:
            ev = await book.cancel(mapped.event_id, "; ".join(mapped.notes) or "cancelled by the VTN")
        except UnknownEvent:
            result.notes.append(f"cancellation of unknown event {mapped.event_id}: nothing to do")
        else:
            result.accepted.append(Submission(ev, "cancelled"))
        return result
    assert mapped.event is not None
    try:
        sub = await book.submit_detailed(mapped.event, source=source, auto_revision=True)
    except EventRejected as exc:
        result.rejected.append(Rejection(mapped.event_id, exc))
        return result
    result.accepted.append(sub)
    return result
