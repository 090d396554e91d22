"""Leap-style dispatch notifications -> canonical events."""

from __future__ import annotations

import copy
from typing import Any

from csms.grid.book import EventBook
from csms.grid.intake import detect_format, ingest
from csms.grid.leap import map_leap, submit_leap

SLOT: dict[str, Any] = {
    "market_group_event_id": "a2b9e3f0-7a5c-4a8e-9d1f-2b6c3d4e5f60",
    "start_time": "2026-07-14T23:00:00Z",
    "end_time": "2026-07-15T04:00:00Z",
    "cancelled": False,
    "priority": 1,
    "is_voluntary": False,
    "dispatch_event_types": ["day-ahead"],
    "programs": ["DSGS"],
    "energy_kw": 400,
    "nomination_kw": 500,
    "performance_compensation_cap": "grid-exports-allowed",
}


def notification(*slots: dict[str, Any], test: bool = False) -> dict[str, Any]:
    return {
        "integration_test_notification": test,
        "communication_test": False,
        "group_dispatches": [{"market_group_id": "garage-a", "meter_ids": ["m1", "m2"], "timeslots": list(slots)}],
    }


def test_mapping() -> None:
    (item,) = map_leap(notification(SLOT))
    ev = item.event
    assert ev is not None and not item.explicit_revision
    assert ev.id == SLOT["market_group_event_id"]
    assert ev.intervals[0].target_kw == 400 and ev.committed_kw == 500
    assert ev.priority == 1 and ev.program == "DSGS" and not ev.is_test
    assert ev.direction == "export" and ev.basis == "delta_from_baseline"
    assert ev.targets.group_ids == ["garage-a"]
    assert ev.meta["is_voluntary"] is False and ev.meta["dispatch_event_types"] == ["day-ahead"]
    assert ev.meta["meter_ids"] == ["m1", "m2"]


def test_null_energy_means_max_effort_and_site_load_cap() -> None:
    slot = {**SLOT, "energy_kw": None, "performance_compensation_cap": "up-to-site-load"}
    (item,) = map_leap(notification(slot))
    ev = item.event
    assert ev is not None and ev.max_effort and ev.intervals[0].target_kw == 500
    assert ev.direction == "load_reduction" and any("max_effort" in n for n in ev.notes)


def test_integration_test_flag_and_capacity_test() -> None:
    (item,) = map_leap(notification(SLOT, test=True))
    assert item.event is not None and item.event.is_test
    (item,) = map_leap(notification({**SLOT, "dispatch_event_types": ["capacity-test"]}))
    assert item.event is not None and not item.event.is_test  # a measured test event moves real power


def test_meter_dispatch_and_bare_timeslot() -> None:
    doc = {
        "meter_dispatches": [
            {
                "meter_id": "meter-1",
                "partner_reference": "site-sv-1",
                "timeslots": [
                    {**{k: v for k, v in SLOT.items() if k != "market_group_event_id"}, "meter_event_id": "me-1"}
                ],
            }
        ]
    }
    (item,) = map_leap(doc)
    assert item.event is not None and item.event.id == "me-1" and item.event.targets.site_id == "site-sv-1"
    (item,) = map_leap(dict(SLOT))
    assert item.event is not None and item.event.id == SLOT["market_group_event_id"]
    assert detect_format(SLOT) == "leap"


def test_bad_timeslot_names_the_leap_field() -> None:
    bad = {**SLOT, "market_group_event_id": "e2", "end_time": "2026-07-14T22:00:00Z"}
    ok, err = map_leap(notification(SLOT, bad))
    assert ok.event is not None
    assert err.error is not None
    assert err.error.field == "group_dispatches[0].timeslots[1].end_time"
    assert err.error.reason == "must be after start_time"
    (item,) = map_leap(notification({**SLOT, "energy_kw": "lots"}))
    assert item.error is not None and item.error.field == "group_dispatches[0].timeslots[0].energy_kw"
    slot = {k: v for k, v in SLOT.items() if k != "start_time"}
    (item,) = map_leap(notification(slot))
    assert item.error is not None and item.error.field.endswith("start_time")


async def test_submit_retry_update_cancel(book: EventBook) -> None:
    eid = SLOT["market_group_event_id"]
    r = await submit_leap(book, notification(SLOT))
    assert [s.outcome for s in r.accepted] == ["submitted"] and r.ok
    r = await submit_leap(book, notification(SLOT))  # Leap retry: same notification
    assert [s.outcome for s in r.accepted] == ["duplicate"]
    r = await submit_leap(book, notification({**SLOT, "energy_kw": 350}))  # updated award
    assert [(s.outcome, s.event.revision) for s in r.accepted] == [("revised", 1)]
    r = await submit_leap(book, notification({**SLOT, "energy_kw": 350, "cancelled": True}))
    assert [(s.outcome, s.event.status) for s in r.accepted] == [("cancelled", "cancelled")]
    assert book.get(eid).cancel_reason == "cancelled by Leap"  # type: ignore[union-attr]


async def test_cancel_with_unusable_fields_still_cancels(book: EventBook) -> None:
    await submit_leap(book, notification(SLOT))
    slot = {"market_group_event_id": SLOT["market_group_event_id"], "cancelled": True}
    r = await submit_leap(book, notification(slot))
    assert [s.outcome for s in r.accepted] == ["cancelled"]


async def test_partial_acceptance_and_communication_test(book: EventBook) -> None:
    bad = {**copy.deepcopy(SLOT), "market_group_event_id": "e2", "start_time": "2026-07-14T23:00:00"}
    r = await ingest(book, notification(SLOT, bad), source="webhook")
    assert len(r.accepted) == 1 and len(r.rejected) == 1
    assert r.rejected[0].event_id == "e2" and "UTC offset" in r.rejected[0].error.reason
    r = await ingest(book, {"communication_test": True, "group_dispatches": []}, source="webhook")
    assert r.ok and not r.accepted and "communication test" in r.notes[0]


async def test_explicit_revision_extension(book: EventBook) -> None:
    await submit_leap(book, notification({**SLOT, "revision": 5}))
    r = await submit_leap(book, notification({**SLOT, "revision": 4, "energy_kw": 1}))
    assert r.rejected and r.rejected[0].error.field.endswith("revision")
