"""Grid events: list, create, cancel, the live view of a running event and the final report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from csms.api.errors import ApiError

from .pages import (
    PREFIX,
    esc,
    login_redirect,
    page_user,
    path_segment,
    post_user,
    read_form,
    render,
    router,
)
from .session import ConsoleUser

log = structlog.get_logger("csms.web")


# ---------------------------------------------------------------------------- grid events
def _book(request: Request) -> Any:
    book = getattr(request.app.state, "event_book", None)
    if book is None:
        book = request.app.state.ctx.event_book()
        request.app.state.event_book = book
    return book


def controller(request: Request) -> Any:
    """The dispatch controller serving the app's event book (None when dispatch is not running)."""
    ctx = request.app.state.ctx
    found = ctx.central.extensions.get("dispatch")
    if found is not None:
        return found
    for part in getattr(ctx.service, "parts", None) or []:
        if hasattr(part, "runs") and hasattr(part, "finished"):
            return part
    return None


_FORM_FIELDS = {
    "id": "id",
    "program": "program",
    "direction": "direction",
    "is_test": "is_test",
    "intervals[0].start": "start",
    "intervals[0].end": "end",
    "intervals[0].target_kw": "target_kw",
    "intervals[0]": "end",
    "intervals": "end",
}


def _event_defaults(now: datetime) -> dict[str, str]:
    start = (now + timedelta(minutes=5)).replace(second=0, microsecond=0).astimezone(UTC)
    end = start + timedelta(hours=1)
    return {
        "id": f"console-{start:%Y%m%d-%H%M}",
        "program": "manual",
        "direction": "export",
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": end.isoformat().replace("+00:00", "Z"),
        "target_kw": "",
    }


@router.get("/events")
async def events_page(request: Request) -> Response:
    user = await page_user(request)
    if user is None:
        return login_redirect(request)
    book = _book(request)
    events = _events(book)
    now = request.app.state.ctx.central.now()
    return render(
        "events.html",
        request,
        user=user,
        page="events",
        events=events,
        book=book is not None,
        values=_event_defaults(now),
        errors={},
        general=None,
    )


def _events(book: Any) -> list[Any]:
    events = list(book.list()) if book is not None else []
    events.sort(key=lambda e: e.start, reverse=True)
    return events


@router.get("/events-table")
async def events_table(request: Request) -> Response:
    """The events table alone (the list page polls it, so statuses change without a reload)."""
    if await page_user(request) is None:
        return Response(status_code=401)
    return render("_events_table.html", request, events=_events(_book(request)))


@router.post("/events")
async def create_event(request: Request) -> Response:
    form = await read_form(request)
    user = await post_user(request, form)
    if not isinstance(user, ConsoleUser):
        return user
    from csms.grid.model import EventRejected, validate_event

    book = _book(request)
    values = {k: form.get(k, "") for k in ("id", "program", "direction", "start", "end", "target_kw")}
    values["is_test"] = "on" if form.get("is_test") else ""
    doc: dict[str, Any] = {
        "id": values["id"].strip(),
        "program": values["program"].strip() or "manual",
        "direction": values["direction"] or "export",
        "is_test": bool(values["is_test"]),
        "source": "api",
        "intervals": [
            {"start": values["start"].strip(), "end": values["end"].strip(), "target_kw": values["target_kw"]}
        ],
    }
    if book is None:
        return render("_event_form.html", request, values=values, errors={}, general="grid-event intake is not running")
    try:
        sub = await book.submit_detailed(validate_event(doc), source="api")
    except EventRejected as exc:
        errors: dict[str, str] = {}
        general = []
        for field, reason in exc.errors or [(exc.field, exc.reason)]:
            name = _FORM_FIELDS.get(field)
            if name is None:
                general.append(f"{field}: {reason}")
            else:
                errors.setdefault(name, reason)
        return render("_event_form.html", request, values=values, errors=errors, general="; ".join(general) or None)
    log.info("console grid event", token=user.name, event_id=sub.event.id, outcome=sub.outcome)
    url = f"{PREFIX}/events/{path_segment(sub.event.id)}"
    return Response(status_code=204, headers={"HX-Redirect": url})


@router.post("/events/{event_id}/cancel")
async def cancel_event(request: Request, event_id: str) -> Response:
    form = await read_form(request)
    user = await post_user(request, form)
    if not isinstance(user, ConsoleUser):
        return user
    from csms.grid.model import UnknownEvent

    book = _book(request)
    try:
        await book.cancel(event_id, form.get("reason") or f"cancelled in the console by {user.name}")
    except UnknownEvent as exc:
        return HTMLResponse(f"<p class='error'>{esc(str(exc))}</p>", status_code=404)
    log.info("console grid event cancelled", token=user.name, event_id=event_id)
    return Response(status_code=204, headers={"HX-Redirect": f"{PREFIX}/events/{path_segment(event_id)}"})


async def _final_report(request: Request, event_id: str) -> dict[str, Any] | None:
    ctl = controller(request)
    if ctl is not None and event_id in ctl.finished:
        return ctl.finished[event_id]  # type: ignore[no-any-return]
    store = request.app.state.ctx.central.store
    row = await store.get_event_report(event_id) if store is not None else None
    if row is not None and row.report.get("status") == "final":
        return row.report  # type: ignore[no-any-return]
    return None


