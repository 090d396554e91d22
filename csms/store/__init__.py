"""Persistence layer of the CSMS: SQLAlchemy 2 (async) over SQLite or PostgreSQL.

Open with ``store = await Store.open(url)``; see :mod:`csms.store.repository` for the design and
:mod:`csms.store.rows` for the (frozen pydantic) row types every query returns.
"""

from __future__ import annotations

from .batch import BatchWriter, FrameLogWriter, MeterBatchWriter, TouchWriter
from .engine import create_engine, normalize_url
from .repository import Store
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

__all__ = [
    "ApiTokenRow",
    "BatchWriter",
    "ChargingProfileRow",
    "ConnectorStatusRow",
    "EventReportRow",
    "FrameLogWriter",
    "FrameRow",
    "GridEventRow",
    "IdTokenRow",
    "MeterBatchWriter",
    "MeterSampleRow",
    "SecurityEventRow",
    "StationChangeRow",
    "StationEventRow",
    "StationRow",
    "Store",
    "TouchWriter",
    "TransactionEventRow",
    "TransactionRow",
    "VariableRow",
    "create_engine",
    "normalize_url",
]
