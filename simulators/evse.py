"""Power stage of one bidirectional DC EVSE: ratings, ramp, conversion losses, exact energy registers.

Sign convention: grid-side power ``p`` in W, positive = import (charging the car), negative =
export (discharging into the grid).

Between two calls of :meth:`PowerStage.advance` the power is piecewise linear (it ramps toward
``target_w`` at ``ramp_w_per_s`` and then stays flat), so the energy registers integrate it
exactly (trapezoids, split where the ramp ends and where it crosses zero). When the battery
reaches its ceiling (charging) or its V2X floor (discharging) inside an interval, the instant is
solved exactly, the car's BMS cuts the current there (``limit_hit`` is set) and the SoC lands on
the limit, never beyond it.

The registers ``import_wh`` / ``export_wh`` are the EVSE's grid-side meter: what the station
reports as ``Energy.Active.Import.Register`` / ``Energy.Active.Export.Register``.
"""

from __future__ import annotations

import math

from .ev import EV


class PowerStage:
    __slots__ = (
        "ceiling_wh",
        "charge_rating_w",
        "discharge_rating_w",
        "efficiency",
        "ev",
        "export_wh",
        "import_wh",
        "limit_hit",
        "min_discharge_w",
        "power_w",
        "ramp_w_per_s",
        "t",
        "target_w",
    )

    def __init__(
        self,
        *,
        charge_rating_w: float = 20_000.0,
        discharge_rating_w: float = 15_000.0,
        efficiency: float = 0.95,
        min_discharge_w: float = 1_500.0,
        ramp_w_per_s: float = 2_000.0,
        import_wh: float = 0.0,
        export_wh: float = 0.0,
        t: float = 0.0,
    ) -> None:
        if not 0 < efficiency <= 1:
            raise ValueError("efficiency must be in (0, 1]")
        self.charge_rating_w = charge_rating_w
        self.discharge_rating_w = discharge_rating_w
        self.efficiency = efficiency
        self.min_discharge_w = min_discharge_w
        self.ramp_w_per_s = ramp_w_per_s
        self.import_wh = import_wh
        self.export_wh = export_wh
        self.power_w = 0.0
        self.target_w = 0.0
        self.t = t
        self.ev: EV | None = None
        self.ceiling_wh: float | None = None  # battery energy at which charging stops (None = car full)
        self.limit_hit = False

    # ------------------------------------------------------------------ capability (grid side)
    def max_import_w(self) -> float:
        ev = self.ev
        if ev is None:
            return 0.0
        return min(self.charge_rating_w, ev.charge_acceptance_w(self.ceiling_wh) / self.efficiency)

    def max_export_w(self) -> float:
        ev = self.ev
        if ev is None:
            return 0.0
        cap = min(self.discharge_rating_w, ev.discharge_capability_w() * self.efficiency)
        return cap if cap >= self.min_discharge_w else 0.0

    def clamp(self, desired_w: float) -> float:
        """Clamp a signed grid-side request to what the charger and the car can do now."""
        if desired_w > 0:
            return min(desired_w, self.max_import_w())
        if desired_w < 0:
            cap = self.max_export_w()
            want = min(-desired_w, cap)
            if want < self.min_discharge_w:
                return 0.0  # below the minimum stable discharge power the converter stays off
            return -want
        return 0.0

    # ------------------------------------------------------------------ control
    def set_target(self, target_w: float) -> None:
        self.target_w = float(target_w)
        self.limit_hit = False

    def stop(self) -> None:
        """Cut the current now (EV unplugged, emergency, BMS stop): no ramp."""
        self.power_w = 0.0
        self.target_w = 0.0

    def ramp_remaining_s(self) -> float:
        if self.power_w == self.target_w or self.ramp_w_per_s <= 0:
            return 0.0
        return abs(self.target_w - self.power_w) / self.ramp_w_per_s

    def seconds_to_limit(self) -> float | None:
        """Seconds until the battery reaches its ceiling/floor at the target power (for scheduling)."""
        ev = self.ev
        p = self.target_w
        if ev is None or p == 0:
            return None
        if p > 0:
            ceiling = ev.full_wh if self.ceiling_wh is None else min(self.ceiling_wh, ev.full_wh)
            room = ceiling - ev.energy_wh
            rate = p * self.efficiency * ev.model.charge_efficiency
        else:
            room = ev.energy_wh - ev.floor_wh
            rate = -p / (self.efficiency * ev.model.discharge_efficiency)
        if room <= 0:
            return 0.0
        return self.ramp_remaining_s() + room * 3600.0 / rate

    # ------------------------------------------------------------------ integration
    def advance(self, t: float) -> None:
        """Integrate from ``self.t`` to ``t`` (POSIX seconds of simulated time)."""
        dt = t - self.t
        if dt <= 0:
            return
        self.t = t
        p = self.power_w
        while dt > 1e-9:
            tgt = self.target_w
            if p == tgt or self.ramp_w_per_s <= 0:
                p = tgt
                seg, p1 = dt, p
            else:
                goal = 0.0 if (p > 0 > tgt) or (p < 0 < tgt) else tgt
                need = abs(goal - p) / self.ramp_w_per_s
                if need <= dt:
                    seg, p1 = need, goal
                else:
                    seg = dt
                    p1 = p + math.copysign(self.ramp_w_per_s * seg, goal - p)
            used, p_end = self._integrate(p, p1, seg)
            dt -= used
            p = p_end
            if used < seg:  # the battery hit a limit: current cut, nothing more flows in this interval
                self.limit_hit = True
                self.target_w = 0.0
                p = 0.0
        self.power_w = p

    def _integrate(self, p0: float, p1: float, seg: float) -> tuple[float, float]:
        """Integrate one linear, sign-constant segment. Returns (seconds used, power at the end)."""
        if seg <= 0:
            return 0.0, p1
        grid_wh = (p0 + p1) * 0.5 * seg / 3600.0
        if grid_wh == 0:
            return seg, p1
        ev = self.ev
        if ev is None:  # nothing behind the plug: the converter cannot move energy
            return seg, 0.0
        if grid_wh > 0:
            k = self.efficiency * ev.model.charge_efficiency
            ceiling = ev.full_wh if self.ceiling_wh is None else min(self.ceiling_wh, ev.full_wh)
            room = max(0.0, ceiling - ev.energy_wh)
            if grid_wh * k <= room:
                self.import_wh += grid_wh
                ev.apply_battery(grid_wh * k)
                return seg, p1
            allowed = room / k
            used = _time_for_energy(abs(p0), abs(p1), seg, allowed * 3600.0)
            self.import_wh += allowed
            ev.apply_battery(ceiling - ev.energy_wh)
            ev.energy_wh = ceiling
            return used, 0.0
        k = 1.0 / (self.efficiency * ev.model.discharge_efficiency)
        room = max(0.0, ev.energy_wh - ev.floor_wh)
        out = -grid_wh
        if out * k <= room:
            self.export_wh += out
            ev.apply_battery(-out * k)
            return seg, p1
        allowed = room / k
        used = _time_for_energy(abs(p0), abs(p1), seg, allowed * 3600.0)
        self.export_wh += allowed
        ev.apply_battery(ev.floor_wh - ev.energy_wh)
        ev.energy_wh = ev.floor_wh
        return used, 0.0


def _time_for_energy(a0: float, a1: float, seg: float, energy_ws: float) -> float:
    """Time s in [0, seg] at which the integral of a linear power a0 -> a1 (over seg) reaches energy_ws."""
    if energy_ws <= 0:
        return 0.0
    slope = (a1 - a0) / seg
    if abs(slope) < 1e-12:
        return min(seg, energy_ws / a0) if a0 > 0 else seg
    # a0*s + slope*s^2/2 = E  ->  s = (-a0 + sqrt(a0^2 + 2*slope*E)) / slope
    disc = a0 * a0 + 2.0 * slope * energy_ws
    if disc < 0:
        return seg
    s = (-a0 + math.sqrt(disc)) / slope
    return min(max(s, 0.0), seg)
