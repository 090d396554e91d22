"""One OCPP command to one station: reset, unlock, availability, trigger, variables, reports,
remote start/stop, charging profiles (K) and the composite schedule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from csms.ocpp.schemas import enum_values

from .client import seg
from .options import (
    JsonOpt,
    StationArg,
    TimeoutOpt,
    TokenOpt,
    UrlOpt,
    api,
    choice,
    json_file,
    parse_variable,
    send_command,
)
from .render import command_result, out, print_json, styled, ts

# ============================================================================ commands
RESET_TYPES = ("Immediate", "OnIdle", "ImmediateAndResume")


def reset(
    station_id: StationArg,
    type_: Annotated[
        str, typer.Option("--type", help="OnIdle (after charging ends), Immediate, ImmediateAndResume (2.1)")
    ] = "OnIdle",
    evse: Annotated[int | None, typer.Option(min=0, help="reset only this EVSE")] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reboot a station (or one EVSE)."""
    body = {"type": choice(type_, RESET_TYPES, "a reset type"), "evse_id": evse}
    send_command(url, token, as_json, station_id, "Reset", body, timeout)


def unlock(
    station_id: StationArg,
    evse: Annotated[int, typer.Option(min=1, help="EVSE id")] = 1,
    connector: Annotated[int, typer.Option(min=1, help="connector id")] = 1,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Unlock a connector (release a stuck cable)."""
    send_command(
        url, token, as_json, station_id, "UnlockConnector", {"evse_id": evse, "connector_id": connector}, timeout
    )


def availability(
    station_id: StationArg,
    status: Annotated[str, typer.Argument(help="operative or inoperative", show_default=False)],
    evse: Annotated[int | None, typer.Option(min=0, help="only this EVSE (default: the whole station)")] = None,
    connector: Annotated[int | None, typer.Option(min=1, help="only this connector of --evse")] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a station, EVSE or connector operative or inoperative."""
    op = choice(status, ("Operative", "Inoperative"), "an operational status")
    if connector is not None and evse is None:
        raise typer.BadParameter("--connector needs --evse")
    body = {"operational_status": op, "evse_id": evse, "connector_id": connector}
    send_command(url, token, as_json, station_id, "ChangeAvailability", body, timeout)


TRIGGERS = enum_values("2.1", "TriggerMessageRequest", "MessageTriggerEnumType")


def trigger(
    station_id: StationArg,
    message: Annotated[str, typer.Argument(help="e.g. StatusNotification, Heartbeat, MeterValues, BootNotification")],
    evse: Annotated[int | None, typer.Option(min=0)] = None,
    connector: Annotated[int | None, typer.Option(min=1)] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the station to send a message now (TriggerMessage)."""
    msg = choice(message, TRIGGERS, "a message")
    if connector is not None and evse is None:
        raise typer.BadParameter("--connector needs --evse")
    body = {"requested_message": msg, "evse_id": evse, "connector_id": connector}
    send_command(url, token, as_json, station_id, "TriggerMessage", body, timeout)


def _variables_table(result: dict[str, Any], key: str) -> None:
    command_result_head(result)
    table = Table("component", "variable", "attribute", "status", "value", box=None, pad_edge=False)
    for r in result["response"].get(key, []):
        comp, var = r.get("component", {}), r.get("variable", {})
        cname = comp.get("name", "?") + (f"[{comp['instance']}]" if comp.get("instance") else "")
        if comp.get("evse"):
            cname += f" (EVSE {comp['evse'].get('id')})"
        vname = var.get("name", "?") + (f"[{var['instance']}]" if var.get("instance") else "")
        status = r.get("attributeStatus")
        table.add_row(
            escape(cname),
            escape(vname),
            r.get("attributeType") or "Actual",
            styled(status),
            escape(str(r.get("attributeValue", ""))),
        )
    out.print(table)
    out.print("OCPP response: " + escape(json.dumps(result["response"], ensure_ascii=False)))


def command_result_head(result: dict[str, Any]) -> None:
    out.print(f"[bold]{escape(result['station_id'])}[/] {escape(result['action'])}: [green]answered[/]")


def get_variable(
    station_id: StationArg,
    variables: Annotated[
        list[str], typer.Argument(help="Component.Variable ... (e.g. OCPPCommCtrlr.HeartbeatInterval)")
    ],
    evse: Annotated[int | None, typer.Option(min=0, help="component on this EVSE")] = None,
    attribute: Annotated[str | None, typer.Option(help="Actual, Target, MinSet, MaxSet")] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read device-model variables (GetVariables)."""
    attr = choice(attribute, ("Actual", "Target", "MinSet", "MaxSet"), "an attribute") if attribute else None
    refs = [{**parse_variable(v), "evse_id": evse, "attribute_type": attr} for v in variables]
    send_command(
        url,
        token,
        as_json,
        station_id,
        "GetVariables",
        {"variables": refs},
        timeout,
        render=lambda r: _variables_table(r, "getVariableResult"),
    )


def set_variable(
    station_id: StationArg,
    variable: Annotated[str, typer.Argument(help="Component.Variable, e.g. OCPPCommCtrlr.HeartbeatInterval")],
    value: Annotated[str, typer.Argument(help="the new value")],
    evse: Annotated[int | None, typer.Option(min=0, help="component on this EVSE")] = None,
    attribute: Annotated[str | None, typer.Option(help="Actual, Target, MinSet, MaxSet")] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a device-model variable (SetVariables)."""
    attr = choice(attribute, ("Actual", "Target", "MinSet", "MaxSet"), "an attribute") if attribute else None
    item = {**parse_variable(variable), "value": value, "evse_id": evse, "attribute_type": attr}
    send_command(
        url,
        token,
        as_json,
        station_id,
        "SetVariables",
        {"variables": [item]},
        timeout,
        render=lambda r: _variables_table(r, "setVariableResult"),
    )


def report(
    station_id: StationArg,
    base: Annotated[
        str, typer.Option(help="FullInventory, ConfigurationInventory, SummaryInventory")
    ] = "FullInventory",
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask for the device-model report (GetBaseReport); the variables land in the CSMS."""
    rb = choice(base, ("FullInventory", "ConfigurationInventory", "SummaryInventory"), "a report base")
    send_command(url, token, as_json, station_id, "GetBaseReport", {"report_base": rb}, timeout)


def start(
    station_id: StationArg,
    id_token: Annotated[str, typer.Option("--id-token", help="the driver's idToken to start with")],
    id_type: Annotated[str, typer.Option("--id-type", help="idToken type: Central, ISO14443, eMAID ...")] = "Central",
    evse: Annotated[int | None, typer.Option(min=1, help="EVSE to start on")] = None,
    profile: Annotated[Path | None, typer.Option(help="JSON file with a TxProfile ChargingProfileType")] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a transaction remotely (RequestStartTransaction)."""
    body: dict[str, Any] = {"id_token": id_token, "id_token_type": id_type, "evse_id": evse}
    if profile is not None:
        body["charging_profile"] = json_file(profile, "--profile")
    send_command(url, token, as_json, station_id, "RequestStartTransaction", body, timeout)


def stop(
    station_id: StationArg,
    transaction_id: Annotated[str, typer.Argument(help="transaction id (see `csms station ID`)")],
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a transaction remotely (RequestStopTransaction)."""
    send_command(url, token, as_json, station_id, "RequestStopTransaction", {"transaction_id": transaction_id}, timeout)


def profiles(
    station_id: StationArg,
    evse: Annotated[int | None, typer.Option(min=0)] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Charging profiles installed on a station (as the CSMS recorded them)."""
    with api(url, token, as_json) as client:
        rows = client.get(f"/api/v1/stations/{seg(station_id)}/profiles", evse_id=evse)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print(f"no charging profiles recorded for {escape(station_id)}")
        return
    table = Table(
        "id",
        "EVSE",
        "purpose",
        "stack",
        "kind",
        "source",
        "transaction",
        "installed",
        "periods",
        box=None,
        pad_edge=False,
    )
    for p in rows:
        prof = p["profile"]
        scheds = prof.get("chargingSchedule") or [{}]
        periods = scheds[0].get("chargingSchedulePeriod") or []
        unit = scheds[0].get("chargingRateUnit", "")
        first = ", ".join(f"{x.get('startPeriod')}s:{x.get('setpoint', x.get('limit'))}{unit}" for x in periods[:3]) + (
            " …" if len(periods) > 3 else ""
        )
        table.add_row(
            str(p["profile_id"]),
            str(p["evse_id"]),
            p["purpose"],
            str(p["stack_level"]),
            escape(str(prof.get("chargingProfileKind", "-"))),
            p["source"],
            escape(p.get("transaction_id") or "-"),
            ts(p["installed_at"]),
            escape(first),
        )
    out.print(table)


def set_profile(
    station_id: StationArg,
    file: Annotated[Path, typer.Argument(help="JSON file with an OCPP ChargingProfileType ('-' = stdin)")],
    evse: Annotated[int, typer.Option(min=0, help="EVSE id (0 = whole station)")] = 0,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Install a charging profile (SetChargingProfile)."""
    profile = json_file(file, "FILE")
    if not isinstance(profile, dict):
        raise typer.BadParameter("FILE must hold one JSON object (a ChargingProfileType)")
    send_command(
        url, token, as_json, station_id, "SetChargingProfile", {"evse_id": evse, "charging_profile": profile}, timeout
    )


PURPOSES = (
    "ChargingStationExternalConstraints",
    "ChargingStationMaxProfile",
    "TxDefaultProfile",
    "TxProfile",
    "PriorityCharging",
    "LocalGeneration",
)


def clear_profile(
    station_id: StationArg,
    profile_id: Annotated[int | None, typer.Option("--id", help="the profile id")] = None,
    evse: Annotated[int | None, typer.Option(min=0)] = None,
    purpose: Annotated[str | None, typer.Option(help="e.g. TxDefaultProfile")] = None,
    stack_level: Annotated[int | None, typer.Option(min=0)] = None,
    all_: Annotated[bool, typer.Option("--all", help="clear every profile of the station")] = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove charging profiles (ClearChargingProfile)."""
    if profile_id is None and evse is None and purpose is None and stack_level is None and not all_:
        raise typer.BadParameter("say which profiles: --id N, --evse N, --purpose P, --stack-level N, or --all")
    body = {
        "charging_profile_id": profile_id,
        "evse_id": evse,
        "purpose": choice(purpose, PURPOSES, "a purpose") if purpose else None,
        "stack_level": stack_level,
    }
    send_command(
        url,
        token,
        as_json,
        station_id,
        "ClearChargingProfile",
        {k: v for k, v in body.items() if v is not None},
        timeout,
    )


def _composite_render(result: dict[str, Any]) -> None:
    command_result(result)
    sched = (result.get("response") or {}).get("schedule")
    if not sched:
        return
    unit = sched.get("chargingRateUnit", "")
    out.print(
        f"schedule from {ts(sched.get('scheduleStart'))} for {sched.get('duration')} s, EVSE {sched.get('evseId')}"
    )
    table = Table("from (s)", "mode", "limit", "discharge limit", "setpoint", box=None, pad_edge=False)
    for p in sched.get("chargingSchedulePeriod", []):
        table.add_row(
            str(p.get("startPeriod")),
            p.get("operationMode", "-"),
            _num(p.get("limit"), unit),
            _num(p.get("dischargeLimit"), unit),
            _num(p.get("setpoint"), unit),
        )
    out.print(table)


def _num(v: Any, unit: str) -> str:
    return "-" if v is None else f"{v:g} {unit}"


def composite(
    station_id: StationArg,
    evse: Annotated[int, typer.Option(min=0, help="EVSE id (0 = grid connection)")] = 1,
    duration: Annotated[int, typer.Option(min=1, help="seconds")] = 3600,
    unit: Annotated[str | None, typer.Option(help="W or A")] = None,
    predicted: Annotated[
        bool, typer.Option("--predicted", help="the CSMS's prediction from recorded profiles (no station call)")
    ] = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The composite schedule of an EVSE (GetCompositeSchedule)."""
    u = choice(unit, ("W", "A"), "W or A") if unit else None
    if predicted:
        with api(url, token, as_json) as client:
            data = client.get(
                f"/api/v1/stations/{seg(station_id)}/composite-schedule", evse_id=evse, duration=duration, unit=u or "W"
            )
        if as_json:
            print_json(data)
            return
        out.print(
            f"[bold]{escape(station_id)}[/] predicted composite schedule, EVSE {evse}, from "
            f"{ts(data['schedule_start'])} for {data['duration']} s ({data['profiles_used']} recorded profiles)"
        )
        table = Table("from (s)", "mode", "limit", "discharge limit", "setpoint", box=None, pad_edge=False)
        for p in data["periods"]:
            table.add_row(
                str(p["start_period"]),
                p["operation_mode"],
                _num(p["limit"], data["charging_rate_unit"]),
                _num(p["discharge_limit"], data["charging_rate_unit"]),
                _num(p["setpoint"], data["charging_rate_unit"]),
            )
        out.print(table)
        return
    body = {"evse_id": evse, "duration": duration, "charging_rate_unit": u}
    send_command(url, token, as_json, station_id, "GetCompositeSchedule", body, timeout, render=_composite_render)
