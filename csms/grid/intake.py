"""One entry point for every channel: recognise a JSON document's format and submit it.

Formats (:func:`detect_format`):

* ``cancel``: ``{"cancel": "<event id>", "reason": "optional text"}``
* ``leap``: a Leap-style dispatch notification, one recipient or one timeslot
  (see :mod:`csms.grid.leap`)
* ``openadr``: an OpenADR 3 event or a VTN notification ``{"objectType": "EVENT",
  "operation": ..., "object": {...}}`` (see :mod:`csms.grid.openadr`)
* ``canonical``: a :class:`~csms.grid.model.GridEvent` (see :mod:`csms.grid.model`)

A JSON list is a batch of such documents, each handled on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import structlog

from .book import EventBook, Submission
from .model import EventRejected, UnknownEvent, is_valid_id
from .results import IntakeResult, Rejection

log = structlog.get_logger("csms.grid.intake")

Format = Literal["cancel", "leap", "openadr", "canonical"]

_LEAP_KEYS = frozenset({"group_dispatches", "meter_dispatches", "market_group_event_id", "meter_event_id", "timeslots"})


def detect_format(doc: Mapping[str, Any]) -> Format:
    if "cancel" in doc and "intervals" not in doc and "id" not in doc:
        return "cancel"
    if _LEAP_KEYS & doc.keys() or ("communication_test" in doc and "intervals" not in doc):
        return "leap"
    if (
        "programID" in doc
        or "intervalPeriod" in doc
        or doc.get("objectType") == "EVENT"
        or ("operation" in doc and isinstance(doc.get("object"), Mapping))
    ):
        return "openadr"
    return "canonical"


def doc_event_id(doc: Any) -> str | None:
    """The event id a (possibly invalid) canonical document names, if usable in a topic/URL."""
    if isinstance(doc, Mapping):
        for key in ("id", "cancel", "market_group_event_id", "meter_event_id"):
            value = doc.get(key)
            if is_valid_id(value):
                return str(value)
    return None


async def cancel_doc(book: EventBook, doc: Mapping[str, Any]) -> IntakeResult:
    result = IntakeResult()
    event_id = doc.get("cancel")
    reason = doc.get("reason")
    if not is_valid_id(event_id):
        result.rejected.append(Rejection(None, EventRejected("cancel", f"must be an event id, got {event_id!r}")))
        return result
    if reason is not None and not isinstance(reason, str):
        result.rejected.append(Rejection(event_id, EventRejected("reason", "must be a string")))
        return result
    try:
        ev = await book.cancel(event_id, reason)
    except UnknownEvent:
        result.rejected.append(Rejection(event_id, EventRejected("cancel", f"no grid event with id {event_id!r}")))
        return result
    result.accepted.append(Submission(ev, "cancelled"))
    return result


async def ingest(book: EventBook, doc: Any, *, source: str) -> IntakeResult:
    """Submit one JSON document (or a list of them) in any supported format.

    Never raises :class:`EventRejected`: refusals are collected in the result. Other errors
    (the store failing) propagate, so the caller can retry or refuse to acknowledge.
    """
    from .leap import submit_leap
    from .openadr import submit_openadr

    if isinstance(doc, list):
        total = IntakeResult()
        for i, item in enumerate(doc):
            part = await ingest(book, item, source=source)
            part.rejected = [
                Rejection(
                    r.event_id, EventRejected(f"[{i}].{r.error.field}" if r.error.field else f"[{i}]", r.error.reason)
                )
                for r in part.rejected
            ]
            total.extend(part)
        return total
    if not isinstance(doc, Mapping):
        return IntakeResult(
            rejected=[Rejection(None, EventRejected("payload", f"must be a JSON object, not {type(doc).__name__}"))]
        )
    fmt = detect_format(doc)
    if fmt == "cancel":
        return await cancel_doc(book, doc)
    if fmt == "leap":
        return await submit_leap(book, doc, source=source)
    if fmt == "openadr":
        return await submit_openadr(book, doc, source=source)
    try:
        sub = await book.submit_detailed(doc, source=source)
    except EventRejected as exc:
        return IntakeResult(rejected=[Rejection(doc_event_id(doc), exc)])
    return IntakeResult(accepted=[sub])
