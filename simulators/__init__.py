"""Bundled charging-station simulators: Fermata-style bidirectional DC stations on OCPP 2.0.1 / 2.1.

Python API (see ``simulators/README.md``)::

    from csms.clock import Clock
    from simulators import Fleet, load_fleet

    config = load_fleet("configs/fleet-demo.toml", "configs/scenario-evening.toml")
    fleet = Fleet(config, Clock(config.scenario.clock.epoch, speed=300))
    await fleet.start()
    station = fleet["FE-0001"]
    station.evses[1].import_wh, station.evses[1].ev.soc
    station.disconnect(600)          # fault injection
    await fleet.stop()
"""

from .cars import CARS, CarModel
from .config import (
    ClockConfig,
    FaultConfig,
    FleetConfig,
    GroupConfig,
    ReplayConfig,
    ScenarioConfig,
    ScheduledFault,
    SessionConfig,
    StationConfig,
    load_fleet,
)
from .ev import EV
from .evse import PowerStage
from .fleet import Fleet
from .model import Evse, Faults, SessionPlan, Transaction
from .station import Station

__all__ = [
    "CARS",
    "EV",
    "CarModel",
    "ClockConfig",
    "Evse",
    "FaultConfig",
    "Faults",
    "Fleet",
    "FleetConfig",
    "GroupConfig",
    "PowerStage",
    "ReplayConfig",
    "ScenarioConfig",
    "ScheduledFault",
    "SessionConfig",
    "SessionPlan",
    "Station",
    "StationConfig",
    "Transaction",
    "load_fleet",
]
