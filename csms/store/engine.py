"""The store's SQLAlchemy engine: URL normalisation, SQLite pragmas and WAL, the JSON codec."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def _json_dumps(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


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
        if not _sqlite_is_memory(u):
            # the write-behind writers, the registry follower and API reads hold connections at
            # the same time; past SQLAlchemy's default of 5 each extra one was opened (a thread,
            # a file open, the pragmas) and closed again on every use, under load many a second
            kwargs.update(pool_size=12, max_overflow=12)
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
