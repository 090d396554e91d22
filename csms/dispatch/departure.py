"""Departure model of a site, learned from its past charging sessions (pure code).

Drivers' own departure estimates are often far off (Caltech ACN 2019: half are more than an
hour out, one in ten leaves 6 h before the time given; 2021: the median estimate is 3.4 h late).
:class:`DepartureModel` learns, per site, the distribution of the stay (departure - arrival)
by weekday and local hour of arrival, and forecasts a plugged-in car's departure **given that
it is still here**: the conditional distribution of the stay among past sessions of the same
kind that lasted at least as long as this one has so far. A forecast has three times:

* ``earliest`` -- a low quantile (``q_earliest``; the default 0 means now, whatever the
  shortest stay on record): from then on the planner keeps the driver's promise
  (:attr:`~csms.dispatch.fleet.CarState.earliest_departure`): a car leaving earlier than
  modelled is not left short. With the default the promise holds at every moment -- a car
  below its target charges at full power until it is there, a car at its target only gives
  what was pre-charged above it. A higher quantile lets cars dip below their target when they
  can be back before it, at the risk of stranding the drivers who leave earlier than that (on
  the Caltech dev months 5 % stranded a driver every other day and gained under 0.01 of NAE);
* ``expected`` -- the median (``q_expected``);
* ``latest`` -- a high quantile (``q_latest``, default 95 %): the car is planned as available
  until then (:attr:`~csms.dispatch.fleet.CarState.departure`), weighed between ``earliest``
  and ``latest`` by the chance it is still there, so the plan neither counts on a car that is
  likely gone nor leaves a car's energy unused because it might be.

All are recomputed at every replan, so a car still here after its expected departure gets a
later one (the conditional distribution moves with the elapsed time). Sparse cells back off to
coarser ones: (weekday, hour) -> (weekday or weekend, hour) -> (weekday or weekend, 3-hour
band) -> (weekday or weekend) -> all sessions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from csms.dispatch.fleet import CarState, _to_utc

Key = tuple[object, ...]


class SessionRecord(BaseModel):
    """One past charging session of a site: plug-in, unplug, the driver's estimate, energy."""

    model_config = ConfigDict(frozen=True)

    arrival: datetime
    departure: datetime
    estimated_departure: datetime | None = None
    energy_kwh: float = 0.0

    @field_validator("arrival", "departure", "estimated_departure")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _to_utc(value)

    @property
    def stay_h(self) -> float:
        """Hours plugged in."""
        return (self.departure - self.arrival).total_seconds() / 3600.0


class DepartureForecast(BaseModel):
    """Modelled departure of one car: planned until ``expected``, promise kept from ``earliest``."""

    model_config = ConfigDict(frozen=True)

    expected: datetime
    earliest: datetime
    latest: datetime
    samples: int
    cell: str


