"""Request bodies of the station commands (``POST .../commands/<Action>``, see :mod:`csms.api.commands`).

Each action has a small pydantic body (snake_case) whose ``to_ocpp`` builds the OCPP request
exactly as the official schemas spell it (camelCase); plain dicts are built on purpose, since the
``ocpp`` package's dataclasses mangle some 2.1 names. :func:`next_request_id` numbers the requests
that report back asynchronously.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from csms.clock import to_rfc3339
from csms.ocpp.schemas import enum_values

from .errors import ApiError
from .params import Text, utc

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
