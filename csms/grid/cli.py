"""``csms event ...``: create, cancel, list and show grid events on a running CSMS (HTTP API).

Every command takes ``--url`` (env ``CSMS_API_URL``, default http://127.0.0.1:8080; include a
path prefix if the API is mounted under one), ``--token`` (env ``CSMS_API_TOKEN``, sent as a
Bearer token) and ``--json`` (print the API's JSON instead of tables).

Examples::

    csms event create --target-kw 400 --start 2026-07-14T16:00:00-07:00 --duration 5h --priority 1
    csms event create --file events.json        # canonical, Leap or OpenADR documents
    csms event list --status active
    csms event show dsgs-2026-07-14
    csms event cancel dsgs-2026-07-14 --reason "utility withdrew"
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table

from .intake import detect_format
from .model import EventRejected, parse_duration, parse_time

event_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Grid events on a running CSMS.")

DEFAULT_URL = "http://127.0.0.1:8080"

Url = Annotated[str, typer.Option("--url", envvar="CSMS_API_URL", help="CSMS HTTP API base URL")]
Token = Annotated[
    str | None, typer.Option("--token", envvar="CSMS_API_TOKEN", help="API token (Bearer)", show_default=False)
]
Json = Annotated[bool, typer.Option("--json", help="print the raw JSON answer")]

ClientFactory = Callable[[str, dict[str, str]], httpx.Client]


def _default_client(base_url: str, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=headers, timeout=15.0)


make_client: ClientFactory = _default_client
"""Replaceable for tests (e.g. with a Starlette ``TestClient``)."""


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(code)


def _out() -> Console:
    return Console(soft_wrap=False)


def _print_json(body: Any) -> None:
    typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


# ------------------------------------------------------------------------------------ HTTP
class Api:
    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.has_token = bool(token)
        self.client = make_client(self.url, headers)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            resp = self.client.request(
                method,
                path,
                content=None if json is None else orjson.dumps(json),
                headers={"Content-Type": "application/json"} if json is not None else None,
                params={k: v for k, v in (params or {}).items() if v is not None},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise CliError(
                f"cannot reach the CSMS at {self.url} ({exc}).\n"
                "Is the CSMS running there? Start it with `csms serve`, or point --url / CSMS_API_URL at it."
            ) from None
        except httpx.TimeoutException:
            raise CliError(f"the CSMS at {self.url} did not answer in time; try again or check its log") from None
        except httpx.HTTPError as exc:
            raise CliError(f"HTTP error talking to {self.url}: {exc}") from None
        return self._answer(resp, path)

    def _answer(self, resp: httpx.Response, path: str) -> Any:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code < 400:
            return body
        err = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
        message = err.get("message") or (body.get("detail") if isinstance(body, dict) else None) or resp.text[:200]
        status = resp.status_code
        if status == 401:
            hint = "check --token / CSMS_API_TOKEN" if self.has_token else "pass --token or set CSMS_API_TOKEN"
            raise CliError(f"the CSMS refused the request (401 unauthorized): {hint}.")
        if status == 403:
            raise CliError(f"the token is not allowed to do this (403): {message}. Use a token with operator scope.")
        if status == 404:
            if err.get("code") == "not_found":
                raise CliError(f"{message}. `csms event list` shows the known event ids.")
            raise CliError(
                f"{self.url}{path} does not exist (404): is --url the CSMS HTTP API (with its path prefix, if any)?"
            )
        if status == 422:
            lines = [f"the CSMS refused the event (422): {message}"]
            details = err.get("details") or {}
            for e in details.get("errors") or []:
                if f"{e.get('field')}: {e.get('reason')}" != message:
                    lines.append(f"  {e.get('field')}: {e.get('reason')}")
            for r in details.get("rejected") or []:
                lines.append(f"  {r.get('id') or '-'}: {r.get('message')}")
            if len(lines) == 1 and err.get("field"):
                lines.append(f"  field: {err.get('field')}")
            lines.append("Fix the field named above and run the command again.")
            raise CliError("\n".join(dict.fromkeys(lines)))
        if status == 503:
            raise CliError(f"the CSMS at {self.url} is up but grid-event intake is not running (503): {message}")
        raise CliError(f"the CSMS answered {status}: {message}")


def _run(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except CliError as exc:
        _fail(str(exc), exc.code)
    except EventRejected as exc:
        _fail(f"{exc.field}: {exc.reason}", 2)


# --------------------------------------------------------------------------------- helpers
def _time_arg(value: str, flag: str, now: datetime) -> datetime:
    text = value.strip()
    if text.lower() == "now":
        return now.replace(microsecond=0)
    if text.startswith("+"):
        try:
            return (now + parse_duration(text[1:])).replace(microsecond=0)
        except ValueError as exc:
            raise CliError(f"{flag} {value}: {exc}", 2) from None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise CliError(
            f"{flag} {value}: {exc}. Use RFC 3339 with an offset (2026-07-14T16:00:00-07:00), 'now' or '+15m'.", 2
        ) from None


def _fmt_time(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return parse_time(value).strftime("%Y-%m-%d %H:%M:%SZ")
    except ValueError:
        return value


def _kw(event: dict[str, Any]) -> str:
    kws = [iv.get("target_kw") for iv in event.get("intervals") or []]
    shown = [f"{k:g}" for k in kws[:4] if isinstance(k, int | float)]
    return " > ".join(shown) + (" ..." if len(kws) > 4 else "")


def _status_style(status: str) -> str:
    return {"active": "bold green", "pending": "cyan", "cancelled": "red", "completed": "dim"}.get(status, "")


def _events_table(events: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(events)} grid event(s)")
    for col in ("id", "rev", "status", "source", "program", "prio", "test", "direction", "start", "end", "kW"):
        table.add_column(col, justify="right" if col in ("rev", "prio", "kW") else "left")
    for e in events:
        ivs = e.get("intervals") or [{}]
        status = str(e.get("status"))
        table.add_row(
            str(e.get("id")),
            str(e.get("revision")),
            f"[{_status_style(status)}]{status}[/]" if _status_style(status) else status,
            str(e.get("source")),
            str(e.get("program")),
            str(e.get("priority")),
            "yes" if e.get("is_test") else "",
            str(e.get("direction")),
            _fmt_time(ivs[0].get("start")),
            _fmt_time(ivs[-1].get("end")),
            _kw(e),
        )
    return table


def _show_event(console: Console, e: dict[str, Any], title: str = "") -> None:
    info = Table(show_header=False, title=title or f"grid event {e.get('id')}")
    info.add_column("field", style="bold")
    info.add_column("value")
    targets = e.get("targets") or {}
    who = ", ".join(
        [f"site {targets['site_id']}"] * bool(targets.get("site_id"))
        + [f"group {g}" for g in targets.get("group_ids") or []]
        + [f"station {s}" for s in targets.get("station_ids") or []]
    )
    rows = [
        ("id", e.get("id")),
        ("revision", e.get("revision")),
        ("status", e.get("status")),
        ("source", e.get("source")),
        ("program", e.get("program")),
        ("priority", e.get("priority")),
        ("test", "yes (moves no power)" if e.get("is_test") else "no"),
        ("direction / basis", f"{e.get('direction')} / {e.get('basis')}"),
        ("targets", who or "whole site"),
        ("committed kW", e.get("committed_kw")),
        ("max effort", "yes" if e.get("max_effort") else None),
        ("received", _fmt_time(e.get("received_at"))),
        ("issued", _fmt_time(e.get("issued_at")) if e.get("issued_at") else None),
        ("cancel reason", e.get("cancel_reason")),
    ]
    for k, v in rows:
        if v is not None and v != "":
            info.add_row(k, str(v))
    for note in e.get("notes") or []:
        info.add_row("note", str(note))
    console.print(info)
    ivt = Table(title="intervals")
    for col in ("#", "start", "end", "target kW", "min kW", "max kW"):
        ivt.add_column(col)
    for i, iv in enumerate(e.get("intervals") or []):
        ivt.add_row(
            str(i),
            _fmt_time(iv.get("start")),
            _fmt_time(iv.get("end")),
            f"{iv.get('target_kw'):g}" if iv.get("target_kw") is not None else "-",
            "-" if iv.get("min_kw") is None else f"{iv['min_kw']:g}",
            "-" if iv.get("max_kw") is None else f"{iv['max_kw']:g}",
        )
    console.print(ivt)


def _route(doc: Any) -> tuple[str, str]:
    if not isinstance(doc, dict):
        raise CliError(f"each document in the file must be a JSON object, got {type(doc).__name__}", 2)
    fmt = detect_format(doc)
    if fmt == "cancel":
        return "DELETE", f"/grid/events/{doc['cancel']}"
    return "POST", {"leap": "/grid/leap", "openadr": "/grid/openadr/events"}.get(fmt, "/grid/events")


def _read_file(path: Path) -> list[Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", 2) from None
    except orjson.JSONDecodeError as exc:
        raise CliError(f"{path} is not valid JSON: {exc}", 2) from None
    return data if isinstance(data, list) else [data]


# -------------------------------------------------------------------------------- commands
@event_app.command()
def create(
    event_id: Annotated[str | None, typer.Option("--id", help="event id (default: generated)")] = None,
    target_kw: Annotated[float | None, typer.Option("--target-kw", help="target, kW (>= 0)")] = None,
    start: Annotated[str, typer.Option(help="RFC 3339 with offset, 'now' or '+15m'")] = "now",
    end: Annotated[str | None, typer.Option(help="RFC 3339 with offset or '+2h'")] = None,
    duration: Annotated[str | None, typer.Option(help="e.g. 2h, 90m, PT2H or seconds")] = None,
    priority: Annotated[int | None, typer.Option(help="0 is the highest")] = None,
    test: Annotated[bool, typer.Option("--test", help="test event: exercise the path, move no power")] = False,
    program: Annotated[str | None, typer.Option(help="program name")] = None,
    direction: Annotated[str, typer.Option(help="export, import_limit or load_reduction")] = "export",
    basis: Annotated[str, typer.Option(help="absolute or delta_from_baseline")] = "absolute",
    revision: Annotated[int, typer.Option(help="revision (higher replaces)")] = 0,
    committed_kw: Annotated[float | None, typer.Option("--committed-kw", help="committed (nominated) kW")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", help="target group id (repeatable)")] = None,
    station: Annotated[list[str] | None, typer.Option("--station", help="target station id (repeatable)")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="JSON file: one document or a list")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
) -> None:
    """Create (or revise) a grid event from flags, or submit the documents of --file."""

    def go() -> None:
        console = _out()
        with Api(url, token) as api:
            if file is not None:
                if target_kw is not None or end is not None or duration is not None:
                    raise CliError("--file cannot be combined with --target-kw/--end/--duration", 2)
                answers = []
                for doc in _read_file(file):
                    method, path = _route(doc)
                    body = api.call(method, path, json=doc if method == "POST" else None)
                    answers.append(body)
                    if not json_out:
                        _report(console, body)
                if json_out:
                    _print_json(answers if len(answers) != 1 else answers[0])
                return
            if target_kw is None:
                raise CliError("--target-kw is required (or use --file)", 2)
            if (end is None) == (duration is None):
                raise CliError("give exactly one of --end and --duration", 2)
            now = datetime.now(UTC)
            t0 = _time_arg(start, "--start", now)
            interval: dict[str, Any] = {"start": t0.isoformat(), "target_kw": target_kw}
            if end is not None:
                interval["end"] = _time_arg(end, "--end", now).isoformat()
            else:
                interval["duration"] = duration
            doc: dict[str, Any] = {
                "id": event_id or f"cli-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}",
                "revision": revision,
                "source": "cli",
                "is_test": test,
                "direction": direction,
                "basis": basis,
                "intervals": [interval],
            }
            if priority is not None:
                doc["priority"] = priority
            if program:
                doc["program"] = program
            if committed_kw is not None:
                doc["committed_kw"] = committed_kw
            if group or station:
                doc["targets"] = {"group_ids": list(group or []), "station_ids": list(station or [])}
            body = api.call("POST", "/grid/events", json=doc)
            if json_out:
                _print_json(body)
            else:
                _report(console, body)

    _run(go)


def _report(console: Console, body: Any) -> None:
    if not isinstance(body, dict):
        console.print(str(body))
        return
    if "accepted" in body and "rejected" in body:  # Leap: per-timeslot results
        for item in body["accepted"]:
            ev = item["event"]
            console.print(f"[green]{item['outcome']}[/] {ev['id']} (revision {ev['revision']}, {ev['status']})")
        for r in body["rejected"]:
            console.print(f"[red]rejected[/] {r.get('id') or '-'}: {r.get('message')}")
        for n in body.get("notes") or []:
            console.print(f"note: {n}")
        return
    ev = body.get("event")
    if ev is None:
        console.print(f"{body.get('outcome', 'done')}: " + "; ".join(body.get("notes") or []))
        return
    console.print(f"[green]{body.get('outcome')}[/] {ev['id']} (revision {ev['revision']}, status {ev['status']})")
    _show_event(console, ev, title=" ")


@event_app.command()
def cancel(
    event_id: Annotated[str, typer.Argument(help="event id")],
    reason: Annotated[str | None, typer.Option(help="why (kept with the event)")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
) -> None:
    """Cancel a grid event (dispatch stops within one control interval)."""

    def go() -> None:
        with Api(url, token) as api:
            body = api.call("DELETE", f"/grid/events/{event_id}", params={"reason": reason})
        if json_out:
            _print_json(body)
        else:
            ev = body["event"]
            _out().print(f"[red]cancelled[/] {ev['id']} (revision {ev['revision']}, status {ev['status']})")

    _run(go)


@event_app.command("list")
def list_events(
    status: Annotated[str | None, typer.Option(help="pending, active, completed, cancelled or superseded")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
) -> None:
    """List grid events."""

    def go() -> None:
        with Api(url, token) as api:
            body = api.call("GET", "/grid/events", params={"status": status})
        if json_out:
            _print_json(body)
        else:
            _out().print(_events_table(body.get("events") or []))

    _run(go)


@event_app.command()
def show(
    event_id: Annotated[str, typer.Argument(help="event id")],
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
) -> None:
    """Show one grid event, its intervals and its superseded revisions."""

    def go() -> None:
        with Api(url, token) as api:
            body = api.call("GET", f"/grid/events/{event_id}")
        if json_out:
            _print_json(body)
            return
        console = _out()
        _show_event(console, body)
        history = body.get("history") or []
        if history:
            t = Table(title="superseded revisions")
            for col in ("rev", "received", "start", "end", "kW"):
                t.add_column(col)
            for h in reversed(history):
                ivs = h.get("intervals") or [{}]
                t.add_row(
                    str(h.get("revision")),
                    _fmt_time(h.get("received_at")),
                    _fmt_time(ivs[0].get("start")),
                    _fmt_time(ivs[-1].get("end")),
                    _kw(h),
                )
            console.print(t)

    _run(go)
