"""``csms grid ...``: the flexibility forecast and event settlement, from the local database.

Examples::

    csms grid forecast                                # next 24 h from now, table
    csms grid forecast --at 2026-08-18T14:00:00-07:00 --tz America/Los_Angeles --csv
    csms grid settle dsgs-2026-08-18 --baseline 10of10 --tz America/Los_Angeles --out reports/

Both read the database of ``--config`` / ``--data-dir`` (as ``csms serve`` would use it); the
same numbers are served by the API (``GET /api/v1/grid/forecast``,
``GET /api/v1/grid/events/{id}/settlement``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

grid_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Flexibility forecast and settlement.")

Config = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="directory of the SQLite database")]
Tz = Annotated[str, typer.Option("--tz", help="IANA time zone for days and the table")]


def _settings(config: Path | None, data_dir: Path | None) -> Any:
    from csms.config import ConfigError, load_settings

    try:
        return load_settings(config, **({"data_dir": data_dir} if data_dir is not None else {}))
    except ConfigError as exc:
        typer.secho(f"configuration error:\n{exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def _zone(tz: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        typer.secho(f"--tz: unknown time zone {tz!r}", fg="red", err=True)
        raise typer.Exit(2) from None


async def _with_store(settings: Any, fn: Any) -> Any:
    from csms.store.repository import Store

    store = await Store.open(settings.database_url)
    try:
        return await fn(store)
    finally:
        await store.close()


@grid_app.command()
def forecast(
    config: Config = None,
    data_dir: DataDir = None,
    hours: Annotated[int, typer.Option(min=1, max=168, help="hours ahead")] = 24,
    at: Annotated[str | None, typer.Option(help="forecast as of this time (RFC 3339); default now")] = None,
    days: Annotated[int, typer.Option(min=1, max=60, help="past days used as scenarios")] = 10,
    tz: Tz = "UTC",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="print CSV")] = False,
) -> None:
    """Exportable kW per hour for the next hours (median and 10-90 % band) without breaking a promise."""
    from datetime import UTC, datetime

    from .forecast_store import store_forecast
    from .model import parse_time

    zone = _zone(tz)
    try:
        now = parse_time(at) if at else datetime.now(UTC)
    except ValueError as exc:
        typer.secho(f"--at: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    settings = _settings(config, data_dir)

    async def go(store: Any) -> Any:
        return await store_forecast(SimpleNamespace(store=store, states={}), now, hours=hours, days=days, tz=tz)

    fc = asyncio.run(_with_store(settings, go))
    if as_json:
        typer.echo(json.dumps(fc.to_dict(), indent=1))
        return
    if as_csv:
        typer.echo(fc.csv(), nl=False)
        return
    t = Table(title=f"flexibility forecast from {now.astimezone(zone):%Y-%m-%d %H:%M %Z} ({fc.scenarios} scenarios)")
    for col in ("hour", "p10 kW", "median kW", "p90 kW", "known cars kW", "energy kWh", "hold h"):
        t.add_column(col, justify="right")
    for h in fc.hours:
        sustain = h.sustain_h
        t.add_row(
            f"{h.start.astimezone(zone):%a %H:%M}",
            f"{h.kw_p10:.1f}",
            f"{h.kw_p50:.1f}",
            f"{h.kw_p90:.1f}",
            f"{h.kw_known:.1f}",
            f"{h.energy_kwh:.1f}",
            "-" if sustain is None else f"{sustain:.1f}",
        )
    console = Console()
    console.print(t)
    for note in fc.notes:
        console.print(f"[yellow]{note}[/]")


@grid_app.command()
def settle(
    event_id: Annotated[str, typer.Argument(help="grid event id")],
    config: Config = None,
    data_dir: DataDir = None,
    baseline: Annotated[str, typer.Option(help="10of10, pre_event or zero")] = "10of10",
    adjust: Annotated[bool, typer.Option(help="10of10 day-of adjustment (capped +-20 %)")] = False,
    tz: Tz = "UTC",
    out: Annotated[Path | None, typer.Option(help="write <id>.settlement.csv / .json here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Settle a stored event: baseline, delivered and incremental energy per hour (DSGS Option 3 claim)."""
    from .meterdata import settle_event
    from .model import GridEvent
    from .settlement import BaselineOptions, SettlementError

    zone = _zone(tz)
    try:
        options = BaselineOptions(method=baseline, adjust=adjust)  # type: ignore[arg-type]
    except SettlementError as exc:
        typer.secho(f"--{exc.field.replace('method', 'baseline')}: {exc.reason}", fg="red", err=True)
        raise typer.Exit(2) from None
    settings = _settings(config, data_dir)

    async def go(store: Any) -> Any:
        row = await store.get_grid_event(event_id)
        if row is None:
            return None
        payload = {k: v for k, v in (row.payload or {}).items() if k != "history"}
        event = GridEvent.model_validate({**payload, "revision": row.revision, "status": row.status})
        return await settle_event(store, event, options=options, tz=tz, out_dir=out)

    report = asyncio.run(_with_store(settings, go))
    if report is None:
        typer.secho(f"no grid event with id {event_id!r}", fg="red", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(report, indent=1, default=str))
        return
    t = Table(title=f"settlement {event_id} (baseline {report['baseline']['method']}, {zone})")
    for col in ("hour", "target kWh", "baseline kWh", "net import kWh", "exported kWh", "incremental kWh"):
        t.add_column(col, justify="right")
    for r in report["hours"]:
        t.add_row(
            r["hour_local"],
            f"{r['target_kwh']:.1f}",
            f"{r['baseline_kwh']:.1f}",
            f"{r['actual_net_import_kwh']:.1f}",
            f"{r['delivered_export_kwh']:.1f}",
            f"{r['incremental_kwh']:.1f}",
        )
    console = Console()
    console.print(t)
    s = report["summary"]
    console.print(f"incremental {s['incremental_kwh']:.1f} kWh of {s['target_kwh']:.1f} kWh asked "
                  f"(performance {s['performance'] if s['performance'] is not None else '-'})")  # fmt: skip
    for note in report["baseline"]["notes"]:
        console.print(f"[yellow]{note}[/]")
    if out is not None:
        console.print(f"CSV: {report['csv_path']}\nJSON: {report['json_path']}")
