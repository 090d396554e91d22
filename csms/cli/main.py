"""``csms``: one command-line tool for operators and field technicians.

``csms serve`` runs the CSMS; ``csms station ...`` and friends talk to a running CSMS over
its HTTP API; ``csms simulate`` starts the bundled simulators; ``csms demo`` runs the
grid-event demo on the embedded defaults.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer

from csms.config import ConfigError, Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
admin = typer.Typer(no_args_is_help=True, help="Administration on the local database (no server needed).")
app.add_typer(admin, name="admin")


def _settings(config: Path | None, data_dir: Path | None = None, **overrides: object) -> Settings:
    try:
        kw = {k: v for k, v in overrides.items() if v is not None}
        if data_dir is not None:
            kw["data_dir"] = data_dir
        return load_settings(config, **kw)
    except ConfigError as exc:
        typer.secho(f"configuration error:\n{exc}", fg="red", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML config file (default configs/csms.toml)"),
    host: str | None = typer.Option(None, help="OCPP listen address"),
    port: int | None = typer.Option(None, help="OCPP listen port"),
    api_port: int | None = typer.Option(None, help="HTTP API port"),
    data_dir: Path | None = typer.Option(None, help="directory for the SQLite database and reports"),
    log_json: bool = typer.Option(False, "--log-json", help="log JSON lines instead of console text"),
    log_level: str | None = typer.Option(None, help="debug, info, warning or error"),
) -> None:
    """Run the CSMS: the OCPP server (and the HTTP API) until SIGINT or SIGTERM."""
    from csms.logging import configure_logging
    from csms.runtime import run
    from csms.service import Service

    settings = _settings(
        config, data_dir, server__host=host, server__port=port, api__port=api_port, log__level=log_level
    )
    configure_logging(settings.log.level, log_json or settings.log.json_output)

    async def main(stop: asyncio.Event) -> None:
        service = Service(settings)
        await service.start()
        try:
            await stop.wait()
        finally:
            await service.stop()

    run(main)


@admin.command("add-station")
def add_station(
    station_id: str = typer.Argument(..., help="station identity (last URL path segment)"),
    password: str | None = typer.Option(None, help="16-40 characters; generated and printed when omitted"),
    policy: str = typer.Option("accept", help="boot policy: accept, pending or reject"),
    config: Path | None = typer.Option(None, "--config", "-c"),
    data_dir: Path | None = typer.Option(None),
) -> None:
    """Register a station (security profile 1/2 password) in the local database."""
    from csms.server import credentials

    if policy not in ("accept", "pending", "reject"):
        typer.secho(f"--policy must be accept, pending or reject (got {policy!r})", fg="red", err=True)
        raise typer.Exit(2)
    pw = password or credentials.generate_password()
    try:
        credentials.check_password_rules(pw)
    except credentials.CredentialError as exc:
        typer.secho(f"--password: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    settings = _settings(config, data_dir)

    async def go() -> None:
        from csms.central import CentralSystem

        central = CentralSystem(settings)
        from csms.store.repository import Store

        central.store = await Store.open(settings.database_url)
        try:
            await central.register_station(station_id, pw, boot_policy=policy)
        finally:
            await central.store.close()

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(go())
    typer.echo(f"station {station_id} registered (boot policy {policy})")
    if password is None:
        typer.echo(f"password: {pw}")


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
