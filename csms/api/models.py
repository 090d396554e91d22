"""Response models of the HTTP API (they generate the OpenAPI document's schemas).

Field names are snake_case like the rest of the API; OCPP payloads that are passed through
unchanged (a command's request and response, a stored charging profile, a frame) keep the
official camelCase wire form.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list. Ask for the next page with ``offset=next_offset`` until it is null."""

    items: list[T]
    limit: int
    offset: int
    next_offset: int | None = Field(None, description="offset of the next page; null on the last page")


# ---------------------------------------------------------------------------- meta
class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    connected_stations: int
    known_stations: int


class WhoAmI(BaseModel):
    name: str
    scope: str


# ---------------------------------------------------------------------------- stations
class StationSummary(BaseModel):
    id: str
    connected: bool = Field(description="an OCPP WebSocket is open now")
    connected_since: datetime | None = None
    last_seen_at: datetime | None = None
    boot_status: str | None = Field(None, description="answer to the last BootNotification (Accepted, Pending ...)")
    boot_policy: str | None = Field(None, description="how the CSMS answers its BootNotification")
    blocked: bool = Field(False, description="refused at its handshake by the operator (HTTP 403)")
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    ocpp_version: str | None = None
    last_boot_at: datetime | None = None
    registered_at: datetime


class ConnectorInfo(BaseModel):
    connector_id: int
    status: str | None = None
    updated_at: datetime | None = None


class EvseInfo(BaseModel):
    evse_id: int
    connectors: list[ConnectorInfo] = []
    transaction_id: str | None = None
    id_token: str | None = None
    charging_state: str | None = None
    operation_mode: str | None = None
    power_import_w: float = 0.0
    power_export_w: float = 0.0
    net_export_w: float = 0.0
    soc: float | None = None
    energy_import_wh: float | None = None
    energy_export_wh: float | None = None
    metered_at: datetime | None = None
    allowed_energy_transfer: list[str] | None = None
    charging_needs: dict[str, Any] | None = None


class ClientCertificate(BaseModel):
    """Security profile 3: the TLS client certificate the station presented on this connection."""

    subject: str | None = Field(None, description="subject commonName (= the station id)")
    serial_number: str = Field(description="lower-case hex")
    not_after: datetime
    expires_in_days: float


class LiveStatus(BaseModel):
    """What the running CSMS knows about the station right now (memory, no database)."""

    station_id: str
    connected: bool
    connected_since: datetime | None = None
    last_seen: datetime | None = None
    boot: str
    ocpp_version: str | None = None
    evses: list[EvseInfo] = []
    client_certificate: ClientCertificate | None = None


class StationDetail(StationSummary):
    capabilities: dict[str, Any] | None = None
    evses: list[EvseInfo] = []
    live: LiveStatus


# ---------------------------------------------------------------------------- history
class TransactionOut(BaseModel):
    station_id: str
    transaction_id: str
    active: bool
    state: str
    evse_id: int | None = None
    connector_id: int | None = None
    id_token: str | None = None
    id_token_type: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    charging_state: str | None = None
    stopped_reason: str | None = None
    last_seq_no: int
    energy_import_wh: float | None = None
    energy_export_wh: float | None = None
    charging_needs: dict[str, Any] | None = None
    allowed_energy_transfer: list[str] | None = None
    updated_at: datetime


class TransactionEventOut(BaseModel):
    seq_no: int
    event_type: str
    trigger_reason: str | None = None
    timestamp: datetime
    offline: bool = False
    payload: dict[str, Any]
    received_at: datetime


class TransactionDetail(TransactionOut):
    events: list[TransactionEventOut]


class MeterSampleOut(BaseModel):
    timestamp: datetime
    evse_id: int
    transaction_id: str | None = None
    measurand: str
    phase: str | None = None
    location: str | None = None
    context: str | None = None
    unit: str | None = None
    value: float


class SecurityEventOut(BaseModel):
    id: int
    station_id: str
    type: str
    timestamp: datetime
    tech_info: str | None = None


class StationEventOut(BaseModel):
    id: int
    station_id: str
    kind: str = Field(description="FirmwareStatus, LogStatus, NotifyEvent, DataTransfer ...")
    timestamp: datetime
    payload: dict[str, Any]


class FrameOut(BaseModel):
    id: int
    direction: Literal["in", "out"] = Field(description="in = station to CSMS, out = CSMS to station")
    timestamp: datetime
    message_type: str = Field(description="CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND or invalid")
    message_id: str | None = None
    action: str | None = Field(None, description="the CALL's action (also on its answer when in the same page)")
    payload: Any = None
    error_code: str | None = None
    frame: str = Field(description="the raw OCPP-J text")


class FrameList(BaseModel):
    items: list[FrameOut] = Field(description="oldest first")
    last_id: int | None = Field(None, description="pass as after_id to get only newer frames")


class VariableOut(BaseModel):
    component: str
    component_instance: str = ""
    evse_id: int = -1
    connector_id: int = -1
    variable: str
    variable_instance: str = ""
    attribute_type: str = "Actual"
    value: str | None = None
    characteristics: dict[str, Any] | None = None
    updated_at: datetime


class ProfileOut(BaseModel):
    profile_id: int
    evse_id: int
    purpose: str
    stack_level: int
    source: str = Field(description="who installed it: csms (dispatch), operator (API), station (reported)")
    transaction_id: str | None = None
    installed_at: datetime
    profile: dict[str, Any] = Field(description="the OCPP ChargingProfileType (wire form)")


class CompositePeriodOut(BaseModel):
    start_period: int
    operation_mode: str
    limit: float | None = Field(None, description="import cap (>= 0); null = unconstrained")
    discharge_limit: float | None = Field(None, description="export bound (<= 0); null = unconstrained")
    setpoint: float | None = None


class CompositeOut(BaseModel):
    """The CSMS's prediction from the profiles it stored (ask the station with the
    GetCompositeSchedule command for the station's own answer)."""

    station_id: str
    evse_id: int
    schedule_start: datetime
    duration: int
    charging_rate_unit: str
    periods: list[CompositePeriodOut]
    profiles_used: int


# ---------------------------------------------------------------------------- id tokens
class IdTokenOut(BaseModel):
    id_token: str
    type: str
    status: str
    expires_at: datetime | None = None
    group_id: str | None = None
    allowed_energy_transfer: list[str] | None = None
    created_at: datetime


# ---------------------------------------------------------------------------- grid
class GridEventOut(BaseModel):
    id: str
    revision: int
    status: str
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ReportOut(BaseModel):
    event_id: str
    report: dict[str, Any]
    updated_at: datetime


# ---------------------------------------------------------------------------- commands
class CommandResult(BaseModel):
    station_id: str
    action: str
    ocpp_version: str | None = None
    request: dict[str, Any] = Field(description="the OCPP request sent (wire form)")
    response: dict[str, Any] = Field(description="the station's OCPP answer (wire form), unchanged")
    status: str | None = Field(None, description="response.status when the answer has one")
    duration_ms: float
