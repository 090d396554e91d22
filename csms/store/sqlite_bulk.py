"""Bulk INSERT of write-behind rows on SQLite: multi-row statements, encoded a chunk at a time.

``executemany`` steps the statement once per row, and the sqlite3 module releases the GIL around
every step: with the event loop busy, the writer thread then waits for the GIL up to the switch
interval (5 ms) once per row, falls behind, and the meter backlog's backpressure shows up as
tail latency. One ``INSERT ... VALUES (...), (...), ...`` per :data:`CHUNK` rows steps once per
chunk instead. Rows are encoded (timestamps to the naive-UTC text that
:class:`~csms.store.types.UTCDateTime` stores on SQLite) one chunk at a time, and the event loop
runs between chunks while the database thread inserts, so a 5,000-row flush never holds the
loop for more than one chunk's encoding.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from .types import ensure_utc

CHUNK = 250
"""Rows per statement: 250 x 10 columns stays far below SQLite's 32,766 bound parameters."""


def sqlite_utc_text(value: datetime) -> str:
    """An aware datetime as the naive-UTC text :class:`~csms.store.types.UTCDateTime` stores on
    SQLite (same as SQLAlchemy's ``DATETIME``: always six fraction digits, so text order is
    time order)."""
    if value.tzinfo is not UTC:
        value = ensure_utc(value)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


@functools.cache
def insert_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    group = "(" + ", ".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([group] * rows)


def encode(columns: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> list[Any]:
    """The flat parameter list of one multi-row INSERT; each distinct timestamp object is
    formatted once (the sampled values of one MeterValue share theirs)."""
    ts_at = columns.index("timestamp")
    getter = itemgetter(*columns)
    params: list[Any] = []
    extend = params.extend
    last_ts: datetime | None = None
    last_text = ""
    for row in rows:
        values = list(getter(row))
        ts = values[ts_at]
        if ts is not last_ts:
            last_ts, last_text = ts, sqlite_utc_text(ts)
        values[ts_at] = last_text
        extend(values)
    return params


async def insert_rows(conn: Any, table: str, columns: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with exactly ``columns``) through the SQLAlchemy async connection
    ``conn`` of an open write transaction, :data:`CHUNK` rows per statement."""
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        await conn.exec_driver_sql(insert_sql(table, columns, len(chunk)), tuple(encode(columns, chunk)))
