"""Response models of the HTTP API (they generate the OpenAPI document's schemas).

Field names are snake_case like the rest of the API; OCPP payloads that are passed through
unchanged (a command's request and response, a stored charging profile, a frame) keep the
official camelCase wire form.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, create_model
from pydantic.fields import FieldInfo

from csms.store import rows

T = TypeVar("T")


def from_row(
    name: str,
    row: type[BaseModel],
    *,
    exclude: frozenset[str] | set[str] = frozenset(),
    describe: Mapping[str, str] | None = None,
    insert: Mapping[str, Mapping[str, tuple[Any, Any]]] | None = None,
) -> type[BaseModel]:
    """The response model ``name`` with the fields of the store row ``row`` (types, defaults and
    order as there: a column added to the row is in the API at once), less ``exclude``;
    ``describe`` adds a description to a field, ``insert`` adds fields the row does not have
    after the one named (``{after: {field: (type, default)}}``)."""
    fields: dict[str, Any] = {}
    for field_name, info in row.model_fields.items():
        if field_name in exclude:
            continue
        if describe and field_name in describe:
            info = FieldInfo.merge_field_infos(info, description=describe[field_name])
        fields[field_name] = (info.annotation, info)
        fields.update((insert or {}).get(field_name, {}))
    model: type[BaseModel] = create_model(name, __module__=__name__, **fields)
    return model


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
TransactionOut = from_row(
    "TransactionOut", rows.TransactionRow, exclude={"id", "meta"}, insert={"transaction_id": {"active": (bool, ...)}}
)


TransactionEventOut = from_row("TransactionEventOut", rows.TransactionEventRow, exclude={"id", "transaction_pk"})


class TransactionDetail(TransactionOut):
    events: list[TransactionEventOut]


MeterSampleOut = from_row("MeterSampleOut", rows.MeterSampleRow, exclude={"id", "station_id"})


SecurityEventOut = from_row("SecurityEventOut", rows.SecurityEventRow)


StationEventOut = from_row(
    "StationEventOut",
    rows.StationEventRow,
    describe={"kind": "FirmwareStatus, LogStatus, NotifyEvent, DataTransfer ..."},
)


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


VariableOut = from_row("VariableOut", rows.VariableRow, exclude={"station_id"})


ProfileOut = from_row(
    "ProfileOut",
    rows.ChargingProfileRow,
    exclude={"station_id"},
    describe={
        "source": "who installed it: csms (dispatch), operator (API), station (reported)",
        "profile": "the OCPP ChargingProfileType (wire form)",
    },
)


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
IdTokenOut = from_row("IdTokenOut", rows.IdTokenRow)


# ---------------------------------------------------------------------------- grid
GridEventOut = from_row("GridEventOut", rows.GridEventRow)


ReportOut = from_row("ReportOut", rows.EventReportRow)


# ---------------------------------------------------------------------------- commands
class CommandResult(BaseModel):
    station_id: str
    action: str
    ocpp_version: str | None = None
    request: dict[str, Any] = Field(description="the OCPP request sent (wire form)")
    response: dict[str, Any] = Field(description="the station's OCPP answer (wire form), unchanged")
    status: str | None = Field(None, description="response.status when the answer has one")
    duration_ms: float
