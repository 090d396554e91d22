"""``csms der``: OCPP 2.1 DER control of a V2X charger over the HTTP API.

- ``der set ID TYPE FILE [--id] [--default]``: SetDERControl with the settings from a JSON file
  (DERCurveType for curve types, else the type's own settings object);
- ``der list ID``: the controls the CSMS set and did not clear;
- ``der report ID [--type] [--id] [--default/--scheduled]``: GetDERControl and the station's report;
- ``der clear ID [--type] [--id] [--default]``: ClearDERControl;
- ``der alarms ID``: the NotifyDERAlarm messages received.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .client import seg
from .options import JsonOpt, StationArg, TimeoutOpt, TokenOpt, UrlOpt, api, json_file
from .render import command_result, event_rows, out, print_json

der = typer.Typer(no_args_is_help=True, help="OCPP 2.1 DER control: set, list, report, clear, alarms.")
SettingsArg = Annotated[Path, typer.Argument(help="the control's settings as JSON, wire form (- for stdin)")]
DefaultOpt = Annotated[bool, typer.Option("--default", help="a default control (isDefault)")]


def _base(station_id: str) -> str:
    return f"/api/v1/stations/{seg(station_id)}/der"


def _controls_table(controls: list[dict[str, Any]]) -> None:
    table = Table("id", "type", "default", "superseded", "priority", box=None, pad_edge=False)
    for c in controls:
        table.add_row(
            escape(c["controlId"]),
            c["controlType"],
            "-" if c.get("isDefault") is None else str(c["isDefault"]).lower(),
            "-" if c.get("isSuperseded") is None else str(c["isSuperseded"]).lower(),
            str(c["data"].get("priority", "-")),
        )
    out.print(table)


@der.command("set")
def der_set(
    station_id: StationArg,
    control_type: Annotated[str, typer.Argument(help="controlType, e.g. VoltVar, EnterService, FixedVar")],
    file: SettingsArg,
    control_id: Annotated[str | None, typer.Option("--id", help="controlId (default: a new UUID)")] = None,
    is_default: DefaultOpt = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Install a DER control on the station (SetDERControl, OCPP 2.1)."""
    body = {
        "control_type": control_type,
        "control_id": control_id,
        "is_default": is_default,
        "settings": json_file(file, "settings"),
    }
    with api(url, token, as_json) as client:
        params = {"timeout": timeout} if timeout else {}
        data = client.post(f"{_base(station_id)}/controls", body, **params)
    if as_json:
        print_json(data)
        return
    command_result(data)
    out.print(f"control id {escape(data['request']['controlId'])}")


@der.command("list")
def der_list(station_id: StationArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """The DER controls the CSMS set on the station and did not clear."""
    with api(url, token, as_json) as client:
        data = client.get(f"{_base(station_id)}/controls")
    if as_json:
        print_json(data)
        return
    if not data:
        out.print(f"{escape(station_id)}: no DER controls set")
        return
    _controls_table(data)


@der.command("report")
def der_report(
    station_id: StationArg,
    control_type: Annotated[str | None, typer.Option("--type", help="only this controlType")] = None,
    control_id: Annotated[str | None, typer.Option("--id", help="only this controlId")] = None,
    is_default: Annotated[bool | None, typer.Option("--default/--scheduled", help="only default / scheduled")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the station for its DER controls (GetDERControl + ReportDERControl)."""
    with api(url, token, as_json) as client:
        data = client.get(
            f"{_base(station_id)}/report", control_type=control_type, control_id=control_id, is_default=is_default
        )
    if as_json:
        print_json(data)
        return
    if not data["controls"]:
        out.print(f"{escape(station_id)}: no DER controls ({data['status']})")
        return
    _controls_table(data["controls"])


@der.command("clear")
def der_clear(
    station_id: StationArg,
    control_type: Annotated[str | None, typer.Option("--type", help="only this controlType")] = None,
    control_id: Annotated[str | None, typer.Option("--id", help="only this controlId")] = None,
    is_default: DefaultOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove DER controls (ClearDERControl): the scheduled ones, or with --default the defaults."""
    with api(url, token, as_json) as client:
        data = client.request(
            "DELETE",
            f"{_base(station_id)}/controls",
            params={"is_default": is_default, "control_type": control_type, "control_id": control_id},
        )
    if as_json:
        print_json(data)
        return
    command_result(data)


@der.command("alarms")
def der_alarms(
    station_id: StationArg,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The grid alarms the station reported (NotifyDERAlarm), newest first."""
    with api(url, token, as_json) as client:
        rows = client.get(f"{_base(station_id)}/alarms", limit=limit)
    event_rows(rows, as_json, f"{escape(station_id)}: no DER alarms", ("state", "control", "fault", "info"), _alarm)


def _alarm(r: dict[str, Any]) -> list[str]:
    p = r["payload"]
    state = "ended" if p["alarmEnded"] else "raised"
    return [state, p["controlType"], p.get("gridEventFault", "-"), escape(p.get("extraInfo", ""))]


def register(app: typer.Typer) -> None:
    app.add_typer(der, name="der")
