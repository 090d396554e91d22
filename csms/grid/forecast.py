"""Flexibility forecast: how many kW the fleet can export in each of the next hours (pure).

A VPP platform nominates capacity ahead of time, so it needs, per hour, the export the fleet
can hold **for the whole hour without breaking any driver's promise**, and how sure that is.

Per car (:func:`car_export`)
----------------------------
A stay is a :class:`Stay`: arrival, departure, battery, SoC at arrival, the promised SoC at
departure, the SoC floor, charge and discharge limits (at the grid side; one-way efficiency
``eta``, 0.9 by default, grid.md). For an hour ``[a, b)`` the car is present for
``[t0, t1) = [max(a, arrival), min(b, departure))``. Before ``t0`` it is assumed to have charged
at full power towards its battery's full SoC from arrival (what an unmanaged charger does), so
its battery holds ``E0``. It can export a constant ``P`` (grid side) over ``[t0, t1)`` if

* ``P <= max_discharge_kw``,
* ``E0 - P d / eta >= floor`` (``d = t1 - t0``): never below the SoC floor,
* ``E0 - P d / eta + eta max_charge_kw (departure - t1) >= promised``: it can still charge back
  to the promised SoC before it leaves.

The hour's contribution is ``P d / (b - a)`` (kW averaged over the hour: a car leaving at
half past counts half). ``energy_kwh`` is the most the car could export from ``t0`` on at
full power before it must stop (the floor) or start charging back (to make its promise in the
time left); with the hour's kW it says "for how long".

The fleet (:func:`forecast`)
----------------------------
Cars plugged in now are known (:class:`Stay` with their live SoC and announced departure).
Cars that will arrive later are not: each of the last similar days of history (their stays
moved onto the forecast's dates by whole days) is one *scenario* of arrivals after ``now``.
Per hour, the fleet's export = the known cars' export + the scenario's later arrivals' export;
the forecast gives the median across scenarios (``kw_p50``) and the band ``kw_p10`` ..
``kw_p90`` (empirical quantiles of the scenarios), and the mean. With no history, the band is
the known cars alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

ETA = 0.9
"""One-way grid <-> battery efficiency (grid.md: export = 0.9 x battery discharge)."""


@dataclass(frozen=True, slots=True)
class Stay:
    """One car's stay at a charger."""

    arrival: datetime
    departure: datetime
    capacity_kwh: float
    soc_arrival: float
    """% at ``arrival`` (for a car plugged in now: its SoC now, with ``arrival`` = now)."""
    soc_target: float
    """% promised at departure."""
    max_discharge_kw: float
    max_charge_kw: float
    soc_floor: float = 20.0

    def shifted(self, delta: timedelta) -> Stay:
        return replace(self, arrival=self.arrival + delta, departure=self.departure + delta)


def car_export(stay: Stay, a: datetime, b: datetime, eta: float = ETA) -> tuple[float, float]:
    """``(kW averaged over [a, b), kWh exportable from the start of its presence)`` for one car."""
    t0, t1 = max(a, stay.arrival), min(b, stay.departure)
    if t1 <= t0 or stay.max_discharge_kw <= 0 or stay.capacity_kwh <= 0:
        return 0.0, 0.0
    cap = stay.capacity_kwh
    e_arr = cap * stay.soc_arrival / 100.0
    pre_h = (t0 - stay.arrival).total_seconds() / 3600.0
    e0 = min(cap, e_arr + stay.max_charge_kw * eta * pre_h) if e_arr < cap else e_arr
    floor = cap * stay.soc_floor / 100.0
    promised = cap * stay.soc_target / 100.0
    d = (t1 - t0).total_seconds() / 3600.0
    after_h = (stay.departure - t1).total_seconds() / 3600.0
    by_floor = (e0 - floor) * eta / d
    by_promise = (e0 + stay.max_charge_kw * eta * after_h - promised) * eta / d
    p = max(0.0, min(stay.max_discharge_kw, by_floor, by_promise))
    # energy: export at full power for t hours from t0, then recharge for the rest of the stay
    left_h = (stay.departure - t0).total_seconds() / 3600.0
    pd, pc = stay.max_discharge_kw, stay.max_charge_kw
    t_promise = (e0 - promised + pc * eta * left_h) / (pd / eta + pc * eta)
    t_floor = (e0 - floor) * eta / pd
    energy = pd * max(0.0, min(left_h, t_promise, t_floor))
    return p * d / ((b - a).total_seconds() / 3600.0), energy


def fleet_export(stays: Sequence[Stay], a: datetime, b: datetime, eta: float = ETA) -> tuple[float, float]:
    kw = energy = 0.0
    for s in stays:
        p, e = car_export(s, a, b, eta)
        kw += p
        energy += e
    return kw, energy


