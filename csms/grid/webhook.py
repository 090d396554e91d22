"""HTTP intake: a FastAPI router for grid events (no authentication here: the API wraps it).

=======================================  ================================================
``POST /grid/leap``                      Leap dispatch notification (:mod:`csms.grid.leap`)
``POST /grid/openadr/events``            OpenADR 3 event or VTN notification
                                         (:mod:`csms.grid.openadr`)
``POST /grid/events``                    canonical event (:mod:`csms.grid.model`)
``DELETE /grid/events/{id}?reason=...``  cancel
``GET /grid/events?status=...``          ``{"events": [...], "count": n}``
``GET /grid/events/{id}``                the event, plus ``history`` (superseded revisions)
=======================================  ================================================

``POST`` answers 201 with the stored event when something changed, 200 for an identical
resubmission (``outcome: duplicate``); the Leap route answers 200 with per-timeslot results.
A refused event is HTTP 422::

    {"error": {"code": "invalid_event", "message": "intervals[1].end: must be after start",
               "field": "intervals[1].end", "details": {"field": ..., "reason": ..., "errors": [...]}}}

Codes: ``invalid_event``, ``invalid_json`` (body is not JSON), ``invalid_query``,
``not_found`` (404), ``intake_unavailable`` (503: ``app.state.event_book`` is not set).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from .book import EventBook, Submission
from .intake import detect_format
from .leap import submit_leap
from .model import STATUSES, EventRejected, UnknownEvent, validate_event
from .openadr import submit_openadr
from .results import IntakeResult

router = APIRouter(prefix="/grid", tags=["grid events"])

HTTP_SOURCES = frozenset({"api", "cli", "file"})


class ErrorInfo(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    error: ErrorInfo


_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "refused: invalid_event (names the field), invalid_json"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "not_found"}}
_SUBMITTED: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    200: {"description": "already known (identical resubmission) or a cancellation: nothing new planned"},
    201: {"description": "a new event or a new revision was accepted"},
}


def _body_doc(example: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": {"type": "object"}, "example": example}},
        }
    }


def get_book(request: Request) -> EventBook:
    """The EventBook the application put in ``app.state.event_book``."""
    book = getattr(request.app.state, "event_book", None)
    if book is None:
        raise HTTPException(status_code=503, detail="grid-event intake is not running (app.state.event_book unset)")
    return book


Book = Annotated[EventBook, Depends(get_book)]


def error_response(
    status: int, code: str, message: str, field: str | None = None, details: dict[str, Any] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "field": field, "details": details}},
        status_code=status,
    )


def rejected_response(exc: EventRejected, **extra: Any) -> JSONResponse:
    details = {
        "field": exc.field,
        "reason": exc.reason,
        "errors": [{"field": f, "reason": r} for f, r in exc.errors],
        **extra,
    }
    return error_response(422, "invalid_event", exc.message, exc.field, details)


async def _read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventRejected("body", f"not valid JSON: {exc}") from None


def _submission_response(sub: Submission, notes: list[str] | None = None) -> JSONResponse:
    body = {"outcome": sub.outcome, "event": sub.event.to_json(), "notes": notes or sub.event.notes}
    return JSONResponse(body, status_code=201 if sub.outcome in ("submitted", "revised") else 200)


def _single(result: IntakeResult) -> JSONResponse:
    if result.rejected:
        return rejected_response(result.rejected[0].error, id=result.rejected[0].event_id)
    if result.accepted:
        return _submission_response(result.accepted[0], result.notes)
    return JSONResponse({"outcome": "none", "event": None, "notes": result.notes}, status_code=200)


_LEAP_EXAMPLE = {
    "integration_test_notification": False,
    "group_dispatches": [
        {
            "market_group_id": "garage-a",
            "timeslots": [
                {
                    "market_group_event_id": "a2b9e3f0-7a5c-4a8e-9d1f-2b6c3d4e5f60",
                    "start_time": "2026-07-14T23:00:00Z",
                    "end_time": "2026-07-15T04:00:00Z",
                    "cancelled": False,
                    "priority": 1,
                    "is_voluntary": False,
                    "dispatch_event_types": ["day-ahead"],
                    "energy_kw": 400,
                    "nomination_kw": 500,
                    "performance_compensation_cap": "grid-exports-allowed",
                }
            ],
        }
    ],
}
_OPENADR_EXAMPLE = {
    "id": "evt-2026-07-14",
    "programID": "dsgs-option-3",
    "priority": 1,
    "intervalPeriod": {"start": "2026-07-14T23:00:00Z", "duration": "PT1H"},
    "payloadDescriptors": [{"payloadType": "EXPORT_CAPACITY_LIMIT", "units": "KW"}],
    "intervals": [{"id": 0, "payloads": [{"type": "EXPORT_CAPACITY_LIMIT", "values": [400]}]}],
}
_CANONICAL_EXAMPLE = {
    "id": "dsgs-2026-07-14",
    "program": "DSGS-3",
    "priority": 1,
    "direction": "export",
    "intervals": [{"start": "2026-07-14T23:00:00Z", "end": "2026-07-15T04:00:00Z", "target_kw": 400}],
}


@router.post(
    "/leap",
    summary="Receive a Leap dispatch notification",
    responses=_ERRORS,
    openapi_extra=_body_doc(_LEAP_EXAMPLE, "Leap group or meter dispatch notification"),
)
async def post_leap(request: Request, book: Book) -> JSONResponse:
    try:
        doc = await _read_json(request)
        if not isinstance(doc, dict) or detect_format(doc) != "leap":
            raise EventRejected("body", "not a Leap dispatch notification (no group_dispatches / timeslots)")
    except EventRejected as exc:
        return rejected_response(exc)
    result = await submit_leap(book, doc, source="webhook")
    if result.rejected and not result.accepted:
        first = result.rejected[0]
        return rejected_response(first.error, id=first.event_id, rejected=[r.to_dict() for r in result.rejected])
    return JSONResponse(result.to_dict(), status_code=200)


@router.post(
    "/openadr/events",
    summary="Receive an OpenADR 3 event (or a VTN notification wrapping one)",
    responses=_SUBMITTED,
    openapi_extra=_body_doc(_OPENADR_EXAMPLE, "OpenADR 3 event object or {objectType, operation, object}"),
)
async def post_openadr(request: Request, book: Book) -> JSONResponse:
    try:
        doc = await _read_json(request)
        if not isinstance(doc, dict):
            raise EventRejected("body", "must be a JSON object (an OpenADR 3 event)")
    except EventRejected as exc:
        return rejected_response(exc)
    return _single(await submit_openadr(book, doc, source="openadr"))


@router.post(
    "/events",
    summary="Submit a canonical grid event",
    responses=_SUBMITTED,
    status_code=201,
    openapi_extra=_body_doc(_CANONICAL_EXAMPLE, "canonical grid event (see csms.grid.model)"),
)
async def post_event(request: Request, book: Book) -> JSONResponse:
    try:
        doc = await _read_json(request)
        if not isinstance(doc, dict):
            raise EventRejected("body", "must be a JSON object (one grid event)")
        source = doc.get("source") if doc.get("source") in HTTP_SOURCES else "api"
        doc = {**doc, "source": source}
        sub = await book.submit_detailed(validate_event(doc), source=source)
    except EventRejected as exc:
        return rejected_response(exc)
    return _submission_response(sub)


@router.delete("/events/{event_id}", summary="Cancel a grid event", responses=_NOT_FOUND)
async def delete_event(event_id: str, book: Book, reason: str | None = Query(None, max_length=500)) -> JSONResponse:
    try:
        ev = await book.cancel(event_id, reason)
    except UnknownEvent as exc:
        return error_response(404, "not_found", str(exc), "id")
    return JSONResponse({"outcome": "cancelled", "event": ev.to_json(), "notes": []})


@router.get("/events", summary="List grid events", responses=_ERRORS)
async def list_events(book: Book, status: str | None = Query(None, description=", ".join(STATUSES))) -> JSONResponse:
    if status is not None and status not in STATUSES:
        return error_response(
            422, "invalid_query", f"status must be one of {', '.join(STATUSES)}", "status", {"reason": "unknown status"}
        )
    events = [e.to_json() for e in book.list(status)]
    return JSONResponse({"events": events, "count": len(events)})


@router.get("/events/{event_id}", summary="One grid event with its superseded revisions", responses=_NOT_FOUND)
async def get_event(event_id: str, book: Book) -> JSONResponse:
    ev = book.get(event_id)
    if ev is None:
        return error_response(404, "not_found", f"no grid event with id {event_id!r}", "id")
    return JSONResponse({**ev.to_json(), "history": [h.to_json() for h in book.history(event_id)]})
