"""Loading events from JSON files."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from csms.grid.book import EventBook
from csms.grid.files import load_file
from csms.grid.model import EventRejected
from tests.grid.conftest import event_doc
from tests.grid.test_leap import SLOT, notification


async def test_single_and_list(book: EventBook, tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_bytes(orjson.dumps(event_doc("a")))
    r = await load_file(book, one)
    assert [s.event.source for s in r.accepted] == ["file"]
    many = tmp_path / "many.json"
    many.write_bytes(orjson.dumps([event_doc("b"), notification(SLOT), {"cancel": "a"}]))
    r = await load_file(book, many)
    assert r.ok and len(r.accepted) == 3
    assert book.get("a").status == "cancelled"  # type: ignore[union-attr]
    assert book.get(SLOT["market_group_event_id"]) is not None


async def test_all_or_nothing(book: EventBook, tmp_path: Path) -> None:
    bad = event_doc("y")
    bad["intervals"][0]["target_kw"] = -1
    f = tmp_path / "bad.json"
    f.write_bytes(orjson.dumps([event_doc("x"), bad]))
    with pytest.raises(EventRejected) as info:
        await load_file(book, f)
    assert info.value.field == "[1].intervals[0].target_kw"
    assert len(book) == 0  # the valid first event was not submitted either
    r = await load_file(book, f, all_or_nothing=False)
    assert [s.event.id for s in r.accepted] == ["x"] and r.rejected[0].error.field == "[1].intervals[0].target_kw"


async def test_unreadable(book: EventBook, tmp_path: Path) -> None:
    with pytest.raises(EventRejected, match="cannot read"):
        await load_file(book, tmp_path / "missing.json")
    f = tmp_path / "x.json"
    f.write_text("{not json")
    with pytest.raises(EventRejected, match="not valid JSON"):
        await load_file(book, f)