@dataclass(frozen=True)
class HourForecast:
    start: datetime
    kw_p10: float
    kw_p50: float
    kw_p90: float
    kw_mean: float
    kw_known: float
    """Of which the cars plugged in now (certain as far as their announced departures are)."""
    energy_kwh: float
    """Median exportable energy of the cars present in the hour (kWh, grid side)."""

    @property
    def sustain_h(self) -> float | None:
        """How long the median export could be held from the hour's start (h)."""
        return None if self.kw_p50 <= 0 else self.energy_kwh / self.kw_p50

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "kw_p10": round(self.kw_p10, 2),
            "kw_p50": round(self.kw_p50, 2),
            "kw_p90": round(self.kw_p90, 2),
            "kw_mean": round(self.kw_mean, 2),
            "kw_known": round(self.kw_known, 2),
            "energy_kwh": round(self.energy_kwh, 2),
            "sustain_h": None if self.sustain_h is None else round(self.sustain_h, 2),
        }


@dataclass(frozen=True)
class Forecast:
    made_at: datetime
    hours: list[HourForecast]
    scenarios: int
    known_cars: int
    notes: list[str]

    def rows(self) -> list[dict[str, Any]]:
        return [h.to_dict() for h in self.hours]

    def to_dict(self) -> dict[str, Any]:
        return {
            "made_at": self.made_at.isoformat().replace("+00:00", "Z"),
            "scenarios": self.scenarios,
            "known_cars": self.known_cars,
            "notes": list(self.notes),
            "hours": self.rows(),
        }

    def csv(self) -> str:
        keys = ["start", "kw_p10", "kw_p50", "kw_p90", "kw_mean", "kw_known", "energy_kwh", "sustain_h"]
        lines = [",".join(keys)]
        for r in self.rows():
            lines.append(",".join("" if r[k] is None else str(r[k]) for k in keys))
        return "\n".join(lines) + "\n"


def hour_grid(now: datetime, hours: int = 24) -> list[tuple[datetime, datetime]]:
    """``hours`` whole hours starting at the hour containing ``now`` (UTC)."""
    t = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [(t + timedelta(hours=k), t + timedelta(hours=k + 1)) for k in range(hours)]


def scenario_for(day: Sequence[Stay], day_date: Any, dates: Sequence[Any], tz: ZoneInfo) -> list[Stay]:
    """The stays of one past local day repeated on each of ``dates`` (by whole local days,
    keeping wall-clock times across DST)."""
    out: list[Stay] = []
    for target in dates:
        days = (target - day_date).days
        for s in day:
            arr = s.arrival.astimezone(tz)
            dep = s.departure.astimezone(tz)
            new_arr = arr.replace(tzinfo=None) + timedelta(days=days)
            new_dep = dep.replace(tzinfo=None) + timedelta(days=days)
            out.append(
                replace(
                    s,
                    arrival=new_arr.replace(tzinfo=tz).astimezone(UTC),
                    departure=new_dep.replace(tzinfo=tz).astimezone(UTC),
                )
            )
    return out


def forecast(
    now: datetime,
    *,
    known: Sequence[Stay] = (),
    history: Sequence[tuple[Any, Sequence[Stay]]] = (),
    hours: int = 24,
    tz: str = "UTC",
    eta: float = ETA,
) -> Forecast:
    """The next ``hours`` hours' export capability (see the module docstring).

    ``known``: cars plugged in at ``now`` (``arrival`` <= now; their ``soc_arrival`` is the SoC
    at their ``arrival``). ``history``: ``(local date, stays that arrived that day)`` per past
    day, used as scenarios of the arrivals after ``now``.
    """
    zone = ZoneInfo(tz)
    grid = hour_grid(now, hours)
    dates = sorted({(a.astimezone(zone)).date() for a, _ in grid} | {grid[-1][1].astimezone(zone).date()})
    scenarios = [[s for s in scenario_for(stays, d, dates, zone) if s.arrival >= now] for d, stays in history if stays]
    notes: list[str] = []
    if not scenarios:
        notes.append("no history of stays: only the cars plugged in now are counted (later arrivals unknown)")
        scenarios = [[]]
    out = []
    for a, b in grid:
        a_eff = max(a, now)
        kw_known, e_known = fleet_export(known, a_eff, b, eta)
        kw_known *= (b - a_eff) / (b - a)
        kws, energies = [], []
        for sc in scenarios:
            kw, e = fleet_export(sc, a_eff, b, eta)
            kws.append(kw_known + kw * (b - a_eff) / (b - a))
            energies.append(e_known + e)
        arr = np.array(kws)
        out.append(
            HourForecast(
                start=a,
                kw_p10=float(np.quantile(arr, 0.1)),
                kw_p50=float(np.quantile(arr, 0.5)),
                kw_p90=float(np.quantile(arr, 0.9)),
                kw_mean=float(arr.mean()),
                kw_known=kw_known,
                energy_kwh=float(np.median(energies)),
            )
        )
    return Forecast(made_at=now, hours=out, scenarios=len(scenarios), known_cars=len(known), notes=notes)


def mape(forecast_kw: Sequence[float], actual_kw: Sequence[float], floor_kw: float = 1.0) -> float | None:
    """Mean absolute percentage error over the pairs whose actual is at least ``floor_kw``
    (MAPE is undefined where the actual is zero); None when there is none."""
    errs = [abs(f - a) / a for f, a in zip(forecast_kw, actual_kw, strict=True) if a >= floor_kw]
    return None if not errs else 100.0 * sum(errs) / len(errs)
