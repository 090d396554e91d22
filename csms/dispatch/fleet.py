"""Snapshot model of a V2G fleet and of the grid events it is asked to serve.

Everything here is plain data (pydantic v2 models); the planner in
:mod:`csms.dispatch.planner` turns a :class:`FleetSnapshot` plus one or more
:class:`EventTarget` into a per-car, per-step power schedule.

Conventions used throughout the dispatch package
------------------------------------------------
* Times are timezone-aware datetimes; validators convert them to UTC and reject
  naive values.
* Power is in kW and is always the **grid-side** power at the charger's AC
  terminals. A car's power is positive when it charges (imports) and negative
  when it discharges (exports).
* Efficiencies link grid-side power to the battery: a car importing ``c`` kW
  gains ``eta_charge * c`` kW in its battery; a car exporting ``d`` kW to the
  grid draws ``d / eta_discharge`` kW from its battery (so grid-side export =
  ``eta_discharge`` x battery discharge).
* ``max_charge_kw`` / ``max_discharge_kw`` / ``min_discharge_kw`` are grid-side
  limits, already the minimum of what the car and the charger accept.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Direction = Literal["export", "import_limit", "load_reduction"]


def _to_utc(value: datetime) -> datetime:
    """Return ``value`` converted to UTC; naive datetimes are rejected."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(UTC)


class CarState(BaseModel):
    """State of one plugged-in (or announced) car at snapshot time.

    ``soc`` is the state of charge now, or at ``plugged_in_at`` when the car
    arrives in the future (only the perfect-foresight benchmark uses future
    arrivals). ``target_soc`` is the SoC promised to the driver at
    ``departure``; the planner never plans a departure below it when it is
    reachable by charging at full power, and never discharges the car below
    ``soc_floor``. When the departure is a forecast (see
    :mod:`csms.dispatch.departure`), ``departure`` is the modelled one and
    ``earliest_departure`` the early end of its range: the promise is kept from
    then on.
    """

    model_config = ConfigDict(frozen=True)

    car_id: str
    station_id: str = ""
    evse_id: int | str = 1
    soc: float = Field(ge=0.0, le=1.0, description="state of charge now (fraction of capacity)")
    capacity_kwh: float = Field(gt=0.0, description="usable battery capacity, kWh")
    max_charge_kw: float = Field(ge=0.0, description="grid-side charge limit (min of car and charger), kW")
    max_discharge_kw: float = Field(
        ge=0.0, description="grid-side discharge limit as a positive number (min of car and charger), kW"
    )
    min_discharge_kw: float = Field(
        default=0.0, ge=0.0, description="minimum stable discharge power: discharge is 0 or >= this, kW"
    )
    eta_charge: float = Field(default=0.9, gt=0.0, le=1.0, description="battery gain per grid kWh imported")
    eta_discharge: float = Field(
        default=0.9, gt=0.0, le=1.0, description="grid kWh exported per battery kWh discharged"
    )
    soc_floor: float = Field(default=0.2, ge=0.0, le=1.0, description="never discharge below this SoC")
    target_soc: float = Field(ge=0.0, le=1.0, description="SoC promised to the driver at departure")
    max_soc: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description=(
            "highest SoC charging can bring the car to (a car under a charge limit, not a setpoint, "
            "stops at its own target); a car already above it only loses energy"
        ),
    )
    departure: datetime
    plugged_in_at: datetime | None = None
    earliest_departure: datetime | None = Field(
        default=None,
        description=(
            "earliest time the driver may leave when ``departure`` is only modelled (default: "
            "``departure``). From then on the car holds its target SoC -- or, if it cannot be there "
            "yet, as much as charging at full power since now can give it -- so a driver leaving "
            "earlier than modelled is not left short; the car is still planned until ``departure``."
        ),
    )

    expected_departure: datetime | None = Field(
        default=None,
        description=(
            "median of a modelled departure, between ``earliest_departure`` and ``departure``: the "
            "planner weighs the car by the chance it is still plugged in, 1 until the earliest "
            "departure, 1/2 at this one, 0 at ``departure`` (piecewise linear; linear without it)"
        ),
    )

    @field_validator("departure", "plugged_in_at", "earliest_departure", "expected_departure")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _to_utc(value)

    @model_validator(mode="after")
    def _earliest_first(self) -> CarState:
        if self.earliest_departure is not None and self.earliest_departure > self.departure:
            raise ValueError("earliest_departure after departure")
        return self

    @property
    def energy_kwh(self) -> float:
        """Battery energy now, kWh."""
        return self.soc * self.capacity_kwh

    @property
    def energy_needed_kwh_at_departure(self) -> float:
        """Battery energy promised at departure, kWh (``target_soc * capacity_kwh``)."""
        return self.target_soc * self.capacity_kwh


