"""Long operations followed to their final status: firmware updates (L) and log uploads (N)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from .client import ApiClient, CliError, seg
from .options import (
    JsonOpt,
    StationArg,
    TimeoutOpt,
    TokenOpt,
    UrlOpt,
    WaitOpt,
    WaitTimeoutOpt,
    api,
    choice,
    iso,
    parse_when,
    read_text,
)
from .render import command_result, err, fail, out, print_json, styled, ts

# ---------------------------------------------------------------------------- long operations
FIRMWARE_DONE = {"Installed"}
FIRMWARE_FAILED = {
    "DownloadFailed",
    "InstallationFailed",
    "InstallVerificationFailed",
    "InvalidSignature",
    "DownloadPaused",
}
LOG_DONE = {"Uploaded"}
LOG_FAILED = {"UploadFailure", "BadMessage", "NotSupportedOperation", "PermissionDenied"}


def last_event_id(client: ApiClient, sid: str, kind: str) -> int:
    items = client.get(f"/api/v1/stations/{seg(sid)}/events", kind=kind, limit=1)["items"]
    return items[0]["id"] if items else 0


def request_events(
    client: ApiClient, sid: str, kind: str, request_id: int | None, after_id: int
) -> tuple[int, list[dict[str, Any]]]:
    """The station's events of ``kind`` newer than ``after_id``, oldest first, less those of another
    request than ``request_id`` (all when it is None); with the id to pass as ``after_id`` next."""
    page = client.get(f"/api/v1/stations/{seg(sid)}/events", kind=kind, after_id=after_id, limit=100)
    items = sorted(page["items"], key=lambda x: x["id"])
    last = max([after_id, *(e["id"] for e in items)])
    if request_id is None:
        return last, items
    return last, [e for e in items if (e.get("payload") or {}).get("requestId") in (None, request_id)]


def _follow(
    client: ApiClient,
    sid: str,
    kind: str,
    request_id: int | None,
    after_id: int,
    done: set[str],
    failed: set[str],
    wait_timeout: float,
    interval: float,
    quiet: bool,
) -> tuple[str | None, list[dict[str, Any]]]:
    """Poll the station's events of ``kind`` until a final status for ``request_id``."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_timeout
    ctx = (
        out.status(f"{sid}: waiting for the station's {kind} notifications…") if not quiet else contextlib.nullcontext()
    )
    with ctx as spinner:
        while time.monotonic() < deadline:
            after_id, events = request_events(client, sid, kind, request_id, after_id)
            for e in events:
                status = str((e.get("payload") or {}).get("status", "?"))
                seen.append(e)
                if not quiet:
                    out.print(f"  {ts(e['timestamp'])}  {styled(status)}")
                    if spinner is not None:
                        spinner.update(f"{sid}: {status}…")
                if status in done or status in failed:
                    return status, seen
            time.sleep(interval)
    return None, seen


def long_operation(
    *,
    url: str | None,
    token: str | None,
    as_json: bool,
    station_id: str,
    action: str,
    body: dict[str, Any],
    kind: str,
    done: set[str],
    failed: set[str],
    wait: bool,
    wait_timeout: float,
    interval: float,
    timeout: float | None,
) -> None:
    with api(url, token, as_json) as client:
        after = last_event_id(client, station_id, kind) if wait else 0
        result = client.command(station_id, action, body, timeout)
        if not as_json:
            command_result(result)
        accepted = result.get("status") in ("Accepted", "AcceptedCanceled")
        if not wait or not accepted:
            if as_json:
                print_json(result)
            return
        rid = result["request"].get("requestId")
        final, events = _follow(
            client, station_id, kind, rid, after, done, failed, wait_timeout, interval, quiet=as_json
        )
    if as_json:
        print_json({**result, "final_status": final, "notifications": events})
    if final is None:
        raise fail(
            CliError(
                f"no final {kind} from {station_id} within {wait_timeout:g} s (last: "
                f"{events[-1]['payload'].get('status') if events else 'none'})",
                f"the station may still be working; follow it with `csms station {station_id} watch`",
                code="wait_timeout",
            ),
            False,
        )
    if final in failed:
        if not as_json:
            err.print(f"[bold red]{escape(station_id)}: {escape(action)} failed: {escape(final)}[/]")
        raise typer.Exit(1)
    if not as_json:
        out.print(f"[bold green]{escape(station_id)}: {escape(final)}[/]")


