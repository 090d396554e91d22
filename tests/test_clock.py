"""The accelerated clock: speed, and agreement between two clocks sharing an anchor."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from csms.clock import Clock, parse_rfc3339, to_rfc3339


async def test_speed_and_shared_anchor() -> None:
    epoch = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)
    a = Clock(epoch, speed=100)
    await asyncio.sleep(0.05)
    b = Clock(epoch, speed=100, anchor=a.anchor)  # made later, same anchor: same simulated time
    assert abs((a.now() - b.now()).total_seconds()) < 0.5
    late = Clock(epoch, speed=100)  # made later without the anchor: behind by ~5 simulated s
    assert (a.now() - late.now()).total_seconds() > 3
    t0 = a.now()
    await a.sleep(10)  # 10 simulated seconds = 0.1 s wall
    assert timedelta(seconds=9) < a.now() - t0 < timedelta(seconds=30)


def test_rfc3339() -> None:
    dt = datetime(2026, 6, 1, 16, 0, 0, 123456, tzinfo=UTC)
    assert to_rfc3339(dt) == "2026-06-01T16:00:00.123Z"
    assert parse_rfc3339("2026-06-01T18:00:00+02:00") == datetime(2026, 6, 1, 16, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_rfc3339("2026-06-01T16:00:00")
    with pytest.raises(ValueError):
        to_rfc3339(datetime(2026, 6, 1))
