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
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
import structlog
from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from csms.central import StationOffline, UnknownStation
from csms.clock import to_rfc3339
from csms.ocpp.errors import CallErrorReceived, CallTimeout, ConnectionLost, InvalidPayload, NotAllowed
from csms.ocpp.schemas import enum_values

from .auth import require_operator
from .context import ApiContext, get_ctx
from .device_model import get_variables as split_get_variables  # B06.FR.05
from .errors import ApiError, error_responses
from .models import CommandResult
from .params import StationId, Text, utc

log = structlog.get_logger("csms.api")

router = APIRouter(
    prefix="/api/v1/stations/{station_id}/commands",
    dependencies=[Depends(require_operator)],
    responses=error_responses(400, 401, 403, 404, 409, 422, 502, 504),
    tags=["commands"],
)
Ctx = Annotated[ApiContext, Depends(get_ctx)]
Timeout = Annotated[
    float | None,
    Query(ge=0.1, le=300, description="seconds to wait for the station's answer (default: server.call_timeout)"),
]

_request_ids = itertools.count(int(time.time()) % 1_000_000 * 1000 + 1)


def next_request_id() -> int:
    """A request id for GetBaseReport / UpdateFirmware / GetLog (unique within the process)."""
    return next(_request_ids)


Int = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
EvseId = Annotated[int, Field(ge=0, le=2**31 - 1, description="EVSE id (0 = the whole station)")]
ConnectorId = Annotated[int, Field(ge=0, le=2**31 - 1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_ocpp(self) -> dict[str, Any]:  # pragma: no cover - every body overrides it
        raise NotImplementedError


def _evse(evse_id: int | None, connector_id: int | None) -> dict[str, Any] | None:
    if evse_id is None:
        if connector_id is not None:
            raise ApiError(422, "validation_error", "connector_id needs evse_id", {"field": "connector_id"})
        return None
    evse: dict[str, Any] = {"id": evse_id}
    if connector_id is not None:
        evse["connectorId"] = connector_id
    return evse


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _ts(value: datetime | None, name: str) -> str | None:
    v = utc(value, name)
    return None if v is None else to_rfc3339(v)


# ---------------------------------------------------------------------------- bodies
class ResetBody(_Body):
    type: Literal[enum_values("2.1", "ResetRequest", "ResetEnumType")] = Field(  # type: ignore[valid-type]
        description="Immediate: now; OnIdle: after transactions end; ImmediateAndResume: 2.1 only"
    )
    evse_id: EvseId | None = Field(None, description="reset only this EVSE")

    def to_ocpp(self) -> dict[str, Any]:
        return _drop_none({"type": self.type, "evseId": self.evse_id})


class UnlockConnectorBody(_Body):
    evse_id: EvseId
    connector_id: ConnectorId = 1

    def to_ocpp(self) -> dict[str, Any]:
        return {"evseId": self.evse_id, "connectorId": self.connector_id}


class ChangeAvailabilityBody(_Body):
    operational_status: Literal[enum_values("2.1", "ChangeAvailabilityRequest", "OperationalStatusEnumType")]  # type: ignore[valid-type]
    evse_id: EvseId | None = Field(None, description="omit for the whole station")
    connector_id: ConnectorId | None = None

    def to_ocpp(self) -> dict[str, Any]:
        return _drop_none(
            {"operationalStatus": self.operational_status, "evse": _evse(self.evse_id, self.connector_id)}
        )


# the 2.1 list is a superset of 2.0.1's; the station's own version is checked before sending
MessageTrigger = Literal[enum_values("2.1", "TriggerMessageRequest", "MessageTriggerEnumType")]  # type: ignore[valid-type]


class TriggerMessageBody(_Body):
    requested_message: MessageTrigger
    evse_id: EvseId | None = None
    connector_id: ConnectorId | None = None
    custom_trigger: Annotated[Text, Field(max_length=50)] | None = Field(None, description="2.1 CustomTrigger name")

    def to_ocpp(self) -> dict[str, Any]:
        return _drop_none(
            {
                "requestedMessage": self.requested_message,
                "evse": _evse(self.evse_id, self.connector_id),
                "customTrigger": self.custom_trigger,
            }
        )


Attribute = Literal[enum_values("2.1", "GetVariablesRequest", "AttributeEnumType")]  # type: ignore[valid-type]


class VariableRef(_Body):
    component: Text = Field(description="component name, e.g. OCPPCommCtrlr")
    variable: Text = Field(description="variable name, e.g. HeartbeatInterval")
    component_instance: Text | None = None
    variable_instance: Text | None = None
    evse_id: EvseId | None = None
    connector_id: ConnectorId | None = None
    attribute_type: Attribute | None = None

    def _component(self) -> dict[str, Any]:
        return _drop_none(
            {
                "name": self.component,
                "instance": self.component_instance,
                "evse": _evse(self.evse_id, self.connector_id),
            }
        )

    def _variable(self) -> dict[str, Any]:
        return _drop_none({"name": self.variable, "instance": self.variable_instance})

    def get_data(self) -> dict[str, Any]:
        return _drop_none(
            {"component": self._component(), "variable": self._variable(), "attributeType": self.attribute_type}
        )


class VariableSet(VariableRef):
    value: Text = Field(description="the new value (attributeValue)")

    def set_data(self) -> dict[str, Any]:
        return _drop_none(
            {
                "attributeValue": self.value,
                "attributeType": self.attribute_type,
                "component": self._component(),
                "variable": self._variable(),
            }
        )


class GetVariablesBody(_Body):
    variables: list[VariableRef] = Field(min_length=1, max_length=100)

    def to_ocpp(self) -> dict[str, Any]:
        return {"getVariableData": [v.get_data() for v in self.variables]}


class SetVariablesBody(_Body):
    variables: list[VariableSet] = Field(min_length=1, max_length=100)

    def to_ocpp(self) -> dict[str, Any]:
        return {"setVariableData": [v.set_data() for v in self.variables]}


class GetBaseReportBody(_Body):
    report_base: Literal[enum_values("2.1", "GetBaseReportRequest", "ReportBaseEnumType")] = "FullInventory"  # type: ignore[valid-type]
    request_id: Int | None = Field(None, description="default: allocated by the CSMS")

    def to_ocpp(self) -> dict[str, Any]:
        rid = self.request_id if self.request_id is not None else next_request_id()
        return {"requestId": rid, "reportBase": self.report_base}


class RequestStartTransactionBody(_Body):
    id_token: Text = Field(description="idToken.idToken")
    id_token_type: Text = Field("Central", description="idToken.type, e.g. Central, ISO14443, eMAID")
    evse_id: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    remote_start_id: Int | None = Field(None, description="default: allocated by the CSMS")
    group_id_token: Text | None = None
    group_id_token_type: Text = "Central"
    charging_profile: dict[str, Any] | None = Field(None, description="OCPP ChargingProfileType (TxProfile), wire form")

    def to_ocpp(self) -> dict[str, Any]:
        return _drop_none(
            {
                "idToken": {"idToken": self.id_token, "type": self.id_token_type},
                "remoteStartId": self.remote_start_id if self.remote_start_id is not None else next_request_id(),
                "evseId": self.evse_id,
                "groupIdToken": (
                    {"idToken": self.group_id_token, "type": self.group_id_token_type} if self.group_id_token else None
                ),
                "chargingProfile": self.charging_profile,
            }
        )


class RequestStopTransactionBody(_Body):
    transaction_id: Text

    def to_ocpp(self) -> dict[str, Any]:
        return {"transactionId": self.transaction_id}


class SetChargingProfileBody(_Body):
    evse_id: EvseId
    charging_profile: dict[str, Any] = Field(description="OCPP ChargingProfileType, wire form (camelCase)")

    def to_ocpp(self) -> dict[str, Any]:
        return {"evseId": self.evse_id, "chargingProfile": self.charging_profile}


ProfilePurpose = Literal[enum_values("2.1", "SetChargingProfileRequest", "ChargingProfilePurposeEnumType")]  # type: ignore[valid-type]


class ClearChargingProfileBody(_Body):
    charging_profile_id: Int | None = Field(None, description="clear this profile (the criteria are then ignored)")
    evse_id: EvseId | None = None
    purpose: ProfilePurpose | None = None
    stack_level: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None

    def to_ocpp(self) -> dict[str, Any]:
        criteria = _drop_none(
            {"evseId": self.evse_id, "chargingProfilePurpose": self.purpose, "stackLevel": self.stack_level}
        )
        return _drop_none({"chargingProfileId": self.charging_profile_id, "chargingProfileCriteria": criteria or None})


class GetCompositeScheduleBody(_Body):
    evse_id: EvseId
    duration: Annotated[int, Field(ge=1, le=2**31 - 1, description="seconds")]
    charging_rate_unit: Literal["W", "A"] | None = None

    def to_ocpp(self) -> dict[str, Any]:
        return _drop_none(
            {"duration": self.duration, "evseId": self.evse_id, "chargingRateUnit": self.charging_rate_unit}
        )


class UpdateFirmwareBody(_Body):
    location: Text = Field(description="URI of the firmware image")
    retrieve_at: AwareDatetime | None = Field(None, description="when to download (default: now)")
    install_at: AwareDatetime | None = None
    signature: Text | None = Field(None, description="Base64 firmware signature")
    signing_certificate: Text | None = Field(None, description="PEM certificate")
    retries: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    retry_interval: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    request_id: Int | None = Field(None, description="default: allocated by the CSMS")

    def to_ocpp(self, now: datetime) -> dict[str, Any]:
        firmware = _drop_none(
            {
                "location": self.location,
                "retrieveDateTime": _ts(self.retrieve_at, "retrieve_at") or to_rfc3339(now),
                "installDateTime": _ts(self.install_at, "install_at"),
                "signingCertificate": self.signing_certificate,
                "signature": self.signature,
            }
        )
        return _drop_none(
            {
                "requestId": self.request_id if self.request_id is not None else next_request_id(),
                "firmware": firmware,
                "retries": self.retries,
                "retryInterval": self.retry_interval,
            }
        )


class GetLogBody(_Body):
    remote_location: Text = Field(description="URL the station uploads the log to")
    log_type: Literal[enum_values("2.1", "GetLogRequest", "LogEnumType")] = "DiagnosticsLog"  # type: ignore[valid-type]
    oldest: AwareDatetime | None = Field(None, description="oldestTimestamp")
    latest: AwareDatetime | None = Field(None, description="latestTimestamp")
    retries: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    retry_interval: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    request_id: Int | None = Field(None, description="default: allocated by the CSMS")

    def to_ocpp(self) -> dict[str, Any]:
        log_params = _drop_none(
            {
                "remoteLocation": self.remote_location,
                "oldestTimestamp": _ts(self.oldest, "oldest"),
                "latestTimestamp": _ts(self.latest, "latest"),
            }
        )
        return _drop_none(
            {
                "logType": self.log_type,
                "requestId": self.request_id if self.request_id is not None else next_request_id(),
                "log": log_params,
                "retries": self.retries,
                "retryInterval": self.retry_interval,
            }
        )


# ---------------------------------------------------------------------------- execution
InstallType = Literal[enum_values("2.1", "InstallCertificateRequest", "InstallCertificateUseEnumType")]  # type: ignore[valid-type]
CertificateIdType = Literal[  # type: ignore[valid-type]
    enum_values("2.1", "GetInstalledCertificateIdsRequest", "GetCertificateIdUseEnumType")
]
HashAlgorithm = Literal[enum_values("2.1", "DeleteCertificateRequest", "HashAlgorithmEnumType")]  # type: ignore[valid-type]
Hex = Annotated[str, Field(min_length=1, pattern="^[0-9a-fA-F]+$")]


class InstallCertificateBody(_Body):
    certificate_type: InstallType
    certificate: str = Field(min_length=1, max_length=10_000, description="the CA certificate, PEM")

    def to_ocpp(self) -> dict[str, Any]:
        return {"certificateType": self.certificate_type, "certificate": self.certificate}


class GetInstalledCertificateIdsBody(_Body):
    certificate_type: list[CertificateIdType] | None = Field(None, description="only these types (default: all)")

    def to_ocpp(self) -> dict[str, Any]:
        return _drop_none({"certificateType": self.certificate_type or None})


class CertificateHashDataBody(BaseModel):
    """OCPP CertificateHashDataType, as GetInstalledCertificateIds reports it."""

    model_config = ConfigDict(extra="forbid")
    hash_algorithm: HashAlgorithm = "SHA256"
    issuer_name_hash: Annotated[str, Field(max_length=128)] = Field(description="hex")
    issuer_key_hash: Annotated[str, Field(max_length=128)] = Field(description="hex")
    serial_number: Annotated[Hex, Field(max_length=40)] = Field(description="hex, no leading zeros")


class DeleteCertificateBody(_Body):
    certificate_hash_data: CertificateHashDataBody

    def to_ocpp(self) -> dict[str, Any]:
        h = self.certificate_hash_data
        return {
            "certificateHashData": {
                "hashAlgorithm": h.hash_algorithm,
                "issuerNameHash": h.issuer_name_hash,
                "issuerKeyHash": h.issuer_key_hash,
                "serialNumber": h.serial_number,
            }
        }


def _offline(ctx: ApiContext, station_id: str, message: str | None = None) -> ApiError:
    state = ctx.central.states.get(station_id)
    last_seen = state.last_seen if state is not None else None
    seen = f" (last seen {to_rfc3339(last_seen)})" if last_seen is not None else " (never connected)"
    return ApiError(
        409,
        "station_offline",
        message or f"station {station_id} is offline{seen}; commands work again once it reconnects",
        {"station_id": station_id, "last_seen": to_rfc3339(last_seen) if last_seen else None},
    )


async def execute(
    ctx: ApiContext, station_id: str, action: str, payload: dict[str, Any], timeout: float | None = None
) -> CommandResult:
    """Send one OCPP CALL and map every failure onto the API's error codes."""
    central = ctx.central
    version = await central.locate(station_id)  # here or, in cluster mode, on another node
    if version is None:
        if not central.known(station_id) and await ctx.store.get_station(station_id) is None:
            raise ctx.unknown_station(station_id)
        raise _offline(ctx, station_id)
    # validated against the negotiated version's schema and encoded once, by the station's RPC
    # endpoint (here or on the node holding the station); a bad request fails before it is sent
    started = time.perf_counter()
    try:
        response = await central.call(station_id, action, payload, timeout=timeout)
    except orjson.JSONEncodeError as exc:
        raise ApiError(422, "invalid_payload", f"{action}: cannot encode the request: {exc}") from None
    except InvalidPayload as exc:
        if not exc.request:
            raise ApiError(
                502,
                "station_bad_response",
                f"station {station_id} answered {action} with a payload that breaks the schema: {exc.message}",
                {"action": action, "ocpp_code": str(exc.code)},
            ) from None
        raise ApiError(
            422,
            "invalid_payload",
            f"{action} request breaks the OCPP {version} schema at '{exc.path}': {exc.message}",
            {"field": exc.path, "ocpp_code": str(exc.code), "action": action, "ocpp_version": version},
        ) from None
    except UnknownStation:
        raise ctx.unknown_station(station_id) from None
    except StationOffline:
        raise _offline(ctx, station_id) from None
    except ConnectionLost:
        raise _offline(ctx, station_id, f"station {station_id} disconnected before answering {action}") from None
    except NotAllowed as exc:
        boot = central.state(station_id).boot.value
        raise ApiError(
            409,
            "not_allowed",
            f"{exc}; accept the station first (boot policy) or wait for its boot to be Accepted",
            {"action": action, "boot": boot},
        ) from None
    except CallTimeout as exc:
        raise ApiError(
            504,
            "station_timeout",
            f"station {station_id} did not answer {action} within {exc.timeout:g} s",
            {"action": action, "timeout_s": exc.timeout},
        ) from None
    except CallErrorReceived as exc:
        raise ApiError(
            502,
            "station_callerror",
            f"station {station_id} answered {action} with CALLERROR {exc.code}: "
            f"{exc.description or '(no description)'}",
            {"action": action, "ocpp_code": exc.code, "description": exc.description, "ocpp_details": exc.details},
        ) from None
    ms = (time.perf_counter() - started) * 1000
    status = response.get("status") if isinstance(response.get("status"), str) else None
    log.info("command", station=station_id, action=action, status=status, ms=round(ms, 1))
    return CommandResult(
        station_id=station_id,
        action=action,
        ocpp_version=version,
        request=payload,
        response=response,
        status=status,
        duration_ms=round(ms, 3),
    )


def _accepted(result: CommandResult) -> bool:
    return result.status == "Accepted"


def _sync_installed(
    ctx: ApiContext,
    station_id: str,
    *,
    set_request: dict[str, Any] | None = None,
    clear: ClearChargingProfileBody | None = None,
) -> None:
    """Keep the smart-charging layer's in-memory list of installed profiles (``central.charging``,
    used for K01 checks when dispatch builds profiles) in step with what an operator changed."""
    charging = getattr(ctx.central, "charging", None)
    installed = getattr(charging, "installed", None)
    if not isinstance(installed, dict):
        return
    current = list(installed.get(station_id, []))
    if set_request is not None:
        from csms.smartcharging.k01 import apply_set_charging_profile

        installed[station_id] = apply_set_charging_profile(set_request, current)
    elif clear is not None:

        def cleared(p: Any) -> bool:
            prof = p.profile
            if clear.charging_profile_id is not None:
                return bool(prof.id == clear.charging_profile_id)
            return (
                (clear.evse_id is None or p.evse_id == clear.evse_id)
                and (clear.purpose is None or str(prof.purpose) == clear.purpose)
                and (clear.stack_level is None or prof.stack_level == clear.stack_level)
            )

        installed[station_id] = [p for p in current if not cleared(p)]


# ---------------------------------------------------------------------------- routes
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
