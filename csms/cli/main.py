"""csms: run the CSMS, and work with it from the office or the field.

`csms serve` runs the CSMS (OCPP server and HTTP API). The station commands (stations, station,
reset, unlock, firmware, ...) talk to a running CSMS over its HTTP API: set CSMS_API_URL and
CSMS_API_TOKEN, pass --url / --token, or save both once with `csms login URL`. `csms admin`
works on the local database (stations, API tokens); `csms simulate` runs the station simulators.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from csms.config import ConfigError, Settings, load_settings

from . import der, pnc, remote
from .sites import site_app

HELP = (
    "Run the CSMS, and work with it from the office or the field.\n\n"
    "`csms serve` runs the CSMS (OCPP server and HTTP API). The station commands (stations, station, reset, "
    "unlock, firmware, ...) talk to a running CSMS over its HTTP API: set CSMS_API_URL and CSMS_API_TOKEN, "
    "pass --url / --token, or save both once with `csms login URL`.\n\n"
    "`csms admin` works on the local database (stations, API tokens); `csms simulate` runs the station simulators."
)
app = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP)
admin = typer.Typer(no_args_is_help=True, help="Administration on the local database (no server needed).")
app.add_typer(admin, name="admin")
token_app = typer.Typer(no_args_is_help=True, help="HTTP API tokens (stored hashed; shown once when created).")
admin.add_typer(token_app, name="token")
remote.register(app)
app.add_typer(site_app, name="site")
der.register(app)
pnc.register(app)


class _StderrLogger:
    """structlog logger writing to the current sys.stderr."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Admin commands print results (passwords, tokens) on stdout for scripts: library logs go
    to stderr, warnings and errors only."""
    import logging

    import structlog

    saved = structlog.get_config()
    structlog.configure(
        logger_factory=lambda *_a: _StderrLogger(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.configure(**saved)


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
    api_port: int | None = typer.Option(None, help="HTTP API port (0 picks a free port)"),
    api_host: str | None = typer.Option(None, help="HTTP API listen address (default 127.0.0.1)"),
    data_dir: Path | None = typer.Option(None, help="directory for the SQLite database and reports"),
    log_json: bool = typer.Option(False, "--log-json", help="log JSON lines instead of console text"),
    log_level: str | None = typer.Option(None, help="debug, info, warning or error"),
) -> None:
    """Run the CSMS: the OCPP server (and the HTTP API) until SIGINT or SIGTERM."""
    from csms.logging import configure_logging
    from csms.runtime import run, settle_heap
    from csms.service import Service, add_grid_parts

    settings = _settings(
        config,
        data_dir,
        server__host=host,
        server__port=port,
        api__port=api_port,
        api__host=api_host,
        log__level=log_level,
    )
    configure_logging(settings.log.level, log_json or settings.log.json_output)

    async def main(stop: asyncio.Event) -> None:
        service = Service(settings)
        add_grid_parts(service)
        await service.start()
        settle_heap()
        try:
            await stop.wait()
        finally:
            await service.stop()

    try:
        run(main)
    except ConfigError as exc:  # TLS files that exist but do not load (security.profile 2, 3)
        typer.secho(f"configuration error:\n{exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def _station_id_arg(station_id: str) -> str:
    from csms.server.connection import station_id_problem

    problem = station_id_problem(station_id)
    if problem is not None:
        typer.secho(f"STATION_ID: a station id {problem}: {station_id!r}", fg="red", err=True)
        raise typer.Exit(2)
    return station_id


def _with_central(settings: Settings, work):  # type: ignore[no-untyped-def]
    """Run ``work(central)`` against the database without starting a server. A running server
    (or cluster node) sharing the database picks the change up at once (registry change feed)."""

    async def go():  # type: ignore[no-untyped-def]
        from csms.central import CentralSystem

        central = CentralSystem(settings)
        central.store = await _open_store(settings)
        try:
            return await work(central)
        finally:
            await central.store.close()

    with _quiet_logs():
        return asyncio.run(go())


@admin.command("add-station")
def add_station(
    station_id: str = typer.Argument(..., help="station identity (last URL path segment)"),
    password: str | None = typer.Option(None, help="16-40 characters; generated and printed when omitted"),
    policy: str = typer.Option("accept", help="boot policy: accept, pending or reject"),
    config: Path | None = typer.Option(None, "--config", "-c"),
    data_dir: Path | None = typer.Option(None),
) -> None:
    """Register a station (security profile 1/2 password) in the database, or give an existing one
    a new password and boot policy. A running server admits it at once, no restart."""
    from csms.server import credentials

    _station_id_arg(station_id)
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
    created = _with_central(settings, lambda c: c.register_station(station_id, pw, boot_policy=policy))
    typer.echo(f"station {station_id} {'registered' if created else 'updated'} (boot policy {policy})")
    if password is None:
        typer.echo(f"password: {pw}")


@admin.command("remove-station")
def remove_station(
    station_id: str = typer.Argument(..., help="station identity"),
    config: Path | None = typer.Option(None, "--config", "-c"),
    data_dir: Path | None = typer.Option(None),
) -> None:
    """Delete a station's registration (its history is kept). A running server closes its live
    connection and refuses it from then on (HTTP 404)."""
    settings = _settings(config, data_dir)
    if not _with_central(settings, lambda c: c.remove_station(station_id)):
        typer.secho(f"no station {station_id!r} is registered", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"station {station_id} removed")


def _set_blocked(station_id: str, blocked: bool, config: Path | None, data_dir: Path | None) -> None:
    settings = _settings(config, data_dir)

    async def work(central):  # type: ignore[no-untyped-def]
        assert central.store is not None
        return await central.store.set_station_blocked(station_id, blocked)

    changed = _with_central(settings, work)
    if changed is None:
        typer.secho(f"no station {station_id!r} is registered", fg="red", err=True)
        raise typer.Exit(1)
    word = "blocked" if blocked else "unblocked"
    typer.echo(f"station {station_id} {word}" + ("" if changed else " (it already was)"))


@admin.command("block-station")
def block_station(
    station_id: str = typer.Argument(..., help="station identity"),
    config: Path | None = typer.Option(None, "--config", "-c"),
    data_dir: Path | None = typer.Option(None),
) -> None:
    """Refuse a station (HTTP 403 at its handshake) without forgetting it; a running server closes
    its live connection."""
    _set_blocked(station_id, True, config, data_dir)


@admin.command("unblock-station")
def unblock_station(
    station_id: str = typer.Argument(..., help="station identity"),
    config: Path | None = typer.Option(None, "--config", "-c"),
    data_dir: Path | None = typer.Option(None),
) -> None:
    """Admit a blocked station again."""
    _set_blocked(station_id, False, config, data_dir)


def _open_store(settings: Settings):  # type: ignore[no-untyped-def]
    from csms.store.repository import Store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Store.open(settings.database_url, flush_interval=0.05)


@token_app.command("create")
def token_create(
    name: str = typer.Argument(..., help="who or what uses the token, e.g. alice-laptop, grafana"),
    scope: str = typer.Option(
        "read", help="read (every GET), operator (also commands and writes) or admin (also the station registry)"
    ),
    config: Path | None = typer.Option(None, "--config", "-c"),
    data_dir: Path | None = typer.Option(None),
) -> None:
    """Issue an API token and print it once (only its SHA-256 is stored)."""
    from csms.api.apitokens import SCOPES, issue_token

    if scope not in SCOPES:
        typer.secho(f"--scope must be one of {', '.join(SCOPES)} (got {scope!r})", fg="red", err=True)
        raise typer.Exit(2)
    if not name or len(name) > 128:
        typer.secho("NAME must be 1-128 characters", fg="red", err=True)
        raise typer.Exit(2)
    settings = _settings(config, data_dir)

    async def go() -> str:
        store = await _open_store(settings)
        try:
            token, _row = await issue_token(store, name, scope)
            return token
        finally:
            await store.close()

    try:
        with _quiet_logs():
            token = asyncio.run(go())
    except ValueError as exc:
        typer.secho(f"{exc}; pick another name or revoke the old token first", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"token {name} created (scope {scope}); it is shown only now:", err=True)
    typer.echo(token)


@token_app.command("list")
def token_list(
    config: Path | None = typer.Option(None, "--config", "-c"),
    data_dir: Path | None = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="JSON output"),
) -> None:
    """List API tokens (names, scopes, state; never the tokens themselves)."""
    settings = _settings(config, data_dir)

    async def go() -> list:  # type: ignore[type-arg]
        store = await _open_store(settings)
        try:
            return await store.list_api_tokens()
        finally:
            await store.close()

    with _quiet_logs():
        rows = asyncio.run(go())
    if as_json:
        from .render import print_json

        print_json(
            [
                {"name": r.name, "scope": r.scope, "created_at": r.created_at.isoformat(), "revoked": r.revoked}
                for r in rows
            ]
        )
        return
    from rich.table import Table

    from .render import out

    table = Table("name", "scope", "created", "state", box=None, pad_edge=False)
    for r in rows:
        table.add_row(r.name, r.scope, r.created_at.strftime("%Y-%m-%d %H:%MZ"), "revoked" if r.revoked else "active")
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    name: str = typer.Argument(..., help="the token's name"),
    config: Path | None = typer.Option(None, "--config", "-c"),
    data_dir: Path | None = typer.Option(None),
) -> None:
    """Revoke an API token (takes effect on the next request)."""
    settings = _settings(config, data_dir)

    async def go() -> bool:
        store = await _open_store(settings)
        try:
            return await store.revoke_api_token(name)
        finally:
            await store.close()

    with _quiet_logs():
        revoked = asyncio.run(go())
    if not revoked:
        typer.secho(f"no active token named {name!r}; `csms admin token list` shows them", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"token {name} revoked")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def simulate(ctx: typer.Context) -> None:
    """Run the bundled station simulators (same as `csms-sim`; `csms simulate --help`)."""
    try:
        from simulators import cli as sim_cli
    except ImportError as exc:
        typer.secho(f"the simulators are not installed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    sim_app = getattr(sim_cli, "app", None)
    if sim_app is not None:
        command = typer.main.get_command(sim_app)
        command.main(args=list(ctx.args), prog_name="csms simulate", standalone_mode=True)
        return
    sim_main = sim_cli.main
    sys.argv = ["csms simulate", *ctx.args]
    sim_main()


@app.command()
def demo(
    stations: int | None = typer.Option(None, min=1, help="simulated stations (default 60)"),
    target_kw: float | None = typer.Option(None, min=0, help="export target, kW (default: feasible for the fleet)"),
    speed: float | None = typer.Option(None, min=1, help="clock speed (default 150: an evening in ~2 min)"),
    data_dir: Path | None = typer.Option(None, help="where the database and reports go (default: a temp dir)"),
    live: bool = typer.Option(True, "--live/--no-live", help="live terminal view, or one line per 15 min"),
    exit_after: bool = typer.Option(
        False, "--exit", help="exit after the report (default: keep the web console up until Ctrl-C)"
    ),
    grid: str = typer.Option("leap", help="event source: leap (webhook) or openadr3 (the bundled VTN simulator)"),
) -> None:
    """The grid-event demo: CSMS + simulated V2G fleet + an export event, with the delivery report.

    Prints the web console's URL and a read token; after the report the console stays up until
    Ctrl-C (``--exit``: stop at once, for scripts and CI)."""
    try:
        from csms.demo.event import run_demo
    except ImportError as exc:
        typer.secho(f"the demo is not available in this installation: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    if grid not in ("leap", "openadr3"):
        typer.secho(f"--grid: must be leap or openadr3, not {grid!r}", fg="red", err=True)
        raise typer.Exit(2)
    options: dict[str, object] = {
        "stations": stations,
        "target_kw": target_kw,
        "speed": speed,
        "data_dir": data_dir,
        "live": live,
        "keep_serving": not exit_after,
        "grid": grid,
    }
    run_demo(**{k: v for k, v in options.items() if v is not None})


def _mount_grid_cli() -> None:
    """``csms event ...`` from the grid package, when present."""
    try:
        from csms.grid.cli import event_app
        from csms.grid.commands import grid_app
    except ImportError:
        return
    app.add_typer(event_app, name="event")
    app.add_typer(grid_app, name="grid")


_mount_grid_cli()


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
