"""Fixtures for the grid-intake tests: a manual clock, a temp SQLite store and an EventBook."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.clock import Clock
from csms.grid.book import EventBook
from csms.store.repository import Store

T0 = datetime(2026, 7, 14, 22, 0, tzinfo=UTC)


class ManualClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, t: datetime = T0) -> None:
        super().__init__(t)
        self.t = t

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> datetime:
        self.t += timedelta(seconds=seconds)
        return self.t


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def event_doc(event_id: str = "ev-1", *, start_h: float = 1, hours: float = 2, kw: float = 400, **extra: Any) -> dict:
    """A canonical event starting ``start_h`` hours after T0."""
    start = T0 + timedelta(hours=start_h)
    return {
        "id": event_id,
        "intervals": [{"start": iso(start), "end": iso(start + timedelta(hours=hours)), "target_kw": kw}],
        **extra,
    }


class MemoryStore:
    """The store's grid-event API in memory (loop-independent, for the CLI tests)."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}

    async def put_grid_event(self, event_id: str, revision: int, status: str, payload: Mapping[str, Any]) -> Any:
        from csms.store.rows import GridEventRow

        now = datetime.now(UTC)
        old = self.rows.get(event_id)
        if old is not None and old.revision > revision:
            return old
        row = GridEventRow(
            id=event_id,
            revision=revision,
            status=status,
            payload=dict(payload),
            created_at=old.created_at if old else now,
            updated_at=now,
        )
        self.rows[event_id] = row
        return row

    async def list_grid_events(self, status: str | None = None, limit: int = 100, offset: int = 0) -> list[Any]:
        rows = [r for r in self.rows.values() if status is None or r.status == status]
        return rows[offset : offset + limit]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open("sqlite+aiosqlite:///" + str(tmp_path / "t.db"))
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def changes() -> list[tuple[str, int, str]]:
    return []


@pytest.fixture
async def book(store: Store, clock: ManualClock, changes: list[tuple[str, int, str]]) -> EventBook:
    b = EventBook(store, clock, on_change=lambda ev, kind: changes.append((ev.id, ev.revision, kind)))
    await b.load()
    return b
