"""Canonical event validation: every refusal names the field and the reason."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.grid.model import EventRejected, GridEvent, parse_duration, parse_iso_duration, validate_event
from tests.grid.conftest import event_doc

GOOD: dict[str, Any] = {
    "id": "dsgs-2026-07-14",
    "program": "DSGS-3",
    "priority": 1,
    "intervals": [
        {"start": "2026-07-14T23:00:00Z", "end": "2026-07-15T01:00:00Z", "target_kw": 400},
        {"start": "2026-07-15T01:00:00Z", "duration": "PT2H", "target_kw": 300, "max_kw": 320},
    ],
}


def rejected(mutate: Any) -> EventRejected:
    doc = copy.deepcopy(GOOD)
    mutate(doc)
    with pytest.raises(EventRejected) as info:
        validate_event(doc)
    return info.value


def test_valid_event_is_utc_and_duration_becomes_end() -> None:
    ev = validate_event(GOOD)
    assert ev.intervals[1].end == datetime(2026, 7, 15, 3, tzinfo=UTC)
    assert ev.start.tzinfo is UTC and ev.end == datetime(2026, 7, 15, 3, tzinfo=UTC)
    assert ev.status == "pending" and ev.direction == "export" and ev.basis == "absolute"
    # round trip through canonical JSON
    assert GridEvent.model_validate(ev.to_json()) == ev


def test_offset_times_are_converted_to_utc() -> None:
    doc = event_doc()
    doc["intervals"][0]["start"] = "2026-07-14T16:00:00-07:00"
    doc["intervals"][0]["end"] = "2026-07-14T18:00:00-07:00"
    ev = validate_event(doc)
    assert ev.start == datetime(2026, 7, 14, 23, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda d: d["intervals"][1].update(duration="-PT1H"), "intervals[1].duration", "negative"),
        (lambda d: d["intervals"][0].update(end="2026-07-14T22:00:00Z"), "intervals[0].end", "must be after start"),
        (lambda d: d["intervals"][0].update(start="2026-07-14T23:00:00"), "intervals[0].start", "UTC offset"),
        (
            lambda d: d["intervals"][1].update(start="2026-07-15T00:30:00Z"),
            "intervals[1].start",
            "overlaps intervals[0]",
        ),
        (lambda d: d["intervals"].reverse(), "intervals[1].start", "time order"),
        (lambda d: d["intervals"][0].update(target_kw=-5), "intervals[0].target_kw", "must be >= 0"),
        (lambda d: d["intervals"][0].update(target_kW=5), "intervals[0].target_kW", "unknown field"),
        (lambda d: d["intervals"][1].update(max_kw=100), "intervals[1].max_kw", "below target_kw"),
        (lambda d: d["intervals"][0].update(min_kw=500), "intervals[0].min_kw", "exceed target_kw"),
        (lambda d: d["intervals"][1].update(duration="soon"), "intervals[1].duration", "not a duration"),
        (lambda d: d.update(intervals=[]), "intervals", "must not be empty"),
        (lambda d: d.pop("intervals"), "intervals", "is required"),
        (lambda d: d.pop("id"), "id", "is required"),
        (lambda d: d.update(id="a/b"), "id", "no spaces or slashes"),
        (lambda d: d.update(revision=-1), "revision", "must be >= 0"),
        (lambda d: d.update(priority="high"), "priority", "integer"),
        (lambda d: d.update(direction="up"), "direction", "must be one of"),
        (lambda d: d.update(basis="relative"), "basis", "must be one of"),
        (lambda d: d.update(targets={"group_ids": ["ok", ""]}), "targets.group_ids[1]", "must not be empty"),
        (lambda d: d.update(ramp={}), "ramp.up_kw_per_min", "up_kw_per_min"),
        (lambda d: d.update(committed_kw=-1), "committed_kw", "must be >= 0"),
    ],
)
def test_rejections_name_field_and_reason(mutate: Any, field: str, reason: str) -> None:
    exc = rejected(mutate)
    assert exc.field == field
    assert reason in exc.reason
    assert str(exc) == f"{field}: {exc.reason}"


def test_rejection_example_from_the_spec() -> None:
    doc = copy.deepcopy(GOOD)
    doc["intervals"][1] = {"start": "2026-07-15T01:00:00Z", "end": "2026-07-15T01:00:00Z", "target_kw": 1}
    with pytest.raises(EventRejected, match=r"^intervals\[1\]\.end: must be after start$"):
        validate_event(doc)


def test_end_and_duration_together() -> None:
    exc = rejected(lambda d: d["intervals"][1].update(end="2026-07-15T02:00:00Z"))
    assert (exc.field, exc.reason) == ("intervals[1].duration", "give end or duration, not both")


def test_not_an_object() -> None:
    with pytest.raises(EventRejected) as info:
        validate_event(["x"])  # type: ignore[arg-type]
    assert info.value.field == "event"


def test_all_errors_are_collected() -> None:
    exc = rejected(lambda d: d.update(priority=-1, direction="x"))
    fields = {f for f, _ in exc.errors}
    assert {"priority", "direction"} <= fields


def test_status_over_time() -> None:
    ev = validate_event(event_doc())
    assert ev.status_at(ev.start - timedelta(seconds=1)) == "pending"
    assert ev.status_at(ev.start) == "active"
    assert ev.status_at(ev.end) == "completed"
    assert ev.interval_at(ev.end) is None and ev.interval_at(ev.start) is not None


def test_durations() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("PT2H") == timedelta(hours=2)
    assert parse_duration(3600) == timedelta(hours=1)
    assert parse_iso_duration("P9999Y")[1] is True
    assert parse_iso_duration("P1DT2H")[0] == timedelta(hours=26)
    with pytest.raises(ValueError):
        parse_iso_duration("PT")
