"""EventBook: revisions, cancellation, priority resolution, status over time, persistence."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.grid.book import EventBook
from csms.grid.model import EventRejected, UnknownEvent
from csms.store.repository import Store
from tests.grid.conftest import T0, ManualClock, event_doc


async def test_submit_and_idempotent_resubmission(book: EventBook, changes: list[Any]) -> None:
    ev = await book.submit(event_doc(), source="api")
    assert ev.status == "pending" and ev.source == "api" and ev.received_at == T0
    again = await book.submit_detailed(event_doc(), source="mqtt")  # identical content, other channel
    assert again.outcome == "duplicate" and again.event == ev
    assert changes == [("ev-1", 0, "submitted")]


async def test_higher_revision_replaces_and_supersedes(book: EventBook, clock: ManualClock, changes: list[Any]) -> None:
    await book.submit(event_doc(kw=400))
    clock.advance(60)
    new = await book.submit(event_doc(kw=300, revision=1))
    assert new.revision == 1 and new.intervals[0].target_kw == 300 and new.received_at == T0 + timedelta(seconds=60)
    assert book.get("ev-1") == new
    (old,) = book.history("ev-1")
    assert old.revision == 0 and old.status == "superseded" and old.intervals[0].target_kw == 400
    assert [e.revision for e in book.list("superseded")] == [0]
    assert changes[-1] == ("ev-1", 1, "revised")


@pytest.mark.parametrize("revision", [0, 1])
async def test_same_or_lower_revision_with_other_content_is_rejected(book: EventBook, revision: int) -> None:
    await book.submit(event_doc(kw=400, revision=1))
    with pytest.raises(EventRejected) as info:
        await book.submit(event_doc(kw=999, revision=revision))
    assert info.value.field == "revision"
    assert book.get("ev-1").intervals[0].target_kw == 400  # type: ignore[union-attr]


async def test_rejected_event_changes_nothing(book: EventBook, store: Store, changes: list[Any]) -> None:
    await book.submit(event_doc())
    bad = event_doc(revision=1)
    bad["intervals"][0]["end"] = bad["intervals"][0]["start"]
    with pytest.raises(EventRejected, match=r"intervals\[0\]\.end: must be after start"):
        await book.submit(bad)
    assert book.get("ev-1").revision == 0  # type: ignore[union-attr]
    assert (await store.get_grid_event("ev-1")).revision == 0  # type: ignore[union-attr]
    assert book.history("ev-1") == [] and len(changes) == 1


async def test_store_failure_changes_nothing(book: EventBook, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "put_grid_event", broken)
    with pytest.raises(RuntimeError):
        await book.submit(event_doc())
    assert book.get("ev-1") is None and len(book) == 0


async def test_cancel(book: EventBook, changes: list[Any]) -> None:
    await book.submit(event_doc())
    ev = await book.cancel("ev-1", "utility withdrew")
    assert ev.status == "cancelled" and ev.cancel_reason == "utility withdrew"
    assert (await book.cancel("ev-1")).status == "cancelled"  # idempotent
    assert changes == [("ev-1", 0, "submitted"), ("ev-1", 0, "cancelled")]
    with pytest.raises(UnknownEvent):
        await book.cancel("nope")
    # an identical resubmission does not revive it
    assert (await book.submit(event_doc())).status == "cancelled"
    assert book.resolve(T0 + timedelta(hours=1, minutes=5)) is None


async def test_cancel_by_submission_of_same_revision(book: EventBook) -> None:
    await book.submit(event_doc())
    sub = await book.submit_detailed({**event_doc(), "status": "cancelled", "cancel_reason": "by issuer"})
    assert sub.outcome == "cancelled" and sub.event.status == "cancelled" and sub.event.revision == 0


async def test_cancellation_for_unknown_id_is_a_tombstone(book: EventBook) -> None:
    ev = await book.submit({**event_doc(), "status": "cancelled"})
    assert ev.status == "cancelled"
    with pytest.raises(EventRejected):  # a late original with other content cannot revive it
        await book.submit(event_doc(kw=10))


async def test_auto_revision(book: EventBook) -> None:
    await book.submit(event_doc(kw=400), auto_revision=True)
    assert (await book.submit_detailed(event_doc(kw=400), auto_revision=True)).outcome == "duplicate"
    new = await book.submit(event_doc(kw=350), auto_revision=True)
    assert new.revision == 1
    stale = event_doc(kw=1, issued_at="2026-07-01T00:00:00Z")
    newer = event_doc(kw=2, issued_at="2026-07-02T00:00:00Z")
    assert (await book.submit(newer, auto_revision=True)).revision == 2
    with pytest.raises(EventRejected) as info:
        await book.submit(stale, auto_revision=True)
    assert info.value.field == "revision" and "stale" in info.value.reason
    await book.cancel("ev-1")
    with pytest.raises(EventRejected) as info:
        await book.submit(event_doc(kw=5, issued_at="2026-07-03T00:00:00Z"), auto_revision=True)
    assert info.value.field == "status"


async def test_priority_resolution(book: EventBook, clock: ManualClock) -> None:
    # A: 1h..5h prio 5; B: 2h..3h prio 1 (wins while it runs); C: 2h..4h prio 1, received later
    await book.submit(event_doc("A", start_h=1, hours=4, kw=100, priority=5))
    await book.submit(event_doc("B", start_h=2, hours=1, kw=200, priority=1))
    at = T0 + timedelta(hours=2, minutes=30)
    r = book.resolve(at)
    assert r is not None and r.event.id == "B" and r.target_kw == 200 and [e.id for e in r.overridden] == ["A"]
    clock.advance(10)
    await book.submit(event_doc("C", start_h=2, hours=2, kw=300, priority=1))
    assert book.resolve(at).event.id == "C"  # type: ignore[union-attr]  # tie -> newest received
    assert [e.id for e in book.active_at(at)] == ["C", "B", "A"]
    assert book.resolve(T0 + timedelta(hours=3, minutes=30)).event.id == "C"  # type: ignore[union-attr]
    assert book.resolve(T0 + timedelta(hours=4, minutes=30)).event.id == "A"  # type: ignore[union-attr]
    assert book.resolve(T0 + timedelta(hours=5)) is None  # end is exclusive
    await book.cancel("C")
    assert book.resolve(at).event.id == "B"  # type: ignore[union-attr]


async def test_priority_zero_is_highest_and_tests_never_beat_real_events(book: EventBook) -> None:
    await book.submit(event_doc("real", priority=7))
    await book.submit(event_doc("test", priority=0, is_test=True))
    at = T0 + timedelta(hours=1, minutes=1)
    assert book.resolve(at).event.id == "real"  # type: ignore[union-attr]
    await book.submit(event_doc("urgent", priority=0))
    assert book.resolve(at).event.id == "urgent"  # type: ignore[union-attr]


async def test_multi_interval_resolution(book: EventBook) -> None:
    doc = event_doc("M")
    start = T0 + timedelta(hours=1)
    doc["intervals"] = [
        {"start": start.isoformat(), "duration": "PT30M", "target_kw": 100},
        {"start": (start + timedelta(hours=1)).isoformat(), "duration": "PT30M", "target_kw": 200},
    ]
    await book.submit(doc)
    assert book.resolve(start + timedelta(minutes=10)).index == 0  # type: ignore[union-attr]
    assert book.resolve(start + timedelta(minutes=45)) is None  # gap between intervals
    assert book.resolve(start + timedelta(minutes=70)).target_kw == 200  # type: ignore[union-attr]


async def test_tick_moves_status(book: EventBook, clock: ManualClock, changes: list[Any]) -> None:
    await book.submit(event_doc(start_h=1, hours=1))
    assert await book.tick() == []
    clock.advance(3600)
    (ev,) = await book.tick()
    assert ev.status == "active" and changes[-1] == ("ev-1", 0, "activated")
    clock.advance(3600)
    (ev,) = await book.tick()
    assert ev.status == "completed" and changes[-1] == ("ev-1", 0, "completed")
    assert (await book.cancel("ev-1")).status == "completed"  # cancelling a finished event changes nothing


async def test_event_in_the_past_is_completed_on_arrival(book: EventBook) -> None:
    assert (await book.submit(event_doc(start_h=-5, hours=1))).status == "completed"


async def test_async_on_change_and_failing_callback(store: Store, clock: ManualClock) -> None:
    seen: list[str] = []

    async def cb(ev: Any, kind: str) -> None:
        seen.append(kind)
        raise RuntimeError("listener bug")

    b = EventBook(store, clock, on_change=cb)
    await b.submit(event_doc())  # the failing listener does not undo the submission
    assert seen == ["submitted"] and b.get("ev-1") is not None


async def test_persistence_across_reopen(tmp_path: Path, clock: ManualClock) -> None:
    url = "sqlite+aiosqlite:///" + str(tmp_path / "t.db")
    store = await Store.open(url)
    b = EventBook(store, clock)
    await b.submit(event_doc("A", kw=400, program="DSGS"), source="mqtt")
    await b.submit(event_doc("A", kw=300, revision=1, program="DSGS"), source="webhook")
    await b.submit(event_doc("B"))
    await b.cancel("B", "test over")
    await store.close()

    store = await Store.open(url)
    try:
        b2 = EventBook(store, clock)
        assert await b2.load() == 2
        a = b2.get("A")
        assert a is not None and a.revision == 1 and a.source == "webhook" and a.intervals[0].target_kw == 300
        assert [h.revision for h in b2.history("A")] == [0]
        assert b2.get("B").status == "cancelled"  # type: ignore[union-attr]
        assert b2.get("B").cancel_reason == "test over"  # type: ignore[union-attr]
        row = await store.get_grid_event("A")
        assert row is not None and row.revision == 1 and row.status == "pending"
        # the revision rules still hold after the restart
        with pytest.raises(EventRejected):
            await b2.submit(event_doc("A", kw=1, revision=1))
    finally:
        await store.close()


async def test_list_and_check(book: EventBook) -> None:
    await book.submit(event_doc("b", start_h=2))
    await book.submit(event_doc("a", start_h=1))
    assert [e.id for e in book.list()] == ["a", "b"]
    assert book.list("active") == []
    with pytest.raises(ValueError):
        book.list("bogus")
    assert book.check(event_doc("a", kw=1, revision=3)).revision == 3
    assert book.get("a").revision == 0  # type: ignore[union-attr]  # check is a dry run
    assert [e.id for e in book.upcoming(T0, timedelta(hours=1, minutes=30))] == ["a"]
