"""Connector statuses written in one batch (csms.store.statuses), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.store import Store
from csms.store.statuses import write_connector_statuses

T0 = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)


async def test_batch_upserts_every_connector_and_never_rolls_back(store: Store) -> None:
    await write_connector_statuses(
        store,
        [("CS-1", 1, 1, "Available", T0), ("CS-1", 2, 1, "Occupied", T0), ("CS-2", 1, 1, "Faulted", T0)],
    )
    assert [(r.evse_id, r.status) for r in await store.connector_statuses("CS-1")] == [
        (1, "Available"),
        (2, "Occupied"),
    ]
    # a newer status replaces, an older one (a late StatusNotification) is skipped, in one batch
    await write_connector_statuses(
        store,
        [("CS-1", 1, 1, "Occupied", T0 + timedelta(seconds=5)), ("CS-1", 2, 1, "Available", T0 - timedelta(seconds=5))],
    )
    rows = {r.evse_id: r for r in await store.connector_statuses("CS-1")}
    assert rows[1].status == "Occupied" and rows[1].updated_at == T0 + timedelta(seconds=5)
    assert rows[2].status == "Occupied" and rows[2].updated_at == T0
    assert [r.status for r in await store.connector_statuses("CS-2")] == ["Faulted"]
    await write_connector_statuses(store, [])  # nothing to write: no transaction
