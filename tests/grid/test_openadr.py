"""OpenADR 3 events -> canonical events."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from csms.grid.book import EventBook
from csms.grid.intake import detect_format
from csms.grid.model import EventRejected
from csms.grid.openadr import map_openadr, submit_openadr
from tests.grid.conftest import T0, ManualClock

EVENT: dict[str, Any] = {
    "id": "evt-1",
    "objectType": "EVENT",
    "programID": "dsgs-option-3",
    "eventName": "evening export",
    "priority": 1,
    "modificationDateTime": "2026-07-13T18:00:00Z",
    "targets": [{"type": "GROUP", "values": ["garage-a"]}, {"type": "VEN_NAME", "values": ["site-ven"]}],
    "payloadDescriptors": [
        {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "EXPORT_CAPACITY_LIMIT", "units": "KW"}
    ],
    "intervalPeriod": {"start": "2026-07-14T23:00:00Z", "duration": "PT1H"},
    "intervals": [
        {"id": 0, "payloads": [{"type": "EXPORT_CAPACITY_LIMIT", "values": [400]}]},
        {"id": 1, "payloads": [{"type": "EXPORT_CAPACITY_LIMIT", "values": [300]}, {"type": "PRICE", "values": [0.5]}]},
    ],
}


def ev(doc: dict[str, Any] | None = None, **kw: Any) -> Any:
    m = map_openadr(doc or EVENT, now=T0, **kw)
    assert m.event is not None
    return m.event


def test_mapping() -> None:
    e = ev()
    assert e.id == "evt-1" and e.program == "dsgs-option-3" and e.priority == 1
    assert [iv.target_kw for iv in e.intervals] == [400, 300]
    assert e.intervals[1].start == e.intervals[0].end == T0 + timedelta(hours=2)
    assert e.intervals[0].max_kw == 400 and e.direction == "export" and e.basis == "absolute"
    assert e.targets.group_ids == ["garage-a"] and e.meta["other_targets"][0]["type"] == "VEN_NAME"
    assert e.issued_at is not None and "PRICE" in e.meta["ignored_payloads"]
    assert detect_format(EVENT) == "openadr"


def test_dispatch_setpoint_units_and_directions() -> None:
    doc = copy.deepcopy(EVENT)
    doc["payloadDescriptors"] = [{"payloadType": "DISPATCH_SETPOINT", "units": "W"}]
    doc["intervals"] = [{"id": 0, "payloads": [{"type": "DISPATCH_SETPOINT", "values": [-250000]}]}]
    e = ev(doc)
    assert e.direction == "export" and e.intervals[0].target_kw == 250
    doc["intervals"] = [{"id": 0, "payloads": [{"type": "DISPATCH_SETPOINT", "values": [50000]}]}]
    assert ev(doc).direction == "import_limit"
    doc["intervals"] = [{"id": 0, "payloads": [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-100]}]}]
    e = ev(doc)
    assert e.direction == "load_reduction" and e.basis == "delta_from_baseline" and e.intervals[0].target_kw == 100


def test_now_start_and_open_ended_duration() -> None:
    doc = copy.deepcopy(EVENT)
    doc["intervalPeriod"] = {"start": "0001-01-01T00:00:00Z", "duration": "P9999Y", "randomizeStart": "PT5M"}
    doc["intervals"] = doc["intervals"][:1]
    e = ev(doc)
    assert e.start == T0 and e.end == T0 + timedelta(hours=24)
    assert any("capped to 24 h" in n for n in e.notes) and any("randomizeStart" in n for n in e.notes)
    assert e.meta["start_is_now"] is True
    # a repeat keeps the first anchor
    later = map_openadr(doc, now=T0 + timedelta(minutes=5), start_anchor=e.start).event
    assert later is not None and later.start == T0


def test_interval_with_own_period() -> None:
    doc = copy.deepcopy(EVENT)
    doc["intervals"][1]["intervalPeriod"] = {"start": "2026-07-15T02:00:00Z", "duration": "PT30M"}
    e = ev(doc)
    assert e.intervals[1].start == T0 + timedelta(hours=4) and e.intervals[1].duration == timedelta(minutes=30)
    doc["intervals"][1]["intervalPeriod"] = {"start": "2026-07-14T23:30:00Z"}
    with pytest.raises(EventRejected) as info:
        map_openadr(doc, now=T0)
    assert info.value.field == "intervals[1].intervalPeriod.start" and "overlaps" in info.value.reason


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("id"), "id"),
        (lambda d: d.pop("programID"), "programID"),
        (lambda d: d["intervalPeriod"].pop("duration"), "intervalPeriod.duration"),
        (lambda d: d["intervalPeriod"].update(duration="1 hour"), "intervalPeriod.duration"),
        (lambda d: d["intervalPeriod"].update(start="2026-07-14T23:00:00"), "intervalPeriod.start"),
        (lambda d: d["intervals"][0].update(payloads=[{"type": "PRICE", "values": [1]}]), "intervals[0].payloads"),
        (lambda d: d["intervals"][1]["payloads"][0].update(values=["x"]), "intervals[1].payloads[0].values[0]"),
        (lambda d: d["payloadDescriptors"][0].update(units="KWH"), "payloadDescriptors[0].units"),
        (
            lambda d: d["intervals"][1].update(payloads=[{"type": "IMPORT_CAPACITY_LIMIT", "values": [10]}]),
            "intervals[1].payloads",
        ),
    ],
)
def test_rejections_name_the_openadr_field(mutate: Any, field: str) -> None:
    doc = copy.deepcopy(EVENT)
    mutate(doc)
    with pytest.raises(EventRejected) as info:
        map_openadr(doc, now=T0)
    assert info.value.field == field


async def test_submit_update_and_cancellation(book: EventBook, clock: ManualClock) -> None:
    r = await submit_openadr(book, EVENT)
    assert [s.outcome for s in r.accepted] == ["submitted"] and r.accepted[0].event.source == "openadr"
    r = await submit_openadr(book, EVENT)  # the VTN re-sends (poll) the same event
    assert [s.outcome for s in r.accepted] == ["duplicate"]
    newer = copy.deepcopy(EVENT)
    newer["modificationDateTime"] = "2026-07-14T18:00:00Z"
    newer["intervals"][0]["payloads"][0]["values"] = [350]
    r = await submit_openadr(book, newer)
    assert [(s.outcome, s.event.revision) for s in r.accepted] == [("revised", 1)]
    r = await submit_openadr(book, EVENT)  # the older version arriving late is stale
    assert r.rejected and r.rejected[0].error.field == "revision"
    zero = copy.deepcopy(newer)
    zero["modificationDateTime"] = "2026-07-14T19:00:00Z"
    zero["intervalPeriod"]["duration"] = "PT0S"
    r = await submit_openadr(book, zero)
    assert [(s.outcome, s.event.status) for s in r.accepted] == [("cancelled", "cancelled")]


async def test_delete_notification(book: EventBook) -> None:
    await submit_openadr(book, {"objectType": "EVENT", "operation": "POST", "object": EVENT})
    r = await submit_openadr(book, {"objectType": "EVENT", "operation": "DELETE", "object": {"id": "evt-1"}})
    assert r.accepted[0].event.status == "cancelled"
    r = await submit_openadr(book, {"objectType": "EVENT", "operation": "DELETE", "object": {"id": "other"}})
    assert r.ok and not r.accepted and "unknown" in r.notes[-1]
