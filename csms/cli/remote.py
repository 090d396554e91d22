"""The field technician's commands: they talk to a running CSMS over its HTTP API.

Every command takes ``--url`` / ``--token`` (or CSMS_API_URL / CSMS_API_TOKEN, or the CLI config
file, see :mod:`csms.cli.client`) and ``--json`` (print the API's JSON answer, nothing else).
Exit status: 0 when the station answered (whatever its OCPP status), 1 for an error (offline,
timeout, CALLERROR, unknown station, auth), 2 for bad arguments.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from .certificates import certificate
from .client import save_config
from .commands import (
    availability,
    clear_profile,
    composite,
    get_variable,
    profiles,
    report,
    reset,
    set_profile,
    set_variable,
    start,
    stop,
    trigger,
    unlock,
)
from .fleet import fleet
from .id_tokens import id_tokens
from .maintenance import firmware, get_log
from .operations import register as register_operations
from .options import JsonOpt, TokenOpt, UrlOpt, api
from .render import out, print_json
from .stations import meter, station, stations, transactions


def register(app: typer.Typer) -> None:
    """Add the technician commands to the ``csms`` app."""
    for fn in (
        login,
        whoami,
        stations,
        station,
        transactions,
        meter,
        reset,
        unlock,
        availability,
        trigger,
        get_variable,
        set_variable,
        report,
        start,
        stop,
        profiles,
        set_profile,
        clear_profile,
        composite,
        firmware,
        get_log,
    ):
        app.command(fn.__name__.replace("_", "-"))(fn)
    app.add_typer(id_tokens, name="id-token")
    app.add_typer(fleet, name="fleet")
    app.add_typer(certificate, name="certificate")
    register_operations(app)


# ============================================================================ session
def login(
    url: Annotated[str, typer.Argument(help="CSMS API URL, e.g. http://csms.example.net:8080")],
    token: Annotated[str, typer.Option("--token", envvar="CSMS_API_TOKEN", prompt=True, hide_input=True)],
) -> None:
    """Check a URL and token against the CSMS and save them in the CLI config file."""
    with api(url, token, False) as client:
        me = client.get("/api/v1/whoami")
    path = save_config(client.target.url, token)
    out.print(f"logged in to {escape(client.target.url)} as [bold]{escape(me['name'])}[/] (scope {me['scope']})")
    out.print(f"saved to {path}")


def whoami(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Show which CSMS and token the CLI uses."""
    with api(url, token, as_json) as client:
        me = client.get("/api/v1/whoami")
    if as_json:
        print_json({**me, "url": client.target.url})
        return
    out.print(f"{escape(client.target.url)}: token [bold]{escape(me['name'])}[/], scope {me['scope']}")
