"""``csms fleet``: one command to many stations at once, with progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .client import ApiClient, CliError, Target
from .commands import RESET_TYPES, TRIGGERS
from .maintenance import FIRMWARE_DONE, FIRMWARE_FAILED, last_event_id, request_events
from .options import JsonOpt, TokenOpt, UrlOpt, WaitOpt, WaitTimeoutOpt, api, choice, parse_variable
from .render import err, out, print_json, styled
from .stations import all_pages

# ============================================================================ fleet-wide
fleet = typer.Typer(no_args_is_help=True, help="Send a command to many stations at once, with progress.")

ModelOpt = Annotated[str | None, typer.Option(help="only stations of this model")]
OfflineOpt = Annotated[bool, typer.Option("--include-offline", help="also try disconnected stations")]
ParallelOpt = Annotated[int, typer.Option(min=1, max=64, help="commands in flight at once")]


def _fleet_ids(client: ApiClient, model: str | None, include_offline: bool, ids: list[str] | None) -> list[str]:
    if ids:
        return ids
    params: dict[str, Any] = {"model": model}
    if not include_offline:
        params["connected"] = "true"
    return [s["id"] for s in all_pages(client, "/api/v1/stations", params)]


def _progress(as_json: bool) -> Progress:
    """A progress bar on stderr (none with ``--json``)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err.console(),
        disable=as_json,
    )


def _fleet_run(
    target: Target,
    station_ids: list[str],
    action: str,
    body_for: Callable[[str], dict[str, Any]],
    parallel: int,
    as_json: bool,
    timeout: float | None = None,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []

    def one(sid: str) -> dict[str, Any]:
        with ApiClient(target) as c:
            try:
                r = c.command(sid, action, body_for(sid), timeout)
                return {"station_id": sid, "ok": True, "status": r.get("status"), "result": r}
            except CliError as exc:
                return {"station_id": sid, "ok": False, "status": exc.code, "error": exc.as_json()["error"]}

    progress = _progress(as_json)
    with progress, ThreadPoolExecutor(max_workers=parallel) as pool:
        task = progress.add_task(f"{action}", total=len(station_ids))
        futures = {pool.submit(one, sid): sid for sid in station_ids}
        for fut in as_completed(futures):
            results.append(fut.result())
            progress.advance(task)
    results.sort(key=lambda r: r["station_id"])
    return results


def _fleet_report(results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(results)
    else:
        table = Table("station", "result", "detail", box=None, pad_edge=False)
        for r in results:
            if r["ok"]:
                table.add_row(escape(r["station_id"]), styled(r["status"] or "answered"), "")
            else:
                table.add_row(escape(r["station_id"]), f"[red]{escape(r['status'])}[/]", escape(r["error"]["message"]))
        out.print(table)
        ok = sum(1 for r in results if r["ok"])
        out.print(f"{ok}/{len(results)} stations answered")
    if any(not r["ok"] for r in results):
        raise typer.Exit(1)


StationsOpt = Annotated[
    list[str] | None, typer.Option("--station", "-s", help="only these stations (repeatable); default: all connected")
]


@fleet.command("reset")
def fleet_reset(
    type_: Annotated[str, typer.Option("--type")] = "OnIdle",
    station_ids: StationsOpt = None,
    model: ModelOpt = None,
    include_offline: OfflineOpt = False,
    parallel: ParallelOpt = 8,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reset every (connected) station."""
    body = {"type": choice(type_, RESET_TYPES, "a reset type")}
    with api(url, token, as_json) as client:
        ids = _fleet_ids(client, model, include_offline, station_ids)
    _fleet_report(_fleet_run(client.target, ids, "Reset", lambda _s: body, parallel, as_json), as_json)


@fleet.command("trigger")
def fleet_trigger(
    message: Annotated[str, typer.Argument(help="e.g. StatusNotification")],
    station_ids: StationsOpt = None,
    model: ModelOpt = None,
    include_offline: OfflineOpt = False,
    parallel: ParallelOpt = 8,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Trigger a message on every (connected) station."""
    body = {"requested_message": choice(message, TRIGGERS, "a message")}
    with api(url, token, as_json) as client:
        ids = _fleet_ids(client, model, include_offline, station_ids)
    _fleet_report(_fleet_run(client.target, ids, "TriggerMessage", lambda _s: body, parallel, as_json), as_json)


@fleet.command("set-variable")
def fleet_set_variable(
    variable: Annotated[str, typer.Argument(help="Component.Variable")],
    value: Annotated[str, typer.Argument()],
    station_ids: StationsOpt = None,
    model: ModelOpt = None,
    include_offline: OfflineOpt = False,
    parallel: ParallelOpt = 8,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a device-model variable on every (connected) station."""
    body = {"variables": [{**parse_variable(variable), "value": value}]}
    with api(url, token, as_json) as client:
        ids = _fleet_ids(client, model, include_offline, station_ids)
    results = _fleet_run(client.target, ids, "SetVariables", lambda _s: body, parallel, as_json)
    for r in results:  # the station-level status is the attribute status
        if r["ok"]:
            res = (r["result"]["response"].get("setVariableResult") or [{}])[0]
            r["status"] = res.get("attributeStatus")
    _fleet_report(results, as_json)


@fleet.command("firmware")
def fleet_firmware(
    location: Annotated[str, typer.Argument(help="firmware image URL")],
    station_ids: StationsOpt = None,
    model: ModelOpt = None,
    include_offline: OfflineOpt = False,
    parallel: ParallelOpt = 8,
    wait: WaitOpt = True,
    wait_timeout: WaitTimeoutOpt = 3600,
    interval: Annotated[float, typer.Option(min=0.1)] = 2.0,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Update the firmware of many stations and follow them until each is installed or failed."""
    with api(url, token, as_json) as client:
        ids = _fleet_ids(client, model, include_offline, station_ids)
        after = {sid: last_event_id(client, sid, "FirmwareStatus") for sid in ids} if wait else {}
        results = _fleet_run(client.target, ids, "UpdateFirmware", lambda _s: {"location": location}, parallel, as_json)
        pending = {
            r["station_id"]: r["result"]["request"]["requestId"]
            for r in results
            if r["ok"] and r["status"] in ("Accepted", "AcceptedCanceled")
        }
        if wait and pending:
            _fleet_follow(client, pending, after, results, wait_timeout, interval, as_json)
    _fleet_report(results, as_json)


def _fleet_follow(
    client: ApiClient,
    pending: dict[str, int],
    after: dict[str, int],
    results: list[dict[str, Any]],
    wait_timeout: float,
    interval: float,
    as_json: bool,
) -> None:
    by_id = {r["station_id"]: r for r in results}
    deadline = time.monotonic() + wait_timeout
    progress = _progress(as_json)
    with progress:
        task = progress.add_task("firmware installed", total=len(pending))
        while pending and time.monotonic() < deadline:
            for sid, rid in list(pending.items()):
                after[sid], events = request_events(client, sid, "FirmwareStatus", rid, after[sid])
                for e in events:
                    status = str((e.get("payload") or {}).get("status"))
                    by_id[sid]["status"] = status
                    if status in FIRMWARE_DONE | FIRMWARE_FAILED:
                        if status in FIRMWARE_FAILED:
                            by_id[sid].update(ok=False, error={"message": f"firmware {status}"})
                        pending.pop(sid)
                        progress.advance(task)
                        break
            if pending:
                time.sleep(interval)
    for sid in pending:
        by_id[sid].update(ok=False, error={"message": f"no final status within {wait_timeout:g} s"})
