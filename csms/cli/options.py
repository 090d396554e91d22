"""What every remote command shares: the --url/--token/--json/--timeout options, the API client
context, sending one command, and parsing variables, times and files."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from .client import ApiClient, CliError, resolve
from .render import command_result, fail, print_json

# ---------------------------------------------------------------------------- shared options
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url", envvar="CSMS_API_URL", help="CSMS API URL (default from the CLI config, else http://127.0.0.1:8080)"
    ),
]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="CSMS_API_TOKEN", help="API token", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the API's JSON answer only")]
StationArg = Annotated[str, typer.Argument(help="station id, e.g. FE-0001", show_default=False)]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", min=1, max=300, help="seconds to wait for the station's answer")
]


@contextlib.contextmanager
def api(url: str | None, token: str | None, as_json: bool) -> Iterator[ApiClient]:
    """An API client; every :class:`CliError` inside becomes a printed error and exit status."""
    try:
        client = ApiClient(resolve(url, token))
    except CliError as exc:
        raise fail(exc, as_json) from None
    try:
        yield client
    except CliError as exc:
        raise fail(exc, as_json) from None
    finally:
        client.close()


def send_command(
    url: str | None,
    token: str | None,
    as_json: bool,
    station_id: str,
    action: str,
    body: dict[str, Any],
    timeout: float | None = None,
    render: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    with api(url, token, as_json) as client:
        result = client.command(station_id, action, body, timeout)
    if as_json:
        print_json(result)
    else:
        (render or command_result)(result)
    return result


def choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """Case-insensitive match of ``value`` against the OCPP enum ``choices``."""
    for c in choices:
        if c.lower() == value.lower():
            return c
    raise typer.BadParameter(f"expected {what} ({', '.join(choices)}), got {value!r}")


_VAR_RE = re.compile(r"^(?P<c>[^.\[\]]+)(?:\[(?P<ci>[^\]]*)\])?\.(?P<v>[^.\[\]]+)(?:\[(?P<vi>[^\]]*)\])?$")


def parse_variable(spec: str) -> dict[str, Any]:
    """``Component.Variable`` or ``Component[instance].Variable[instance]``."""
    m = _VAR_RE.match(spec.strip())
    if m is None:
        raise typer.BadParameter(
            f"expected Component.Variable, e.g. OCPPCommCtrlr.HeartbeatInterval or EVSE[1].Power (got {spec!r})"
        )
    ref: dict[str, Any] = {"component": m["c"], "variable": m["v"]}
    if m["ci"]:
        ref["component_instance"] = m["ci"]
    if m["vi"]:
        ref["variable_instance"] = m["vi"]
    return ref


_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")


def parse_when(value: str | None, name: str) -> datetime | None:
    """RFC 3339 (``2026-06-01T16:00:00Z``) or a duration back from now (``90m``, ``2h``, ``1d``)."""
    if value is None:
        return None
    m = _DURATION_RE.match(value.strip())
    if m:
        n, unit = float(m[1]), m[2] or "s"
        return datetime.now(UTC) - timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{name}: expected RFC 3339 (2026-06-01T16:00:00Z) or 30m/2h/1d (got {value!r})"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="follow the station's status notifications")]
WaitTimeoutOpt = Annotated[float, typer.Option(min=1, help="give up waiting after this many seconds")]


def json_file(path: Path, name: str) -> Any:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as exc:
        raise typer.BadParameter(f"{name}: cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{name}: {path} is not JSON: {exc}") from None


def read_text(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"{name}: cannot read {path}: {exc.strerror or exc}") from None
