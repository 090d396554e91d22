"""Bulk INSERT of write-behind rows on SQLite, encoded a chunk at a time.

Rows go to the driver as tuples with timestamps already in the naive-UTC text that
:class:`~csms.store.types.UTCDateTime` stores on SQLite (SQLAlchemy's per-row, per-column bind
processing cost more than SQLite's own insert at meter-value rates), one ``executemany`` per
:data:`CHUNK` rows. Encoding runs on the event loop, so it is done one chunk at a time: the loop
serves stations between chunks while the database thread inserts the previous one, and a
5,000-row flush never holds it for more than one chunk's encoding (it held it for all 5,000).
A multi-row ``INSERT ... VALUES (...), (...)`` was measured and rejected: SQLite spends about
twice the CPU per row on it (12.5 against 5.5 us with the meter table's two indexes).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from .types import ensure_utc

CHUNK = 500
"""Rows encoded and inserted per step (about a millisecond of encoding on the loop)."""


def sqlite_utc_text(value: datetime) -> str:
    """An aware datetime as the naive-UTC text :class:`~csms.store.types.UTCDateTime` stores on
    SQLite (same as SQLAlchemy's ``DATETIME``: always six fraction digits, so text order is
    time order)."""
    if value.tzinfo is not UTC:
        value = ensure_utc(value)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


@functools.cache
def insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


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
        await conn.exec_driver_sql(sql, encode(columns, rows[start : start + CHUNK]))
