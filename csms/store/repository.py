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
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from . import migrate
from .base import log
from .batch import FrameLogWriter, GroupCommit, MeterBatchWriter, TouchWriter
from .engine import _enable_sqlite_wal, _sqlite_is_memory, create_engine
from .grid_events import GridStore
from .journal import JournalStore
from .profiles import ProfileStore
from .rows import TransactionRow
from .stations import StationStore
from .tokens import TokenStore
from .transactions import TransactionStore, _TxEvent

__all__ = ["Store"]


class Store(StationStore, TransactionStore, TokenStore, JournalStore, ProfileStore, GridStore):
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
