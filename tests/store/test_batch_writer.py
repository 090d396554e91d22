"""BatchWriter failure handling with fake sinks (no database)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from csms.store.batch import BatchWriter, GroupCommit, TouchWriter


class FlakySink:
    def __init__(self, outages: int = 0, bad: frozenset[int] = frozenset()) -> None:
        self.outages = outages
        self.bad = bad
        self.rows: list[int] = []
        self.calls = 0

    async def __call__(self, batch: list[int]) -> None:
        self.calls += 1
        if self.outages:
            self.outages -= 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("db down"))
        if self.bad & set(batch):
            raise IntegrityError("INSERT", {}, ValueError("bad row"))
        self.rows.extend(batch)


async def test_transient_errors_keep_rows_in_order() -> None:
    sink = FlakySink(outages=2)
    writer: BatchWriter[int] = BatchWriter("t", sink, flush_interval=60, max_rows=4)
    writer._enqueue(range(10))
    for _ in range(2):
        with pytest.raises(OperationalError):
            await writer.flush()
        assert writer.pending == 10
    await writer.flush()
    assert sink.rows == list(range(10)) and writer.written == 10 and writer.dropped == 0


async def test_background_flush_retries_until_the_database_is_back() -> None:
    sink = FlakySink(outages=3)
    writer: BatchWriter[int] = BatchWriter("t", sink, flush_interval=0.02)
    writer.start()
    try:
        writer._enqueue([1, 2, 3])
        for _ in range(200):
            if sink.rows:
                break
            await asyncio.sleep(0.01)
        assert sink.rows == [1, 2, 3]
    finally:
        await writer.close()


async def test_bad_rows_are_dropped_alone() -> None:
    sink = FlakySink(bad=frozenset({3, 7}))
    writer: BatchWriter[int] = BatchWriter("t", sink, flush_interval=60, max_rows=5)
    writer._enqueue(range(10))
    await writer.flush()
    assert sink.rows == [0, 1, 2, 4, 5, 6, 8, 9]
    assert (writer.written, writer.dropped, writer.pending) == (8, 2, 0)


async def test_buffer_cap_drops_oldest() -> None:
    writer: BatchWriter[int] = BatchWriter("t", FlakySink(), flush_interval=60, max_rows=10, max_buffer=25)
    writer._enqueue(range(40))
    assert writer.pending == 25 and writer.dropped == 15
    await writer.close()
    with pytest.raises(RuntimeError):
        writer._enqueue([1])


async def test_touch_writer_keeps_latest_per_station() -> None:
    seen: list[tuple[str, datetime]] = []

    async def sink(batch: list[tuple[str, datetime]]) -> None:
        seen.extend(batch)

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    writer = TouchWriter(sink, flush_interval=60)
    for i in (3, 1, 5, 2):
        writer.add("A", t0 + timedelta(seconds=i))
    writer.add("B", t0)
    assert writer.pending == 2 and writer.pending_for("A") == t0 + timedelta(seconds=5)
    await writer.flush()
    assert sorted(seen) == [("A", t0 + timedelta(seconds=5)), ("B", t0)]


async def test_group_commit_coalesces_and_isolates_a_bad_item() -> None:
    batches: list[list[int]] = []

    async def sink(items: list[int]) -> list[int]:
        await asyncio.sleep(0.01)  # a write in flight: later items queue behind it
        if 13 in items:
            raise IntegrityError("insert", {}, Exception("bad row"))
        batches.append(items)
        return [i * 2 for i in items]

    group: GroupCommit[int, int] = GroupCommit("t", sink, max_rows=50)
    results = await asyncio.gather(*(group.write(i) for i in range(100)), return_exceptions=True)
    assert isinstance(results[13], IntegrityError)
    assert [r for i, r in enumerate(results) if i != 13] == [i * 2 for i in range(100) if i != 13]
    # the first item goes alone, the rest in batches of at most 50; the batch holding 13 is
    # retried item by item
    assert batches[0] == [0] and max(len(b) for b in batches) <= 50
    assert sorted(i for b in batches for i in b) == [i for i in range(100) if i != 13]
    assert await group.write(7) == 14  # still works afterwards
