"""A whole V2G site in one process: the CSMS (SQLite), a simulated fleet and the dispatch controller.

Used by the demo (:mod:`csms.demo.event`), the end-to-end tests and ``bench.fanout``. The CSMS
and the simulated stations share one accelerated :class:`~csms.clock.Clock` and talk over real
WebSockets on 127.0.0.1. Stations are registered without a password (any Basic credentials
for the right station id are accepted) and every car's id token is accepted
(``v2x.allow_unknown_tokens``), so any fleet file runs as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from csms.clock import Clock
from csms.config import (
    ApiSettings,
    ClockSettings,
    DispatchSettings,
    LogSettings,
    OpenAdr3Settings,
    ServerSettings,
    Settings,
    SiteSettings,
    StorageSettings,
    V2XSettings,
)
from csms.dispatch.controller import ControllerOptions, DispatchController
from csms.service import Service
from csms.store.repository import Store

__all__ = ["Site", "caltech_fleet", "evening_fleet", "make_settings", "running_site", "v2g_program_socs"]

ACN_FILE = "2019-05-01_2019-08-31.csv.gz"


def make_settings(
    data_dir: Path,
    *,
    epoch: datetime,
    speed: float,
    api: bool = False,
    dispatch: dict[str, Any] | None = None,
    call_timeout: float = 30.0,
    frame_log_limit: int = 0,
    openadr3: OpenAdr3Settings | None = None,
    sites: list[SiteSettings] | None = None,
) -> Settings:
    """Settings of a simulated site; the raw OCPP frame log is off by default (at 200x clock
    speed it would be most of the database writes)."""
    return Settings(
        data_dir=data_dir,
        storage=StorageSettings(frame_log_limit=frame_log_limit),
        server=ServerSettings(host="127.0.0.1", port=0, ping_interval=20, call_timeout=call_timeout),
        api=ApiSettings(enabled=api, host="127.0.0.1", port=0),
        clock=ClockSettings(speed=speed, epoch=epoch),
        v2x=V2XSettings(allow_unknown_tokens=True),
        dispatch=DispatchSettings(**(dispatch or {})),
        log=LogSettings(level="warning"),
        openadr3=openadr3 or OpenAdr3Settings(),
        sites=sites or [],
    )


@dataclass
class Site:
    service: Service
    controller: DispatchController
    fleet: Any  # simulators.Fleet
    clock: Clock
    ven: Any = None  # csms.grid.openadr3.ven.OpenAdr3Ven when enabled

    @property
    def central(self) -> Any:
        return self.service.central

    @property
    def book(self) -> Any:
        return self.controller.book


async def register(settings: Settings, station_ids: Sequence[str]) -> None:
    """Create the stations (no password: the id is checked, any password accepted) before start."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await Store.open(settings.database_url)
    try:
        await store.bulk_register_stations(station_ids, None)
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def running_site(
    fleet_config: Any,
    data_dir: Path,
    *,
    epoch: datetime,
    speed: float,
    options: ControllerOptions | None = None,
    dispatch: dict[str, Any] | None = None,
    api: bool = False,
    publisher: Any = None,
    wait_online_s: float = 60.0,
    record: bool = False,
    prepare: Callable[[Any], None] | None = None,
    reconcile_wait_s: float = 3.0,
    frame_log_limit: int = 0,
    openadr3: OpenAdr3Settings | None = None,
    sites: list[SiteSettings] | None = None,
) -> AsyncIterator[Site]:
    """Start the CSMS (with the controller as a service part) and the fleet; stop both after.

    ``prepare(fleet)`` runs after the fleet is built (replay sessions assigned) and before it
    starts, e.g. to adjust the replayed cars. ``sites`` adds site load balancing
    (``service.sites``, :mod:`csms.sites`). ``openadr3`` (with ``enabled``) adds the OpenADR 3
    VEN as a service part (``site.ven``); it registers once the fleet's stations are known.
    """
    from simulators import Fleet

    settings = make_settings(
        data_dir,
        epoch=epoch,
        speed=speed,
        api=api,
        dispatch=dispatch,
        frame_log_limit=frame_log_limit,
        openadr3=openadr3,
        sites=sites,
    )
    clock = Clock(epoch, speed)
    ids = [s.id for s in fleet_config.all_stations()]
    await register(settings, ids)
    service = Service(settings, clock=clock)
    controller = DispatchController(service.central, publisher=publisher, options=options)
    service.parts.append(controller)
    ven = None
    if openadr3 is not None and openadr3.enabled:
        from csms.service import openadr3_ven

        ven = openadr3_ven(service, controller)
        service.parts.append(ven)
    await service.start()
    fleet = None
    reconciled: set[str] = set()

    def on_event(kind: str, station_id: str, data: dict[str, Any]) -> None:
        if kind == "profile" and data.get("reconciled"):
            reconciled.add(station_id)

    unsubscribe = service.central.subscribe(on_event)
    try:
        service.event_book = controller.book  # type: ignore[attr-defined]
        url = f"ws://127.0.0.1:{service.central.port}"
        fleet = Fleet(fleet_config, clock, url=url, record=record)
        if prepare is not None:
            prepare(fleet)
        await fleet.start()
        await fleet.wait_online(wait_online_s)
        # let the CSMS finish its post-boot capability discovery and profile reconciliation (a
        # profile set while a reconciliation is in flight is recovered by the executor anyway)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(reconcile_wait_s):
                while len(reconciled) < len(ids):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        unsubscribe()
        yield Site(service, controller, fleet, clock, ven)
    finally:
        if fleet is not None:
            await fleet.stop()
        await service.stop()


