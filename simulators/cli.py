"""``csms-sim``: run simulated charging stations against a CSMS.

Examples::

    csms-sim run -f configs/fleet-demo.toml -s configs/scenario-evening.toml --url ws://127.0.0.1:9000
    csms-sim run --count 100 --ocpp 2.1 --ocpp 2.0.1 --speed 300 --duration 5h
    csms-sim station FE-0001 --url ws://127.0.0.1:9000 --plug-in --soc 40
    csms-sim check -f configs/fleet-demo.toml -s configs/scenario-caltech.toml
    csms-sim credentials -f configs/fleet-demo.toml       # id,password,security profile (for CSMS provisioning)
    csms-sim cars
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from rich.console import Console
from rich.table import Table

from .cars import CARS
from .config import FleetConfig, GroupConfig, StationConfig, load_fleet, parse_duration
from .fleet import Fleet
from .sessions import LOCAL_TZ

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Simulated bidirectional DC charging stations.")
console = Console()

FleetFiles = Annotated[list[Path] | None, typer.Option("--fleet", "-f", help="fleet TOML file(s)", exists=True)]
ScenarioFiles = Annotated[
    list[Path] | None, typer.Option("--scenario", "-s", help="scenario TOML file(s)", exists=True)
]


def _setup_logging(level: str) -> None:
    lvl = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=lvl, format="%(message)s")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(lvl))


def _build_config(
    fleet: list[Path] | None,
    scenario: list[Path] | None,
    *,
    url: str | None,
    count: int,
    id_format: str,
    ocpp: list[str] | None,
    evses: int,
    security_profile: int,
    password: str | None,
    ca_file: Path | None,
    speed: float | None,
    epoch: str | None,
    tx_interval: int | None,
    aligned_interval: int | None,
) -> FleetConfig:
    files = [*(fleet or []), *(scenario or [])]
    overrides: dict[str, Any] = {}
    if url:
        overrides["url"] = url
    clock: dict[str, Any] = {}
    if speed is not None:
        clock["speed"] = speed
    if epoch is not None:
        clock["epoch"] = datetime.fromisoformat(epoch)
    if clock:
        overrides["scenario"] = {"clock": clock}
    cfg = load_fleet(*files, overrides=overrides) if files else FleetConfig.model_validate(overrides)
    if count > 0 or not cfg.all_stations():
        group: dict[str, Any] = {
            "id": id_format,
            "count": max(count, 1),
            "evse_count": evses,
            "security_profile": security_profile,
        }
        if ocpp:
            group["ocpp"] = ocpp
        if password:
            group["password"] = password
        if ca_file:
            group["ca_file"] = str(ca_file)
        if tx_interval is not None:
            group["tx_updated_interval_s"] = tx_interval
        if aligned_interval is not None:
            group["aligned_interval_s"] = aligned_interval
        cfg = cfg.model_copy(update={"groups": [*cfg.groups, GroupConfig.model_validate(group)]})
    return cfg


def _status_table(fleet: Fleet, limit: int = 20) -> Table:
    t = fleet.totals()
    lag = fleet.lag()
    table = Table(
        title=f"{fleet.clock.now():%Y-%m-%d %H:%M:%S}Z  online {t['online']}/{t['stations']}  "
        f"EVs {t['evs']}  {t['power_w'] / 1000:+.1f} kW  import {t['import_wh'] / 1000:.2f} kWh  "
        f"export {t['export_wh'] / 1000:.2f} kWh  lag {lag['last_max_s']:.1f}s",
    )
    for col in ("station", "ver", "online", "evse", "status", "kW", "SoC", "import kWh", "export kWh"):
        table.add_column(col)
    rows = 0
    for st in fleet:
        for e in st.evses.values():
            if rows >= limit:
                break
            soc = f"{e.soc:.1f}" if e.soc is not None else "-"
            table.add_row(
                st.id, st.version, "yes" if st.online else "no", str(e.id), e.connector_status(),
                f"{e.power_w / 1000:+.2f}", soc, f"{e.import_wh / 1000:.3f}", f"{e.export_wh / 1000:.3f}",
            )  # fmt: skip
            rows += 1
    return table


async def _run(fleet: Fleet, duration_s: float | None, status_every: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await fleet.start()
    console.print(f"started {len(fleet)} station(s) against {fleet.url} (speed x{fleet.clock.speed:g})")
    try:
        end = None if duration_s is None else loop.time() + fleet.clock.wall_seconds(duration_s)
        while not stop.is_set():
            timeout = status_every if end is None else max(0.0, min(status_every, end - loop.time()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await stop.wait()
            if status_every > 0:
                console.print(_status_table(fleet))
            if end is not None and loop.time() >= end:
                break
    finally:
        await fleet.stop()
    t = fleet.totals()
    console.print(
        f"stopped: sent {t['sent']} messages, import {t['import_wh'] / 1000:.3f} kWh, "
        f"export {t['export_wh'] / 1000:.3f} kWh, max clock lag {fleet.lag()['max_s']:.2f} s"
    )


@app.command()
def run(
    fleet_files: FleetFiles = None,
    scenario_files: ScenarioFiles = None,
    url: Annotated[str | None, typer.Option(help="CSMS URL (station id is appended)")] = None,
    count: Annotated[int, typer.Option(help="add N stations built from the flags")] = 0,
    id_format: Annotated[str, typer.Option(help="id of generated stations, {n} = 1..N")] = "SIM-{n:04d}",
    ocpp: Annotated[list[str] | None, typer.Option(help="OCPP versions offered, in order (2.1, 2.0.1)")] = None,
    evses: Annotated[int, typer.Option(help="EVSEs per generated station")] = 1,
    security_profile: Annotated[int, typer.Option(help="1 (ws + Basic) or 2 (wss + Basic)")] = 1,
    password: Annotated[str | None, typer.Option(help="Basic password for generated stations")] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle for wss://")] = None,
    speed: Annotated[float | None, typer.Option(help="clock speed (300 = 5 h in 1 min)")] = None,
    epoch: Annotated[str | None, typer.Option(help="simulated start time, RFC 3339 with offset")] = None,
    duration: Annotated[str | None, typer.Option(help="simulated run time, e.g. 5h, 90m (default: forever)")] = None,
    tx_interval: Annotated[int | None, typer.Option(help="SampledDataCtrlr.TxUpdatedInterval (s)")] = None,
    aligned_interval: Annotated[int | None, typer.Option(help="AlignedDataCtrlr.Interval (s)")] = None,
    status_every: Annotated[float, typer.Option(help="print a status table every N wall seconds (0: never)")] = 10.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Run a fleet (from files and/or flags) until interrupted or for --duration."""
    _setup_logging(log_level)
    cfg = _build_config(
        fleet_files, scenario_files, url=url, count=count, id_format=id_format, ocpp=ocpp, evses=evses,
        security_profile=security_profile, password=password, ca_file=ca_file, speed=speed, epoch=epoch,
        tx_interval=tx_interval, aligned_interval=aligned_interval,
    )  # fmt: skip
    fleet = Fleet(cfg)  # SyncedClock from the scenario's [clock], started after the validators are compiled
    dur = parse_duration(duration) if duration else cfg.scenario.duration_s
    asyncio.run(_run(fleet, dur, status_every))