def _quantiles(sorted_values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Linear-interpolation quantiles of an already sorted array (as ``np.quantile``, without its overhead)."""
    pos = np.asarray(qs) * (sorted_values.size - 1)
    return [float(v) for v in np.interp(pos, np.arange(sorted_values.size), sorted_values)]


def _day_class(weekday: int) -> str:
    return "weekend" if weekday >= 5 else "weekday"


class DepartureModel:
    """Conditional stay distributions per (weekday, hour of arrival), with back-off (module doc)."""

    def __init__(
        self,
        stays: dict[Key, list[float]],
        tz: ZoneInfo,
        *,
        q_expected: float = 0.5,
        q_earliest: float = 0.0,
        q_latest: float = 0.95,
        min_samples: int = 20,
        overdue_s: float = 900.0,
    ) -> None:
        if not 0.0 <= q_earliest <= q_expected <= q_latest <= 1.0:
            raise ValueError("need 0 <= q_earliest <= q_expected <= q_latest <= 1")
        self._stays = {k: np.sort(np.asarray(v, dtype=float)) for k, v in stays.items()}
        self.tz = tz
        self.q_expected = q_expected
        self.q_earliest = q_earliest
        self.q_latest = q_latest
        self.min_samples = min_samples
        self.overdue_s = overdue_s

    @classmethod
    def fit(
        cls,
        sessions: Iterable[SessionRecord],
        tz: str | ZoneInfo,
        **options: float,
    ) -> DepartureModel:
        """Learn the stay distributions of a site from its past sessions (local time ``tz``)."""
        zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        stays: dict[Key, list[float]] = defaultdict(list)
        for s in sessions:
            if s.departure <= s.arrival:
                continue
            for key in cls._keys(s.arrival, zone):
                stays[key].append(s.stay_h)
        return cls(dict(stays), zone, **options)  # type: ignore[arg-type]

    @staticmethod
    def _keys(arrival: datetime, tz: ZoneInfo) -> list[Key]:
        local = arrival.astimezone(tz)
        wd, hour = local.weekday(), local.hour
        dc = _day_class(wd)
        return [("wd", wd, hour), ("dc", dc, hour), ("band", dc, hour // 3), ("dc", dc), ("all",)]

    def _conditional(self, arrival: datetime, elapsed_h: float) -> tuple[np.ndarray, str]:
        """Stays of the finest cell with ``min_samples`` sessions longer than ``elapsed_h``."""
        best: tuple[np.ndarray, str] = (np.zeros(0), "none")
        for key in self._keys(arrival, self.tz):
            arr = self._stays.get(key)
            if arr is None:
                continue
            longer = arr[int(np.searchsorted(arr, elapsed_h, side="right")) :]
            if longer.size >= self.min_samples:
                return longer, "/".join(str(k) for k in key)
            if longer.size > best[0].size:
                best = (longer, "/".join(str(k) for k in key))
        return best

    def forecast(self, arrival: datetime, now: datetime, estimate: datetime | None = None) -> DepartureForecast:
        """Departure of a car that arrived at ``arrival`` and is still plugged in at ``now``.

        With the driver's ``estimate`` (still in the future) the expected
        departure is the estimate, clipped to the model's range (``earliest`` to
        ``latest``); the range stays the model's. Without history for the car the
        estimate is the middle of a range as long again after it. (Putting the
        estimate in the middle of its own range instead cost +0.01 to +0.02 of
        regret on the Caltech sweep at 1 kW/car, dev and held-out.)
        """
        arrival, now = _to_utc(arrival), _to_utc(now)
        elapsed_h = max(0.0, (now - arrival).total_seconds() / 3600.0)
        stays, cell = self._conditional(arrival, elapsed_h)
        if stays.size == 0:  # longer than anyone before: may leave any minute
            expected = latest = now + timedelta(seconds=self.overdue_s)
            earliest = now
        else:
            q = _quantiles(stays, (self.q_earliest, self.q_expected, self.q_latest))
            earliest, expected, latest = (arrival + timedelta(hours=float(h)) for h in q)
            if self.q_earliest <= 0.0:  # no history rules out an early unplug: the promise holds now
                earliest = now
        if estimate is not None and _to_utc(estimate) > now:
            if stays.size:
                # drivers' estimates are often hours out: the word moves the middle, inside the model's range
                expected = min(max(_to_utc(estimate), earliest), latest)
            else:
                expected = _to_utc(estimate)
                earliest = min(earliest, expected)
                latest = expected + (expected - max(earliest, now))
        expected = max(expected, now + timedelta(seconds=60))
        earliest = min(max(earliest, now), expected)
        latest = max(latest, expected)
        return DepartureForecast(
            expected=expected, earliest=earliest, latest=latest, samples=int(stays.size), cell=cell
        )

    def apply(
        self, car: CarState, now: datetime, arrival: datetime | None = None, estimate: datetime | None = None
    ) -> CarState:
        """``car`` as the planner should see it: available until ``latest``, promise kept from ``earliest``.

        Between the two the planner weighs the car by the chance it is still
        there (linear), see :attr:`csms.dispatch.problem.Problem.presence`.
        ``arrival`` defaults to ``plugged_in_at``.
        """
        arr = arrival or car.plugged_in_at or now
        fc = self.forecast(arr, now, estimate)
        update = {"departure": fc.latest, "earliest_departure": fc.earliest, "expected_departure": fc.expected}
        return car.model_copy(update=update)


def modelled_departure(
    model: DepartureModel, arrival: datetime, now: datetime, announced: datetime | None = None
) -> tuple[datetime, datetime, datetime]:
    """``(departure, earliest_departure, expected_departure)`` of a plugged-in car as the planner's
    :class:`~csms.dispatch.fleet.CarState` takes them: available until the model's late quantile,
    the promise kept from its early one (now, by default), weighed by the chance it is still here
    in between. The driver's ``announced`` departure (ISO 15118 ``departureTime``) moves the middle
    while it is in the future; once it has passed, the car's stay so far conditions the model."""
    fc = model.forecast(arrival, now, announced)
    return fc.latest, fc.earliest, fc.expected


__all__ = ["DepartureForecast", "DepartureModel", "SessionRecord", "modelled_departure"]
