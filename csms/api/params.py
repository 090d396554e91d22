"""Shared request parameters: bounded pagination, station ids, UTC timestamps, safe text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

from .errors import ApiError

MAX_OFFSET = 1_000_000
STATION_ID_MAX = 48

StationId = Annotated[
    str, Path(min_length=1, max_length=STATION_ID_MAX, description="station identity", examples=["FE-0001"])
]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]


def utc(value: datetime | None, name: str) -> datetime | None:
    """An aware datetime converted to UTC; naive or out-of-range values are a 422."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ApiError(422, "validation_error", f"{name}: needs a UTC offset, e.g. 2026-06-01T16:00:00Z")
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ApiError(422, "validation_error", f"{name}: out of range") from None


def _clean_text(value: str) -> str:
    """Reject text that cannot travel on to a station or a database (NUL, lone surrogates)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(_clean_text)]


def page_of(rows: list, limit: int, offset: int) -> tuple[list, int | None]:
    """Given up to ``limit + 1`` rows, the page and the next offset (None on the last page)."""
    if len(rows) > limit:
        return rows[:limit], offset + limit
    return rows, None