def firmware(
    station_id: StationArg,
    location: Annotated[str, typer.Argument(help="firmware image URL")],
    retrieve_at: Annotated[str | None, typer.Option(help="download at (RFC 3339); default now")] = None,
    install_at: Annotated[str | None, typer.Option(help="install at (RFC 3339)")] = None,
    retries: Annotated[int | None, typer.Option(min=0)] = None,
    retry_interval: Annotated[int | None, typer.Option(min=0, help="seconds")] = None,
    signature: Annotated[str | None, typer.Option(help="Base64 firmware signature")] = None,
    certificate: Annotated[Path | None, typer.Option(help="PEM signing certificate file")] = None,
    wait: WaitOpt = True,
    wait_timeout: WaitTimeoutOpt = 1800,
    interval: Annotated[float, typer.Option(min=0.1, help="poll interval, seconds")] = 1.0,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Update the firmware and follow the station until it is installed (or failed)."""
    body: dict[str, Any] = {
        "location": location,
        "retrieve_at": iso(parse_when(retrieve_at, "--retrieve-at")) if retrieve_at else None,
        "install_at": iso(parse_when(install_at, "--install-at")) if install_at else None,
        "retries": retries,
        "retry_interval": retry_interval,
        "signature": signature,
        "signing_certificate": read_text(certificate, "--certificate") if certificate else None,
    }
    long_operation(
        url=url,
        token=token,
        as_json=as_json,
        station_id=station_id,
        action="UpdateFirmware",
        body={k: v for k, v in body.items() if v is not None},
        kind="FirmwareStatus",
        done=FIRMWARE_DONE,
        failed=FIRMWARE_FAILED,
        wait=wait,
        wait_timeout=wait_timeout,
        interval=interval,
        timeout=timeout,
    )


LOG_TYPES = ("DiagnosticsLog", "SecurityLog", "DataCollectorLog")


def get_log(
    station_id: StationArg,
    location: Annotated[str, typer.Argument(help="upload URL for the log (e.g. ftp:// or https://)")],
    log_type: Annotated[str, typer.Option("--type", help="DiagnosticsLog, SecurityLog, DataCollectorLog (2.1)")] = (
        "DiagnosticsLog"
    ),
    since: Annotated[str | None, typer.Option(help="oldest entry: RFC 3339 or back from now (2h, 1d)")] = None,
    until: Annotated[str | None, typer.Option(help="latest entry: RFC 3339 or back from now")] = None,
    retries: Annotated[int | None, typer.Option(min=0)] = None,
    retry_interval: Annotated[int | None, typer.Option(min=0, help="seconds")] = None,
    wait: WaitOpt = True,
    wait_timeout: WaitTimeoutOpt = 900,
    interval: Annotated[float, typer.Option(min=0.1, help="poll interval, seconds")] = 1.0,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Have the station upload a log and follow it until uploaded (or failed)."""
    body: dict[str, Any] = {
        "remote_location": location,
        "log_type": choice(log_type, LOG_TYPES, "a log type"),
        "oldest": iso(parse_when(since, "--since")),
        "latest": iso(parse_when(until, "--until")),
        "retries": retries,
        "retry_interval": retry_interval,
    }
    long_operation(
        url=url,
        token=token,
        as_json=as_json,
        station_id=station_id,
        action="GetLog",
        body={k: v for k, v in body.items() if v is not None},
        kind="LogStatus",
        done=LOG_DONE,
        failed=LOG_FAILED,
        wait=wait,
        wait_timeout=wait_timeout,
        interval=interval,
        timeout=timeout,
    )
