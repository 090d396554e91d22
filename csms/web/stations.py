"""The fleet table (and its live feed) and the station page with its fragments and commands."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from csms.api.errors import ApiError

from . import session
from .fleet import fleet_rows, station_row
from .pages import (
    hub,
    login_redirect,
    page_user,
    post_user,
    read_form,
    render,
    router,
)
from .session import ConsoleUser

log = structlog.get_logger("csms.web")


# ---------------------------------------------------------------------------- fleet
@router.get("/")
async def fleet_page(request: Request) -> Response:
    user = await page_user(request)
    if user is None:
        return login_redirect(request)
    central = request.app.state.ctx.central
    rows = fleet_rows(central)
    return render("fleet.html", request, user=user, rows=rows, page="fleet")


@router.get("/fleet/stream")
async def fleet_stream(request: Request) -> Response:
    user = await page_user(request)
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
    if await page_user(request) is None:
        return Response(status_code=401)
    return JSONResponse({"rows": fleet_rows(request.app.state.ctx.central)})


# ---------------------------------------------------------------------------- station
async def _station_or_404(request: Request, station_id: str) -> Any:
    ctx = request.app.state.ctx
    try:
        return await ctx.station_row(station_id)
    except ApiError:
        return None


async def grid_and_pnc(ctx: Any, station_id: str) -> dict[str, Any]:
    """The read-only DER control and Plug & Charge panel: the DER controls the CSMS set, the
    station's last DER alarms and its last Plug & Charge outcomes."""
    from csms.blocks.der import EVENT_ALARM, EVENT_ALARM_ENDED, DerControls
    from csms.blocks.pnc import EVENT as PNC_EVENT

    alarms = [
        *await ctx.store.list_station_events(station_id=station_id, kind=EVENT_ALARM, limit=10),
        *await ctx.store.list_station_events(station_id=station_id, kind=EVENT_ALARM_ENDED, limit=10),
    ]
    alarms.sort(key=lambda r: (r.timestamp, r.id), reverse=True)
    return {
        "der_controls": await DerControls.of(ctx.central).controls(station_id),
        "der_alarms": alarms[:10],
        "pnc_events": await ctx.store.list_station_events(station_id=station_id, kind=PNC_EVENT, limit=10),
    }


@router.get("/stations/{station_id}")
async def station_page(request: Request, station_id: str) -> Response:
    user = await page_user(request)
    if user is None:
        return login_redirect(request)
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
    grid_pnc = await grid_and_pnc(ctx, station_id)
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
        **grid_pnc,
        frame_log=ctx.store.frame_log_limit or 0,
        triggers=_TRIGGERS,
    )


@router.get("/stations/{station_id}/evses")
async def station_evses(request: Request, station_id: str) -> Response:
    if await page_user(request) is None:
        return Response(status_code=401)
    from csms.api.routes import stations as api

    ctx = request.app.state.ctx
    if await _station_or_404(request, station_id) is None:
        return Response(status_code=404)
    detail = await api.get_station(ctx, station_id)
    return render("_evses.html", request, detail=detail, live=detail["live"], sid=station_id, oob=True)


@router.get("/stations/{station_id}/frames")
async def station_frames(request: Request, station_id: str) -> Response:
    if await page_user(request) is None:
        return Response(status_code=401)
    from csms.api.routes import stations as api

    ctx = request.app.state.ctx
    if await _station_or_404(request, station_id) is None:
        return Response(status_code=404)
    frames = await api.frames(ctx, station_id, limit=40, after_id=None)
    return render("_frames.html", request, frames=list(reversed(frames.items)))


@router.get("/stations/{station_id}/meter.json")
async def station_meter(request: Request, station_id: str, hours: float = 6.0) -> Response:
    if await page_user(request) is None:
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
    from csms.api import command_bodies as b
    from csms.api import commands as c

    return {
        "Reset": (b.ResetBody, c.reset),
        "UnlockConnector": (b.UnlockConnectorBody, c.unlock),
        "TriggerMessage": (b.TriggerMessageBody, c.trigger),
        "ChangeAvailability": (b.ChangeAvailabilityBody, c.change_availability),
        "ClearChargingProfile": (b.ClearChargingProfileBody, c.clear_charging_profile),
        "GetInstalledCertificateIds": (b.GetInstalledCertificateIdsBody, c.get_installed_certificate_ids),
    }


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts)


@router.post("/stations/{station_id}/commands/{action}")
async def station_command(request: Request, station_id: str, action: str) -> Response:
    form = await read_form(request)
    user = await post_user(request, form)
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
