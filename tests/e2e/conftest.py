"""A real CSMS and real simulated stations over real sockets, sharing one accelerated clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from csms.central import CentralSystem
from csms.clock import Clock
from simulators import Fleet, FleetConfig, StationConfig
from simulators.config import ScenarioConfig
from tests.conftest import make_settings

EPOCH = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)
PASSWORD = "simulated-station-pw-01"


def station(sid: str, ocpp: str, **kw: Any) -> StationConfig:
    return StationConfig(id=sid, ocpp=[ocpp], password=PASSWORD, tx_updated_interval_s=30, **kw)


@asynccontextmanager
async def rig(
    tmp_path: Path,
    stations: list[StationConfig],
    *,
    speed: float = 30.0,
    epoch: datetime = EPOCH,
    scenario: ScenarioConfig | None = None,
    configure: Callable[[Any], None] | None = None,
) -> AsyncIterator[tuple[CentralSystem, Fleet]]:
    settings = make_settings(tmp_path, call_timeout=10)
    settings.v2x.allow_unknown_tokens = True
    if configure is not None:
        configure(settings)
    clock = Clock(epoch, speed=speed)
    central = CentralSystem(settings, clock=clock)
    await central.start()
    for st in stations:
        await central.register_station(st.id, st.password)
    config = FleetConfig(url=f"ws://127.0.0.1:{central.port}/ocpp", stations=stations)
    if scenario is not None:
        config.scenario = scenario
    fleet = Fleet(config, clock)
    await fleet.start()
    try:
        await fleet.wait_online(60)
        yield central, fleet
    finally:
        await fleet.stop()
        await central.stop()


async def until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll (wall time) until ``predicate()`` is truthy; fail with ``what`` after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