class FleetSnapshot(BaseModel):
    """Everything the planner needs to know about the site at ``time``.

    ``baseline_kw`` is the part of the site's load at the point of measurement
    that the planner does not control (kW, consumption positive, default 0).
    With net fleet export ``X`` (sum of discharges minus sum of charges, grid
    side), the site meter imports ``baseline_kw - X``. ``site_export_limit_kw``
    caps the meter's export ``X - baseline_kw``; ``site_import_limit_kw`` caps
    the meter's import ``baseline_kw - X``.
    """

    model_config = ConfigDict(frozen=True)

    time: datetime
    cars: list[CarState] = Field(default_factory=list)
    site_export_limit_kw: float | None = Field(default=None, ge=0.0)
    site_import_limit_kw: float | None = Field(default=None, ge=0.0)
    baseline_kw: float | None = None

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return _to_utc(value)

    @model_validator(mode="after")
    def _unique_ids(self) -> FleetSnapshot:
        ids = [car.car_id for car in self.cars]
        if len(set(ids)) != len(ids):
            raise ValueError("car_id values must be unique within a snapshot")
        return self


class TargetInterval(BaseModel):
    """One interval of an event: ``[start, end)`` with a target in kW.

    ``min_kw`` / ``max_kw`` are an optional acceptance band around the target.
    ``max_kw`` is a hard cap (the planner never plans above it; default: the
    target itself, i.e. no overshoot). ``min_kw`` is informational: the planner
    always tries to reach the target and reports intervals below ``min_kw``.
    """

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime
    target_kw: float = Field(ge=0.0)
    min_kw: float | None = None
    max_kw: float | None = None

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return _to_utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> TargetInterval:
        if self.end < self.start:
            raise ValueError("interval end before start")
        if self.max_kw is not None and self.max_kw < self.target_kw:
            raise ValueError("max_kw below target_kw")
        return self


class EventTarget(BaseModel):
    """A grid event as the planner sees it.

    ``direction`` says what ``target_kw`` means (``X`` = net fleet export, grid
    side; ``b`` = snapshot ``baseline_kw`` or 0):

    * ``"export"``: export at the site meter, ``X - b``, should equal the target.
    * ``"load_reduction"``: reduction of the meter import below the baseline
      (the import the site would have with the fleet idle), i.e. ``X``, should
      equal the target. For V1G this is "charge less than you otherwise would";
      callers whose baseline includes fleet charging pass the difference.
    * ``"import_limit"``: the meter import ``b - X`` must not exceed the target;
      there is nothing to track, the planner only keeps under the limit.

    ``reserve_margin`` r (0 <= r < 1): during the event every car is planned
    with at most ``(1 - r) * max_discharge_kw``; the held-back ``r`` share of
    each car's discharge rating is headroom the executor may use in real time
    to cover a drop-out or an under-delivering charger without replanning.
    The target itself is still planned in full when the derated fleet can
    carry it; otherwise the shortfall is reported.

    ``priority`` follows OpenADR: 0 is the highest; where events overlap the one
    with the lowest number wins for the overlapped time (see
    :func:`csms.dispatch.planner.resolve_targets`).
    """

    model_config = ConfigDict(frozen=True)

    event_id: str = ""
    intervals: list[TargetInterval]
    direction: Direction = "export"
    reserve_margin: float = Field(default=0.0, ge=0.0, lt=1.0)
    priority: int = Field(default=0, ge=0)

    @property
    def start(self) -> datetime | None:
        """Start of the earliest interval (None when there are no intervals)."""
        return min((iv.start for iv in self.intervals), default=None)

    @property
    def end(self) -> datetime | None:
        """End of the latest interval (None when there are no intervals)."""
        return max((iv.end for iv in self.intervals), default=None)

    @classmethod
    def flat(
        cls,
        start: datetime,
        end: datetime,
        target_kw: float,
        *,
        direction: Direction = "export",
        reserve_margin: float = 0.0,
        priority: int = 0,
        event_id: str = "",
    ) -> EventTarget:
        """Build a single-interval event ("export 400 kW from 16:00 to 21:00")."""
        return cls(
            event_id=event_id,
            intervals=[TargetInterval(start=start, end=end, target_kw=target_kw)],
            direction=direction,
            reserve_margin=reserve_margin,
            priority=priority,
        )
