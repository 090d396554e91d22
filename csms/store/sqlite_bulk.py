"""Bulk INSERT of write-behind rows on SQLite, encoded a chunk at a time.

Rows are encoded as arrays with timestamps already in the naive-UTC text that
:class:`~csms.store.types.UTCDateTime` stores on SQLite (SQLAlchemy's per-row, per-column bind
processing cost more than SQLite's own insert at meter-value rates), and each :data:`CHUNK` of
them goes to SQLite as ONE JSON text in ONE statement, ``INSERT ... SELECT ... FROM
json_each(?)``. Why not ``executemany``: Python's sqlite3 module releases the GIL around every
row's ``sqlite3_step`` and must take it back for the next row, and while the event loop is busy
it gets it back only when the loop's thread is forced to yield (every 5 ms, the interpreter's
switch interval). Under load a 4,000-row meter flush took 160 ms (max 600 ms) for about 25 ms of
SQLite work, the backlog reached the backpressure mark and MeterValues answers waited: the
benchmark's p99. One statement releases the GIL once for the whole chunk; SQLite's JSON reading
costs about as much as the per-row binding it replaces. Encoding runs on the event loop, so it is
done one chunk at a time: the loop serves stations between chunks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson

from .types import ensure_utc

CHUNK = 5000
"""Rows encoded and inserted per statement: a whole flush in one go (a few ms of encoding on the
loop). Each chunk costs the flush a round trip to the database thread and back onto a busy loop;
at 500 rows a 4,000-row flush needed nine and took 220 ms, slower than samples arrived at 6,000
calls/s, so the backlog reached the backpressure mark."""


def sqlite_utc_text(value: datetime) -> str:
    """An aware datetime as the naive-UTC text :class:`~csms.store.types.UTCDateTime` stores on
    SQLite (same as SQLAlchemy's ``DATETIME``: always six fraction digits, so text order is
    time order)."""
    if value.tzinfo is not UTC:
        value = ensure_utc(value)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


@functools.cache
def insert_sql(table: str, columns: tuple[str, ...]) -> str:
    """One statement inserting every row of a JSON array of arrays (in ``columns`` order)."""
    values = ", ".join(f"value ->> {i}" for i in range(len(columns)))
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM json_each(?)"


def encode(columns: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Driver parameters for ``rows``; each distinct timestamp object is formatted once (the
    sampled values of one MeterValue share theirs)."""
    ts_at = columns.index("timestamp")
    getter = itemgetter(*columns)
    params: list[tuple[Any, ...]] = []
    append = params.append
    last_ts: datetime | None = None
    last_text = ""
    for row in rows:
        values = list(getter(row))
        ts = values[ts_at]
        if ts is not last_ts:
            last_ts, last_text = ts, sqlite_utc_text(ts)
        values[ts_at] = last_text
        append(tuple(values))
    return params


async def insert_rows(conn: Any, table: str, columns: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with exactly ``columns``) through the SQLAlchemy async connection
    ``conn`` of an open write transaction, :data:`CHUNK` rows per step."""
    sql = insert_sql(table, columns)
    for start in range(0, len(rows), CHUNK):
        chunk = orjson.dumps(encode(columns, rows[start : start + CHUNK])).decode()
        await conn.exec_driver_sql(sql, (chunk,))
