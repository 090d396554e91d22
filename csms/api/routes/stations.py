"""Stations and everything recorded about them (read scope)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
import structlog
from fastapi import APIRouter, Depends, Path, Query

from csms.domain.station import EvseState, StationState
from csms.store.rows import ConnectorStatusRow, FrameRow, StationRow, TransactionRow

from ..auth import require_read
from ..context import ApiContext, get_ctx
from ..errors import ApiError, error_responses
from ..models import (
    ClientCertificate,
    CompositeOut,
    CompositePeriodOut,
    ConnectorInfo,
    EvseInfo,
    FrameList,
    FrameOut,
    LiveStatus,
    MeterSampleOut,
    Page,
    ProfileOut,
    SecurityEventOut,
    StationDetail,
    StationEventOut,
    StationSummary,
    TransactionDetail,
    TransactionEventOut,
    TransactionOut,
    VariableOut,
)
from ..params import Limit, Offset, StationId, page_of, utc

log = structlog.get_logger("csms.api")

router = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(require_read)],
    responses=error_responses(401, 403, 422),
)
Ctx = Annotated[ApiContext, Depends(get_ctx)]
_404 = error_responses(404)


# ---------------------------------------------------------------------------- converters
def _pending(ctx: ApiContext, writer: str, key: Any) -> dict[str, Any]:
    """Fields a write-behind writer of the CentralSystem has not flushed to the store yet."""
    w = getattr(ctx.central, writer, None)
    pending = getattr(w, "pending", None)
    if pending is None:
        return {}
    try:
        return dict(pending(key) or {})
    except Exception:
        return {}


_ROW_FIELDS = (
    "boot_status",
    "vendor",
    "model",
    "serial_number",
    "firmware_version",
    "ocpp_version",
    "last_boot_at",
    "last_seen_at",
)


def _summary(ctx: ApiContext, row: StationRow) -> dict[str, Any]:
    data = {k: getattr(row, k) for k in _ROW_FIELDS}
    data.update({k: v for k, v in _pending(ctx, "station_writer", row.id).items() if k in _ROW_FIELDS})
    live = ctx.central.states.get(row.id)
    connected = live.connected if live is not None else row.connected
    since = (live.connected_since if live is not None else row.connected_since) if connected else None
    last_seen = data["last_seen_at"]
    if live is not None and live.last_seen is not None and (last_seen is None or live.last_seen > last_seen):
        last_seen = live.last_seen
    if live is not None:
        # memory is never behind the store (write-behind batches are in flight for up to a second)
        for key in ("ocpp_version", "vendor", "model"):
            value = getattr(live, key, None)
            if value:
                data[key] = value
        if live.boot.value != "Unknown" and live.connected:
            data["boot_status"] = live.boot.value
    return {
        **data,
        "id": row.id,
        "connected": connected,
        "connected_since": since,
        "last_seen_at": last_seen,
        "boot_policy": (row.meta or {}).get("boot_policy", ctx.central.settings.boot.default_policy),
        "blocked": row.blocked,
        "registered_at": row.registered_at,
    }


def _evse(evse: EvseState, stored: dict[tuple[int, int], ConnectorStatusRow]) -> EvseInfo:
    connectors = {cid: ConnectorInfo(connector_id=cid, status=status) for cid, status in evse.connectors.items()}
    for (eid, cid), row in stored.items():
        if eid != evse.evse_id:
            continue
        live = connectors.get(cid)
        status = live.status if live is not None and live.status else row.status
        connectors[cid] = ConnectorInfo(connector_id=cid, status=status, updated_at=row.updated_at)
    return EvseInfo(
        evse_id=evse.evse_id,
        connectors=[connectors[c] for c in sorted(connectors)],
        transaction_id=evse.transaction_id,
        id_token=evse.id_token,
        charging_state=evse.charging_state,
        operation_mode=evse.operation_mode,
        power_import_w=evse.power_import_w,
        power_export_w=evse.power_export_w,
        net_export_w=evse.net_export_w,
        soc=evse.soc,
        energy_import_wh=evse.energy_import_wh,
        energy_export_wh=evse.energy_export_wh,
        metered_at=evse.metered_at,
        allowed_energy_transfer=evse.allowed_energy_transfer,
        charging_needs=evse.charging_needs.to_json() if evse.charging_needs is not None else None,
    )


def _evses(state: StationState | None, connectors: list[ConnectorStatusRow]) -> list[EvseInfo]:
    stored = {(c.evse_id, c.connector_id): c for c in connectors}
    evse_ids = set(state.evses if state is not None else ()) | {c.evse_id for c in connectors}
    out = []
    for eid in sorted(evse_ids):
        evse = state.evses.get(eid) if state is not None else None
        out.append(_evse(evse if evse is not None else EvseState(eid), stored))
    return out


def _client_certificate(state: StationState, now: datetime) -> ClientCertificate | None:
    """``now``: the wall clock, which TLS checks certificates against (not the CSMS's clock)."""
    cert = state.client_certificate if state.connected else None
    if cert is None:
        return None
    return ClientCertificate(
        subject=cert["subject"],
        serial_number=cert["serialNumber"],
        not_after=cert["notAfter"],
        expires_in_days=round((cert["notAfter"] - now).total_seconds() / 86400, 2),
    )


def _live(station_id: str, state: StationState | None, evses: list[EvseInfo], now: datetime) -> LiveStatus:
    if state is None:
        return LiveStatus(station_id=station_id, connected=False, boot="Unknown", evses=evses)
    return LiveStatus(
        client_certificate=_client_certificate(state, now),
        station_id=station_id,
        connected=state.connected,
        connected_since=state.connected_since if state.connected else None,
        last_seen=state.last_seen,
        boot=state.boot.value,
        ocpp_version=state.ocpp_version,
        evses=evses,
    )


def _tx(row: TransactionRow) -> dict[str, Any]:
    data = row.model_dump(exclude={"id", "meta"})
    data["active"] = row.active
    return data


# ---------------------------------------------------------------------------- stations
@router.get("/stations", response_model=Page[StationSummary], summary="List stations")
async def list_stations(
    ctx: Ctx,
    status: Annotated[Literal["Accepted", "Pending", "Rejected"] | None, Query(description="boot status")] = None,
    connected: Annotated[bool | None, Query(description="only (dis)connected stations")] = None,
    model: Annotated[str | None, Query(max_length=255, description="station model")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    rows = await ctx.store.list_stations(
        status=status, connected=connected, model=model, limit=limit + 1, offset=offset
    )
    rows, nxt = page_of(rows, limit, offset)
    return {"items": [_summary(ctx, r) for r in rows], "limit": limit, "offset": offset, "next_offset": nxt}


@router.get("/stations/{station_id}", response_model=StationDetail, responses=_404, summary="One station in detail")
async def get_station(ctx: Ctx, station_id: StationId) -> dict[str, Any]:
    row = await ctx.station_row(station_id)
    state = ctx.central.states.get(station_id)
    evses = _evses(state, await ctx.store.connector_statuses(station_id))
    return {
        **_summary(ctx, row),
        "capabilities": row.capabilities,
        "evses": evses,
        "live": _live(station_id, state, evses, datetime.now(UTC)),
    }


@router.get(
    "/stations/{station_id}/status",
    response_model=LiveStatus,
    responses=_404,
    summary="Live state (connection, boot, EVSEs, power) from memory",
)
async def station_status(ctx: Ctx, station_id: StationId) -> LiveStatus:
    state = ctx.central.states.get(station_id)
    if state is None or not ctx.central.known(station_id):
        await ctx.station_row(station_id)  # 404 unless registered by another process
    return _live(station_id, state, _evses(state, []), datetime.now(UTC))


# ---------------------------------------------------------------------------- transactions
@router.get("/transactions", response_model=Page[TransactionOut], summary="Transactions of all stations")
async def list_transactions(
    ctx: Ctx,
    station_id: Annotated[str | None, Query(max_length=48)] = None,
    active: Annotated[bool | None, Query(description="true: ongoing, false: ended")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    rows = await ctx.store.list_transactions(station_id=station_id, active=active, limit=limit + 1, offset=offset)
    rows, nxt = page_of(rows, limit, offset)
    return {"items": [_tx(r) for r in rows], "limit": limit, "offset": offset, "next_offset": nxt}


@router.get(
    "/stations/{station_id}/transactions",
    response_model=Page[TransactionOut],
    responses=_404,
    summary="Transactions of a station, newest first",
)
async def station_transactions(
    ctx: Ctx,
    station_id: StationId,
    active: Annotated[bool | None, Query(description="true: ongoing, false: ended")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    await ctx.require_station(station_id)
    return await list_transactions(ctx, station_id, active, limit, offset)


@router.get(
    "/stations/{station_id}/transactions/{transaction_id}",
    response_model=TransactionDetail,
    responses=_404,
    summary="One transaction with its TransactionEvents",
)
async def get_transaction(
    ctx: Ctx, station_id: StationId, transaction_id: Annotated[str, Path(min_length=1, max_length=64)]
) -> dict[str, Any]:
    await ctx.require_station(station_id)
    row = await ctx.store.get_transaction(station_id, transaction_id)
    if row is None:
        raise ApiError(
            404,
            "not_found",
            f"no transaction '{transaction_id}' on station {station_id}",
            {"station_id": station_id, "transaction_id": transaction_id},
        )
    events = await ctx.store.transaction_events(station_id, transaction_id)
    return {
        **_tx(row),
        "events": [TransactionEventOut.model_validate(e, from_attributes=True) for e in events],
    }


# ---------------------------------------------------------------------------- meter values
@router.get(
    "/stations/{station_id}/meter-values",
    response_model=Page[MeterSampleOut],
    responses=_404,
    summary="Meter samples in a time range [start, end)",
)
async def meter_values(
    ctx: Ctx,
    station_id: StationId,
    start: Annotated[datetime | None, Query(description="inclusive, RFC 3339 with offset")] = None,
    end: Annotated[datetime | None, Query(description="exclusive, RFC 3339 with offset")] = None,
    measurand: Annotated[str | None, Query(max_length=64, examples=["Power.Active.Import"])] = None,
    transaction_id: Annotated[str | None, Query(max_length=64)] = None,
    evse_id: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
    order: Annotated[Literal["asc", "desc"], Query(description="by timestamp")] = "asc",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> dict[str, Any]:
    await ctx.require_station(station_id)
    t0, t1 = utc(start, "start"), utc(end, "end")
    rows = await ctx.store.meter_samples(
        station_id,
        start=t0,
        end=t1,
        measurand=measurand,
        transaction_id=transaction_id,
        limit=offset + limit + 1,
        evse_id=evse_id,
        newest_first=order == "desc",
    )
    rows, nxt = page_of(rows[offset:], limit, offset)
    items = [MeterSampleOut.model_validate(r, from_attributes=True) for r in rows]
    return {"items": items, "limit": limit, "offset": offset, "next_offset": nxt}


# ---------------------------------------------------------------------------- events
@router.get("/security-events", response_model=Page[SecurityEventOut], summary="Security events, newest first")
async def security_events(
    ctx: Ctx,
    station_id: Annotated[str | None, Query(max_length=48)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    rows = await ctx.store.list_security_events(station_id=station_id, limit=limit + 1, offset=offset)
    rows, nxt = page_of(rows, limit, offset)
    items = [SecurityEventOut.model_validate(r, from_attributes=True) for r in rows]
    return {"items": items, "limit": limit, "offset": offset, "next_offset": nxt}


@router.get(
    "/stations/{station_id}/security-events",
    response_model=Page[SecurityEventOut],
    responses=_404,
    summary="Security events of a station, newest first",
)
async def station_security_events(ctx: Ctx, station_id: StationId, limit: Limit = 100, offset: Offset = 0) -> Any:
    await ctx.require_station(station_id)
    return await security_events(ctx, station_id, limit, offset)


@router.get(
    "/stations/{station_id}/events",
    response_model=Page[StationEventOut],
    responses=_404,
    summary="Station events (FirmwareStatus, LogStatus, NotifyEvent, DataTransfer), newest first",
)
async def station_events(
    ctx: Ctx,
    station_id: StationId,
    kind: Annotated[str | None, Query(max_length=64, examples=["FirmwareStatus"])] = None,
    after_id: Annotated[int | None, Query(ge=0, le=2**62, description="only events with a greater id")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    await ctx.require_station(station_id)
    rows = await ctx.store.list_station_events(station_id=station_id, kind=kind, limit=limit + 1, offset=offset)
    rows, nxt = page_of(rows, limit, offset)
    if after_id is not None:
        rows = [r for r in rows if r.id > after_id]
        nxt = None if len(rows) < limit else nxt
    items = [StationEventOut.model_validate(r, from_attributes=True) for r in rows]
    return {"items": items, "limit": limit, "offset": offset, "next_offset": nxt}


# ---------------------------------------------------------------------------- frames
_TYPES = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR", 5: "CALLRESULTERROR", 6: "SEND"}


def _frame(row: FrameRow, actions: dict[str, str]) -> FrameOut:
    out: dict[str, Any] = {
        "id": row.id,
        "direction": row.direction if row.direction in ("in", "out") else "in",
        "timestamp": row.timestamp,
        "message_type": "invalid",
        "frame": row.frame,
    }
    try:
        msg = orjson.loads(row.frame)
    except orjson.JSONDecodeError:
        return FrameOut(**out)
    if not isinstance(msg, list) or len(msg) < 3 or not isinstance(msg[0], int) or msg[0] not in _TYPES:
        return FrameOut(**out)
    mtype, mid = msg[0], msg[1]
    out["message_type"] = _TYPES[mtype]
    out["message_id"] = str(mid)
    if mtype in (2, 6) and len(msg) >= 4:
        out["action"] = str(msg[2])
        out["payload"] = msg[3]
        actions[str(mid)] = str(msg[2])
    elif mtype == 3:
        out["payload"] = msg[2]
        out["action"] = actions.get(str(mid))
    elif mtype in (4, 5):
        out["error_code"] = str(msg[2])
        out["payload"] = {"description": msg[3] if len(msg) > 3 else "", "details": msg[4] if len(msg) > 4 else {}}
        out["action"] = actions.get(str(mid))
    return FrameOut(**out)


@router.get(
    "/stations/{station_id}/frames",
    response_model=FrameList,
    responses=_404,
    summary="The station's OCPP frame log (oldest first)",
    description=(
        "Without after_id: the newest `limit` frames. With after_id: the oldest `limit` frames newer than "
        "after_id (poll with the returned last_id to tail the log). Frames are written in batches, so the "
        "newest may appear up to a second late. The log keeps the newest storage.frame_log_limit frames."
    ),
)
async def frames(
    ctx: Ctx,
    station_id: StationId,
    limit: Limit = 100,
    after_id: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> FrameList:
    await ctx.require_station(station_id)
    if after_id is None:
        rows = list(reversed(await ctx.store.frames(station_id, limit=limit)))
    else:
        window = max(limit, ctx.store.frame_log_limit or 0, 500)
        newer = [r for r in await ctx.store.frames(station_id, limit=window) if r.id > after_id]
        rows = list(reversed(newer))[:limit]
    actions: dict[str, str] = {}
    items = [_frame(r, actions) for r in rows]
    last = items[-1].id if items else after_id
    return FrameList(items=items, last_id=last)


# ---------------------------------------------------------------------------- device model
@router.get(
    "/stations/{station_id}/variables",
    response_model=list[VariableOut],
    responses=_404,
    summary="Device-model variables reported by the station (NotifyReport)",
)
async def variables(
    ctx: Ctx,
    station_id: StationId,
    component: Annotated[str | None, Query(max_length=64)] = None,
    variable: Annotated[str | None, Query(max_length=64)] = None,
) -> list[VariableOut]:
    await ctx.require_station(station_id)
    rows = await ctx.store.get_variables(station_id, component=component, variable=variable)
    return [VariableOut.model_validate(r, from_attributes=True) for r in rows]


# ---------------------------------------------------------------------------- smart charging
@router.get(
    "/stations/{station_id}/profiles",
    response_model=list[ProfileOut],
    responses=_404,
    summary="Charging profiles the CSMS knows are installed (store record)",
)
async def profiles(
    ctx: Ctx,
    station_id: StationId,
    evse_id: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
    purpose: Annotated[str | None, Query(max_length=64, examples=["TxDefaultProfile"])] = None,
) -> list[ProfileOut]:
    await ctx.require_station(station_id)
    rows = await ctx.store.profiles(station_id, evse_id=evse_id, purpose=purpose)
    return [ProfileOut.model_validate(r, from_attributes=True) for r in rows]


@router.get(
    "/stations/{station_id}/composite-schedule",
    response_model=CompositeOut,
    responses=_404,
    summary="Composite schedule predicted from the stored profiles (K08 rules)",
    description="For the station's own answer use POST /stations/{station_id}/commands/GetCompositeSchedule.",
)
async def composite(
    ctx: Ctx,
    station_id: StationId,
    evse_id: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    duration: Annotated[int, Query(ge=1, le=31 * 86400, description="seconds")] = 3600,
    unit: Annotated[Literal["W", "A"], Query(description="charging rate unit")] = "W",
) -> CompositeOut:
    from csms.smartcharging.composite import composite_schedule
    from csms.smartcharging.model import ChargingProfile, InstalledProfile, ModelError

    await ctx.require_station(station_id)
    installed = []
    for row in await ctx.store.profiles(station_id):
        try:
            installed.append(InstalledProfile(row.evse_id, ChargingProfile.from_wire(row.profile)))
        except (ModelError, ValueError, TypeError, KeyError) as exc:
            log.warning("stored profile unreadable", station=station_id, profile=row.profile_id, error=str(exc))
    tx_start = tx_id = None
    if evse_id > 0:
        tx = await ctx.store.active_transaction(station_id, evse_id)
        if tx is not None:
            tx_start, tx_id = tx.started_at, tx.transaction_id
    now = ctx.central.now().replace(microsecond=0)
    try:
        sched = composite_schedule(
            installed,
            evse_id=evse_id,
            start=now,
            duration_s=duration,
            rate_unit=unit,
            transaction_start=tx_start,
            now=now,
            transaction_id=tx_id,
        )
    except (ValueError, OverflowError) as exc:
        raise ApiError(422, "validation_error", f"cannot compute the schedule: {exc}") from None
    periods = [
        CompositePeriodOut(
            start_period=p.start_period,
            operation_mode=str(p.operation_mode.value),
            limit=p.limit,
            discharge_limit=p.discharge_limit,
            setpoint=p.setpoint,
        )
        for p in sched.periods
    ]
    return CompositeOut(
        station_id=station_id,
        evse_id=evse_id,
        schedule_start=sched.schedule_start,
        duration=sched.duration,
        charging_rate_unit=sched.charging_rate_unit.value,
        periods=periods,
        profiles_used=len(installed),
    )