@router.get("/events/{event_id}")
async def event_page(request: Request, event_id: str) -> Response:
    user = await page_user(request)
    if user is None:
        return login_redirect(request)
    book = _book(request)
    event = book.get(event_id) if book is not None else None
    if event is None:
        return render("notfound.html", request, status=404, user=user, what="grid event", ident=event_id)
    report = await _final_report(request, event_id)
    chart = None
    has_plot = False
    if report is not None:
        chart = _report_chart(report, event)
        plot = report.get("plot_path")
        has_plot = bool(plot)
    return render(
        "event.html",
        request,
        user=user,
        page="events",
        event=event,
        report=report,
        chart=chart,
        has_plot=has_plot,
        cancellable=event.status in ("pending", "active"),
    )


def _report_chart(report: dict[str, Any], event: Any) -> dict[str, Any]:
    """Step series of the report's 5-minute intervals (one more point closes the last step)."""
    intervals = [i for i in report.get("intervals", []) if i.get("start")]
    t = [datetime.fromisoformat(i["start"]).timestamp() for i in intervals]
    series = {k: [i.get(f"{k}_kw") for i in intervals] for k in ("target", "delivered", "feasible")}
    if intervals and intervals[-1].get("end"):
        t.append(datetime.fromisoformat(intervals[-1]["end"]).timestamp())
        for values in series.values():
            values.append(values[-1])
    start = event.start.timestamp()
    end = max(t[-1] if t else start + 300, _stamp(report.get("window", {}).get("end"), event.end))
    return {"t": t, **series, "start": start, "end": end}


def _stamp(value: Any, default: datetime) -> float:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return default.timestamp()


def _cars(request: Request, event_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Cars taking part in a running event (live SoC, departure) and the drop-outs so far."""
    ctl = controller(request)
    run = ctl.runs.get(event_id) if ctl is not None else None
    if run is None:
        return [], []
    central = request.app.state.ctx.central
    cars, drops = [], []
    for cid in sorted(run.car_ids):
        rec = ctl.cars.get(cid)
        if rec is None:
            continue
        st = central.states.get(rec.station_id)
        evse = st.evses.get(rec.evse_id) if st is not None else None
        here = evse is not None and evse.transaction_id == rec.transaction_id
        soc = evse.soc if here and evse is not None else rec.final_soc
        power = (evse.power_import_w - evse.power_export_w) / 1000.0 if here and evse is not None else None
        item = {
            "car_id": cid,
            "station_id": rec.station_id,
            "evse_id": rec.evse_id,
            "soc": soc,
            "target_soc": rec.target_pct,
            "departure": rec.announced_departure,
            "departed_at": rec.departed_at,
            "power_kw": power,
            "online": bool(st is not None and st.connected),
            "commanded": cid in ctl.commanded,
        }
        cars.append(item)
        if rec.departed_at is not None:
            early = rec.announced_departure is not None and rec.departed_at < rec.announced_departure
            drops.append({**item, "at": rec.departed_at, "why": "left early" if early else "left"})
        elif st is not None and not st.connected:
            drops.append({**item, "at": st.last_seen, "why": "station offline"})
    for f in run.failures[-20:]:
        drops.append(
            {
                "car_id": f.get("car_id"),
                "station_id": f.get("station_id"),
                "at": f.get("at"),
                "why": f"command {f.get('outcome', 'failed')}",
            }
        )
    drops.sort(key=lambda d: str(d.get("at") or ""), reverse=True)
    return cars, drops


@router.get("/events/{event_id}/cars")
async def event_cars(request: Request, event_id: str) -> Response:
    if await page_user(request) is None:
        return Response(status_code=401)
    cars, drops = _cars(request, event_id)
    return render("_event_cars.html", request, cars=cars, drops=drops)


@router.get("/events/{event_id}/live.json")
async def event_live(request: Request, event_id: str) -> Response:
    if await page_user(request) is None:
        return Response(status_code=401)
    ctl = controller(request)
    book = _book(request)
    event = book.get(event_id) if book is not None else None
    run = ctl.runs.get(event_id) if ctl is not None else None
    out: dict[str, Any] = {
        "status": event.status if event is not None else None,
        "final": ctl is not None and event_id in ctl.finished,
        "now": request.app.state.ctx.central.now().timestamp(),
        "t": [],
        "target": [],
        "delivered": [],
        "planned": [],
    }
    if event is not None:
        out["start"], out["end"] = event.start.timestamp(), event.end.timestamp()
    if run is not None:
        for s in run.samples:
            out["t"].append(s.at.timestamp())
            out["target"].append(round(s.target_kw, 2))
            out["delivered"].append(round(s.delivered_kw, 2))
            out["planned"].append(None if s.planned_kw is None else round(s.planned_kw, 2))
        last = run.samples[-1] if run.samples else None
        out["last"] = None if last is None else {**last.to_json()}
    return JSONResponse(out)


async def _report_download(request: Request, event_id: str, kind: str) -> Response:
    if await page_user(request) is None:
        return Response(status_code=401)
    from csms.api.routes import grid as api

    ctx = request.app.state.ctx
    try:
        if kind == "csv":
            return await api.get_report_csv(ctx, event_id)
        if kind == "png":
            return await api.get_report_png(ctx, event_id)
        out = await api.get_report(ctx, event_id)
    except ApiError as exc:
        return HTMLResponse(f"<p class='error'>{esc(exc.message)}</p>", status_code=exc.status)
    safe = api._safe(event_id)
    return Response(
        json.dumps(out.report, indent=1, default=str),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{safe}.json"'},
    )


@router.get("/events/{event_id}/report.csv")
async def report_csv(request: Request, event_id: str) -> Response:
    return await _report_download(request, event_id, "csv")


@router.get("/events/{event_id}/report.json")
async def report_json(request: Request, event_id: str) -> Response:
    return await _report_download(request, event_id, "json")


@router.get("/events/{event_id}/report.png")
async def report_png(request: Request, event_id: str) -> Response:
    return await _report_download(request, event_id, "png")
