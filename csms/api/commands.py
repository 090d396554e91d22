"""Station commands: ``POST /api/v1/stations/{station_id}/commands/<Action>`` (operator scope).

Each action has a small pydantic body (snake_case) mapped to the OCPP request exactly as the
official schemas spell it (camelCase); plain dicts are built on purpose, since the ``ocpp``
package's dataclasses mangle some 2.1 names. The request is checked against the station's
negotiated OCPP version before it is sent, so a schema violation is a 422 naming the OCPP field.

The answer is the station's OCPP response, unchanged, or one of these errors:

=====  ====================  ===============================================================
404    unknown_station       no such station (``details.close_matches`` lists similar ids)
409    station_offline       the station has no open connection (or lost it during the call)
409    not_allowed           the station's state forbids it (e.g. boot Pending: B02)
422    invalid_payload       the OCPP request breaks the schema (``details.field``)
502    station_callerror     the station answered CALLERROR (``details.ocpp_code``)
502    station_bad_response  the station's answer breaks the schema
504    station_timeout       no answer within the timeout
=====  ====================  ===============================================================

The request bodies are in :mod:`csms.api.command_bodies`, the sending and the error mapping in
:mod:`csms.api.command_execution`; this module holds the routes.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends

from .auth import require_operator
from .command_bodies import (
    ChangeAvailabilityBody,
    ClearChargingProfileBody,
    DeleteCertificateBody,
    GetBaseReportBody,
    GetCompositeScheduleBody,
    GetInstalledCertificateIdsBody,
    GetLogBody,
    GetVariablesBody,
    InstallCertificateBody,
    RequestStartTransactionBody,
    RequestStopTransactionBody,
    ResetBody,
    SetChargingProfileBody,
    SetVariablesBody,
    TriggerMessageBody,
    UnlockConnectorBody,
    UpdateFirmwareBody,
)
from .command_execution import Timeout, _accepted, _sync_installed, execute
from .context import ApiContext, get_ctx
from .device_model import get_variables as split_get_variables  # B06.FR.05
from .errors import error_responses
from .models import CommandResult
from .params import StationId

log = structlog.get_logger("csms.api")

router = APIRouter(
    prefix="/api/v1/stations/{station_id}/commands",
    dependencies=[Depends(require_operator)],
    responses=error_responses(400, 401, 403, 404, 409, 422, 502, 504),
    tags=["commands"],
)
Ctx = Annotated[ApiContext, Depends(get_ctx)]


def _summary(action: str, text: str) -> dict[str, Any]:
    return {"summary": f"{action}: {text}", "response_model": CommandResult, "operation_id": f"command_{action}"}


@router.post("/Reset", **_summary("Reset", "reboot the station or one EVSE"))
async def reset(ctx: Ctx, station_id: StationId, body: ResetBody, timeout: Timeout = None) -> CommandResult:
    return await execute(ctx, station_id, "Reset", body.to_ocpp(), timeout)


@router.post("/UnlockConnector", **_summary("UnlockConnector", "release a stuck cable"))
async def unlock(ctx: Ctx, station_id: StationId, body: UnlockConnectorBody, timeout: Timeout = None) -> CommandResult:
    return await execute(ctx, station_id, "UnlockConnector", body.to_ocpp(), timeout)


@router.post("/ChangeAvailability", **_summary("ChangeAvailability", "make a station/EVSE (in)operative"))
async def change_availability(
    ctx: Ctx, station_id: StationId, body: ChangeAvailabilityBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "ChangeAvailability", body.to_ocpp(), timeout)


@router.post("/TriggerMessage", **_summary("TriggerMessage", "ask the station to send a message now"))
async def trigger(ctx: Ctx, station_id: StationId, body: TriggerMessageBody, timeout: Timeout = None) -> CommandResult:
    return await execute(ctx, station_id, "TriggerMessage", body.to_ocpp(), timeout)


@router.post(
    "/GetVariables",
    **_summary("GetVariables", "read device-model variables (split by the station's ItemsPerMessage)"),
)
async def get_variables(
    ctx: Ctx, station_id: StationId, body: GetVariablesBody, timeout: Timeout = None
) -> CommandResult:
    return await split_get_variables(ctx, station_id, body.to_ocpp()["getVariableData"], timeout, execute)


@router.post("/SetVariables", **_summary("SetVariables", "write device-model variables"))
async def set_variables(
    ctx: Ctx, station_id: StationId, body: SetVariablesBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "SetVariables", body.to_ocpp(), timeout)


@router.post("/GetBaseReport", **_summary("GetBaseReport", "ask for a device-model report (NotifyReport)"))
async def get_base_report(
    ctx: Ctx, station_id: StationId, body: GetBaseReportBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "GetBaseReport", body.to_ocpp(), timeout)


@router.post("/RequestStartTransaction", **_summary("RequestStartTransaction", "remote start"))
async def request_start(
    ctx: Ctx, station_id: StationId, body: RequestStartTransactionBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "RequestStartTransaction", body.to_ocpp(), timeout)


@router.post("/RequestStopTransaction", **_summary("RequestStopTransaction", "remote stop"))
async def request_stop(
    ctx: Ctx, station_id: StationId, body: RequestStopTransactionBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "RequestStopTransaction", body.to_ocpp(), timeout)


@router.post(
    "/SetChargingProfile",
    **_summary("SetChargingProfile", "install a charging profile (recorded when Accepted)"),
)
async def set_charging_profile(
    ctx: Ctx, station_id: StationId, body: SetChargingProfileBody, timeout: Timeout = None
) -> CommandResult:
    request = body.to_ocpp()
    result = await execute(ctx, station_id, "SetChargingProfile", request, timeout)
    if _accepted(result):
        try:
            await ctx.store.put_profile(
                station_id, body.evse_id, body.charging_profile, source="operator", installed_at=ctx.central.now()
            )
            _sync_installed(ctx, station_id, set_request=request)
        except Exception:
            log.exception("accepted profile could not be recorded", station=station_id)
        ctx.central.emit(
            "profile",
            station_id,
            {"evse_id": body.evse_id, "profile_id": body.charging_profile.get("id"), "set": True, "source": "operator"},
        )
    return result


@router.post(
    "/ClearChargingProfile",
    **_summary("ClearChargingProfile", "remove charging profiles (record updated when Accepted)"),
)
async def clear_charging_profile(
    ctx: Ctx, station_id: StationId, body: ClearChargingProfileBody, timeout: Timeout = None
) -> CommandResult:
    result = await execute(ctx, station_id, "ClearChargingProfile", body.to_ocpp(), timeout)
    if _accepted(result):
        if body.charging_profile_id is not None:
            await ctx.store.delete_profiles(station_id, profile_id=body.charging_profile_id)
        else:
            await ctx.store.delete_profiles(
                station_id, evse_id=body.evse_id, purpose=body.purpose, stack_level=body.stack_level
            )
        _sync_installed(ctx, station_id, clear=body)
        ctx.central.emit("profile", station_id, {"evse_id": body.evse_id, "set": False, "source": "operator"})
    return result


@router.post("/GetCompositeSchedule", **_summary("GetCompositeSchedule", "the station's own composite schedule"))
async def get_composite_schedule(
    ctx: Ctx, station_id: StationId, body: GetCompositeScheduleBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "GetCompositeSchedule", body.to_ocpp(), timeout)


@router.post(
    "/UpdateFirmware",
    **_summary("UpdateFirmware", "start a firmware update (progress: FirmwareStatus events)"),
)
async def update_firmware(
    ctx: Ctx, station_id: StationId, body: UpdateFirmwareBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "UpdateFirmware", body.to_ocpp(ctx.central.now()), timeout)


@router.post("/GetLog", **_summary("GetLog", "upload a log (progress: LogStatus events)"))
async def get_log(ctx: Ctx, station_id: StationId, body: GetLogBody, timeout: Timeout = None) -> CommandResult:
    return await execute(ctx, station_id, "GetLog", body.to_ocpp(), timeout)


COMMANDS = (
    "Reset",
    "UnlockConnector",
    "ChangeAvailability",
    "TriggerMessage",
    "GetVariables",
    "SetVariables",
    "GetBaseReport",
    "RequestStartTransaction",
    "RequestStopTransaction",
    "SetChargingProfile",
    "ClearChargingProfile",
    "GetCompositeSchedule",
    "UpdateFirmware",
    "GetLog",
)


@router.post("/InstallCertificate", **_summary("InstallCertificate", "install a CA certificate on the station"))
async def install_certificate(
    ctx: Ctx, station_id: StationId, body: InstallCertificateBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "InstallCertificate", body.to_ocpp(), timeout)


@router.post(
    "/GetInstalledCertificateIds",
    **_summary("GetInstalledCertificateIds", "the CA certificates installed on the station"),
)
async def get_installed_certificate_ids(
    ctx: Ctx, station_id: StationId, body: GetInstalledCertificateIdsBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "GetInstalledCertificateIds", body.to_ocpp(), timeout)


@router.post("/DeleteCertificate", **_summary("DeleteCertificate", "remove an installed CA certificate"))
async def delete_certificate(
    ctx: Ctx, station_id: StationId, body: DeleteCertificateBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "DeleteCertificate", body.to_ocpp(), timeout)
