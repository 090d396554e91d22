"""Write-behind paths: meter batch writer, frame log pruning, coalesced touch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from csms.store import Store

T0 = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def sample(minutes: float, value: float, **extra: object) -> dict[str, object]:
    return {
        "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
        "sampledValue": [{"value": value, **extra}],
    }


async def test_meter_writer_flushes_on_interval(db_url: str) -> None:
    store = await Store.open(db_url, flush_interval=0.1)
    try:
        queued = store.add_meter_values("CS-1", 1, None, [sample(0, 1), sample(1, 2)])
        assert queued == 2  # returned synchronously, nothing awaited
        assert await store.meter_samples("CS-1") == []  # not written yet ...

        async def written() -> bool:
            return len(await store.meter_samples("CS-1")) == 2

        await eventually(written)  # ... until the background flush runs (no explicit flush)
        assert store.meters.written == 2
    finally:
        await store.close()


async def test_meter_writer_flushes_early_when_buffer_is_full(db_url: str) -> None:
    store = await Store.open(db_url, flush_interval=30, meter_batch_rows=10)
    try:
        store.add_meter_values("CS-1", 1, None, [sample(i, i) for i in range(25)])

        async def written() -> bool:
            return len(await store.meter_samples("CS-1")) == 25

        await eventually(written, timeout=3)  # far before the 30 s interval
    finally:
        await store.close()


async def test_meter_writer_flushes_on_close(db_url: str) -> None:
    store = await Store.open(db_url, flush_interval=30)
    store.add_meter_values("CS-1", 0, "TX-1", [sample(i, i) for i in range(5)])
    await store.close()
    with pytest.raises(RuntimeError):
        store.add_meter_values("CS-1", 0, None, [sample(0, 0)])
    store = await Store.open(db_url)
    try:
        rows = await store.meter_samples("CS-1", transaction_id="TX-1")
        assert [r.value for r in rows] == [0, 1, 2, 3, 4]
    finally:
        await store.close()


async def test_meter_values_parsing_multipliers_and_units(store: Store) -> None:
    mv = [
        {
            "timestamp": "2026-06-01T16:00:00Z",
            "sampledValue": [
                {"value": 12.5, "unitOfMeasure": {"unit": "Wh", "multiplier": 3}},  # 12 500 Wh
                {
                    "value": 1.5,
                    "measurand": "Energy.Active.Import.Register",
                    "unitOfMeasure": {"unit": "kWh"},
                },
                {"value": 7.2, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}},
                {
                    "value": 2305,
                    "measurand": "Voltage",
                    "phase": "L1-N",
                    "unitOfMeasure": {"unit": "V", "multiplier": -1},
                },
                {
                    "value": 16,
                    "measurand": "Current.Import",
                    "phase": "L2",
                    "location": "Outlet",
                    "context": "Sample.Periodic",
                    "unitOfMeasure": {"unit": "A"},
                },
                {"value": 55, "measurand": "SoC", "location": "EV", "unitOfMeasure": {"unit": "Percent"}},
                {
                    "value": 3,
                    "measurand": "Energy.Active.Export.Register",
                    "unitOfMeasure": {"multiplier": 2},
                },
                {"value": 9},  # no unitOfMeasure: default measurand, unit unknown
                {"value": "not-a-number"},  # skipped
                {"value": 1, "phase": "X" * 50},  # too long for its column: skipped, batch unharmed
            ],
        },
        {"timestamp": "garbage", "sampledValue": [{"value": 1}]},  # skipped
    ]
    assert store.add_meter_values("CS-1", 1, "TX-9", mv) == 8
    await store.flush()
    rows = await store.meter_samples("CS-1")
    got = {(r.measurand, r.phase): (r.value, r.unit) for r in rows}
    assert got[("Power.Active.Import", None)] == (7200.0, "W")
    assert got[("Voltage", "L1-N")] == (230.5, "V")
    assert got[("Current.Import", "L2")] == (16.0, "A")
    assert got[("SoC", None)] == (55.0, "Percent")
    assert got[("Energy.Active.Export.Register", None)] == (300.0, "Wh")
    energy = sorted((r.value, r.unit) for r in rows if r.measurand == "Energy.Active.Import.Register")
    assert energy == [(9.0, None), (1500.0, "Wh"), (12500.0, "Wh")]
    assert all(r.transaction_id == "TX-9" and r.evse_id == 1 and r.timestamp == T0 for r in rows)
    current = next(r for r in rows if r.measurand == "Current.Import")
    assert (current.location, current.context) == ("Outlet", "Sample.Periodic")


async def test_meter_sample_queries(store: Store) -> None:
    store.add_meter_values("CS-1", 1, "TX-1", [sample(i, i, measurand="Power.Active.Import") for i in range(10)])
    store.add_meter_values("CS-1", 2, None, [sample(i, 100 + i) for i in range(10)])
    store.add_meter_values("CS-2", 1, None, [sample(0, 1000)])
    await store.flush()
    window = await store.meter_samples("CS-1", start=T0 + timedelta(minutes=2), end=T0 + timedelta(minutes=5))
    assert sorted(r.value for r in window) == [2, 3, 4, 102, 103, 104]
    power = await store.meter_samples("CS-1", measurand="Power.Active.Import", limit=3)
    assert [r.value for r in power] == [0, 1, 2]
    latest = await store.meter_samples("CS-1", evse_id=2, limit=1, newest_first=True)
    assert [r.value for r in latest] == [109]
    assert len(await store.meter_samples("CS-1", transaction_id="TX-1")) == 10


async def test_frame_log_is_pruned_to_the_limit(db_url: str) -> None:
    store = await Store.open(db_url, frame_log_limit=20, flush_interval=0.1)
    try:
        for i in range(75):
            store.log_frame("CS-1", "in" if i % 2 else "out", f"frame-{i}", T0 + timedelta(seconds=i))
        for i in range(5):
            store.log_frame("CS-2", "in", f"other-{i}")
        await store.flush()
        frames = await store.frames("CS-1", limit=1000)
        assert [f.frame for f in frames] == [f"frame-{i}" for i in range(74, 54, -1)]  # newest first
        assert frames[0].direction == "out" and frames[0].timestamp == T0 + timedelta(seconds=74)
        assert len(await store.frames("CS-2", limit=1000)) == 5
        assert [f.frame for f in await store.frames("CS-1", limit=3)] == ["frame-74", "frame-73", "frame-72"]

        # background flushes prune too (with a little slack), without an explicit flush
        for i in range(75, 140):
            store.log_frame("CS-1", "in", f"frame-{i}")

        async def pruned() -> bool:
            frames = await store.frames("CS-1", limit=1000)
            return frames[0].frame == "frame-139" and len(frames) <= 20 + store._frames.slack

        await eventually(pruned)
        with pytest.raises(ValueError):
            store.log_frame("CS-1", "sideways", "x")
    finally:
        await store.close()
    store = await Store.open(db_url, frame_log_limit=20)
    try:
        assert len(await store.frames("CS-1", limit=1000)) == 20  # close() pruned exactly
    finally:
        await store.close()


async def test_touch_is_coalesced_and_visible_before_flush(store: Store) -> None:
    await store.record_boot("CS-1", "V", "M", "S", "F", "2.0.1", "Accepted", T0)
    for minute in (5, 3, 9, 7):
        store.touch("CS-1", T0 + timedelta(minutes=minute))
    store.touch("CS-UNKNOWN", T0)  # no row: ignored on flush
    row = await store.get_station("CS-1")
    assert row is not None and row.last_seen_at == T0 + timedelta(minutes=9)  # overlay of pending value
    await store.flush()
    assert store._touches.pending_for("CS-1") is None
    row = await store.get_station("CS-1")
    assert row is not None and row.last_seen_at == T0 + timedelta(minutes=9)
    store.touch("CS-1", T0 + timedelta(minutes=1))  # older than stored: never moves it back
    await store.flush()
    assert (await store.list_stations())[0].last_seen_at == T0 + timedelta(minutes=9)
    assert await store.get_station("CS-UNKNOWN") is None


async def test_frames_and_samples_round_trip_exactly_through_the_bulk_path(store: Store) -> None:
    odd = '[2,"m\\"1","DataTransfer",{"vendorId":"é\\\\x","data":"tab\\tline\\nend ⚡"}]'
    store.log_frame("CS-1", "in", odd, T0)
    store.log_frame("CS-1", "out", odd.encode(), T0 + timedelta(microseconds=1))  # bytes as sent
    sampled = [
        {"value": 0.1, "measurand": "Voltage", "phase": "L1-N", "location": "Outlet", "context": "Sample.Periodic"},
        {"value": 7, "unitOfMeasure": {"unit": "kWh", "multiplier": -1}},
    ]
    meter_value = {"timestamp": "2026-06-01T16:00:00.123456+02:00", "sampledValue": sampled}
    store.add_meter_values("CS-1", 2, "TX-é", [meter_value])
    await store.flush()
    frames = await store.frames("CS-1")
    assert [(f.direction, f.frame, f.timestamp) for f in frames] == [
        ("out", odd, T0 + timedelta(microseconds=1)),
        ("in", odd, T0),
    ]
    rows = await store.meter_samples("CS-1")
    at = datetime(2026, 6, 1, 14, 0, 0, 123456, tzinfo=UTC)
    fields = [(r.timestamp, r.evse_id, r.transaction_id, r.measurand, r.phase, r.location, r.context, r.unit, r.value)
              for r in rows]  # fmt: skip
    assert fields == [
        (at, 2, "TX-é", "Voltage", "L1-N", "Outlet", "Sample.Periodic", None, 0.1),
        (at, 2, "TX-é", "Energy.Active.Import.Register", None, None, None, "Wh", 700.0),
    ]
