"""Event targets for the V2G planner: merge (possibly overlapping) events into one schedule.

:func:`resolve_targets` turns a list of :class:`~csms.dispatch.fleet.EventTarget`
into non-overlapping, time-ordered :class:`TargetSegment` pieces (the lowest
``priority`` number wins, then the later event); :func:`as_segments` normalises
the ``target`` argument the planners accept.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

from csms.dispatch.fleet import Direction, EventTarget


@dataclass(frozen=True)
class TargetSegment:
    """A piece of the resolved event schedule: one winning event interval over ``[start, end)``."""

    start: datetime
    end: datetime
    target_kw: float
    min_kw: float | None
    max_kw: float | None
    direction: Direction
    reserve_margin: float
    priority: int
    event_id: str


def resolve_targets(events: list[EventTarget]) -> list[TargetSegment]:
    """Merge possibly overlapping events into one non-overlapping, time-ordered schedule.

    For every instant covered by at least one interval, the interval of the event
    with the **lowest** ``priority`` number wins (OpenADR: 0 is the highest
    priority). On a tie the event that comes **later** in ``events`` wins (pass
    events in the order they were received, so a newer event overrides an older
    one of the same priority); inside one event a later interval overrides an
    earlier overlapping one. Zero-length intervals are ignored (a cancelled
    event is a zero-length window). Adjacent pieces of the same winning
    interval are merged, so a single event comes back as its own intervals.
    """
    flat: list[tuple[int, int, int, EventTarget, int]] = []  # (priority, -event_idx, -iv_idx, ev, iv_idx)
    for ev_idx, ev in enumerate(events):
        for iv_idx, iv in enumerate(ev.intervals):
            if iv.end > iv.start:
                flat.append((ev.priority, -ev_idx, -iv_idx, ev, iv_idx))
    if not flat:
        return []
    bounds = sorted({t for *_, ev, iv_idx in flat for t in (ev.intervals[iv_idx].start, ev.intervals[iv_idx].end)})
    segments: list[TargetSegment] = []
    last_key: tuple[int, int] | None = None
    for lo, hi in itertools.pairwise(bounds):
        covering = [
            item for item in flat if item[3].intervals[item[4]].start <= lo and item[3].intervals[item[4]].end >= hi
        ]
        if not covering:
            last_key = None
            continue
        prio, neg_ev, _neg_iv, ev, iv_idx = min(covering, key=lambda item: (item[0], item[1], item[2]))
        iv = ev.intervals[iv_idx]
        key = (-neg_ev, iv_idx)
        if key == last_key and segments and segments[-1].end == lo:
            prev = segments[-1]
            segments[-1] = TargetSegment(
                prev.start,
                hi,
                prev.target_kw,
                prev.min_kw,
                prev.max_kw,
                prev.direction,
                prev.reserve_margin,
                prev.priority,
                prev.event_id,
            )
        else:
            segments.append(
                TargetSegment(
                    lo,
                    hi,
                    iv.target_kw,
                    iv.min_kw,
                    iv.max_kw,
                    ev.direction,
                    ev.reserve_margin,
                    prio,
                    ev.event_id,
                )
            )
        last_key = key
    return segments


def as_segments(target: EventTarget | list[EventTarget] | list[TargetSegment] | None) -> list[TargetSegment]:
    """Normalise the ``target`` argument of the planners to resolved segments."""
    if target is None:
        return []
    if isinstance(target, EventTarget):
        return resolve_targets([target])
    items = list(target)
    if all(isinstance(x, TargetSegment) for x in items):
        return sorted(items, key=lambda s: s.start)  # type: ignore[arg-type, return-value]
    if all(isinstance(x, EventTarget) for x in items):
        return resolve_targets(items)  # type: ignore[arg-type]
    raise TypeError("target must be an EventTarget, a list of EventTarget or a list of TargetSegment")
