"""The CSMS persistence layer: :class:`Store`, an async repository over SQLite or PostgreSQL.

Design choices:

* **One short transaction per call.** Every public coroutine opens its own session (with
  ``expire_on_commit=False``), does its work and commits; results are returned as frozen pydantic
  rows (:mod:`csms.store.rows`), never live ORM objects, so nothing can lazy-load or write behind
  the store's back.
* **Concurrency.** Upserts are single ``INSERT ... ON CONFLICT`` statements, atomic on both
  backends. On PostgreSQL, transaction events take a ``SELECT ... FOR UPDATE`` row lock so many
  tasks (or processes) can feed events for the same transaction. SQLite has a single writer per
  database, so within the process all writes are queued on one ``asyncio.Lock`` and open with
  ``BEGIN IMMEDIATE`` (other processes wait on ``busy_timeout`` instead of failing with a
  read-to-write upgrade deadlock); reads are not locked and run concurrently thanks to WAL.
  For ``:memory:`` SQLite (one shared connection) reads take the lock too.
* **Hot paths are write-behind** (:mod:`csms.store.batch`): ``add_meter_values``, ``log_frame`` and
  ``touch`` only append to memory; background tasks flush them. ``flush()`` forces, ``close()``
  flushes before disposing the engine. Reads of stations overlay pending ``touch`` timestamps.
* **Time.** All datetimes are timezone-aware UTC; naive datetimes passed in raise ``ValueError``.
  OCPP wire timestamps (strings) are parsed, and assumed UTC if they lack an offset.
* **Schema** comes from the Alembic migrations, applied by :meth:`Store.open`.
* **Registry change feed.** Every write that registers a station, changes its password, meta
  (boot policy, ...) or blocked state, or deletes it, appends a ``station_changes`` row in the
  same transaction; :meth:`station_changes` reads them by increasing ``rev``. On PostgreSQL those
  transactions serialise on an advisory lock taken just before the row is inserted, so revisions
  commit in order and a reader polling ``rev > last`` never skips one that commits late.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import orjson
import structlog
from sqlalchemy import Select, bindparam, delete, event, exists, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from . import migrate, sqlite_bulk
from .batch import FrameLogWriter, GroupCommit, MeterBatchWriter, TouchWriter
from .models import (
    STATION_ID_LEN,
    ApiToken,
    ChargingProfile,
    ConnectorStatus,
    DeviceVariable,
    DispatchCommand,
    EventReport,
    FrameLog,
    GridEvent,
    IdToken,
    MeterSample,
    SecurityEvent,
    Station,
    StationChange,
    StationEvent,
    Transaction,
    TransactionEvent,
)
from .payloads import parse_report_data, pick, profile_fields
from .rows import (
    ApiTokenRow,
    ChargingProfileRow,
    ConnectorStatusRow,
    EventReportRow,
    FrameRow,
    GridEventRow,
    IdTokenRow,
    MeterSampleRow,
    SecurityEventRow,
    StationChangeRow,
    StationEventRow,
    StationRow,
    TransactionEventRow,
    TransactionRow,
    VariableRow,
)
from .types import ensure_utc, opt_utc, parse_ts, utcnow

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


def _json_dumps(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


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
_FRAME_COLUMNS = ("station_id", "direction", "timestamp", "frame")


def _check_station_id(station_id: str) -> None:
    if not isinstance(station_id, str) or not station_id or len(station_id) > STATION_ID_LEN:
        raise ValueError(f"station id must be 1-{STATION_ID_LEN} characters: {station_id!r}")


def normalize_url(url: str | URL) -> URL:
    """Accept plain ``sqlite://`` / ``postgresql://`` URLs and pick the async drivers."""
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        u = u.set(drivername="postgresql+asyncpg")
    return u


def _sqlite_is_memory(u: URL) -> bool:
    db = u.database or ""
    return db in ("", ":memory:") or (db.startswith("file:") and "mode=memory" in db) or u.query.get("mode") == "memory"


