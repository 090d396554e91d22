"""``csms display-message set ID TEXT | list ID | clear ID MID``: SetDisplayMessage,
GetDisplayMessages (with the NotifyDisplayMessages they cause), ClearDisplayMessage (O01-O05)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .client import seg
from .options import JsonOpt, StationArg, TimeoutOpt, TokenOpt, UrlOpt, api
from .render import command_result, out, print_json, ts

# ============================================================================ display messages
display = typer.Typer(no_args_is_help=True, help="Messages on a station's screen: set, list, clear.")


@display.command("set")
def dm_set(
    station_id: StationArg,
    content: Annotated[str, typer.Argument(help="the text (or URI with --format URI)")],
    message_id: Annotated[int | None, typer.Option("--id", min=0, help="replace this message id")] = None,
    priority: Annotated[str, typer.Option(help="AlwaysFront, InFront, NormalCycle")] = "NormalCycle",
    state: Annotated[str | None, typer.Option(help="only in this state: Charging, Idle, Faulted ...")] = None,
    format_: Annotated[str, typer.Option("--format", help="ASCII, UTF8, URI, HTML, QRCODE (2.1)")] = "UTF8",
    language: Annotated[str | None, typer.Option(help="e.g. en")] = None,
    minutes: Annotated[float | None, typer.Option(min=0.1, help="remove it after this long")] = None,
    transaction: Annotated[str | None, typer.Option(help="only during this transaction")] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a message on the station (SetDisplayMessage)."""
    body: dict[str, Any] = {
        "id": message_id,
        "content": content,
        "priority": priority,
        "state": state,
        "format": format_,
        "language": language,
        "transaction_id": transaction,
    }
    if minutes:
        body["end"] = (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    with api(url, token, as_json) as client:
        params = {"timeout": timeout} if timeout else {}
        data = client.post(f"/api/v1/stations/{seg(station_id)}/display-messages", body, **params)
    if as_json:
        print_json(data)
        return
    command_result(data)
    out.print(f"message id {data['request']['message']['id']}")


@display.command("list")
def dm_list(
    station_id: StationArg,
    priority: Annotated[str | None, typer.Option()] = None,
    state: Annotated[str | None, typer.Option()] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The messages the station holds (GetDisplayMessages + NotifyDisplayMessages)."""
    with api(url, token, as_json) as client:
        data = client.get(f"/api/v1/stations/{seg(station_id)}/display-messages", priority=priority, state=state)
    if as_json:
        print_json(data)
        return
    if not data["messages"]:
        out.print(f"{escape(station_id)}: no display messages ({data['status']})")
        return
    table = Table("id", "priority", "state", "until", "message", box=None, pad_edge=False)
    for m in data["messages"]:
        table.add_row(
            str(m["id"]),
            m["priority"],
            m.get("state") or "-",
            ts(m.get("endDateTime")),
            escape(m["message"]["content"]),
        )
    out.print(table)


@display.command("clear")
def dm_clear(
    station_id: StationArg,
    message_id: Annotated[int, typer.Argument(min=0)],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a message (ClearDisplayMessage)."""
    with api(url, token, as_json) as client:
        data = client.request("DELETE", f"/api/v1/stations/{seg(station_id)}/display-messages/{message_id}")
    if as_json:
        print_json(data)
        return
    command_result(data)
