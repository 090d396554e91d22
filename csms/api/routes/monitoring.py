"""Variable monitoring and alerts (OCPP N block).

- ``POST /api/v1/stations/{id}/monitors``: SetVariableMonitoring (one or more monitors);
- ``GET /api/v1/stations/{id}/monitors``: GetMonitoringReport and the monitors the station
  reports in NotifyMonitoringReport (``criteria``, ``component`` / ``variable`` filters);
- ``DELETE /api/v1/stations/{id}/monitors?id=..``: ClearVariableMonitoring;
- ``POST .../commands/SetMonitoringBase | SetMonitoringLevel``;
- ``GET /api/v1/alerts``: alerts raised from NotifyEvent, every station, newest first
  (``/stations/{id}/events?kind=NotifyEvent`` has the raw events).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from csms.blocks.monitoring import EVENT_ALERT, Monitoring
from csms.ocpp.schemas import enum_values

from ..auth import require_operator, require_read
from ..command_bodies import VariableRef, next_request_id
from ..command_execution import Timeout, execute
from ..context import ApiContext, get_ctx
from ..errors import ApiError, error_responses
from ..models import CommandResult, StationEventOut
from ..params import Limit, Offset, StationId, Text
from .operations import _station_call

router = APIRouter(prefix="/api/v1", responses=error_responses(400, 401, 403, 404, 409, 422, 502, 504))
Ctx = Annotated[ApiContext, Depends(get_ctx)]
WRITE = [Depends(require_operator)]
READ = [Depends(require_read)]

MonitorType = Literal[enum_values("2.1", "SetVariableMonitoringRequest", "MonitorEnumType")]  # type: ignore[valid-type]
Criterion = Literal[enum_values("2.1", "GetMonitoringReportRequest", "MonitoringCriterionEnumType")]  # type: ignore[valid-type]
Severity = Annotated[int, Field(ge=0, le=9, description="0 Danger ... 5 Alert ... 9 Debug")]


class MonitorIn(VariableRef):
    type: MonitorType
    value: float = Field(description="threshold, delta, or interval in seconds (Periodic)")
    severity: Severity = 5
    id: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(None, description="replace this monitor")
    transaction: bool = Field(False, description="only during a transaction")

    def to_ocpp(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value,
            "type": self.type,
            "severity": self.severity,
            "component": self._component(),
            "variable": self._variable(),
        }
        if self.id is not None:
            out["id"] = self.id
        if self.transaction:
            out["transaction"] = True
        return out


class MonitorsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monitors: list[MonitorIn] = Field(min_length=1, max_length=100)


class MonitoringReport(BaseModel):
    station_id: str
    request_id: int
    status: str = Field(description="Accepted, EmptyResultSet, Rejected, NotSupported")
    monitors: list[dict[str, Any]] = Field(description="OCPP MonitoringDataType, wire form")


class MonitoringBaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    monitoring_base: Literal[enum_values("2.1", "SetMonitoringBaseRequest", "MonitoringBaseEnumType")]  # type: ignore[valid-type]


class MonitoringLevelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    severity: Severity


@router.post(
    "/stations/{station_id}/monitors",
    response_model=CommandResult,
    dependencies=WRITE,
    tags=["monitoring"],
    summary="SetVariableMonitoring (N04)",
)
async def set_monitors(ctx: Ctx, station_id: StationId, body: MonitorsIn, timeout: Timeout = None) -> CommandResult:
    payload = {"setMonitoringData": [m.to_ocpp() for m in body.monitors]}
    result = await execute(ctx, station_id, "SetVariableMonitoring", payload, timeout)
    Monitoring.of(ctx.central).remember_set(station_id, payload, result.response)
    return result


@router.get(
    "/stations/{station_id}/monitors",
    response_model=MonitoringReport,
    dependencies=WRITE,
    tags=["monitoring"],
    summary="GetMonitoringReport and the monitors reported (N02)",
)
async def get_monitors(
    ctx: Ctx,
    station_id: StationId,
    criteria: Annotated[list[Criterion] | None, Query()] = None,
    component: Annotated[Text | None, Query(max_length=50)] = None,
    variable: Annotated[Text | None, Query(max_length=50)] = None,
    evse_id: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    wait_s: Annotated[float, Query(ge=0.1, le=120)] = 10.0,
) -> MonitoringReport:
    request: dict[str, Any] = {"requestId": next_request_id()}
    if criteria:
        request["monitoringCriteria"] = criteria
    if component:
        comp: dict[str, Any] = {"name": component}
        if evse_id is not None:
            comp["evse"] = {"id": evse_id}
        cv: dict[str, Any] = {"component": comp}
        if variable:
            cv["variable"] = {"name": variable}
        request["componentVariable"] = [cv]
    elif variable:
        raise ApiError(422, "validation_error", "variable needs component")
    mon = Monitoring.of(ctx.central)
    response, monitors = await _station_call(ctx, station_id, lambda: mon.report(station_id, request, wait_s=wait_s))
    return MonitoringReport(
        station_id=station_id, request_id=request["requestId"], status=response["status"], monitors=monitors
    )


@router.delete(
    "/stations/{station_id}/monitors",
    response_model=CommandResult,
    dependencies=WRITE,
    tags=["monitoring"],
    summary="ClearVariableMonitoring (N06)",
)
async def clear_monitors(
    ctx: Ctx,
    station_id: StationId,
    id: Annotated[list[Annotated[int, Field(ge=0, le=2**31 - 1)]], Query(min_length=1, max_length=1000)],
    timeout: Timeout = None,
) -> CommandResult:
    result = await execute(ctx, station_id, "ClearVariableMonitoring", {"id": id}, timeout)
    Monitoring.of(ctx.central).forget(station_id, id, result.response)
    return result


@router.post(
    "/stations/{station_id}/commands/SetMonitoringBase",
    response_model=CommandResult,
    dependencies=WRITE,
    tags=["commands"],
    summary="SetMonitoringBase: All, FactoryDefault, HardWiredOnly (N03)",
)
async def set_monitoring_base(
    ctx: Ctx, station_id: StationId, body: MonitoringBaseBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "SetMonitoringBase", {"monitoringBase": body.monitoring_base}, timeout)


@router.post(
    "/stations/{station_id}/commands/SetMonitoringLevel",
    response_model=CommandResult,
    dependencies=WRITE,
    tags=["commands"],
    summary="SetMonitoringLevel: report events of this severity or more severe (N05)",
)
async def set_monitoring_level(
    ctx: Ctx, station_id: StationId, body: MonitoringLevelBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "SetMonitoringLevel", {"severity": body.severity}, timeout)


@router.get("/alerts", response_model=list[StationEventOut], dependencies=READ, tags=["monitoring"], summary="Alerts")
async def alerts(
    ctx: Ctx,
    station_id: Annotated[str | None, Query(max_length=48)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[StationEventOut]:
    rows = await ctx.store.list_station_events(station_id=station_id, kind=EVENT_ALERT, limit=limit, offset=offset)
    return [StationEventOut.model_validate(r, from_attributes=True) for r in rows]
