"""The station registry's change feed (``station_changes``), on SQLite and PostgreSQL: every
registration, credential, policy, block and removal appends a revision in the same transaction,
readers page through ``rev > last``, and pruning never loses a reader's bearings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from csms.store import Store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def _feed(store: Store, after: int = 0) -> list[tuple[str, str]]:
    changes, _head = await store.station_changes(after)
    return [(c.station_id, c.kind) for c in changes]


async def test_every_registry_write_is_one_revision_in_order(store: Store) -> None:
    assert await store.station_changes_head() == 0
    row, created = await store.register_station("CS-1", password_hash="h1", meta={"boot_policy": "pending"}, at=T0)
    assert created and row.password_hash == "h1" and row.meta == {"boot_policy": "pending"} and not row.blocked
    row, created = await store.register_station("CS-1", meta={"v2x": True})
    assert not created and row.meta == {"boot_policy": "pending", "v2x": True} and row.password_hash == "h1"
    await store.upsert_station("CS-1", vendor="V")  # not a registry field: no revision
    assert await store.set_station_blocked("CS-1", True) is True
    assert await store.set_station_blocked("CS-1", True) is False  # no change, no revision
    assert await store.set_station_blocked("NOPE", True) is None
    await store.bulk_register_stations(["CS-2", "CS-3"])
    assert await store.delete_station("CS-2") is True
    assert await store.delete_station("CS-2") is False
    assert await _feed(store) == [
        ("CS-1", "upsert"),
        ("CS-1", "upsert"),
        ("CS-1", "upsert"),
        ("CS-2", "upsert"),
        ("CS-3", "upsert"),
        ("CS-2", "remove"),
    ]
    changes, head = await store.station_changes(0, limit=2)
    assert len(changes) == 2 and head == changes[-1].rev
    rest, head = await store.station_changes(changes[-1].rev)
    assert len(rest) == 4 and head == rest[-1].rev == await store.station_changes_head()
    assert (await store.station_changes(head)) == ([], head)


async def test_concurrent_registrations_get_distinct_increasing_revisions(store: Store) -> None:
    await asyncio.gather(*(store.register_station(f"CS-{i}", password_hash=f"h{i}") for i in range(20)))
    changes, head = await store.station_changes(0)
    revs = [c.rev for c in changes]
    assert len(set(revs)) == 20 and revs == sorted(revs) and head == revs[-1]
    assert {c.station_id for c in changes} == {f"CS-{i}" for i in range(20)}


async def test_pruning_keeps_the_newest_revision(store: Store) -> None:
    for i in range(3):
        await store.register_station(f"CS-{i}")
    head = await store.station_changes_head()
    assert await store.prune_station_changes(datetime.now(UTC) + timedelta(days=1)) == 2
    assert await store.station_changes_head() == head  # a reader still sees where the feed is
    assert await _feed(store, head) == []
    await store.register_station("CS-9")
    assert await _feed(store, head) == [("CS-9", "upsert")]
    assert await store.station_changes_head() > head  # never reuses a pruned number