@app.command()
def station(
    station_id: Annotated[str, typer.Argument(help="station id (last URL path segment)")],
    url: Annotated[str, typer.Option(help="CSMS URL")] = "ws://127.0.0.1:9000",
    ocpp: Annotated[list[str] | None, typer.Option(help="OCPP versions offered, in order")] = None,
    evses: Annotated[int, typer.Option(help="EVSE count")] = 1,
    security_profile: Annotated[int, typer.Option(help="1 (ws + Basic), 2 (wss + Basic), 3 (wss + certificate)")] = 1,
    password: Annotated[str | None, typer.Option()] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle for wss://")] = None,
    client_cert: Annotated[Path | None, typer.Option(help="profile 3: the station's certificate chain (PEM)")] = None,
    client_key: Annotated[Path | None, typer.Option(help="profile 3: its private key (PEM)")] = None,
    vendor: Annotated[str, typer.Option()] = "Fermata Energy",
    model: Annotated[str, typer.Option()] = "FE-20",
    charge_kw: Annotated[float, typer.Option()] = 20.0,
    discharge_kw: Annotated[float, typer.Option()] = 15.0,
    plug_in: Annotated[bool, typer.Option(help="plug a car into EVSE 1 at start")] = False,
    car: Annotated[str, typer.Option(help="car model for --plug-in")] = "nissan-leaf-62",
    soc: Annotated[float, typer.Option(help="initial SoC for --plug-in")] = 50.0,
    target_soc: Annotated[float, typer.Option()] = 80.0,
    stay: Annotated[str, typer.Option(help="how long the car stays")] = "4h",
    speed: Annotated[float, typer.Option()] = 1.0,
    duration: Annotated[str | None, typer.Option()] = None,
    status_every: Annotated[float, typer.Option()] = 10.0,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Run one station given by flags."""
    _setup_logging(log_level)
    cfg = StationConfig(
        id=station_id, ocpp=ocpp or ["2.1", "2.0.1"], evse_count=evses, security_profile=security_profile,  # type: ignore[arg-type]
        password=password, ca_file=str(ca_file) if ca_file else None, vendor=vendor, model=model,
        charge_kw=charge_kw, discharge_kw=discharge_kw,
        client_cert_file=str(client_cert) if client_cert else None,
        client_key_file=str(client_key) if client_key else None,
    )  # fmt: skip
    fleet_cfg = FleetConfig.model_validate({"url": url, "stations": [cfg], "scenario": {"clock": {"speed": speed}}})
    fleet = Fleet(fleet_cfg)
    if plug_in:
        fleet[station_id].plug_in(1, car=car, soc=soc, target_soc=target_soc, departure_s=parse_duration(stay))
    asyncio.run(_run(fleet, parse_duration(duration) if duration else None, status_every))


@app.command()
def check(fleet_files: FleetFiles = None, scenario_files: ScenarioFiles = None) -> None:
    """Validate fleet/scenario files and print what would run."""
    cfg = load_fleet(*(fleet_files or []), *(scenario_files or []))
    fleet = Fleet(cfg)
    stations = list(fleet)
    versions: dict[str, int] = {}
    for st in stations:
        key = ">".join(st.config.ocpp)
        versions[key] = versions.get(key, 0) + 1
    sessions = sum(len(e.plans) for st in stations for e in st.evses.values())
    console.print(f"url: {cfg.url}")
    console.print(f"clock: epoch {fleet.clock.epoch.isoformat()} speed x{fleet.clock.speed:g}")
    console.print(f"stations: {len(stations)}  EVSEs: {sum(len(s.evses) for s in stations)}  versions: {versions}")
    console.print(f"sessions: {sessions}  scheduled faults: {len(cfg.scenario.faults)}")
    if fleet.replay is not None:
        console.print(f"replay: {len(fleet.replay.assignments)} sessions, {len(fleet.replay.skipped)} skipped")
        table = Table("session", "caltech", "station", "evse", "car", "plug-in (LA)", "leaves (LA)", "SoC", "target")
        for a in fleet.replay.assignments[:40]:
            p = a.plan
            table.add_row(
                a.source.session_id[:24], a.source.station_id, a.station_id, str(a.evse_id), p.car,
                datetime.fromtimestamp(p.plug_in_t, LOCAL_TZ).strftime("%H:%M"),
                datetime.fromtimestamp(p.departure_t, LOCAL_TZ).strftime("%H:%M"),
                f"{p.initial_soc:.1f}", f"{p.target_soc:.0f}",
            )  # fmt: skip
        console.print(table)


@app.command()
def credentials(fleet_files: FleetFiles = None) -> None:
    """Print id,password,security_profile for every station (CSV) so a CSMS can be provisioned."""
    cfg = load_fleet(*(fleet_files or []))
    print("station_id,password,security_profile")
    for st in cfg.all_stations():
        print(f"{st.id},{st.basic_auth_password},{st.security_profile}")


@app.command()
def cars() -> None:
    """List the car models."""
    table = Table("name", "kWh", "charge kW", "discharge kW", "floor %", "taper from %", "protocol")
    for c in CARS.values():
        table.add_row(
            c.name, f"{c.capacity_kwh:g}", f"{c.max_charge_kw:g}", f"{c.max_discharge_kw:g}", f"{c.min_soc:g}",
            f"{c.taper_start_soc:g}", c.protocol,
        )  # fmt: skip
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
