"""Catalogue of bidirectional (V2G-capable, DC) cars the simulator can put behind a plug.

Values are rounded public figures; they give the EV model realistic sizes and limits, not a
certified vehicle description. Powers are DC at the vehicle inlet, energies usable capacity.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CarModel(BaseModel):
    """Static description of one car model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    capacity_kwh: float = Field(gt=0)
    max_charge_kw: float = Field(gt=0, description="DC charge acceptance at the inlet (below the taper)")
    max_discharge_kw: float = Field(ge=0, description="DC discharge capability at the inlet; 0 = charge only")
    charge_efficiency: float = Field(0.95, gt=0, le=1, description="inlet -> battery")
    discharge_efficiency: float = Field(0.95, gt=0, le=1, description="battery -> inlet")
    taper_start_soc: float = Field(80.0, ge=0, le=100, description="%: above it charge acceptance falls linearly")
    taper_end_kw: float = Field(3.0, ge=0, description="DC acceptance at 100 % SoC")
    min_soc: float = Field(20.0, ge=0, le=100, description="%: V2X floor the car never discharges below")
    max_soc: float = Field(100.0, ge=0, le=100, description="%: the car's full SoC")
    nominal_voltage: float = Field(360.0, gt=0)
    max_voltage: float = Field(450.0, gt=0)
    protocol: str = "ISO15118-20"

    @property
    def bidirectional(self) -> bool:
        return self.max_discharge_kw > 0


CARS: dict[str, CarModel] = {
    car.name: car
    for car in (
        CarModel(
            name="nissan-leaf-40",
            capacity_kwh=39.0,
            max_charge_kw=46.0,
            max_discharge_kw=15.0,
            taper_start_soc=75.0,
            nominal_voltage=350.0,
            max_voltage=404.0,
            protocol="CHAdeMO",
        ),
        CarModel(
            name="nissan-leaf-62",
            capacity_kwh=59.0,
            max_charge_kw=70.0,
            max_discharge_kw=15.0,
            taper_start_soc=75.0,
            nominal_voltage=350.0,
            max_voltage=404.0,
            protocol="CHAdeMO",
        ),
        CarModel(
            name="mitsubishi-outlander-phev",
            capacity_kwh=20.0,
            max_charge_kw=22.0,
            max_discharge_kw=6.0,
            min_soc=30.0,
            nominal_voltage=350.0,
            max_voltage=400.0,
            protocol="CHAdeMO",
        ),
        CarModel(
            name="ford-f150-lightning",
            capacity_kwh=123.0,
            max_charge_kw=150.0,
            max_discharge_kw=9.6,
            nominal_voltage=370.0,
            max_voltage=450.0,
        ),
        CarModel(
            name="kia-ev9",
            capacity_kwh=96.0,
            max_charge_kw=210.0,
            max_discharge_kw=11.0,
            nominal_voltage=600.0,
            max_voltage=800.0,
        ),
        CarModel(
            name="generic-charge-only",
            capacity_kwh=60.0,
            max_charge_kw=50.0,
            max_discharge_kw=0.0,
        ),
    )
}


def car(name: str) -> CarModel:
    try:
        return CARS[name]
    except KeyError:
        raise ValueError(f"unknown car model {name!r}; known: {', '.join(sorted(CARS))}") from None