def create_engine(url: str | URL, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine with the store's settings (pragmas, pool, JSON codec)."""
    u = normalize_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    backend = u.get_backend_name()
    if backend == "sqlite":
        if not _sqlite_is_memory(u) and u.database and not u.database.startswith("file:"):
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    elif backend == "postgresql":
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    else:
        raise ValueError(f"unsupported database backend {backend!r} (use sqlite or postgresql)")
    engine = create_async_engine(u, **kwargs)
    if backend == "sqlite":
        _install_sqlite_hooks(engine)
    return engine


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    """Per-connection pragmas (busy_timeout, synchronous=NORMAL, foreign keys), and take over
    BEGIN from pysqlite. (WAL is persistent per file: :func:`_enable_sqlite_wal`.)

    pysqlite's legacy transaction handling starts transactions lazily before DML only, which
    breaks read-then-write atomicity and transactional DDL; SQLAlchemy's documented recipe turns
    that off and emits BEGIN itself. Connections carrying the ``csms_immediate`` execution option
    (the store's write sessions) use ``BEGIN IMMEDIATE`` to take the write lock up front.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("csms_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


async def _enable_sqlite_wal(engine: AsyncEngine, attempts: int = 100) -> None:
    """Switch the database file to WAL (persistent, so once per file is enough).

    Done once at open rather than in the connect hook: the switch needs an exclusive lock and
    SQLite answers "database is locked" at once (no busy wait) when another connection or
    process holds one, so it is retried here with an async sleep.
    """
    for attempt in range(attempts):
        try:
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                cursor = await raw.driver_connection.execute("PRAGMA journal_mode=WAL")  # type: ignore[union-attr]
                await cursor.close()
            return
        except (OperationalError, sqlite3.OperationalError) as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05)


@dataclass(slots=True)
class _TxEvent:
    """A validated TransactionEventRequest, ready to apply."""

    station_id: str
    event: dict[str, Any]
    tx_id: str
    etype: str
    seq: int
    ts: datetime
    trigger: Any
    offline: bool
    evse_id: Any
    connector_id: Any
    token: Any
    id_token: Any
    charging_state: Any
    stopped_reason: Any
    now: datetime


class Store:
    """Async repository for everything the CSMS persists. Create with :meth:`open`."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        frame_log_limit: int = 500,
        flush_interval: float = 0.5,
        meter_batch_rows: int = 5000,
    ) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        self.frame_log_limit = frame_log_limit
        is_sqlite = self.dialect == "sqlite"
        self._lock_writes = is_sqlite
        self._lock_reads = is_sqlite and _sqlite_is_memory(engine.url)
        self._db_lock = asyncio.Lock()
        self._reader = async_sessionmaker(engine, expire_on_commit=False)
        writer_engine = engine.execution_options(csms_immediate=True) if is_sqlite else engine
        self._writer = async_sessionmaker(writer_engine, expire_on_commit=False)
        self.meters = MeterBatchWriter(
            "meters", self._insert_meter_rows, flush_interval=flush_interval, max_rows=meter_batch_rows
        )
        self._frames = FrameLogWriter(
            self._insert_frames, self._prune_frames, limit=frame_log_limit, flush_interval=flush_interval, max_rows=5000
        )
        self._touches = TouchWriter(self._write_touches, flush_interval=flush_interval)
        self._profile_group: GroupCommit[dict[str, Any], None] = GroupCommit("profiles", self._upsert_profiles)
        # TransactionEvents are answered only once stored; on SQLite (one writer at a time) the
        # ones that arrive together are stored together
        self._tx_group: GroupCommit[_TxEvent, tuple[bool, TransactionRow]] | None = (
            GroupCommit("transaction-events", self._apply_tx_batch) if is_sqlite else None
        )
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    async def open(
        cls,
        url: str,
        *,
        frame_log_limit: int = 500,
        flush_interval: float = 0.5,
        meter_batch_rows: int = 5000,
        echo: bool = False,
    ) -> Store:
        """Connect, migrate to the latest schema (idempotent) and start the background writers.

        ``url``: ``sqlite+aiosqlite:///data/csms.db`` (relative) or ``sqlite+aiosqlite:////var/lib/csms.db``
        (absolute; parent directories are created), ``sqlite+aiosqlite:///:memory:``, or
        ``postgresql+asyncpg://user[:password]@host:port/dbname``. Plain ``sqlite://`` and
        ``postgresql://`` URLs are mapped to those async drivers. Use the store from one event loop.
        """
        engine = create_engine(url, echo=echo)
        try:
            if engine.dialect.name == "sqlite" and not _sqlite_is_memory(engine.url):
                await _enable_sqlite_wal(engine)
            await migrate.upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        store = cls(
            engine,
            frame_log_limit=frame_log_limit,
            flush_interval=flush_interval,
            meter_batch_rows=meter_batch_rows,
        )
        for writer in store._writers:
            writer.start()
        log.info("store opened", backend=store.dialect, database=engine.url.database)
        return store

    @property
    def _writers(self) -> tuple[TouchWriter, MeterBatchWriter, FrameLogWriter]:
        return (self._touches, self.meters, self._frames)

    @property
    def closed(self) -> bool:
        return self._closed

    async def flush(self) -> None:
        """Write all buffered meter samples, frames and ``touch`` timestamps now."""
        for writer in self._writers:
            await writer.flush()

    async def close(self) -> None:
        """Flush the writers and dispose of the engine. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for group in (self._profile_group, self._tx_group):
            if group is not None:
                with contextlib.suppress(Exception):  # its waiters already got the error
                    await group.flush()
        for writer in self._writers:
            try:
                await writer.close()
            except Exception:
                log.exception("store writer failed to flush on close", writer=writer.name)
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def schema_revision(self) -> str | None:
        return await migrate.current_revision(self.engine)

    # ------------------------------------------------------------------ sessions
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

    # ------------------------------------------------------------------ stations
    def _station_row(self, obj: Station) -> StationRow:
        row = StationRow.model_validate(obj)
        pending = self._touches.pending_for(row.id)
        if pending is not None and (row.last_seen_at is None or pending > row.last_seen_at):
            row = row.model_copy(update={"last_seen_at": pending})
        return row

    async def get_station(self, station_id: str) -> StationRow | None:
        obj = await self._one(select(Station).where(Station.id == station_id))
        return None if obj is None else self._station_row(obj)

    async def list_stations(
        self,
        status: str | None = None,
        connected: bool | None = None,
        model: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StationRow]:
        """Stations ordered by id; ``status`` filters on ``boot_status``."""
        stmt = select(Station).order_by(Station.id).limit(limit).offset(offset)
        if status is not None:
            stmt = stmt.where(Station.boot_status == status)
        if connected is not None:
            stmt = stmt.where(Station.connected.is_(connected))
        if model is not None:
            stmt = stmt.where(Station.model == model)
        return [self._station_row(o) for o in await self._all(stmt)]

    async def _upsert_station(self, s: AsyncSession, station_id: str, fields: Mapping[str, Any]) -> StationRow:
        _check_station_id(station_id)
        unknown = set(fields) - _STATION_FIELDS
        if unknown:
            raise TypeError(f"unknown station fields: {sorted(unknown)}")
        values = dict(fields)
        for key in _STATION_TIME_FIELDS & values.keys():
            values[key] = opt_utc(values[key], key)
        # A station created by this call is registered at the time the call is about.
        registered = values.get("registered_at") or values.get("last_seen_at") or utcnow()
        ins = self._insert(Station).values(**{"registered_at": registered, **values, "id": station_id})
        if values:
            ins = ins.on_conflict_do_update(index_elements=[Station.id], set_={k: ins.excluded[k] for k in values})
        else:
            ins = ins.on_conflict_do_nothing(index_elements=[Station.id])
        await s.execute(ins)
        obj = (
            await s.scalars(select(Station).where(Station.id == station_id).execution_options(populate_existing=True))
        ).one()
        if not REGISTRY_FIELDS.isdisjoint(values):
            await self._record_changes(s, [(station_id, CHANGE_UPSERT)])
        return self._station_row(obj)

    async def _record_changes(self, s: AsyncSession, changes: Sequence[tuple[str, str]]) -> None:
        """Append registry change rows; must be the transaction's last statement (see the module
        docstring: on PostgreSQL the advisory lock is then held only until the commit)."""
        if not changes:
            return
        if self.dialect == "postgresql":
            await s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_REGISTRY_LOCK})
        now = utcnow()
        conn = await s.connection()
        await conn.execute(
            StationChange.__table__.insert(),
            [{"station_id": sid, "kind": kind, "changed_at": now} for sid, kind in changes],
        )

    async def upsert_station(self, station_id: str, **fields: Any) -> StationRow:
        """Create the station or update exactly the given columns (others keep their values).
        Writing ``password_hash``, ``meta`` or ``blocked`` is recorded in the change feed."""
        async with self._write() as s:
            return await self._upsert_station(s, station_id, fields)

    async def register_station(
        self,
        station_id: str,
        *,
        password_hash: str | None = _KEEP,
        meta: Mapping[str, Any] | None = None,
        blocked: bool | None = None,
        at: datetime | None = None,
    ) -> tuple[StationRow, bool]:
        """Register a station or update its registration, in one transaction with its change-feed
        row. ``meta`` keys are merged into the stored meta (other keys are kept); omitted
        arguments leave the stored values alone (a new station: no password, not blocked).
        Returns the row and whether it was created."""
        _check_station_id(station_id)
        async with self._write() as s:
            stmt = select(Station.meta).where(Station.id == station_id)
            if self.dialect == "postgresql":
                stmt = stmt.with_for_update()
            found = (await s.execute(stmt)).first()
            fields: dict[str, Any] = {}
            if password_hash is not _KEEP:
                fields["password_hash"] = password_hash
            if meta is not None or found is None:
                fields["meta"] = {**((found[0] or {}) if found is not None else {}), **(meta or {})}
            if blocked is not None:
                fields["blocked"] = bool(blocked)
            if found is None:
                fields["registered_at"] = _at(at, "at")
            row = await self._upsert_station(s, station_id, fields)
        return row, found is None

    async def set_station_blocked(self, station_id: str, blocked: bool) -> bool | None:
        """Block or unblock a registered station (recorded in the change feed). Returns True when
        that changed it, False when it already was, None when there is no such station."""
        table = Station.__table__
        async with self._write() as s:
            result = await s.execute(
                update(table).where(table.c.id == station_id, table.c.blocked != blocked).values(blocked=blocked)
            )
            if result.rowcount:  # type: ignore[attr-defined]
                await self._record_changes(s, [(station_id, CHANGE_UPSERT)])
                return True
            found = (await s.execute(select(table.c.id).where(table.c.id == station_id))).first()
        return False if found is not None else None

    async def get_stations(self, station_ids: Iterable[str]) -> list[StationRow]:
        """The stations among ``station_ids`` that exist (any order; unknown ids are left out)."""
        ids = list(dict.fromkeys(station_ids))
        out: list[StationRow] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            out.extend(self._station_row(o) for o in await self._all(select(Station).where(Station.id.in_(chunk))))
        return out

    # ------------------------------------------------------------------ registry change feed
    async def station_changes(self, after: int = 0, limit: int = 1000) -> tuple[list[StationChangeRow], int]:
        """Registry changes with ``rev > after``, oldest first (at most ``limit``), and the newest
        revision in the feed as far as this read saw it (0 when empty; lower than ``after`` when
        the database went back in time, e.g. a restore). One indexed statement."""
        table = StationChange.__table__
        newest = select(func.max(table.c.rev)).scalar_subquery()
        stmt = select(table).where(or_(table.c.rev > after, table.c.rev == newest)).order_by(table.c.rev).limit(limit)
        async with self._read() as s:
            rows = [StationChangeRow.model_validate(r._mapping) for r in (await s.execute(stmt)).all()]
        head = rows[-1].rev if rows else 0
        return [r for r in rows if r.rev > after], head

    async def station_changes_head(self) -> int:
        """The newest registry revision (0 before the first change)."""
        table = StationChange.__table__
        async with self._read() as s:
            return int((await s.execute(select(func.max(table.c.rev)))).scalar() or 0)

    async def prune_station_changes(self, before: datetime) -> int:
        """Delete change rows older than ``before``, always keeping the newest one (readers compare
        their position with it). Returns the number deleted."""
        table = StationChange.__table__
        newest = select(func.max(table.c.rev)).scalar_subquery()
        stmt = delete(table).where(table.c.changed_at < ensure_utc(before, "before"), table.c.rev < newest)
        async with self._write() as s:
            result = await s.execute(stmt)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def set_connected(self, station_id: str, connected: bool, at: datetime | None = None) -> StationRow:
        """Mark the WebSocket up/down (creates the row if needed). ``connected_since`` is cleared on
        disconnect. Overlapping sockets of one station must be ordered by the caller."""
        ts = _at(at)
        fields = {"connected": connected, "connected_since": ts if connected else None, "last_seen_at": ts}
        async with self._write() as s:
            return await self._upsert_station(s, station_id, fields)

    async def record_boot(
        self,
        station_id: str,
        vendor: str | None,
        model: str | None,
        serial: str | None,
        firmware: str | None,
        ocpp_version: str | None,
        status: str,
        at: datetime | None = None,
    ) -> StationRow:
        """Store a BootNotification and the status it was answered with."""
        ts = _at(at)
        fields = {
            "vendor": vendor,
            "model": model,
            "serial_number": serial,
            "firmware_version": firmware,
            "ocpp_version": ocpp_version,
            "boot_status": status,
            "last_boot_at": ts,
            "last_seen_at": ts,
        }
        async with self._write() as s:
            return await self._upsert_station(s, station_id, fields)

    async def update_stations(self, batch: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Update existing station rows in bulk: one ``executemany`` UPDATE per set of columns,
        all in one transaction (used by the CSMS's write-behind for connect/boot facts)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for station_id, fields in batch:
            unknown = set(fields) - _STATION_FIELDS
            if unknown:
                raise TypeError(f"unknown station fields: {sorted(unknown)}")
            values = {f"b_{k}": (opt_utc(v, k) if k in _STATION_TIME_FIELDS else v) for k, v in fields.items()}
            values["b_id"] = station_id
            groups.setdefault(tuple(sorted(fields)), []).append(values)
        if not groups:
            return
        table = Station.__table__
        changed = [(sid, CHANGE_UPSERT) for sid, fields in batch if not REGISTRY_FIELDS.isdisjoint(fields)]
        async with self._write() as s:
            conn = await s.connection()
            for keys, rows in groups.items():
                stmt = (
                    update(table)
                    .where(table.c.id == bindparam("b_id"))
                    .values(**{k: bindparam(f"b_{k}") for k in keys})
                )
                await conn.execute(stmt, rows)
            await self._record_changes(s, changed)

    def touch(self, station_id: str, at: datetime | None = None) -> None:
        """Record that the station was heard from (Heartbeat). Synchronous and non-blocking:
        coalesced in memory (latest wins) and written by the background flush with one
        ``executemany`` UPDATE; :meth:`get_station` / :meth:`list_stations` already reflect it."""
        _check_station_id(station_id)
        self._touches.add(station_id, _at(at))

    async def set_credentials(self, station_id: str, password_hash: str | None) -> StationRow:
        async with self._write() as s:
            return await self._upsert_station(s, station_id, {"password_hash": password_hash})

    async def set_capabilities(self, station_id: str, capabilities: Mapping[str, Any] | None) -> StationRow:
        caps = None if capabilities is None else dict(capabilities)
        async with self._write() as s:
            return await self._upsert_station(s, station_id, {"capabilities": caps})

    async def bulk_register_stations(
        self, station_ids: Iterable[str], password_hash: str | None = None, at: datetime | None = None
    ) -> int:
        """Create many stations at once (one ``executemany`` upsert) with the same password hash;
        existing stations only get the new hash. Returns the number of ids processed."""
        ts = _at(at)
        rows = []
        for sid in dict.fromkeys(station_ids):
            _check_station_id(sid)
            rows.append({"id": sid, "password_hash": password_hash, "registered_at": ts, "meta": {}})
        if not rows:
            return 0
        table = Station.__table__
        ins = self._insert(table)
        ins = ins.on_conflict_do_update(index_elements=[table.c.id], set_={"password_hash": ins.excluded.password_hash})
        async with self._write() as s:
            conn = await s.connection()
            await conn.execute(ins, rows)
            await self._record_changes(s, [(r["id"], CHANGE_UPSERT) for r in rows])
        return len(rows)

    async def delete_station(self, station_id: str) -> bool:
        """Delete the station with its connector statuses, device model and profiles (recorded in
        the change feed). History (transactions, meter samples, events, frames) is kept."""
        async with self._write() as s:
            for model in (ConnectorStatus, DeviceVariable, ChargingProfile):
                await s.execute(delete(model).where(model.station_id == station_id))
            result = await s.execute(delete(Station).where(Station.id == station_id))
            deleted = bool(result.rowcount)  # type: ignore[attr-defined]
            if deleted:
                await self._record_changes(s, [(station_id, CHANGE_REMOVE)])
        return deleted

    # ------------------------------------------------------------------ connector status
    async def set_connector_status(
        self, station_id: str, evse_id: int, connector_id: int, status: str, at: datetime | None = None
    ) -> bool:
        """Upsert a connector status. Returns False (and keeps the stored one) if ``at`` is older
        than what is stored, so a late StatusNotification cannot roll the status back."""
        ts = _at(at)
        ins = self._insert(ConnectorStatus).values(
            station_id=station_id, evse_id=evse_id, connector_id=connector_id, status=status, updated_at=ts
        )
        ins = ins.on_conflict_do_update(
            index_elements=[
                ConnectorStatus.station_id,
                ConnectorStatus.evse_id,
                ConnectorStatus.connector_id,
            ],
            set_={"status": ins.excluded.status, "updated_at": ins.excluded.updated_at},
            where=ConnectorStatus.updated_at <= ins.excluded.updated_at,
        ).returning(ConnectorStatus.status)
        async with self._write() as s:
            return (await s.execute(ins)).first() is not None

    async def connector_statuses(self, station_id: str) -> list[ConnectorStatusRow]:
        stmt = (
            select(ConnectorStatus)
            .where(ConnectorStatus.station_id == station_id)
            .order_by(ConnectorStatus.evse_id, ConnectorStatus.connector_id)
        )
        return [ConnectorStatusRow.model_validate(o) for o in await self._all(stmt)]

    # ------------------------------------------------------------------ id tokens
    async def upsert_id_token(
        self,
        id_token: str,
        token_type: str,
        *,
        status: str = "Accepted",
        expires_at: datetime | None = None,
        group_id: str | None = None,
        allowed_energy_transfer: list[str] | None = None,
    ) -> IdTokenRow:
        """Create or fully replace a token's authorization data (``created_at`` is kept)."""
        values = {
            "status": status,
            "expires_at": opt_utc(expires_at, "expires_at"),
            "group_id": group_id,
            "allowed_energy_transfer": None if allowed_energy_transfer is None else list(allowed_energy_transfer),
        }
        ins = self._insert(IdToken).values(id_token=id_token, type=token_type, created_at=utcnow(), **values)
        ins = ins.on_conflict_do_update(
            index_elements=[IdToken.id_token, IdToken.type], set_={k: ins.excluded[k] for k in values}
        )
        async with self._write() as s:
            await s.execute(ins)
            obj = (
                await s.scalars(
                    select(IdToken)
                    .where(IdToken.id_token == id_token, IdToken.type == token_type)
                    .execution_options(populate_existing=True)
                )
            ).one()
            return IdTokenRow.model_validate(obj)

    async def get_id_token(self, id_token: str, token_type: str) -> IdTokenRow | None:
        obj = await self._one(select(IdToken).where(IdToken.id_token == id_token, IdToken.type == token_type))
        return None if obj is None else IdTokenRow.model_validate(obj)

    async def list_id_tokens(
        self, *, status: str | None = None, group_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[IdTokenRow]:
        stmt = select(IdToken).order_by(IdToken.id_token, IdToken.type).limit(limit).offset(offset)
        if status is not None:
            stmt = stmt.where(IdToken.status == status)
        if group_id is not None:
            stmt = stmt.where(IdToken.group_id == group_id)
        return [IdTokenRow.model_validate(o) for o in await self._all(stmt)]

    async def delete_id_token(self, id_token: str, token_type: str) -> bool:
        async with self._write() as s:
            result = await s.execute(delete(IdToken).where(IdToken.id_token == id_token, IdToken.type == token_type))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ transactions
    async def apply_transaction_event(
        self,
        station_id: str,
        event: Mapping[str, Any],
        *,
        validated: bool = False,
        meter_rows: list[dict[str, Any]] | None = None,
    ) -> tuple[bool, TransactionRow]:
        """Store one TransactionEventRequest (camelCase wire dict; snake_case also accepted).

        Returns ``(False, current row)`` without changing anything when this ``seqNo`` is
        already stored for the transaction (a resent message). Otherwise the event is appended
        to the history and the transaction's current state is recomputed:

        * ``state``, ``charging_state``, ``stopped_reason``, ``last_seq_no`` follow the event with
          the highest ``seqNo`` (offline events arriving late only add history), except that an
          ``Ended`` event always ends the transaction (``state='Ended'``, ``ended_at`` set) even
          when it arrives out of order;
        * ``started_at`` is the earliest ``Started`` timestamp (the first event's timestamp until
          a ``Started`` event is seen);
        * ``evse``/``connector`` follow the highest ``seqNo`` that carries them; ``id_token`` is the
          first token seen, a ``Started`` event's token taking precedence, ``StopAuthorized``
          tokens ignored;
        * meter values go to ``meter_samples`` through the batch writer, tagged with the
          transaction id, only for events not seen before.
        """
        e = self._wire_tx_event(station_id, event) if validated else self._parse_tx_event(station_id, event)
        if self._tx_group is not None:
            inserted, row = await self._tx_group.write(e)
        else:
            async with self._write() as s:
                inserted, row = await self._apply_tx_event(s, e)
        if not inserted:
            return False, row
        if meter_rows is not None:  # the caller read the meterValue already: only the EVSE is new here
            sample_evse = int((e.evse_id if e.evse_id is not None else row.evse_id) or 0)
            for sample in meter_rows:
                sample["evse_id"] = sample_evse
            self.meters.add_rows(meter_rows)
            return True, row
        meter_values = pick(event, "meterValue")
        if meter_values:
            sample_evse = e.evse_id if e.evse_id is not None else row.evse_id
            self.add_meter_values(station_id, int(sample_evse or 0), e.tx_id, meter_values)
        return True, row

    @staticmethod
    def _wire_tx_event(station_id: str, event: Mapping[str, Any]) -> _TxEvent:
        """A TransactionEventRequest the RPC endpoint validated against the schema (``validated=True``):
        only what the schema leaves open is checked (an empty transactionId)."""
        info = event["transactionInfo"]
        tx_id = info["transactionId"]
        if not tx_id:
            raise ValueError(f"transactionInfo.transactionId must be a 1-{_TX_ID_LEN} character string")
        evse = event.get("evse") or {}
        token = event.get("idToken") or {}
        return _TxEvent(
            station_id, dict(event), tx_id, event["eventType"], event["seqNo"], parse_ts(event["timestamp"]),
            event["triggerReason"], bool(event.get("offline", False)), evse.get("id"), evse.get("connectorId"),
            token, token.get("idToken"), info.get("chargingState"), info.get("stoppedReason"), utcnow(),
        )  # fmt: skip

    @staticmethod
    def _parse_tx_event(station_id: str, event: Mapping[str, Any]) -> _TxEvent:
        info = pick(event, "transactionInfo") or {}
        tx_id = pick(info, "transactionId")
        if not isinstance(tx_id, str) or not tx_id or len(tx_id) > _TX_ID_LEN:
            raise ValueError(f"transactionInfo.transactionId must be a 1-{_TX_ID_LEN} character string")
        _check_station_id(station_id)
        etype = pick(event, "eventType")
        if etype not in _TX_EVENT_TYPES:
            raise ValueError(f"unknown eventType {etype!r}")
        seq_raw = pick(event, "seqNo")
        if seq_raw is None or isinstance(seq_raw, bool):
            raise ValueError("seqNo is required")
        seq = int(seq_raw)
        raw_ts = pick(event, "timestamp")
        if raw_ts is None:
            raise ValueError("timestamp is required")
        ts = _ts_in(raw_ts)
        trigger = pick(event, "triggerReason")
        offline = bool(pick(event, "offline") or False)
        evse = pick(event, "evse") or {}
        evse_id = pick(evse, "id")
        connector_id = pick(evse, "connectorId")
        token = pick(event, "idToken") or {}
        id_token = pick(token, "idToken")
        charging_state = pick(info, "chargingState")
        stopped_reason = pick(info, "stoppedReason")
        return _TxEvent(
            station_id, dict(event), tx_id, etype, seq, ts, trigger, offline, evse_id, connector_id, token,
            id_token, charging_state, stopped_reason, utcnow(),
        )  # fmt: skip

    async def _apply_tx_batch(self, events: list[_TxEvent]) -> list[tuple[bool, TransactionRow]]:
        async with self._write() as s:
            return [await self._apply_tx_event(s, e) for e in events]

    async def _apply_tx_event(self, s: AsyncSession, e: _TxEvent) -> tuple[bool, TransactionRow]:
        """The transaction-state rules of :meth:`apply_transaction_event`, inside session ``s``."""
        station_id, tx_id, etype, seq, ts, now = e.station_id, e.tx_id, e.etype, e.seq, e.ts, e.now
        evse_id, connector_id = e.evse_id, e.connector_id
        charging_state, stopped_reason = e.charging_state, e.stopped_reason
        tx = await self._lock_transaction(s, station_id, tx_id)
        if tx is None:
            # Placeholder (last_seq_no -1) that the generic rules below fill in. A concurrent
            # creator makes this a no-op; FOR UPDATE then waits for its commit.
            await s.execute(
                self._insert(Transaction)
                .values(
                    station_id=station_id,
                    transaction_id=tx_id,
                    state=etype,
                    last_seq_no=-1,
                    meta={},
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=[Transaction.station_id, Transaction.transaction_id])
            )
            tx = await self._lock_transaction(s, station_id, tx_id)
            assert tx is not None
        new_event_id = (
            await s.execute(
                self._insert(TransactionEvent)
                .values(
                    transaction_pk=tx.id,
                    seq_no=seq,
                    event_type=etype,
                    trigger_reason=e.trigger,
                    timestamp=ts,
                    offline=e.offline,
                    payload=e.event,
                    received_at=now,
                )
                .on_conflict_do_nothing(index_elements=[TransactionEvent.transaction_pk, TransactionEvent.seq_no])
                .returning(TransactionEvent.id)
            )
        ).scalar_one_or_none()
        if new_event_id is None:
            return False, TransactionRow.model_validate(tx)

        is_latest = seq > tx.last_seq_no
        if is_latest:
            tx.last_seq_no = seq
            if tx.state != "Ended":
                tx.state = etype
            if charging_state is not None:
                tx.charging_state = charging_state
            if stopped_reason is not None:
                tx.stopped_reason = stopped_reason
        if etype == "Ended":
            tx.state = "Ended"
            if tx.ended_at is None or is_latest:
                tx.ended_at = ts
            if stopped_reason is not None:
                tx.stopped_reason = stopped_reason
        if etype == "Started":
            earlier_started = await s.scalar(
                select(
                    exists().where(
                        TransactionEvent.transaction_pk == tx.id,
                        TransactionEvent.event_type == "Started",
                        TransactionEvent.id != new_event_id,
                    )
                )
            )
            if earlier_started and tx.started_at is not None:
                tx.started_at = min(tx.started_at, ts)
            else:
                tx.started_at = ts
        elif tx.started_at is None:
            tx.started_at = ts
        if evse_id is not None and (is_latest or tx.evse_id is None):
            tx.evse_id = int(evse_id)
            if connector_id is not None:
                tx.connector_id = int(connector_id)
        if e.id_token is not None and e.trigger != "StopAuthorized" and (tx.id_token is None or etype == "Started"):
            tx.id_token = str(e.id_token)
            tx.id_token_type = pick(e.token, "type")
        tx.updated_at = now
        await s.flush()
        return True, TransactionRow.model_validate(tx)

    async def _lock_transaction(self, s: AsyncSession, station_id: str, transaction_id: str) -> Transaction | None:
        stmt = (
            select(Transaction)
            .where(Transaction.station_id == station_id, Transaction.transaction_id == transaction_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await s.scalars(stmt)).first()

    async def get_transaction(self, station_id: str, transaction_id: str) -> TransactionRow | None:
        obj = await self._one(
            select(Transaction).where(
                Transaction.station_id == station_id, Transaction.transaction_id == transaction_id
            )
        )
        return None if obj is None else TransactionRow.model_validate(obj)

    async def list_transactions(
        self, station_id: str | None = None, active: bool | None = None, limit: int = 100, offset: int = 0
    ) -> list[TransactionRow]:
        """Newest first (by ``started_at``); ``active`` = not ended."""
        stmt = select(Transaction).order_by(Transaction.started_at.desc(), Transaction.id.desc())
        if station_id is not None:
            stmt = stmt.where(Transaction.station_id == station_id)
        if active is True:
            stmt = stmt.where(Transaction.ended_at.is_(None))
        elif active is False:
            stmt = stmt.where(Transaction.ended_at.is_not(None))
        return [TransactionRow.model_validate(o) for o in await self._all(stmt.limit(limit).offset(offset))]

    async def transaction_events(self, station_id: str, transaction_id: str) -> list[TransactionEventRow]:
        """The stored events of one transaction ordered by ``seqNo`` (not by arrival)."""
        stmt = (
            select(TransactionEvent)
            .join(Transaction, Transaction.id == TransactionEvent.transaction_pk)
            .where(Transaction.station_id == station_id, Transaction.transaction_id == transaction_id)
            .order_by(TransactionEvent.seq_no)
        )
        return [TransactionEventRow.model_validate(o) for o in await self._all(stmt)]

    async def active_transaction(self, station_id: str, evse_id: int) -> TransactionRow | None:
        stmt = (
            select(Transaction)
            .where(
                Transaction.station_id == station_id,
                Transaction.evse_id == evse_id,
                Transaction.ended_at.is_(None),
            )
            .order_by(Transaction.started_at.desc(), Transaction.id.desc())
            .limit(1)
        )
        obj = await self._one(stmt)
        return None if obj is None else TransactionRow.model_validate(obj)

    async def set_transaction_fields(
        self, station_id: str, transaction_id: str, **fields: Any
    ) -> TransactionRow | None:
        """Set ``charging_needs``, ``allowed_energy_transfer``, ``energy_import_wh``,
        ``energy_export_wh`` and/or ``meta``. Returns None if the transaction is unknown."""
        unknown = set(fields) - _TX_SETTABLE
        if unknown:
            raise TypeError(f"fields not settable on a transaction: {sorted(unknown)}")
        async with self._write() as s:
            tx = await self._lock_transaction(s, station_id, transaction_id)
            if tx is None:
                return None
            for key, value in fields.items():
                setattr(tx, key, value)
            tx.updated_at = utcnow()
            await s.flush()
            return TransactionRow.model_validate(tx)

    # ------------------------------------------------------------------ meter samples
    def add_meter_values(
        self,
        station_id: str,
        evse_id: int,
        transaction_id: str | None,
        meter_values: Iterable[Mapping[str, Any]] | None,
    ) -> int:
        """Queue OCPP ``MeterValueType[]`` for the batch writer. Synchronous and non-blocking;
        returns the number of samples queued (malformed ones are skipped and logged)."""
        _check_station_id(station_id)
        return self.meters.add(station_id, evse_id, transaction_id, meter_values)

    async def _insert_meter_rows(self, rows: list[dict[str, Any]]) -> None:
        await self._bulk_insert(MeterSample.__table__, _METER_COLUMNS, rows)

    async def _bulk_insert(self, table: Any, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        """One INSERT of write-behind rows (dicts with exactly ``columns``).

        On SQLite the rows go to the driver in chunks (:mod:`csms.store.sqlite_bulk`),
        with timestamps already in the text form
        SQLAlchemy's ``DATETIME`` stores (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC): SQLAlchemy's
        per-row, per-column bind processing cost more than SQLite's own insert at meter-value
        rates. PostgreSQL keeps the SQLAlchemy path (asyncpg binds datetimes natively)."""
        async with self._write() as s:
            conn = await s.connection()
            if self.dialect != "sqlite":
                await conn.execute(table.insert(), rows)
                return
            await sqlite_bulk.insert_rows(conn, table.name, columns, rows)

    async def meter_samples(
        self,
        station_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        measurand: str | None = None,
        transaction_id: str | None = None,
        limit: int = 10_000,
        *,
        evse_id: int | None = None,
        newest_first: bool = False,
    ) -> list[MeterSampleRow]:
        """Samples of a station in ``[start, end)``, oldest first unless ``newest_first``."""
        stmt = select(MeterSample).where(MeterSample.station_id == station_id)
        if start is not None:
            stmt = stmt.where(MeterSample.timestamp >= ensure_utc(start, "start"))
        if end is not None:
            stmt = stmt.where(MeterSample.timestamp < ensure_utc(end, "end"))
        if measurand is not None:
            stmt = stmt.where(MeterSample.measurand == measurand)
        if transaction_id is not None:
            stmt = stmt.where(MeterSample.transaction_id == transaction_id)
        if evse_id is not None:
            stmt = stmt.where(MeterSample.evse_id == evse_id)
        if newest_first:
            stmt = stmt.order_by(MeterSample.timestamp.desc(), MeterSample.id.desc())
        else:
            stmt = stmt.order_by(MeterSample.timestamp, MeterSample.id)
        return [MeterSampleRow.model_validate(o) for o in await self._all(stmt.limit(limit))]

    # ------------------------------------------------------------------ security / station events
    async def add_security_event(
        self, station_id: str, event_type: str, timestamp: str | datetime, tech_info: str | None = None
    ) -> SecurityEventRow:
        obj = SecurityEvent(station_id=station_id, type=event_type, timestamp=_ts_in(timestamp), tech_info=tech_info)
        async with self._write() as s:
            s.add(obj)
            await s.flush()
            return SecurityEventRow.model_validate(obj)

    async def list_security_events(
        self, station_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[SecurityEventRow]:
        """Newest first; all stations when ``station_id`` is None."""
        stmt = select(SecurityEvent).order_by(SecurityEvent.timestamp.desc(), SecurityEvent.id.desc())
        if station_id is not None:
            stmt = stmt.where(SecurityEvent.station_id == station_id)
        return [SecurityEventRow.model_validate(o) for o in await self._all(stmt.limit(limit).offset(offset))]

    async def add_station_event(
        self, station_id: str, kind: str, timestamp: str | datetime, payload: Mapping[str, Any]
    ) -> StationEventRow:
        """Append a NotifyEvent / NotifyReport / FirmwareStatus / LogStatus / DataTransfer ... record."""
        obj = StationEvent(station_id=station_id, kind=kind, timestamp=_ts_in(timestamp), payload=dict(payload))
        async with self._write() as s:
            s.add(obj)
            await s.flush()
            return StationEventRow.model_validate(obj)

    async def list_station_events(
        self, station_id: str | None = None, kind: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[StationEventRow]:
        """Newest first."""
        stmt = select(StationEvent).order_by(StationEvent.timestamp.desc(), StationEvent.id.desc())
        if station_id is not None:
            stmt = stmt.where(StationEvent.station_id == station_id)
        if kind is not None:
            stmt = stmt.where(StationEvent.kind == kind)
        return [StationEventRow.model_validate(o) for o in await self._all(stmt.limit(limit).offset(offset))]

    # ------------------------------------------------------------------ device model
    async def upsert_variables(
        self, station_id: str, rows: Iterable[Mapping[str, Any]], at: datetime | None = None
    ) -> int:
        """Upsert device-model attributes from NotifyReport ``reportData`` entries (or flat rows, see
        :func:`csms.store.payloads.parse_report_data`). ``characteristics`` are only replaced when
        the new entry carries some. Returns the number of attribute rows written."""
        _check_station_id(station_id)
        return await self.write_variable_rows(parse_report_data(station_id, rows, _at(at)))

    async def write_variable_rows(self, parsed: Sequence[Mapping[str, Any]]) -> int:
        """Upsert ``device_model`` rows already flattened by :func:`parse_report_data`."""
        if not parsed:
            return 0
        table = DeviceVariable.__table__
        ins = self._insert(table)
        ins = ins.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={
                "value": ins.excluded.value,
                "characteristics": func.coalesce(ins.excluded.characteristics, table.c.characteristics),
                "updated_at": ins.excluded.updated_at,
            },
        )
        async with self._write() as s:
            conn = await s.connection()
            await conn.execute(ins, parsed)
        return len(parsed)

    async def get_variables(
        self, station_id: str, component: str | None = None, variable: str | None = None
    ) -> list[VariableRow]:
        stmt = (
            select(DeviceVariable)
            .where(DeviceVariable.station_id == station_id)
            .order_by(
                DeviceVariable.component,
                DeviceVariable.component_instance,
                DeviceVariable.evse_id,
                DeviceVariable.connector_id,
                DeviceVariable.variable,
                DeviceVariable.variable_instance,
                DeviceVariable.attribute_type,
            )
        )
        if component is not None:
            stmt = stmt.where(DeviceVariable.component == component)
        if variable is not None:
            stmt = stmt.where(DeviceVariable.variable == variable)
        return [VariableRow.model_validate(o) for o in await self._all(stmt)]

    # ------------------------------------------------------------------ frame log
    def log_frame(self, station_id: str, direction: str, frame_text: str | bytes, at: datetime | None = None) -> None:
        """Queue one raw OCPP-J frame (``direction`` 'in' or 'out'). Synchronous, non-blocking;
        the table keeps the newest ``frame_log_limit`` frames per station (0 disables logging)."""
        _check_station_id(station_id)
        if direction not in _FRAME_DIRECTIONS:
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        self._frames.add(station_id, direction, frame_text, at)

    async def _insert_frames(self, rows: list[dict[str, Any]]) -> None:
        await self._bulk_insert(FrameLog.__table__, _FRAME_COLUMNS, rows)

    async def _prune_frames(self, station_ids: list[str]) -> None:
        table = FrameLog.__table__
        sid = bindparam("sid")
        keep_from = (
            select(table.c.id)
            .where(table.c.station_id == sid)
            .order_by(table.c.id.desc())
            .offset(self.frame_log_limit - 1)
            .limit(1)
            .scalar_subquery()
        )
        stmt = delete(table).where(table.c.station_id == sid, table.c.id < keep_from)
        async with self._write() as s:
            conn = await s.connection()
            await conn.execute(stmt, [{"sid": x} for x in station_ids])

    async def frames(self, station_id: str, limit: int = 100) -> list[FrameRow]:
        """Newest first (by arrival order)."""
        stmt = select(FrameLog).where(FrameLog.station_id == station_id).order_by(FrameLog.id.desc()).limit(limit)
        return [FrameRow.model_validate(o) for o in await self._all(stmt)]

    async def _write_touches(self, batch: list[tuple[str, datetime]]) -> None:
        table = Station.__table__
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .where(or_(table.c.last_seen_at.is_(None), table.c.last_seen_at < bindparam("b_at")))
            .values(last_seen_at=bindparam("b_at"))
        )
        async with self._write() as s:
            conn = await s.connection()
            await conn.execute(stmt, [{"b_id": sid, "b_at": at} for sid, at in batch])

    # ------------------------------------------------------------------ charging profiles
    async def put_profile(
        self,
        station_id: str,
        evse_id: int,
        profile: Mapping[str, Any],
        *,
        source: str = "csms",
        installed_at: datetime | None = None,
    ) -> ChargingProfileRow:
        """Store an OCPP ``ChargingProfileType`` for an EVSE (0 = whole station). Keyed by
        ``(station, profile id)``: a profile with the same id replaces the old one (K01.FR.05)."""
        _check_station_id(station_id)
        row = self._profile_values(station_id, evse_id, profile, source, _at(installed_at, "installed_at"))
        ins = self._insert(ChargingProfile).values(**row)
        ins = ins.on_conflict_do_update(
            index_elements=[ChargingProfile.station_id, ChargingProfile.profile_id],
            set_={k: ins.excluded[k] for k in row if k not in ("station_id", "profile_id")},
        )
        async with self._write() as s:
            await s.execute(ins)
            obj = (
                await s.scalars(
                    select(ChargingProfile)
                    .where(
                        ChargingProfile.station_id == station_id,
                        ChargingProfile.profile_id == row["profile_id"],
                    )
                    .execution_options(populate_existing=True)
                )
            ).one()
            return ChargingProfileRow.model_validate(obj)

    async def record_profile(
        self, station_id: str, evse_id: int, profile: Mapping[str, Any], *, source: str = "csms"
    ) -> None:
        """As :meth:`put_profile` without reading the row back; concurrent calls share one
        transaction (group commit), each returning once its own profile is committed."""
        _check_station_id(station_id)
        await self._profile_group.write(self._profile_values(station_id, evse_id, profile, source, _at(None)))

    async def _upsert_profiles(self, rows: list[dict[str, Any]]) -> list[None]:
        ins = self._insert(ChargingProfile)
        ins = ins.on_conflict_do_update(
            index_elements=[ChargingProfile.station_id, ChargingProfile.profile_id],
            set_={k: ins.excluded[k] for k in rows[0] if k not in ("station_id", "profile_id")},
        )
        async with self._write() as s:
            await s.execute(ins, rows)
        return [None] * len(rows)

    @staticmethod
    def _profile_values(
        station_id: str, evse_id: int, profile: Mapping[str, Any], source: str, at: datetime
    ) -> dict[str, Any]:
        return {
            "station_id": station_id,
            "evse_id": int(evse_id),
            "source": source,
            "profile": dict(profile),
            "installed_at": at,
            **profile_fields(profile),
        }

    async def delete_profiles(
        self,
        station_id: str,
        *,
        profile_id: int | None = None,
        evse_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
        source: str | None = None,
    ) -> int:
        """Delete the station's profiles matching all given criteria (as ClearChargingProfile);
        no criteria deletes all of them. Returns the number deleted."""
        await self._profile_group.flush()  # a profile recorded just before is deleted, not resurrected
        stmt = delete(ChargingProfile).where(ChargingProfile.station_id == station_id)
        if profile_id is not None:
            stmt = stmt.where(ChargingProfile.profile_id == profile_id)
        if evse_id is not None:
            stmt = stmt.where(ChargingProfile.evse_id == evse_id)
        if purpose is not None:
            stmt = stmt.where(ChargingProfile.purpose == purpose)
        if stack_level is not None:
            stmt = stmt.where(ChargingProfile.stack_level == stack_level)
        if source is not None:
            stmt = stmt.where(ChargingProfile.source == source)
        async with self._write() as s:
            result = await s.execute(stmt)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def profiles(
        self, station_id: str, *, evse_id: int | None = None, purpose: str | None = None
    ) -> list[ChargingProfileRow]:
        await self._profile_group.flush()
        stmt = (
            select(ChargingProfile)
            .where(ChargingProfile.station_id == station_id)
            .order_by(ChargingProfile.evse_id, ChargingProfile.purpose, ChargingProfile.stack_level.desc())
        )
        if evse_id is not None:
            stmt = stmt.where(ChargingProfile.evse_id == evse_id)
        if purpose is not None:
            stmt = stmt.where(ChargingProfile.purpose == purpose)
        return [ChargingProfileRow.model_validate(o) for o in await self._all(stmt)]

    async def replace_profiles(
        self,
        station_id: str,
        items: Iterable[tuple[int, Mapping[str, Any]]],
        *,
        source: str = "station",
        at: datetime | None = None,
    ) -> list[ChargingProfileRow]:
        """Atomically replace all of a station's profiles with ``(evse_id, profile)`` pairs, e.g.
        what a GetChargingProfiles / ReportChargingProfiles round reported."""
        await self._profile_group.flush()
        _check_station_id(station_id)
        ts = _at(at)
        rows = {}
        for evse_id, profile in items:
            row = self._profile_values(station_id, evse_id, profile, source, ts)
            rows[row["profile_id"]] = row
        async with self._write() as s:
            await s.execute(delete(ChargingProfile).where(ChargingProfile.station_id == station_id))
            if rows:
                conn = await s.connection()
                await conn.execute(ChargingProfile.__table__.insert(), list(rows.values()))
        return await self.profiles(station_id)

    # ------------------------------------------------------------------ grid events
    async def put_grid_event(
        self, event_id: str, revision: int, status: str, payload: Mapping[str, Any]
    ) -> GridEventRow:
        """Create or update a grid event. An update with a *lower* revision than the stored one is
        ignored (stale message); the stored row is returned either way."""
        now = utcnow()
        ins = self._insert(GridEvent).values(
            id=event_id,
            revision=revision,
            status=status,
            payload=dict(payload),
            created_at=now,
            updated_at=now,
        )
        ins = ins.on_conflict_do_update(
            index_elements=[GridEvent.id],
            set_={
                "revision": ins.excluded.revision,
                "status": ins.excluded.status,
                "payload": ins.excluded.payload,
                "updated_at": ins.excluded.updated_at,
            },
            where=GridEvent.revision <= ins.excluded.revision,
        )
        async with self._write() as s:
            await s.execute(ins)
            obj = (
                await s.scalars(
                    select(GridEvent).where(GridEvent.id == event_id).execution_options(populate_existing=True)
                )
            ).one()
            return GridEventRow.model_validate(obj)

    async def get_grid_event(self, event_id: str) -> GridEventRow | None:
        obj = await self._one(select(GridEvent).where(GridEvent.id == event_id))
        return None if obj is None else GridEventRow.model_validate(obj)

    async def list_grid_events(
        self, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[GridEventRow]:
        """Newest first (by creation)."""
        stmt = select(GridEvent).order_by(GridEvent.created_at.desc(), GridEvent.id)
        if status is not None:
            stmt = stmt.where(GridEvent.status == status)
        return [GridEventRow.model_validate(o) for o in await self._all(stmt.limit(limit).offset(offset))]

    async def put_event_report(self, event_id: str, report: Mapping[str, Any]) -> EventReportRow:
        now = utcnow()
        ins = self._insert(EventReport).values(event_id=event_id, report=dict(report), updated_at=now)
        ins = ins.on_conflict_do_update(
            index_elements=[EventReport.event_id],
            set_={"report": ins.excluded.report, "updated_at": ins.excluded.updated_at},
        )
        async with self._write() as s:
            await s.execute(ins)
        return EventReportRow(event_id=event_id, report=dict(report), updated_at=now)

    async def get_event_report(self, event_id: str) -> EventReportRow | None:
        obj = await self._one(select(EventReport).where(EventReport.event_id == event_id))
        return None if obj is None else EventReportRow.model_validate(obj)

    # ------------------------------------------------------------------ dispatch commands (cluster)
    async def put_dispatch_commands(self, commands: Mapping[str, Mapping[str, Any]]) -> None:
        """Upsert the schedules last sent per car (``car_id -> command``)."""
        if not commands:
            return
        now = utcnow()
        rows = [{"car_id": cid, "command": dict(cmd), "updated_at": now} for cid, cmd in commands.items()]
        ins = self._insert(DispatchCommand).values(rows)
        ins = ins.on_conflict_do_update(
            index_elements=[DispatchCommand.car_id],
            set_={"command": ins.excluded.command, "updated_at": ins.excluded.updated_at},
        )
        async with self._write() as s:
            await s.execute(ins)

    async def delete_dispatch_commands(self, car_ids: Sequence[str] | None = None) -> None:
        """Forget the given cars' schedules (all of them when ``car_ids`` is None)."""
        stmt = delete(DispatchCommand)
        if car_ids is not None:
            if not car_ids:
                return
            stmt = stmt.where(DispatchCommand.car_id.in_(list(car_ids)))
        async with self._write() as s:
            await s.execute(stmt)

    async def meter_samples_since(
        self, since: datetime, measurands: Sequence[str], limit: int = 1_000_000
    ) -> list[MeterSampleRow]:
        """Every station's samples of ``measurands`` from ``since``, oldest first (a new dispatch
        leader rebuilds its meter ledger from them)."""
        stmt = (
            select(MeterSample)
            .where(MeterSample.timestamp >= ensure_utc(since, "since"), MeterSample.measurand.in_(list(measurands)))
            .order_by(MeterSample.timestamp, MeterSample.id)
            .limit(limit)
        )
        return [MeterSampleRow.model_validate(o) for o in await self._all(stmt)]

    async def dispatch_commands(self) -> dict[str, dict[str, Any]]:
        async with self._read() as s:
            rows = (await s.execute(select(DispatchCommand.car_id, DispatchCommand.command))).all()
        return {r.car_id: dict(r.command) for r in rows}

    # ------------------------------------------------------------------ API tokens
    async def add_api_token(self, name: str, token_hash: str, scope: str) -> ApiTokenRow:
        """Store a (hashed) API token. Raises ``ValueError`` if the name or hash already exists."""
        if scope not in _API_SCOPES:
            raise ValueError(f"scope must be one of {sorted(_API_SCOPES)}, not {scope!r}")
        ins = (
            self._insert(ApiToken)
            .values(name=name, token_hash=token_hash, scope=scope, created_at=utcnow(), revoked=False)
            .on_conflict_do_nothing()
            .returning(ApiToken.id)
        )
        async with self._write() as s:
            new_id = (await s.execute(ins)).scalar_one_or_none()
            if new_id is None:
                raise ValueError(f"an API token named {name!r} (or with that hash) already exists")
            obj = (await s.scalars(select(ApiToken).where(ApiToken.id == new_id))).one()
            return ApiTokenRow.model_validate(obj)

    async def find_api_token_by_hash(self, token_hash: str) -> ApiTokenRow | None:
        """The non-revoked token with this hash, if any."""
        obj = await self._one(select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked.is_(False)))
        return None if obj is None else ApiTokenRow.model_validate(obj)

    async def list_api_tokens(self, include_revoked: bool = True) -> list[ApiTokenRow]:
        stmt = select(ApiToken).order_by(ApiToken.name)
        if not include_revoked:
            stmt = stmt.where(ApiToken.revoked.is_(False))
        return [ApiTokenRow.model_validate(o) for o in await self._all(stmt)]

    async def revoke_api_token(self, name: str) -> bool:
        """Returns True if a not-yet-revoked token was revoked."""
        async with self._write() as s:
            result = await s.execute(
                update(ApiToken).where(ApiToken.name == name, ApiToken.revoked.is_(False)).values(revoked=True)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]
