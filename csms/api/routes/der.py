"""DER control of V2X chargers (OCPP 2.1 R block). Every command is refused for a station
connected with OCPP 2.0.1 (409 ``not_in_version``); a request that breaks the official schema or
does not carry the settings field of its control type is a 422 naming the field.

- ``POST /api/v1/stations/{id}/der/controls``: SetDERControl (operator); the accepted control is
  kept by the CSMS;
- ``GET /api/v1/stations/{id}/der/controls``: the controls the CSMS set and did not clear (read);
- ``DELETE /api/v1/stations/{id}/der/controls?is_default=...``: ClearDERControl (operator);
- ``GET /api/v1/stations/{id}/der/report``: GetDERControl, then the controls of the
  ReportDERControl parts it causes (operator: it sends a command);
- ``GET /api/v1/stations/{id}/der/alarms``: the NotifyDERAlarm messages received, newest first.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from csms.blocks.der import EVENT_ALARM, EVENT_ALARM_ENDED, DerControls
from csms.domain import der
from csms.ocpp import schemas

from ..auth import require_operator, require_read
from ..command_bodies import next_request_id
from ..command_execution import Timeout, execute
from ..context import ApiContext, get_ctx
from ..errors import ApiError, error_responses
from ..models import CommandResult, StationEventOut
from ..params import Limit, Offset, StationId, Text
from .operations import _station_call

router = APIRouter(
    prefix="/api/v1/stations/{station_id}/der",
    responses=error_responses(400, 401, 403, 404, 409, 422, 502, 504),
    tags=["DER control"],
)
Ctx = Annotated[ApiContext, Depends(get_ctx)]
WRITE = [Depends(require_operator)]
READ = [Depends(require_read)]
ControlType = Literal[der.CONTROL_TYPES]  # type: ignore[valid-type]
ControlId = Annotated[Text, Field(min_length=1, max_length=36)]


class DerControlIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    control_id: ControlId | None = Field(None, description="controlId; default: a new UUID")
    control_type: ControlType = Field(description="controlType")  # type: ignore[valid-type]
    is_default: bool = Field(False, description="isDefault: a default control, used when no other is active")
    settings: dict[str, Any] = Field(
        description="the settings in OCPP 2.1 wire form: DERCurveType for curve types (VoltVar, HVMustTrip ...), "
        "else EnterServiceType, FixedPFType, FixedVarType, FreqDroopType, GradientType or LimitMaxDischargeType",
        examples=[{"priority": 1, "yUnit": "PctMaxVar", "curveData": [{"x": 92, "y": 30}, {"x": 108, "y": -30}]}],
    )

    def to_ocpp(self) -> dict[str, Any]:
        return {
            "isDefault": self.is_default,
            "controlId": self.control_id or str(uuid.uuid4()),
            "controlType": self.control_type,
            der.data_field(self.control_type): self.settings,
        }


class DerControlOut(BaseModel):
    controlId: str
    controlType: str
    isDefault: bool | None = None
    isSuperseded: bool | None = Field(None, description="replaced by a control of higher priority")
    data: dict[str, Any] = Field(description="the settings, wire form")


class DerReportOut(BaseModel):
    station_id: str
    request_id: int
    status: str = Field(description="Accepted, NotFound (nothing matches), Rejected or NotSupported")
    controls: list[DerControlOut]


def require_21(ctx: ApiContext, station_id: str, action: str) -> None:
    session = ctx.central.sessions.get(station_id)
    if session is not None and action not in schemas.actions(session.version):
        raise ApiError(
            409,
            "not_in_version",
            f"{action} is an OCPP 2.1 message; station {station_id} speaks OCPP {session.version}",
            {"action": action, "ocpp_version": session.version},
        )


def _check_schema(ctx: ApiContext, station_id: str, action: str, payload: dict[str, Any]) -> None:
    session = ctx.central.sessions.get(station_id)
    try:
        schemas.validate(session.version if session is not None else "2.1", action, "request", payload)
    except schemas.SchemaViolation as exc:
        raise ApiError(
            422, "invalid_payload", f"{action}: {exc.message}", {"field": exc.path, "ocpp_code": str(exc.code)}
        ) from None


@router.post("/controls", response_model=CommandResult, dependencies=WRITE, summary="SetDERControl (2.1)")
async def set_der_control(
    ctx: Ctx, station_id: StationId, body: DerControlIn, timeout: Timeout = None
) -> CommandResult:
    require_21(ctx, station_id, "SetDERControl")
    payload = body.to_ocpp()
    _check_schema(ctx, station_id, "SetDERControl", payload)
    try:
        der.check_set(payload)
    except der.DerError as exc:
        raise ApiError(422, "invalid_payload", f"SetDERControl: {exc.message}", {"field": exc.field}) from None
    result = await execute(ctx, station_id, "SetDERControl", payload, timeout)
    await DerControls.of(ctx.central).record_set(station_id, payload, result.response)
    return result


@router.get("/controls", response_model=list[DerControlOut], dependencies=READ, summary="Controls the CSMS set")
async def list_der_controls(ctx: Ctx, station_id: StationId) -> list[DerControlOut]:
    await ctx.require_station(station_id)
    return [DerControlOut(**c) for c in await DerControls.of(ctx.central).controls(station_id)]


@router.delete("/controls", response_model=CommandResult, dependencies=WRITE, summary="ClearDERControl (2.1)")
async def clear_der_control(
    ctx: Ctx,
    station_id: StationId,
    is_default: Annotated[bool, Query(description="isDefault: clear default (true) or scheduled (false) controls")],
    control_type: Annotated[ControlType | None, Query()] = None,  # type: ignore[valid-type]
    control_id: Annotated[str | None, Query(min_length=1, max_length=36)] = None,
    timeout: Timeout = None,
) -> CommandResult:
    require_21(ctx, station_id, "ClearDERControl")
    payload: dict[str, Any] = {"isDefault": is_default}
    if control_type:
        payload["controlType"] = control_type
    if control_id:
        payload["controlId"] = control_id
    result = await execute(ctx, station_id, "ClearDERControl", payload, timeout)
    await DerControls.of(ctx.central).record_clear(station_id, payload, result.response)
    return result


@router.get(
    "/report", response_model=DerReportOut, dependencies=WRITE, summary="GetDERControl and the station's report (2.1)"
)
async def get_der_control(
    ctx: Ctx,
    station_id: StationId,
    is_default: Annotated[bool | None, Query()] = None,
    control_type: Annotated[ControlType | None, Query()] = None,  # type: ignore[valid-type]
    control_id: Annotated[str | None, Query(min_length=1, max_length=36)] = None,
    wait_s: Annotated[float, Query(ge=0.1, le=120, description="how long to wait for the reports")] = 10.0,
) -> DerReportOut:
    require_21(ctx, station_id, "GetDERControl")
    request: dict[str, Any] = {"requestId": next_request_id()}
    if is_default is not None:
        request["isDefault"] = is_default
    if control_type:
        request["controlType"] = control_type
    if control_id:
        request["controlId"] = control_id
    _check_schema(ctx, station_id, "GetDERControl", request)
    controls = DerControls.of(ctx.central)
    response, found = await _station_call(ctx, station_id, lambda: controls.get(station_id, request, wait_s=wait_s))
    return DerReportOut(
        station_id=station_id,
        request_id=request["requestId"],
        status=response["status"],
        controls=[DerControlOut(**c) for c in found],
    )


@router.get("/alarms", response_model=list[StationEventOut], dependencies=READ, summary="NotifyDERAlarm received")
async def der_alarms(
    ctx: Ctx,
    station_id: StationId,
    ended: Annotated[bool, Query(description="also list the alarm-ended notifications")] = True,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[StationEventOut]:
    await ctx.require_station(station_id)
    rows = await ctx.store.list_station_events(station_id=station_id, kind=EVENT_ALARM, limit=limit + offset)
    if ended:
        rows += await ctx.store.list_station_events(station_id=station_id, kind=EVENT_ALARM_ENDED, limit=limit + offset)
    rows.sort(key=lambda r: (r.timestamp, r.id), reverse=True)
    return [StationEventOut.model_validate(r, from_attributes=True) for r in rows[offset : offset + limit]]
