"""The car behind a plug: battery, SoC, charge/discharge capability, taper, V2X floor, driver needs.

Pure model, no I/O. Energies in Wh, powers in W, SoC in percent. Powers here are DC at the
vehicle inlet; the EVSE (:mod:`simulators.evse`) converts to the grid side.

Efficiency chain (each way, default 0.95 x 0.95 ~ 0.90, the yardstick in ``grid.md``):

* charging: battery gain = grid import x station efficiency x car charge efficiency;
* discharging: grid export = battery loss x car discharge efficiency x station efficiency.
"""

from __future__ import annotations

from datetime import datetime

from .cars import CarModel


class EV:
    """State of one car while it is plugged in (or waiting to be)."""

    __slots__ = (
        "arrival",
        "battery_in_wh",
        "battery_out_wh",
        "capacity_wh",
        "departure",
        "energy_wh",
        "id_token",
        "initial_soc",
        "max_soc",
        "min_soc",
        "model",
        "planned_departure",
        "target_soc",
    )

    def __init__(
        self,
        model: CarModel,
        soc: float,
        *,
        target_soc: float = 80.0,
        departure: datetime | None = None,
        planned_departure: datetime | None = None,
        arrival: datetime | None = None,
        min_soc: float | None = None,
        max_soc: float | None = None,
        id_token: str = "",
    ) -> None:
        if not 0.0 <= soc <= 100.0:
            raise ValueError(f"SoC {soc} outside 0..100 %")
        self.model = model
        self.capacity_wh = model.capacity_kwh * 1000.0
        self.energy_wh = self.capacity_wh * soc / 100.0
        self.initial_soc = soc
        self.min_soc = model.min_soc if min_soc is None else min_soc
        self.max_soc = model.max_soc if max_soc is None else max_soc
        self.target_soc = min(max(target_soc, 0.0), self.max_soc)
        self.departure = departure  # when the car actually leaves
        self.planned_departure = planned_departure or departure  # what the driver told the car
        self.arrival = arrival
        self.id_token = id_token
        self.battery_in_wh = 0.0
        self.battery_out_wh = 0.0

    # ------------------------------------------------------------------ state
    @property
    def soc(self) -> float:
        return 100.0 * self.energy_wh / self.capacity_wh

    def soc_wh(self, soc: float) -> float:
        return self.capacity_wh * soc / 100.0

    @property
    def floor_wh(self) -> float:
        return self.soc_wh(self.min_soc)

    @property
    def target_wh(self) -> float:
        return self.soc_wh(self.target_soc)

    @property
    def full_wh(self) -> float:
        return self.soc_wh(self.max_soc)

    @property
    def bidirectional(self) -> bool:
        return self.model.bidirectional

    # ------------------------------------------------------------------ capability (DC at the inlet)
    def charge_acceptance_w(self, ceiling_wh: float | None = None) -> float:
        """DC power the car accepts now: full rate below the taper start, then linear to ``taper_end_kw``."""
        ceiling = self.full_wh if ceiling_wh is None else min(ceiling_wh, self.full_wh)
        if self.energy_wh >= ceiling - 1e-9:
            return 0.0
        m = self.model
        top = m.max_charge_kw * 1000.0
        soc = self.soc
        if soc <= m.taper_start_soc or m.taper_start_soc >= 100.0:
            return top
        end = min(m.taper_end_kw * 1000.0, top)
        frac = (soc - m.taper_start_soc) / (100.0 - m.taper_start_soc)
        return max(end, top + (end - top) * frac)

    def discharge_capability_w(self) -> float:
        """DC power the car can give now; 0 at or below the V2X floor or for a charge-only car."""
        if not self.bidirectional or self.energy_wh <= self.floor_wh + 1e-9:
            return 0.0
        return self.model.max_discharge_kw * 1000.0

    # ------------------------------------------------------------------ energy
    def apply_battery(self, delta_wh: float) -> None:
        """Add (charge) or remove (discharge) energy on the battery side."""
        self.energy_wh += delta_wh
        if delta_wh >= 0:
            self.battery_in_wh += delta_wh
        else:
            self.battery_out_wh -= delta_wh

    # ------------------------------------------------------------------ ISO 15118-20 charging needs (Wh)
    def energy_to(self, soc: float) -> float:
        """Signed energy (Wh, battery side) from now to ``soc``; negative when above it."""
        return self.soc_wh(soc) - self.energy_wh

    def needs(self) -> dict[str, float]:
        """The energy requests an ISO 15118-20 car reports (Wh, signed as the standard defines)."""
        return {
            "target": self.energy_to(self.target_soc),
            "min": self.energy_to(self.target_soc),  # the driver's minimum at departure is the target
            "max": self.energy_to(self.max_soc),
            "min_v2x": self.energy_to(self.min_soc),
            "max_v2x": self.energy_to(self.max_soc),
        }

    def snapshot(self) -> dict[str, object]:
        return {
            "car": self.model.name,
            "soc": round(self.soc, 3),
            "energy_wh": round(self.energy_wh, 3),
            "target_soc": self.target_soc,
            "min_soc": self.min_soc,
            "departure": self.departure.isoformat() if self.departure else None,
            "battery_in_wh": round(self.battery_in_wh, 3),
            "battery_out_wh": round(self.battery_out_wh, 3),
        }
