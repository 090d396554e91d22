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
:mod:`csms.api.command_execution`; this module holds the routes: :func:`command` makes those
that send their body's ``to_ocpp()`` as is, the others are written out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends
from pydantic import BaseModel

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


Command = Callable[[ApiContext, str, Any, float | None], Awaitable[CommandResult]]


def command(router: APIRouter, action: str, body_type: type[BaseModel], text: str) -> Command:
    """Register ``POST /<action>`` on ``router`` for a command whose request is its body's
    ``to_ocpp()``, sent as is (:func:`~csms.api.command_execution.execute`); returns the route
    function (the console calls it too)."""

    async def send(ctx: Ctx, station_id: StationId, body: Any, timeout: Timeout = None) -> CommandResult:
        return await execute(ctx, station_id, action, body.to_ocpp(), timeout)

    send.__annotations__["body"] = body_type  # the request body FastAPI validates and documents
    send.__name__ = send.__qualname__ = f"command_{action}"
    router.post(f"/{action}", **_summary(action, text))(send)
    return send


reset = command(router, "Reset", ResetBody, "reboot the station or one EVSE")


unlock = command(router, "UnlockConnector", UnlockConnectorBody, "release a stuck cable")


change_availability = command(router, "ChangeAvailability", ChangeAvailabilityBody, "make a station/EVSE (in)operative")


trigger = command(router, "TriggerMessage", TriggerMessageBody, "ask the station to send a message now")


@router.post(
    "/GetVariables",
    **_summary("GetVariables", "read device-model variables (split by the station's ItemsPerMessage)"),
)
async def get_variables(
    ctx: Ctx, station_id: StationId, body: GetVariablesBody, timeout: Timeout = None
) -> CommandResult:
    return await split_get_variables(ctx, station_id, body.to_ocpp()["getVariableData"], timeout, execute)


set_variables = command(router, "SetVariables", SetVariablesBody, "write device-model variables")


get_base_report = command(router, "GetBaseReport", GetBaseReportBody, "ask for a device-model report (NotifyReport)")


request_start = command(router, "RequestStartTransaction", RequestStartTransactionBody, "remote start")


request_stop = command(router, "RequestStopTransaction", RequestStopTransactionBody, "remote stop")


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


get_composite_schedule = command(
    router, "GetCompositeSchedule", GetCompositeScheduleBody, "the station's own composite schedule"
)


@router.post(
    "/UpdateFirmware",
    **_summary("UpdateFirmware", "start a firmware update (progress: FirmwareStatus events)"),
)
async def update_firmware(
    ctx: Ctx, station_id: StationId, body: UpdateFirmwareBody, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "UpdateFirmware", body.to_ocpp(ctx.central.now()), timeout)


get_log = command(router, "GetLog", GetLogBody, "upload a log (progress: LogStatus events)")


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


install_certificate = command(
    router, "InstallCertificate", InstallCertificateBody, "install a CA certificate on the station"
)


get_installed_certificate_ids = command(
    router, "GetInstalledCertificateIds", GetInstalledCertificateIdsBody, "the CA certificates installed on the station"
)


delete_certificate = command(router, "DeleteCertificate", DeleteCertificateBody, "remove an installed CA certificate")
