"""Schema lifecycle: migrations on a fresh database, idempotent reopen, models == migrations,
SQLite settings, and data surviving close/reopen."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from csms.store import Store, migrate
from csms.store.migrate import head_revision
from csms.store.models import Base
from csms.store.sqlite_bulk import sqlite_utc_text

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HEAD = head_revision()


def _schema_diff(conn: Connection) -> list[object]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_fresh_database_is_migrated_to_head_and_reopen_is_idempotent(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        assert await store.schema_revision() == HEAD
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(_tables)
            assert set(Base.metadata.tables) | {"alembic_version"} == tables
            assert await conn.run_sync(_schema_diff) == []  # migrations describe exactly the models
        await store.upsert_station("CS-1", vendor="V")
    finally:
        await store.close()
    for _ in range(2):
        store = await Store.open(db_url)
        try:
            assert await store.schema_revision() == HEAD
            assert (await store.get_station("CS-1")).vendor == "V"  # type: ignore[union-attr]
            async with store.engine.connect() as conn:
                versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
            assert versions == [(HEAD,)]
        finally:
            await store.close()


async def test_downgrade_to_base_and_upgrade_again(store: Store) -> None:
    await store.upsert_station("CS-1")
    await migrate.downgrade(store.engine, "base")
    assert await store.schema_revision() is None
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_tables) <= {"alembic_version"}
    await migrate.upgrade(store.engine)
    assert await store.schema_revision() == HEAD and await store.get_station("CS-1") is None


async def test_concurrent_opens_migrate_once(db_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(db_url) for _ in range(3)))
    try:
        for store in stores:
            assert await store.schema_revision() == HEAD
        await stores[0].upsert_station("CS-1")
        assert await stores[2].get_station("CS-1") is not None
    finally:
        for store in stores:
            await store.close()


async def test_data_survives_close_and_reopen(db_url: str) -> None:
    store = await Store.open(db_url)
    await store.record_boot("CS-1", "Vendor", "Model", "SN1", "1.0", "2.1", "Accepted", T0)
    await store.set_capabilities("CS-1", {"maxPowerW": 22000, "v2x": True})
    await store.upsert_id_token("TOK", "ISO14443", status="Blocked")
    await store.apply_transaction_event(
        "CS-1",
        {
            "eventType": "Started",
            "timestamp": "2026-06-01T12:00:00Z",
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-1"},
            "evse": {"id": 1, "connectorId": 1},
        },
    )
    store.add_meter_values("CS-1", 1, "TX-1", [{"timestamp": T0, "sampledValue": [{"value": 42}]}])
    store.log_frame("CS-1", "in", '[2,"1","Heartbeat",{}]', T0)
    store.touch("CS-1", datetime(2026, 6, 1, 13, 0, tzinfo=UTC))
    await store.close()  # no explicit flush: close() must write the buffered rows

    store = await Store.open(db_url)
    try:
        st = await store.get_station("CS-1")
        assert st is not None and st.model == "Model" and st.boot_status == "Accepted"
        assert st.capabilities == {"maxPowerW": 22000, "v2x": True}
        assert st.last_seen_at == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
        assert st.registered_at.tzinfo is not None and st.last_boot_at == T0
        assert (await store.get_id_token("TOK", "ISO14443")).status == "Blocked"  # type: ignore[union-attr]
        tx = await store.get_transaction("CS-1", "TX-1")
        assert tx is not None and tx.started_at == T0 and tx.state == "Started"
        assert [s.value for s in await store.meter_samples("CS-1")] == [42.0]
        assert [f.frame for f in await store.frames("CS-1")] == ['[2,"1","Heartbeat",{}]']
    finally:
        await store.close()


async def test_sqlite_file_settings(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "csms.db"
    store = await Store.open(f"sqlite:///{db}")  # plain sqlite:// is mapped to aiosqlite
    try:
        assert db.exists()
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 1  # NORMAL
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await store.close()


async def test_sqlite_memory_database_works(tmp_path: Path) -> None:
    store = await Store.open("sqlite+aiosqlite:///:memory:")
    try:
        await store.upsert_station("CS-1")
        assert [s.id for s in await store.list_stations()] == ["CS-1"]
    finally:
        await store.close()


async def test_naive_datetimes_are_rejected(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.set_connected("CS-1", True, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.touch("CS-1", datetime(2026, 1, 1))
    assert await store.get_station("CS-1") is None


async def test_returned_rows_are_frozen_and_utc(store: Store) -> None:
    row = await store.set_connected("CS-1", True, datetime(2026, 1, 1, 14, 0, tzinfo=UTC))
    assert row.connected and row.connected_since == datetime(2026, 1, 1, 14, 0, tzinfo=UTC)
    assert row.connected_since is not None and row.connected_since.utcoffset() is not None
    with pytest.raises(Exception, match="frozen"):
        row.connected = False  # type: ignore[misc]


async def test_0002_keeps_existing_stations_unblocked_and_starts_the_change_feed(store: Store) -> None:
    await migrate.downgrade(store.engine, "0001")
    async with store.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO stations (id, registered_at, meta) VALUES ('OLD-1', :at, '{}')"), {"at": T0}
        )
    await migrate.upgrade(store.engine, "0002")
    row = await store.get_station("OLD-1")
    assert row is not None and row.blocked is False
    assert await store.station_changes_head() == 0  # no change recorded for what was there before
    assert await store.set_station_blocked("OLD-1", True) is True
    changes, head = await store.station_changes(0)
    assert [(c.station_id, c.kind) for c in changes] == [("OLD-1", "upsert")] and head == changes[0].rev


async def test_0005_carries_the_frame_log_over_into_segments(store: Store) -> None:
    await migrate.downgrade(store.engine, "0004_site_limits")
    insert = text("INSERT INTO frame_log (station_id, direction, timestamp, frame) VALUES (:s, :d, :t, :f)")
    async with store.engine.begin() as conn:
        for i in range(5):
            at = T0 + timedelta(seconds=i)
            row = {"s": "CS-1" if i != 2 else "CS-2", "d": "in" if i % 2 else "out", "f": f'[2,"{i}","Heartbeat",{{}}]'}
            await conn.execute(insert, {**row, "t": at if store.dialect == "postgresql" else sqlite_utc_text(at)})
    await migrate.upgrade(store.engine, HEAD)
    frames = await store.frames("CS-1")
    assert [f.frame for f in frames] == [f'[2,"{i}","Heartbeat",{{}}]' for i in (4, 3, 1, 0)]  # newest first
    assert [f.direction for f in frames] == ["out", "in", "in", "out"]
    assert [f.timestamp for f in frames] == [T0 + timedelta(seconds=i) for i in (4, 3, 1, 0)]
    assert frames[0].id > frames[1].id > frames[2].id > frames[3].id
    assert [f.frame for f in await store.frames("CS-2")] == ['[2,"2","Heartbeat",{}]']
