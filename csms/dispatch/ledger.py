"""The meter ledger of a dispatch: every energy register and SoC sample per EVSE, as the
stations sent them; energy per interval from the registers (linear between samples). Also the
report's interval length and rounding helpers."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

INTERVAL_S = 300
SOC_TOL_PCT = 0.5
DEPARTURE_GRACE_S = 120.0
COMPLETE_AFTER_S = 90.0
"""An interval counts as complete this long (simulated) after its end: every live EVSE has sampled."""


def iso_utc(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rounded(x: float | None, nd: int = 3) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), nd)


# ------------------------------------------------------------------------------------------ ledger
@dataclass(slots=True)
class _Series:
    reg_t: list[float] = field(default_factory=list)
    imp: list[float] = field(default_factory=list)
    exp: list[float] = field(default_factory=list)
    soc_t: list[float] = field(default_factory=list)
    soc: list[float] = field(default_factory=list)


class MeterLedger:
    """Energy registers and SoC per (station, EVSE) over time (epoch seconds, Wh, %)."""

    def __init__(self) -> None:
        self._s: dict[tuple[str, int], _Series] = {}

    def add(self, station_id: str, evse_id: int, at: datetime, readings: Mapping[str, Any]) -> None:
        t = at.timestamp()
        s = self._s.get((station_id, evse_id))
        if s is None:
            s = self._s[(station_id, evse_id)] = _Series()
        imp, exp = readings.get("energy_import_wh"), readings.get("energy_export_wh")
        if imp is not None or exp is not None:
            prev_i = s.imp[-1] if s.imp else 0.0
            prev_e = s.exp[-1] if s.exp else 0.0
            if not s.reg_t or t >= s.reg_t[-1]:
                s.reg_t.append(t)
                s.imp.append(float(imp) if imp is not None else prev_i)
                s.exp.append(float(exp) if exp is not None else prev_e)
        soc = readings.get("soc")
        if soc is not None and (not s.soc_t or t >= s.soc_t[-1]):
            s.soc_t.append(t)
            s.soc.append(float(soc))

    def evses(self) -> list[tuple[str, int]]:
        return list(self._s)

    def prune(self, before: datetime) -> None:
        """Forget samples older than ``before`` (keeping the last one before it per EVSE)."""
        t0 = before.timestamp()
        for s in self._s.values():
            k = bisect.bisect_left(s.reg_t, t0) - 1
            if k > 0:
                del s.reg_t[:k], s.imp[:k], s.exp[:k]
            k = bisect.bisect_left(s.soc_t, t0) - 1
            if k > 0:
                del s.soc_t[:k], s.soc[:k]

    def registers(self, key: tuple[str, int], at: datetime) -> tuple[float, float] | None:
        """(import Wh, export Wh) of one EVSE interpolated at ``at`` (None without samples)."""
        s = self._s.get(key)
        if s is None or not s.reg_t:
            return None
        t = at.timestamp()
        return float(np.interp(t, s.reg_t, s.imp)), float(np.interp(t, s.reg_t, s.exp))

    def registers_at(self, key: tuple[str, int], times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(import Wh, export Wh) of one EVSE at many epoch seconds at once (None without samples)."""
        s = self._s.get(key)
        if s is None or not s.reg_t:
            return None
        t = np.asarray(s.reg_t)
        return np.interp(times_s, t, np.asarray(s.imp)), np.interp(times_s, t, np.asarray(s.exp))

    def net_export_grid(self, keys: Iterable[tuple[str, int]], edges_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(net export Wh, gross export Wh) per interval between consecutive ``edges_s``, summed over keys."""
        n = max(len(edges_s) - 1, 0)
        net, gross = np.zeros(n), np.zeros(n)
        for key in keys:
            got = self.registers_at(key, edges_s)
            if got is None:
                continue
            imp, exp = np.maximum(np.diff(got[0]), 0.0), np.maximum(np.diff(got[1]), 0.0)
            net += exp - imp
            gross += exp
        return net, gross

    def energy(self, key: tuple[str, int], start: datetime, end: datetime) -> tuple[float, float]:
        """(import Wh, export Wh) of one EVSE over ``[start, end)``."""
        a, b = self.registers(key, start), self.registers(key, end)
        if a is None or b is None:
            return 0.0, 0.0
        return max(0.0, b[0] - a[0]), max(0.0, b[1] - a[1])

    def net_export_wh(self, keys: Iterable[tuple[str, int]], start: datetime, end: datetime) -> tuple[float, float]:
        """(net export Wh, gross export Wh) summed over ``keys``."""
        net = gross = 0.0
        for key in keys:
            imp, exp = self.energy(key, start, end)
            net += exp - imp
            gross += exp
        return net, gross

    def soc_samples(self, key: tuple[str, int], start: datetime, end: datetime) -> list[tuple[float, float]]:
        s = self._s.get(key)
        if s is None:
            return []
        lo, hi = bisect.bisect_left(s.soc_t, start.timestamp()), bisect.bisect_right(s.soc_t, end.timestamp())
        return list(zip(s.soc_t[lo:hi], s.soc[lo:hi], strict=True))

    def soc_at(self, key: tuple[str, int], at: datetime) -> float | None:
        """Last SoC sample at or before ``at``."""
        s = self._s.get(key)
        if s is None or not s.soc_t:
            return None
        k = bisect.bisect_right(s.soc_t, at.timestamp()) - 1
        return s.soc[k] if k >= 0 else None
