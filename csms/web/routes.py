"""The console's pages, fragments and actions (``/console/...``), served by the API's FastAPI app.

Pages are server-rendered Jinja2 templates (autoescaped: station ids, vendor strings and every
other value from a station or an issuer is shown as text). htmx posts the forms and polls the
fragments; the fleet table updates from server-sent events (:mod:`csms.web.fleet`); charts are
uPlot, fed by small JSON routes. Everything is reached with the session cookie
(:mod:`csms.web.session`): read scope sees every page, operator scope also gets the command
buttons, the event form and cancel, and the server checks the scope and the CSRF token again on
every POST (a forged request is a 403 whatever the page showed).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape
from pydantic import BaseModel, ValidationError

from csms.api.errors import ApiError

from . import session
from .fleet import FleetHub, fleet_rows, station_row
from .session import ConsoleUser

log = structlog.get_logger("csms.web")

HERE = Path(__file__).parent
PREFIX = "/console"
MAX_FORM_BYTES = 64 * 1024

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _path(value: Any) -> str:
    """A value as one URL path segment (station and event ids may hold any printable character)."""
    return quote(str(value), safe="")


def _kw(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f} %"


def _ts(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


env.filters.update(seg=_path, kw=_kw, pct=_pct, ts=_ts)

router = APIRouter(prefix=PREFIX, include_in_schema=False)

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(name: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
    ctx = request.app.state.ctx
    context.setdefault("now", ctx.central.now())
    html = env.get_template(name).render(prefix=PREFIX, request=request, **context)
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def hub(request: Request) -> FleetHub:
    state = request.app.state
    h = getattr(state, "console_hub", None)
    if h is None:
        h = state.console_hub = FleetHub(state.ctx.central)
    return h  # type: ignore[no-any-return]


async def _form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, "too_large", "form too large")
    if ctype != "application/x-www-form-urlencoded":
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _login_redirect(request: Request) -> RedirectResponse:
    nxt = request.url.path
    if request.url.query:
        nxt += "?" + request.url.query
    return RedirectResponse(f"{PREFIX}/login?next={quote(nxt, safe='')}", status_code=303)


async def _page_user(request: Request) -> ConsoleUser | None:
    return await session.current_user(request)


def _forbidden(message: str) -> HTMLResponse:
    return HTMLResponse(f"<p class='error'>{_esc(message)}</p>", status_code=403, headers=_HEADERS)


def _esc(text: str) -> str:
    return str(escape(text))


async def _post_user(request: Request, form: dict[str, str], scope: str = "operator") -> ConsoleUser | Response:
    """The user of a state-changing request, or the 401/403 to answer: CSRF first, then scope."""
    user = await session.current_user(request)
    if user is None:
        return HTMLResponse("<p class='error'>signed out: sign in again</p>", status_code=401, headers=_HEADERS)
    if not session.csrf_ok(request, user, form.get("csrf")):
        return _forbidden("CSRF check failed: reload the page and try again")
    if scope == "operator" and not user.can_command:
        return _forbidden(f"token '{user.name}' has scope '{user.scope}'; this needs scope 'operator'")
    return user


# ---------------------------------------------------------------------------- sign-in
def _login_response(request: Request, nxt: str, error: str | None = None, status: int = 200) -> HTMLResponse:
    nonce = session.login_nonce(request)
    resp = render("login.html", request, status=status, next=_safe_next(nxt), error=error, nonce=nonce)
    session.set_login_cookie(resp, request, nonce)
    return resp


def _safe_next(nxt: str) -> str:
    return nxt if nxt.startswith(PREFIX + "/") and not nxt.startswith("//") and "\\" not in nxt else PREFIX + "/"


@router.get("/login")
async def login_page(request: Request, next: str = "") -> HTMLResponse:
    return _login_response(request, next)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    if not session.login_ok(request, form.get("nonce")):
        return _login_response(request, form.get("next", ""), "the sign-in form expired; try again", 403)
    token = form.get("token", "").strip()
    store = request.app.state.ctx.central.store
    from csms.api.apitokens import hash_token

    row = await store.find_api_token_by_hash(hash_token(token)) if token and store is not None else None
    if row is None:
        return _login_response(request, form.get("next", ""), "unknown or revoked API token", 401)
    resp = RedirectResponse(_safe_next(form.get("next", "")), status_code=303)
    session.set_session(resp, request, token)
    log.info("console sign-in", token=row.name, scope=row.scope)
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    user = await session.current_user(request)
    if user is not None and not session.csrf_ok(request, user, form.get("csrf")):
        return _forbidden("CSRF check failed")
    resp = RedirectResponse(f"{PREFIX}/login", status_code=303)
    session.clear_session(resp)
    return resp


# ---------------------------------------------------------------------------- fleet
@router.get("/")
async def fleet_page(request: Request) -> Response:
    user = await _page_user(request)
    if user is None:
        return _login_redirect(request)
    central = request.app.state.ctx.central
    rows = fleet_rows(central)
    return render("fleet.html", request, user=user, rows=rows, page="fleet")


@router.get("/fleet/stream")
async def fleet_stream(request: Request) -> Response:
    user = await _page_user(request)
    if user is None:
        return Response(status_code=401)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(_while_signed_in(request), media_type="text/event-stream", headers=headers)


async def _while_signed_in(request: Request, recheck_s: float = 30.0) -> AsyncIterator[bytes]:
    """The fleet feed for this browser, ended when its token is revoked (checked every ``recheck_s``)."""
    checked = time.monotonic()
    async with contextlib.aclosing(hub(request).stream()) as stream:
        async for chunk in stream:
            if time.monotonic() - checked > recheck_s:
                if await session.current_user(request) is None:
                    return
                checked = time.monotonic()
            yield chunk


@router.get("/fleet.json")
async def fleet_json(request: Request) -> Response:
    if await _page_user(request) is None:
        return Response(status_code=401)
    return JSONResponse({"rows": fleet_rows(request.app.state.ctx.central)})


# ---------------------------------------------------------------------------- station
async def _station_or_404(request: Request, station_id: str) -> Any:
    ctx = request.app.state.ctx
    try:
        return await ctx.station_row(station_id)
    except ApiError:
        return None


@router.get("/stations/{station_id}")
async def station_page(request: Request, station_id: str) -> Response:
    user = await _page_user(request)
    if user is None:
        return _login_redirect(request)
    from csms.api.routes import stations as api

    ctx = request.app.state.ctx
    row = await _station_or_404(request, station_id)
    if row is None:
        return render("notfound.html", request, status=404, user=user, what="station", ident=station_id)
    detail = await api.get_station(ctx, station_id)
    state = ctx.central.states.get(station_id)
    live = detail["live"]
    txs = await ctx.store.list_transactions(station_id=station_id, active=True, limit=10, offset=0)
    profiles = await ctx.store.profiles(station_id)
    composites = []
    evse_ids = sorted({e.evse_id for e in detail["evses"] if e.evse_id > 0}) or [0]
    for eid in evse_ids:
        try:
            composites.append(await api.composite(ctx, station_id, eid, 3600, "W"))
        except ApiError as exc:
            log.info("composite schedule unavailable", station=station_id, error=exc.message)
    sec = await ctx.store.list_security_events(station_id=station_id, limit=20, offset=0)
    return render(
        "station.html",
        request,
        user=user,
        page="fleet",
        sid=station_id,
        detail=detail,
        live=live,
        summary=station_row(state) if state is not None else None,
        transactions=txs,
        profiles=profiles,
        composites=composites,
        security_events=sec,
        frame_log=ctx.store.frame_log_limit or 0,
        triggers=_TRIGGERS,
    )


@router.get("/stations/{station_id}/evses")
async def station_evses(request: Request, station_id: str) -> Response:
    if await _page_user(request) is None:
        return Response(status_code=401)
    from csms.api.routes import stations as api

    ctx = request.app.state.ctx
    if await _station_or_404(request, station_id) is None:
        return Response(status_code=404)
    detail = await api.get_station(ctx, station_id)
    return render("_evses.html", request, detail=detail, live=detail["live"], sid=station_id, oob=True)


@router.get("/stations/{station_id}/frames")
async def station_frames(request: Request, station_id: str) -> Response:
    if await _page_user(request) is None:
        return Response(status_code=401)
    from csms.api.routes import stations as api

    ctx = request.app.state.ctx
    if await _station_or_404(request, station_id) is None:
        return Response(status_code=404)
    frames = await api.frames(ctx, station_id, limit=40, after_id=None)
    return render("_frames.html", request, frames=list(reversed(frames.items)))


@router.get("/stations/{station_id}/meter.json")
async def station_meter(request: Request, station_id: str, hours: float = 6.0) -> Response:
    if await _page_user(request) is None:
        return Response(status_code=401)
    ctx = request.app.state.ctx
    if await _station_or_404(request, station_id) is None:
        return Response(status_code=404)
    hours = max(0.25, min(hours, 48.0))
    now = ctx.central.now()
    rows = await ctx.store.meter_samples(station_id, start=now - timedelta(hours=hours), end=None, limit=50_000)
    by_t: dict[float, dict[str, float]] = {}
    for r in rows:
        if r.phase:
            continue
        t = round(r.timestamp.timestamp())
        slot = by_t.setdefault(t, {})
        if r.measurand in ("Power.Active.Import", "Power.Active.Export"):
            factor = 1000.0 if (r.unit or "W") == "kW" else 1.0
            slot[r.measurand] = slot.get(r.measurand, 0.0) + r.value * factor
        elif r.measurand == "SoC":
            slot["SoC"] = r.value
    ts = sorted(by_t)
    power: list[float | None] = []
    soc: list[float | None] = []
    for t in ts:
        s = by_t[t]
        has_p = "Power.Active.Import" in s or "Power.Active.Export" in s
        p = s.get("Power.Active.Import", 0.0) - s.get("Power.Active.Export", 0.0)
        power.append(round(p / 1000.0, 3) if has_p else None)
        soc.append(s.get("SoC"))
    return JSONResponse({"t": ts, "power_kw": power, "soc": soc, "now": now.timestamp()})


_TRIGGERS = ("StatusNotification", "Heartbeat", "MeterValues", "BootNotification", "TransactionEvent")


def _actions() -> dict[str, tuple[type[BaseModel], Callable[..., Awaitable[Any]]]]:
    from csms.api import commands as c

    return {
        "Reset": (c.ResetBody, c.reset),
        "UnlockConnector": (c.UnlockConnectorBody, c.unlock),
        "TriggerMessage": (c.TriggerMessageBody, c.trigger),
        "ChangeAvailability": (c.ChangeAvailabilityBody, c.change_availability),
        "ClearChargingProfile": (c.ClearChargingProfileBody, c.clear_charging_profile),
        "GetInstalledCertificateIds": (c.GetInstalledCertificateIdsBody, c.get_installed_certificate_ids),
    }


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts)


@router.post("/stations/{station_id}/commands/{action}")
async def station_command(request: Request, station_id: str, action: str) -> Response:
    form = await _form(request)
    user = await _post_user(request, form)
    if not isinstance(user, ConsoleUser):
        return user
    actions = _actions()
    if action not in actions:
        return render("_command.html", request, status=404, action=action, error=f"unknown action {action!r}")
    body_cls, fn = actions[action]
    fields = {k: v for k, v in form.items() if k != "csrf" and v != ""}
    ctx = request.app.state.ctx
    try:
        body = body_cls.model_validate(fields)
        result = await fn(ctx, station_id, body, None)
    except ValidationError as exc:
        return render("_command.html", request, action=action, error=_validation_message(exc))
    except ApiError as exc:
        return render("_command.html", request, action=action, error=f"{exc.code}: {exc.message}")
    log.info("console command", token=user.name, station=station_id, action=action, status=result.status)
    return render(
        "_command.html",
        request,
        action=action,
        error=None,
        result=result,
        response=json.dumps(result.response, indent=1, ensure_ascii=False),
    )


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
    user = await _page_user(request)
    if user is None:
        return _login_redirect(request)
    book = _book(request)
    events = list(book.list()) if book is not None else []
    events.sort(key=lambda e: e.start, reverse=True)
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


@router.post("/events")
async def create_event(request: Request) -> Response:
    form = await _form(request)
    user = await _post_user(request, form)
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
    url = f"{PREFIX}/events/{_path(sub.event.id)}"
    return Response(status_code=204, headers={"HX-Redirect": url})


@router.post("/events/{event_id}/cancel")
async def cancel_event(request: Request, event_id: str) -> Response:
    form = await _form(request)
    user = await _post_user(request, form)
    if not isinstance(user, ConsoleUser):
        return user
    from csms.grid.model import UnknownEvent

    book = _book(request)
    try:
        await book.cancel(event_id, form.get("reason") or f"cancelled in the console by {user.name}")
    except UnknownEvent as exc:
        return HTMLResponse(f"<p class='error'>{_esc(str(exc))}</p>", status_code=404)
    log.info("console grid event cancelled", token=user.name, event_id=event_id)
    return Response(status_code=204, headers={"HX-Redirect": f"{PREFIX}/events/{_path(event_id)}"})


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
    user = await _page_user(request)
    if user is None:
        return _login_redirect(request)
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
    if await _page_user(request) is None:
        return Response(status_code=401)
    cars, drops = _cars(request, event_id)
    return render("_event_cars.html", request, cars=cars, drops=drops)


@router.get("/events/{event_id}/live.json")
async def event_live(request: Request, event_id: str) -> Response:
    if await _page_user(request) is None:
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
    if await _page_user(request) is None:
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
        return HTMLResponse(f"<p class='error'>{_esc(exc.message)}</p>", status_code=exc.status)
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
