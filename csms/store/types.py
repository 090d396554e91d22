"""Column types and time helpers shared by the models, the migrations and the repository.

Every timestamp in the store is a timezone-aware UTC ``datetime``:

* :class:`UTCDateTime` is ``DateTime(timezone=True)`` (``timestamptz`` on PostgreSQL). SQLite has
  no time zone support, so values are normalised to UTC and stored naive there; on the way out
  naive values get ``tzinfo=UTC`` back. Naive datetimes handed in by code are rejected, so a
  local-time bug fails loudly instead of shifting history by some hours.
* :func:`parse_ts` reads OCPP wire timestamps (RFC 3339). Stations are required to send an offset;
  a naive wire value is assumed to be UTC rather than rejected, because refusing a station's
  data over a formatting slip loses more than it protects.

:data:`JSONType` is plain ``JSON`` (TEXT on SQLite) and ``JSONB`` on PostgreSQL. Python ``None``
is stored as SQL ``NULL`` (not JSON ``null``) so ``IS NULL`` and ``COALESCE`` behave.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

#: 64-bit surrogate key on PostgreSQL; SQLite only auto-increments ``INTEGER PRIMARY KEY``.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_utc(value: datetime, name: str = "datetime") -> datetime:
    """Return ``value`` converted to UTC; raise ``ValueError`` for naive datetimes."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(UTC)


def opt_utc(value: datetime | None, name: str = "datetime") -> datetime | None:
    return None if value is None else ensure_utc(value, name)


def parse_ts(value: str | datetime) -> datetime:
    """Parse an OCPP timestamp (``2024-05-01T12:00:00Z``, with or without fraction/offset)."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        dt = datetime.fromisoformat(value.strip())
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only ever hands out aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = ensure_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