def evening_fleet(
    n_stations: int,
    *,
    epoch: datetime,
    seed: int = 7,
    share_201: float = 0.35,
    event_start: datetime | None = None,
    tx_interval_s: int = 120,
) -> Any:
    """A scripted workplace evening on ``n_stations`` single-EVSE Fermata-style stations
    (deterministic for a seed).

    Departures follow a workplace tail (grid.md: about 15/12/8/5/3 cars of a Caltech garage at
    16/17/18/19/20 h): about 35 % of the cars leave between 16:30 and 18:30, 35 % between 18:30
    and 21:30, 30 % stay overnight; about 10 % arrive during the evening. V2G-programme SoCs:
    cars present at the start were charged at work to 70-95 %, drivers ask for 50-70 % at
    departure; the announced departure is usually right (sometimes 10 min late or 5 min early).
    Cars: Leaf 40/62, Kia EV9, F-150 Lightning, Outlander PHEV, one in twelve charge-only.
    About ``share_201`` of the stations speak OCPP 2.0.1 (FE-15, org.openv2g vendor convention),
    the others 2.1 (FE-20). Meter values every ``tx_interval_s`` (periodic) and at every 5-minute
    boundary (clock-aligned). The demo samples every 180 s at x150 so that the CSMS and 60
    simulated stations sharing one process and two cores keep up with the accelerated clock.
    """
    from simulators import FleetConfig, SessionConfig, StationConfig

    rng = random.Random(seed)
    t0 = event_start or epoch
    base = (t0 - epoch).total_seconds()
    cars = [
        "nissan-leaf-62",
        "nissan-leaf-40",
        "nissan-leaf-62",
        "kia-ev9",
        "ford-f150-lightning",
        "mitsubishi-outlander-phev",
    ]
    stations = []
    for n in range(1, n_stations + 1):
        is_201 = rng.random() < share_201
        late = rng.random() < 0.10
        arrive = rng.uniform(base + 1800, base + 3 * 3600) if late else 0.0
        u = rng.random()
        if u < 0.35:
            depart = base + rng.uniform(0.5, 2.5) * 3600
        elif u < 0.70:
            depart = base + rng.uniform(2.5, 5.5) * 3600
        else:
            depart = base + rng.uniform(8.0, 15.0) * 3600
        depart = max(depart, arrive + 3600) if late else max(depart, base + 1800)
        announced = depart + rng.choice([0.0, 0.0, 0.0, 0.0, 600.0, -300.0])
        car = "generic-charge-only" if rng.random() < 1 / 12 else rng.choice(cars)
        soc = rng.uniform(30, 60) if late else rng.uniform(70, 95)
        promise = rng.choice([50, 55, 60, 60, 65, 70])
        session = SessionConfig(
            evse=1,
            plug_in=epoch + timedelta(seconds=arrive),
            departure=epoch + timedelta(seconds=depart),
            planned_departure=epoch + timedelta(seconds=max(announced, arrive + 1800)),
            car=car,
            initial_soc=round(soc, 1),
            target_soc=promise,
        )
        common: dict[str, Any] = {
            "evse_count": 1,
            "discharge_kw": 15.0,
            "tx_updated_interval_s": tx_interval_s,
            "aligned_interval_s": 300,
            "sessions": [session],
        }
        if is_201:
            stations.append(
                StationConfig(
                    id=f"FE15-{n:03d}",
                    ocpp=["2.0.1"],
                    model="FE-15",
                    charge_kw=15.0,
                    v2x_vendor_convention=True,
                    **common,
                )
            )
        else:
            stations.append(
                StationConfig(id=f"FE20-{n:03d}", ocpp=["2.1", "2.0.1"], model="FE-20", charge_kw=20.0, **common)
            )
    return FleetConfig(stations=stations)


def caltech_fleet(
    n_stations: int = 30,
    *,
    date: str = "2019-07-16",
    every_201: int = 3,
    tx_interval_s: int = 120,
) -> Any:
    """Single-EVSE Fermata-style stations replaying one Caltech ACN day (``simulators.sessions``):
    every ``every_201``-th station speaks OCPP 2.0.1 (FE-15, vendor V2X convention), the others
    2.1 (FE-20)."""
    from simulators import FleetConfig, ReplayConfig, ScenarioConfig, StationConfig

    stations = []
    for n in range(1, n_stations + 1):
        common: dict[str, Any] = {
            "evse_count": 1,
            "discharge_kw": 15.0,
            "tx_updated_interval_s": tx_interval_s,
            "aligned_interval_s": 300,
        }
        if every_201 and n % every_201 == 0:
            stations.append(
                StationConfig(
                    id=f"ACN-{n:02d}",
                    ocpp=["2.0.1"],
                    model="FE-15",
                    charge_kw=15.0,
                    v2x_vendor_convention=True,
                    **common,
                )
            )
        else:
            stations.append(StationConfig(id=f"ACN-{n:02d}", ocpp=["2.1"], model="FE-20", charge_kw=20.0, **common))
    return FleetConfig(stations=stations, scenario=ScenarioConfig(replay=ReplayConfig(file=ACN_FILE, date=date)))


def v2g_program_socs(fleet: Any, *, charged_to: float = 90.0, promise: float = 60.0) -> int:
    """Apply V2G-programme SoC assumptions to the replayed cars (arrival, departure, announced
    departure and car model stay as replayed): cars already plugged in when the clock starts
    were charged at work to at least ``charged_to`` %; every driver's promise (target SoC at
    departure) is ``promise`` %. Later arrivals keep their replayed SoC. Returns the number of
    sessions changed."""
    epoch_t = fleet.clock.epoch.timestamp()
    changed = 0
    for station in fleet:
        for evse in station.evses.values():
            for plan in evse.plans:
                if plan.plug_in_t <= epoch_t + 1:
                    plan.initial_soc = max(plan.initial_soc, charged_to)
                plan.target_soc = promise
                changed += 1
    return changed
