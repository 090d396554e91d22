"""Terminal output of the CLI: rich tables and lines, plain JSON for ``--json``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .client import CliError


class _Stream:
    """A rich Console bound to the *current* sys.stdout / sys.stderr (test runners and pipes swap
    them). Not on a terminal, lines are not wrapped at 80 columns (COLUMNS, default 200)."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None
        self._file: TextIO | None = None

    def console(self) -> Console:
        f = sys.stderr if self._stderr else sys.stdout
        if self._console is None or self._file is not f:
            tty = hasattr(f, "isatty") and f.isatty()
            width = None if tty else int(os.environ.get("COLUMNS") or 200)
            self._console = Console(file=f, highlight=False, soft_wrap=True, width=width)
            self._file = f
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console(), name)


out: Any = _Stream(stderr=False)
err: Any = _Stream(stderr=True)

GOOD = {"Accepted", "Unlocked", "Scheduled", "AcceptedCanceled", "Installed", "Uploaded", "Available", "Operative"}
BAD = {
    "Rejected",
    "UnlockFailed",
    "OngoingAuthorizedTransaction",
    "UnknownConnector",
    "NotSupported",
    "UnknownComponent",
    "UnknownVariable",
    "NotSupportedAttributeType",
    "RebootRequired",
    "Faulted",
    "Unavailable",
    "DownloadFailed",
    "InstallationFailed",
    "InstallVerificationFailed",
    "InvalidSignature",
    "UploadFailure",
    "BadMessage",
    "PermissionDenied",
    "NotSupportedOperation",
    "InvalidCertificate",
    "RevokedCertificate",
}


def print_json(data: Any) -> None:
    """Exactly the JSON, on stdout, nothing else (for scripts and jq)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def event_rows(
    rows: list[dict[str, Any]],
    as_json: bool,
    empty: str,
    columns: Sequence[str],
    cells: Callable[[dict[str, Any]], Sequence[str]],
) -> None:
    """Stored station events (newest first) as JSON, or as a table of their time and ``cells(row)``
    under ``columns``; ``empty`` when there are none."""
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print(empty)
        return
    table = Table("time", *columns, box=None, pad_edge=False)
    for r in rows:
        table.add_row(ts(r["timestamp"]), *cells(r))
    out.print(table)


def fail(exc: CliError, as_json: bool) -> typer.Exit:
    """Print an error (JSON on stdout with --json, else text on stderr) and return the Exit."""
    if as_json:
        print_json(exc.as_json())
    else:
        err.print(f"[bold red]error:[/] {escape(exc.message)}")
        if exc.hint:
            err.print(f"[yellow]next:[/] {escape(exc.hint)}")
    return typer.Exit(exc.exit_code)


def styled(status: str | None) -> str:
    if status is None:
        return "-"
    s = escape(str(status))
    if status in GOOD:
        return f"[green]{s}[/]"
    if status in BAD:
        return f"[red]{s}[/]"
    return f"[yellow]{s}[/]"


def parse_dt(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def ts(value: Any, *, seconds: bool = True) -> str:
    dt = parse_dt(value)
    if dt is None:
        return "-"
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%MZ")


def clock(value: Any) -> str:
    dt = parse_dt(value)
    if dt is None:
        return "--:--:--"
    return dt.astimezone(UTC).strftime("%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def ago(value: Any, now: datetime | None = None) -> str:
    dt = parse_dt(value)
    if dt is None:
        return ""
    secs = int(((now or datetime.now(UTC)) - dt).total_seconds())
    if secs < 0:
        return "just now" if secs > -60 else ""
    if secs < 60:
        return f"{secs}s ago"
    if secs < 3600:
        return f"{secs // 60}m ago"
    if secs < 86400:
        return f"{secs // 3600}h{(secs % 3600) // 60:02d}m ago"
    return f"{secs // 86400}d ago"


def kw(watts: float | None) -> str:
    if watts is None:
        return "-"
    return f"{watts / 1000:.1f} kW"


def compact(data: Any, limit: int = 160) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def command_result(result: dict[str, Any]) -> None:
    """Headline with the OCPP status, then the station's exact answer."""
    status = result.get("status")
    head = f"[bold]{escape(result['station_id'])}[/] {escape(result['action'])}: "
    head += styled(status) if status else "[green]answered[/]"
    out.print(head)
    info = (result.get("response") or {}).get("statusInfo")
    if isinstance(info, dict) and info.get("reasonCode"):
        extra = f" ({info['additionalInfo']})" if info.get("additionalInfo") else ""
        out.print(f"  reason: {escape(str(info['reasonCode']))}{escape(extra)}")
    out.print("OCPP response: " + escape(json.dumps(result.get("response"), ensure_ascii=False)))
