"""``csms monitor set | list | clear | base | level`` and ``csms alerts``: variable monitoring
(N02-N06) and the alerts raised from NotifyEvent (N07)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .client import seg
from .options import JsonOpt, StationArg, TimeoutOpt, TokenOpt, UrlOpt, api, choice, parse_variable, send_command
from .render import event_rows, out, print_json, styled

# ============================================================================ monitoring
monitor = typer.Typer(no_args_is_help=True, help="Variable monitoring: set, report, clear, base, level.")
MONITOR_TYPES = ("UpperThreshold", "LowerThreshold", "Delta", "Periodic", "PeriodicClockAligned")


@monitor.command("set")
def mon_set(
    station_id: StationArg,
    variable: Annotated[str, typer.Argument(help="Component.Variable, e.g. ChargingStation.Power")],
    type_: Annotated[str, typer.Option("--type", help=", ".join(MONITOR_TYPES))] = "UpperThreshold",
    value: Annotated[float, typer.Option(help="threshold, delta, or interval in seconds")] = 0.0,
    severity: Annotated[int, typer.Option(min=0, max=9, help="0 Danger ... 5 Alert ... 9 Debug")] = 5,
    evse: Annotated[int | None, typer.Option(min=0, help="the component's EVSE")] = None,
    monitor_id: Annotated[int | None, typer.Option("--id", min=0, help="replace this monitor")] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Install a monitor (SetVariableMonitoring)."""
    ref = parse_variable(variable)
    ref.update(
        {"type": choice(type_, MONITOR_TYPES, "a monitor type"), "value": value, "severity": severity, "evse_id": evse}
    )
    if monitor_id is not None:
        ref["id"] = monitor_id
    with api(url, token, as_json) as client:
        params = {"timeout": timeout} if timeout else {}
        data = client.post(f"/api/v1/stations/{seg(station_id)}/monitors", {"monitors": [ref]}, **params)
    if as_json:
        print_json(data)
        return
    for r in data["response"]["setMonitoringResult"]:
        mid = f" id {r['id']}" if "id" in r else ""
        out.print(f"{r['component']['name']}.{r['variable']['name']} {r['type']}: {styled(r['status'])}{mid}")


@monitor.command("list")
def mon_list(
    station_id: StationArg,
    criteria: Annotated[list[str] | None, typer.Option(help="ThresholdMonitoring, DeltaMonitoring, ...")] = None,
    component: Annotated[str | None, typer.Option()] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The station's monitors (GetMonitoringReport + NotifyMonitoringReport)."""
    with api(url, token, as_json) as client:
        data = client.get(f"/api/v1/stations/{seg(station_id)}/monitors", criteria=criteria, component=component)
    if as_json:
        print_json(data)
        return
    if not data["monitors"]:
        out.print(f"{escape(station_id)}: no monitors ({data['status']})")
        return
    table = Table("id", "variable", "type", "value", "severity", "kind", box=None, pad_edge=False)
    for item in data["monitors"]:
        name = f"{item['component']['name']}.{item['variable']['name']}"
        if "evse" in item["component"]:
            name += f" (EVSE {item['component']['evse']['id']})"
        for m in item["variableMonitoring"]:
            table.add_row(
                str(m["id"]), escape(name), m["type"], f"{m['value']:g}", str(m["severity"]),
                m.get("eventNotificationType", "-"),
            )  # fmt: skip
    out.print(table)


@monitor.command("clear")
def mon_clear(
    station_id: StationArg,
    ids: Annotated[list[int], typer.Argument(help="monitor ids")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove monitors (ClearVariableMonitoring)."""
    with api(url, token, as_json) as client:
        data = client.request("DELETE", f"/api/v1/stations/{seg(station_id)}/monitors", params={"id": ids})
    if as_json:
        print_json(data)
        return
    for r in data["response"]["clearMonitoringResult"]:
        out.print(f"monitor {r['id']}: {styled(r['status'])}")


@monitor.command("base")
def mon_base(
    station_id: StationArg,
    base: Annotated[str, typer.Argument(help="All, FactoryDefault, HardWiredOnly")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """SetMonitoringBase."""
    monitoring_base = choice(base, ("All", "FactoryDefault", "HardWiredOnly"), "a monitoring base")
    send_command(url, token, as_json, station_id, "SetMonitoringBase", {"monitoring_base": monitoring_base})


@monitor.command("level")
def mon_level(
    station_id: StationArg,
    severity: Annotated[int, typer.Argument(min=0, max=9)],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """SetMonitoringLevel: report events of this severity or more severe."""
    send_command(url, token, as_json, station_id, "SetMonitoringLevel", {"severity": severity})


def alerts(
    station: Annotated[str | None, typer.Option(help="only this station")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Alerts raised from the stations' NotifyEvent, newest first."""
    with api(url, token, as_json) as client:
        rows = client.get("/api/v1/alerts", station_id=station, limit=limit)
    event_rows(rows, as_json, "no alerts", ("station", "severity", "variable", "value"), _alert)


def _alert(r: dict[str, Any]) -> list[str]:
    p = r["payload"]
    variable = f"{p['component']['name']}.{p['variable']['name']}"
    return [escape(r["station_id"]), str(p["severity"]), escape(variable), escape(str(p["actualValue"]))]
