"""What every part of :class:`~csms.store.repository.Store` shares: constants, time and id checks,
and the session helpers (one short transaction per call; SQLite writes queued on one lock)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from . import sqlite_bulk
from .batch import FrameLogWriter, MeterBatchWriter, TouchWriter
from .models import STATION_ID_LEN, Station
from .types import ensure_utc, parse_ts, utcnow

log = structlog.get_logger("csms.store")

_STATION_FIELDS = frozenset(c.name for c in Station.__table__.columns) - {"id"}
_STATION_TIME_FIELDS = frozenset({"registered_at", "last_boot_at", "last_seen_at", "connected_since"})
_TX_SETTABLE = frozenset({"charging_needs", "allowed_energy_transfer", "energy_import_wh", "energy_export_wh", "meta"})
_TX_EVENT_TYPES = frozenset({"Started", "Updated", "Ended"})
_API_SCOPES = frozenset({"read", "operator", "admin"})
_FRAME_DIRECTIONS = frozenset({"in", "out"})
_TX_ID_LEN = 64
#: Station columns that make up its registration: writing any of them is a registry change.
REGISTRY_FIELDS = frozenset({"password_hash", "meta", "blocked"})
CHANGE_UPSERT, CHANGE_REMOVE = "upsert", "remove"
#: ``pg_advisory_xact_lock`` key serialising registry changes ("csmr" in ASCII).
PG_REGISTRY_LOCK = 0x63736D72
_KEEP: Any = object()  # "leave this column as it is"


def _ts_in(value: str | datetime, name: str = "timestamp") -> datetime:
    """Wire strings are parsed leniently; datetimes from code must be aware."""
    return parse_ts(value) if isinstance(value, str) else ensure_utc(value, name)


def _at(value: datetime | None, name: str = "at") -> datetime:
    return utcnow() if value is None else ensure_utc(value, name)


_METER_COLUMNS = (
    "station_id",
    "evse_id",
    "transaction_id",
    "timestamp",
    "measurand",
    "phase",
    "location",
    "context",
    "unit",
    "value",
)


def _check_station_id(station_id: str) -> None:
    if not isinstance(station_id, str) or not station_id or len(station_id) > STATION_ID_LEN:
        raise ValueError(f"station id must be 1-{STATION_ID_LEN} characters: {station_id!r}")


class StoreBase:
    """Session helpers; the attributes are set by :class:`~csms.store.repository.Store`."""

    engine: AsyncEngine
    dialect: str
    frame_log_limit: int
    _lock_writes: bool
    _lock_reads: bool
    _db_lock: asyncio.Lock
    _reader: async_sessionmaker[AsyncSession]
    _writer: async_sessionmaker[AsyncSession]
    meters: MeterBatchWriter
    _frames: FrameLogWriter
    _touches: TouchWriter

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        lock: contextlib.AbstractAsyncContextManager[Any] = (
            self._db_lock if self._lock_writes else contextlib.nullcontext()
        )
        async with lock, self._writer() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        lock: contextlib.AbstractAsyncContextManager[Any] = (
            self._db_lock if self._lock_reads else contextlib.nullcontext()
        )
        async with lock, self._reader() as session:
            yield session

    def _insert(self, model: Any) -> Any:
        """Dialect-specific INSERT supporting ``on_conflict_do_update/nothing`` and ``excluded``."""
        return pg_insert(model) if self.dialect == "postgresql" else sqlite_insert(model)

    async def _all(self, stmt: Select[Any]) -> list[Any]:
        async with self._read() as s:
            return list((await s.scalars(stmt)).all())

    async def _one(self, stmt: Select[Any]) -> Any:
        async with self._read() as s:
            return (await s.scalars(stmt)).first()

    async def _bulk_insert(self, table: Any, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        """One INSERT of write-behind rows (dicts with exactly ``columns``).

        On SQLite the rows go to the driver in chunks (:mod:`csms.store.sqlite_bulk`), as tuples
        with timestamps already in the text form SQLAlchemy's ``DATETIME`` stores
        (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC): SQLAlchemy's per-row, per-column bind processing
        cost more than SQLite's own insert at meter-value rates. PostgreSQL keeps the SQLAlchemy
        path (asyncpg binds datetimes natively)."""
        async with self._write() as s:
            conn = await s.connection()
            if self.dialect != "sqlite":
                await conn.execute(table.insert(), rows)
                return
            await sqlite_bulk.insert_rows(conn, table.name, columns, rows)
