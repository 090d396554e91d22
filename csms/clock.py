"""Simulation-aware clock shared by the CSMS and the simulators.

A real deployment runs on wall time (``speed=1``). Tests, demos and benchmarks run an
evening of grid events in about a minute: both sides then use a :class:`Clock` with the
same ``epoch`` (the simulated instant at which the run starts) and ``speed`` factor, so
timestamps in frames and charging schedules agree.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_rfc3339(dt: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with a ``Z`` suffix (millisecond precision)."""
    if dt.tzinfo is not UTC:
        if dt.tzinfo is None:
            raise ValueError("naive datetime: OCPP timestamps need an offset")
        dt = dt.astimezone(UTC)
    return dt.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"  # Heartbeat answers: no strftime


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; a timestamp without an offset is rejected."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return dt.astimezone(UTC)


class Clock:
    """Maps wall time onto simulated time: ``sim = epoch + (wall - anchor) * speed``.

    ``anchor`` is the wall-clock instant at which simulated time equals ``epoch`` (default:
    when the clock is made). Two processes given the same epoch, speed and anchor agree on
    simulated time; within one process the clock runs on the monotonic timer.
    """

    def __init__(self, epoch: datetime | None = None, speed: float = 1.0, anchor: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = float(speed)
        self.epoch = (epoch or utcnow()).astimezone(UTC)
        lag = 0.0 if anchor is None else max(0.0, (utcnow() - anchor).total_seconds())
        self.anchor = utcnow() - timedelta(seconds=lag) if anchor is None else anchor.astimezone(UTC)
        self._mono0 = time.monotonic() - lag
        self._epoch_s = self.epoch.timestamp()

    def now(self) -> datetime:
        # one float sum and one datetime (no timedelta): every frame is stamped with it
        return datetime.fromtimestamp(self._epoch_s + (time.monotonic() - self._mono0) * self.speed, UTC)

    def timestamp(self) -> str:
        return to_rfc3339(self.now())

    def wall_seconds(self, sim_seconds: float) -> float:
        """How many wall seconds ``sim_seconds`` of simulated time take."""
        return sim_seconds / self.speed

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(max(0.0, sim_seconds / self.speed))

    async def sleep_until(self, at: datetime) -> None:
        await self.sleep((at - self.now()).total_seconds())

    @property
    def accelerated(self) -> bool:
        return self.speed != 1.0


SYSTEM_CLOCK = Clock()
