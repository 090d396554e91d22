"""Read models returned by :class:`csms.store.Store`.

Every query returns these frozen pydantic models, never live ORM objects: they are detached from
any session (no lazy loads, no accidental writes, safe to hand to other tasks) and serialise
directly with ``model_dump()`` / FastAPI. They are built with ``from_attributes`` from the ORM
rows. ``frozen`` makes attributes read-only; JSON fields are plain dicts/lists, so treat them as
read-only too (copy before changing). All datetimes are timezone-aware UTC.

Several HTTP API response models are made from these (:func:`csms.api.models.from_row`): a field
added here appears in the API too, in the order written here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class StationRow(_Row):
    id: str
    password_hash: str | None = None
    registered_at: datetime
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    ocpp_version: str | None = None
    boot_status: str | None = None
    last_boot_at: datetime | None = None
    last_seen_at: datetime | None = None
    connected: bool = False
    connected_since: datetime | None = None
    capabilities: dict[str, Any] | None = None
    meta: dict[str, Any] = {}
    blocked: bool = False


class StationChangeRow(_Row):
    """One entry of the registry change feed: ``kind`` is ``upsert`` or ``remove``."""

    rev: int
    station_id: str
    kind: str
    changed_at: datetime


class ConnectorStatusRow(_Row):
    station_id: str
    evse_id: int
    connector_id: int
    status: str
    updated_at: datetime


class IdTokenRow(_Row):
    id_token: str
    type: str
    status: str
    expires_at: datetime | None = None
    group_id: str | None = None
    allowed_energy_transfer: list[str] | None = None
    created_at: datetime


class TransactionRow(_Row):
    id: int
    station_id: str
    transaction_id: str
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
    meta: dict[str, Any] = {}
    updated_at: datetime

    @property
    def active(self) -> bool:
        return self.ended_at is None and self.state != "Ended"


class TransactionEventRow(_Row):
    id: int
    transaction_pk: int
    seq_no: int
    event_type: str
    trigger_reason: str | None = None
    timestamp: datetime
    offline: bool = False
    payload: dict[str, Any]
    received_at: datetime


class MeterSampleRow(_Row):
    id: int
    station_id: str
    timestamp: datetime
    evse_id: int
    transaction_id: str | None = None
    measurand: str
    phase: str | None = None
    location: str | None = None
    context: str | None = None
    unit: str | None = None
    value: float


class SecurityEventRow(_Row):
    id: int
    station_id: str
    type: str
    timestamp: datetime
    tech_info: str | None = None


class StationEventRow(_Row):
    id: int
    station_id: str
    kind: str
    timestamp: datetime
    payload: dict[str, Any]


class VariableRow(_Row):
    station_id: str
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


class FrameRow(_Row):
    id: int
    station_id: str
    direction: str
    timestamp: datetime
    frame: str


class ChargingProfileRow(_Row):
    station_id: str
    profile_id: int
    evse_id: int
    purpose: str
    stack_level: int
    source: str
    transaction_id: str | None = None
    installed_at: datetime
    profile: dict[str, Any]


class GridEventRow(_Row):
    id: str
    revision: int
    status: str
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class EventReportRow(_Row):
    event_id: str
    report: dict[str, Any]
    updated_at: datetime


class ApiTokenRow(_Row):
    id: int
    name: str
    token_hash: str
    scope: str
    created_at: datetime
    revoked: bool = False
