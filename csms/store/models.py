"""SQLAlchemy 2 declarative models: the store's schema.

Design notes:

* The schema is created and evolved by the Alembic migrations in ``csms/store/migrations``
  (never ``metadata.create_all``); a test compares the migrated database with this module so the
  two cannot drift apart.
* ``station_id`` columns deliberately carry no foreign key. Frames, meter values and events may be
  recorded for a station before (or without) its row existing, and history must outlive a deleted
  station. The only foreign key is ``transaction_events.transaction_pk`` (cascade delete).
* High-volume tables (``meter_samples``, ``frame_segments``) use a surrogate integer key and are
  indexed for the reads the CSMS does: per station by time, per transaction, newest first.
* A fixed constraint naming convention keeps Alembic batch operations on SQLite deterministic.
* ``station_changes`` is the registry's change feed: every registration, credential, boot policy,
  block or removal of a station appends a row (same transaction as the change) with an increasing
  ``rev``, so every running CSMS can follow the registry with ``WHERE rev > last``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .types import BigIntPK, JSONType, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Station ids are the last path segment of the WebSocket URL (OCPP 2.0.1: identifier <= 48).
STATION_ID_LEN = 48


def _empty_dict() -> dict[str, Any]:
    return {}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Station(Base):
    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(STATION_ID_LEN), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    vendor: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str | None] = mapped_column(String(255))
    serial_number: Mapped[str | None] = mapped_column(String(255))
    firmware_version: Mapped[str | None] = mapped_column(String(255))
    ocpp_version: Mapped[str | None] = mapped_column(String(8))
    boot_status: Mapped[str | None] = mapped_column(String(16))
    last_boot_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    connected: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    connected_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    capabilities: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=_empty_dict)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class StationChange(Base):
    """One change to the station registry (``kind`` upsert or remove), for the running servers.

    ``rev`` only ever grows: SQLite's ``AUTOINCREMENT`` never reuses a number even after the
    newest rows are pruned, PostgreSQL's sequence never goes back. Rows say *which* station
    changed; readers reload its current row (so applying a change twice, or late, is harmless).
    """

    __tablename__ = "station_changes"
    __table_args__ = (Index(None, "changed_at"), {"sqlite_autoincrement": True})

    rev: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(STATION_ID_LEN))
    kind: Mapped[str] = mapped_column(String(8))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConnectorStatus(Base):
    __tablename__ = "connector_status"

    station_id: Mapped[str] = mapped_column(String(STATION_ID_LEN), primary_key=True)
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdToken(Base):
    __tablename__ = "id_tokens"

    id_token: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    group_id: Mapped[str | None] = mapped_column(String(255))
    allowed_energy_transfer: Mapped[list[str] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Transaction(Base):
    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint("station_id", "transaction_id"),
        Index(None, "station_id", "evse_id", "ended_at"),
        Index(None, "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(STATION_ID_LEN))
    transaction_id: Mapped[str] = mapped_column(String(64))
    evse_id: Mapped[int | None] = mapped_column(Integer)
    connector_id: Mapped[int | None] = mapped_column(Integer)
    id_token: Mapped[str | None] = mapped_column(String(255))
    id_token_type: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))
    charging_state: Mapped[str | None] = mapped_column(String(32))
    stopped_reason: Mapped[str | None] = mapped_column(String(64))
    last_seq_no: Mapped[int] = mapped_column(Integer)
    energy_import_wh: Mapped[float | None] = mapped_column(Float)
    energy_export_wh: Mapped[float | None] = mapped_column(Float)
    charging_needs: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    allowed_energy_transfer: Mapped[list[str] | None] = mapped_column(JSONType)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=_empty_dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TransactionEvent(Base):
    __tablename__ = "transaction_events"
    __table_args__ = (UniqueConstraint("transaction_pk", "seq_no"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    transaction_pk: Mapped[int] = mapped_column(ForeignKey("transactions.id", ondelete="CASCADE"))
    seq_no: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(16))
    trigger_reason: Mapped[str | None] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    offline: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MeterSample(Base):
    __tablename__ = "meter_samples"
    __table_args__ = (
        Index(None, "station_id", "timestamp"),
        Index(None, "station_id", "transaction_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(STATION_ID_LEN))
    evse_id: Mapped[int] = mapped_column(Integer)
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    measurand: Mapped[str] = mapped_column(String(64), default="Energy.Active.Import.Register")
    phase: Mapped[str | None] = mapped_column(String(8))
    location: Mapped[str | None] = mapped_column(String(16))
    context: Mapped[str | None] = mapped_column(String(32))
    unit: Mapped[str | None] = mapped_column(String(20))
    value: Mapped[float] = mapped_column(Float)


class SecurityEvent(Base):
    __tablename__ = "security_events"
    __table_args__ = (Index(None, "station_id", "timestamp"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(STATION_ID_LEN))
    type: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    tech_info: Mapped[str | None] = mapped_column(Text)


class StationEvent(Base):
    __tablename__ = "station_events"
    __table_args__ = (Index(None, "station_id", "kind", "timestamp"), Index(None, "station_id", "timestamp"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(STATION_ID_LEN))
    kind: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)


class DeviceVariable(Base):
    """One attribute of one variable of one component (OCPP 2.x device model), as last reported."""

    __tablename__ = "device_model"

    station_id: Mapped[str] = mapped_column(String(STATION_ID_LEN), primary_key=True)
    component: Mapped[str] = mapped_column(String(64), primary_key=True)
    component_instance: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True, default=-1, autoincrement=False)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True, default=-1, autoincrement=False)
    variable: Mapped[str] = mapped_column(String(64), primary_key=True)
    variable_instance: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    attribute_type: Mapped[str] = mapped_column(String(16), primary_key=True, default="Actual")
    value: Mapped[str | None] = mapped_column(Text)
    characteristics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FrameSegment(Base):
    """The frame log: one station's OCPP-J frames of one write-behind flush, in arrival order.

    ``frames`` is a JSON array of ``[direction, timestamp, frame]``; ``timestamp`` is that of the
    first. A frame's id is ``segment id * FRAME_ID_STRIDE + its index``, so ids grow in arrival
    order as one row per frame's did. One row per station and flush instead of one per frame: at
    two frames per OCPP call, a row (and two index entries) per frame was the largest part of
    the store's cost per call."""

    __tablename__ = "frame_segments"
    __table_args__ = (Index(None, "station_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(STATION_ID_LEN))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    count: Mapped[int] = mapped_column(Integer)
    frames: Mapped[str] = mapped_column(Text)


FRAME_ID_STRIDE = 1 << 16
"""Frame ids per segment (a segment holds fewer frames than this)."""


class ChargingProfile(Base):
    __tablename__ = "charging_profiles"

    station_id: Mapped[str] = mapped_column(String(STATION_ID_LEN), primary_key=True)
    profile_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    evse_id: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(64))
    stack_level: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16), default="csms")
    profile: Mapped[dict[str, Any]] = mapped_column(JSONType)
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GridEvent(Base):
    __tablename__ = "grid_events"
    __table_args__ = (Index(None, "status"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EventReport(Base):
    __tablename__ = "event_reports"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DispatchCommand(Base):
    """The power schedule the dispatch controller last sent to one car (cluster mode): a new
    dispatch leader starts from these and re-sends only what its plan changes."""

    __tablename__ = "dispatch_commands"

    car_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    command: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    token_hash: Mapped[str] = mapped_column(String(255), index=True, unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class LocalListEntry(Base):
    """One id token of the operator's Local Authorization List (OCPP D01/D02).

    ``version`` is the list version at which this entry last changed; a removed entry stays as a
    tombstone (``id_token_info`` NULL, ``deleted``) so a differential update can remove it from a
    station that still has it. The list's version is the highest ``version`` of any row."""

    __tablename__ = "local_list_entries"
    __table_args__ = (Index(None, "version"),)

    id_token: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(32), primary_key=True)
    id_token_info: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    version: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LocalListStation(Base):
    """The Local Authorization List version a station last confirmed (SendLocalList Accepted or
    GetLocalListVersion), and the outcome of the last synchronisation attempt."""

    __tablename__ = "local_list_stations"

    station_id: Mapped[str] = mapped_column(String(STATION_ID_LEN), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Reservation(Base):
    """A reservation the CSMS asked a station for (ReserveNow, OCPP H01), with its life cycle:
    the station's answer (Accepted, Faulted, Occupied, Rejected, Unavailable), then Cancelled
    (CancelReservation), Expired / Removed (ReservationStatusUpdate) or Used (a transaction
    started with its token)."""

    __tablename__ = "reservations"
    __table_args__ = (Index(None, "station_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    station_id: Mapped[str] = mapped_column(String(STATION_ID_LEN))
    evse_id: Mapped[int | None] = mapped_column(Integer)
    connector_type: Mapped[str | None] = mapped_column(String(32))
    id_token: Mapped[str] = mapped_column(String(255))
    id_token_type: Mapped[str] = mapped_column(String(32))
    group_id_token: Mapped[str | None] = mapped_column(String(255))
    expiry_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SiteLimit(Base):
    """Site limits changed at run time (API/CLI/console) over the ``[[sites]]`` configuration:
    ``limits`` holds the changed keys (import_limit_kw, export_limit_kw, strategy)."""

    __tablename__ = "site_limits"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    limits: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
