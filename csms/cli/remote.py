"""The field technician's commands: they talk to a running CSMS over its HTTP API.

Every command takes ``--url`` / ``--token`` (or CSMS_API_URL / CSMS_API_TOKEN, or the CLI config
file, see :mod:`csms.cli.client`) and ``--json`` (print the API's JSON answer, nothing else).
Exit status: 0 when the station answered (whatever its OCPP status), 1 for an error (offline,
timeout, CALLERROR, unknown station, auth), 2 for bad arguments.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from csms.ocpp.schemas import enum_values

from .client import ApiClient, CliError, Target, resolve, save_config, seg
from .render import (
    ago,
    clock,
    command_result,
    compact,
    err,
    fail,
    kw,
    out,
    print_json,
    styled,
    ts,
)

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


def _send(
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


def _choice(value: str, choices: tuple[str, ...], what: str) -> str:
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


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
    from .certificates import certificate  # imports this module's shared options

    app.add_typer(certificate, name="certificate")
    from .operations import register as register_operations

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


# ============================================================================ reading
def _all_pages(client: ApiClient, path: str, params: dict[str, Any], cap: int = 100_000) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None and len(items) < cap:
        page = client.get(path, **params, limit=1000, offset=offset)
        items.extend(page["items"])
        offset = page.get("next_offset")
    return items


def stations(
    status: Annotated[str | None, typer.Option(help="boot status: accepted, pending, rejected")] = None,
    connected: Annotated[
        bool | None, typer.Option("--connected/--disconnected", help="only (dis)connected stations")
    ] = None,
    model: Annotated[str | None, typer.Option(help="only this model")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="rows per page")] = 100,
    offset: Annotated[int, typer.Option(min=0, help="skip this many")] = 0,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List stations: connection, boot, model, firmware, last seen."""
    boot = _choice(status, ("Accepted", "Pending", "Rejected"), "a boot status") if status else None
    with api(url, token, as_json) as client:
        page = client.get(
            "/api/v1/stations",
            status=boot,
            connected=None if connected is None else str(connected).lower(),
            model=model,
            limit=limit,
            offset=offset,
        )
    if as_json:
        print_json(page)
        return
    table = Table("station", "connection", "boot", "model", "firmware", "OCPP", "last seen", box=None, pad_edge=False)
    for s in page["items"]:
        conn = f"[green]● online[/] {ago(s['connected_since'])}" if s["connected"] else "[red]○ offline[/]"
        table.add_row(
            escape(s["id"]),
            conn,
            styled(s.get("boot_status")) if s.get("boot_status") else "[dim]never booted[/]",
            escape(" ".join(x for x in (s.get("vendor"), s.get("model")) if x) or "-"),
            escape(s.get("firmware_version") or "-"),
            s.get("ocpp_version") or "-",
            f"{ts(s.get('last_seen_at'))} {ago(s.get('last_seen_at'))}" if s.get("last_seen_at") else "-",
        )
    out.print(table)
    n = len(page["items"])
    more = f"; more with --offset {page['next_offset']}" if page.get("next_offset") is not None else ""
    out.print(f"[dim]{n} station{'s' if n != 1 else ''}{more}[/]")


def station(
    station_id: StationArg,
    what: Annotated[str | None, typer.Argument(help="'watch': live tail of the station's OCPP frames")] = None,
    interval: Annotated[float, typer.Option(min=0.1, help="watch: poll interval, seconds")] = 1.0,
    count: Annotated[int | None, typer.Option(min=1, help="watch: stop after this many frames")] = None,
    duration: Annotated[float | None, typer.Option(min=0.1, help="watch: stop after this many seconds")] = None,
    history: Annotated[int, typer.Option(min=0, max=1000, help="watch: frames of history shown first")] = 10,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One station on one screen (connection, EVSEs, transaction, profiles, errors); `watch` tails its frames."""
    if what is not None and what != "watch":
        raise typer.BadParameter(f"expected 'watch' or nothing after the station id (got {what!r})")
    with api(url, token, as_json) as client:
        if what == "watch":
            _watch(client, station_id, interval, count, duration, history, as_json)
            return
        summary = _summary(client, station_id)
    if as_json:
        print_json(summary)
    else:
        _print_summary(summary)


def _summary(client: ApiClient, sid: str) -> dict[str, Any]:
    base = f"/api/v1/stations/{seg(sid)}"
    detail = client.get(base)
    frames = client.get(f"{base}/frames", limit=100)["items"]
    return {
        "station": detail,
        "active_transactions": client.get(f"{base}/transactions", active="true", limit=10)["items"],
        "last_transaction": (client.get(f"{base}/transactions", limit=1)["items"] or [None])[0],
        "profiles": client.get(f"{base}/profiles"),
        "last_messages": [f for f in frames if f["message_type"] in ("CALL", "SEND")][-8:],
        "recent_errors": [f for f in frames if f["message_type"] in ("CALLERROR", "CALLRESULTERROR", "invalid")][-5:],
        "security_events": client.get(f"{base}/security-events", limit=5)["items"],
        "station_events": client.get(f"{base}/events", limit=5)["items"],
    }


def _print_summary(s: dict[str, Any]) -> None:
    st = s["station"]
    live = st["live"]
    if st["connected"]:
        conn = f"[bold green]● connected[/] since {ts(st['connected_since'])} ({ago(st['connected_since'])})"
    else:
        seen = st.get("last_seen_at")
        conn = "[bold red]○ offline[/] " + (f"last seen {ts(seen)} ({ago(seen)})" if seen else "never seen")
    out.print(f"[bold]{escape(st['id'])}[/]  {conn}")
    ident = " ".join(x for x in (st.get("vendor"), st.get("model")) if x) or "unknown model"
    out.print(
        f"  {escape(ident)}  serial {escape(st.get('serial_number') or '-')}  "
        f"firmware {escape(st.get('firmware_version') or '-')}  OCPP {st.get('ocpp_version') or '-'}"
    )
    boot = st.get("boot_status") or live.get("boot")
    out.print(
        f"  boot {styled(boot)} (policy {st.get('boot_policy') or '-'})  last boot {ts(st.get('last_boot_at'))}  "
        f"last seen {ts(st.get('last_seen_at'))}"
    )
    cert = live.get("client_certificate")
    if cert:
        days = cert["expires_in_days"]
        style = "red" if days < 0 else "yellow" if days < 30 else "green"
        when = f"expired {-days:.0f} days ago" if days < 0 else f"expires in {days:.0f} days"
        out.print(
            f"  client certificate serial {escape(cert['serial_number'])}  [{style}]{when}[/] ({ts(cert['not_after'])})"
        )
    out.print()
    evses = st.get("evses") or []
    if evses:
        table = Table(
            "EVSE",
            "connectors",
            "transaction",
            "state",
            "import",
            "export",
            "SoC",
            box=None,
            pad_edge=False,
            title=None,
        )
        for e in evses:
            conns = ", ".join(f"{c['connector_id']}: {styled(c.get('status'))}" for c in e["connectors"]) or "-"
            table.add_row(
                str(e["evse_id"]),
                conns,
                escape(e.get("transaction_id") or "-"),
                escape(e.get("charging_state") or "-"),
                kw(e.get("power_import_w")),
                kw(e.get("power_export_w")),
                f"{e['soc']:.0f} %" if e.get("soc") is not None else "-",
            )
        out.print(table)
    else:
        out.print("  [dim]no EVSE reported yet[/]")
    txs = s["active_transactions"]
    if txs:
        for tx in txs:
            energy = f"{(tx.get('energy_import_wh') or 0) / 1000:.2f} kWh in"
            if tx.get("energy_export_wh"):
                energy += f", {tx['energy_export_wh'] / 1000:.2f} kWh out"
            out.print(
                f"  active transaction [bold]{escape(tx['transaction_id'])}[/] on EVSE {tx.get('evse_id')} "
                f"since {ts(tx.get('started_at'))}, token {escape(tx.get('id_token') or '-')}, {energy}"
            )
    else:
        last = s.get("last_transaction")
        tail = f" (last: {escape(last['transaction_id'])}, ended {ts(last.get('ended_at'))})" if last else ""
        out.print(f"  no active transaction{tail}")
    profiles = s["profiles"]
    if profiles:
        parts = [f"#{p['profile_id']} {p['purpose']} L{p['stack_level']} EVSE {p['evse_id']}" for p in profiles]
        out.print(f"  profiles: {escape('; '.join(parts))}")
    else:
        out.print("  profiles: none")
    out.print()
    out.print("[bold]last messages[/]")
    for f in s["last_messages"] or []:
        arrow = "←" if f["direction"] == "in" else "→"
        out.print(f"  {clock(f['timestamp'])} {arrow} {escape(f.get('action') or '?')}")
    if not s["last_messages"]:
        out.print("  [dim]none logged[/]")
    errors = s["recent_errors"]
    if errors:
        out.print("[bold red]recent errors[/]")
        for f in errors:
            who = "station sent" if f["direction"] == "in" else "CSMS sent"
            desc = (f.get("payload") or {}).get("description", "") if isinstance(f.get("payload"), dict) else ""
            out.print(
                f"  {clock(f['timestamp'])} {who} {escape(f.get('error_code') or f['message_type'])}"
                f" to {escape(f.get('action') or '?')}: {escape(str(desc))}"
            )
    else:
        out.print("recent errors: none")
    sec = s["security_events"]
    if sec:
        out.print("[bold]security events[/]")
        for e in sec:
            out.print(f"  {ts(e['timestamp'])} {escape(e['type'])} {escape(e.get('tech_info') or '')}")
    else:
        out.print("security events: none")
    for e in s["station_events"]:
        p = e.get("payload") or {}
        out.print(f"  {ts(e['timestamp'])} {escape(e['kind'])} {escape(str(p.get('status', '')))}")


def _frame_line(f: dict[str, Any], full: bool = False) -> str:
    arrow = "[cyan]←[/]" if f["direction"] == "in" else "[magenta]→[/]"
    mtype = f["message_type"]
    action = f.get("action") or ""
    if mtype in ("CALL", "SEND"):
        label = f"[bold]{escape(action)}[/]"
    elif mtype == "CALLRESULT":
        label = f"{escape(action)} [green]result[/]" if action else "[green]result[/]"
    elif mtype in ("CALLERROR", "CALLRESULTERROR"):
        label = f"{escape(action)} [red]{mtype} {escape(f.get('error_code') or '')}[/]"
    else:
        label = "[red]invalid frame[/]"
    body = f["frame"] if full else compact(f.get("payload"), 140)
    return f"{clock(f['timestamp'])} {arrow} {label} [dim]{escape(body)}[/]"


def _watch(
    client: ApiClient,
    sid: str,
    interval: float,
    count: int | None,
    duration: float | None,
    history: int,
    as_json: bool,
) -> None:
    base = f"/api/v1/stations/{seg(sid)}"
    status = client.get(f"{base}/status")
    if not as_json:
        state = "[green]connected[/]" if status["connected"] else "[red]offline[/]"
        err.print(f"watching {escape(sid)} ({state}); Ctrl-C to stop")
    first = client.get(f"{base}/frames", limit=max(history, 1))
    shown = 0
    frames = first["items"][-history:] if history else []
    after = first.get("last_id")
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while True:
            for f in frames:
                if as_json:
                    sys.stdout.write(json.dumps(f, ensure_ascii=False) + "\n")
                    sys.stdout.flush()
                else:
                    out.print(_frame_line(f))
                shown += 1
                if count is not None and shown >= count:
                    return
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(interval)
            page = client.get(f"{base}/frames", after_id=after if after is not None else 0, limit=500)
            frames = page["items"]
            after = page.get("last_id") if page.get("last_id") is not None else after
    except KeyboardInterrupt:
        return


def transactions(
    station_id: Annotated[str | None, typer.Argument(help="station id (all stations when omitted)")] = None,
    active: Annotated[bool | None, typer.Option("--active/--ended", help="only ongoing / ended")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Transactions, newest first."""
    with api(url, token, as_json) as client:
        params = {"active": None if active is None else str(active).lower(), "limit": limit}
        if station_id:
            page = client.get(f"/api/v1/stations/{seg(station_id)}/transactions", **params)
        else:
            page = client.get("/api/v1/transactions", **params)
    if as_json:
        print_json(page)
        return
    table = Table(
        "station", "transaction", "EVSE", "state", "started", "ended", "import", "export", box=None, pad_edge=False
    )
    for t in page["items"]:
        table.add_row(
            escape(t["station_id"]),
            escape(t["transaction_id"]),
            str(t.get("evse_id") or "-"),
            styled(t.get("charging_state") or t["state"]),
            ts(t.get("started_at")),
            ts(t.get("ended_at")),
            f"{(t.get('energy_import_wh') or 0) / 1000:.2f} kWh",
            f"{(t.get('energy_export_wh') or 0) / 1000:.2f} kWh",
        )
    out.print(table)


def meter(
    station_id: StationArg,
    since: Annotated[str | None, typer.Option(help="start: RFC 3339 or back from now (30m, 2h, 1d)")] = "1h",
    until: Annotated[str | None, typer.Option(help="end (exclusive): RFC 3339 or back from now")] = None,
    measurand: Annotated[str | None, typer.Option(help="e.g. Power.Active.Import, SoC")] = None,
    evse: Annotated[int | None, typer.Option(min=0)] = None,
    transaction: Annotated[str | None, typer.Option(help="only this transaction")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Meter readings of a station in a time range."""
    start, end = parse_when(since, "--since"), parse_when(until, "--until")
    with api(url, token, as_json) as client:
        page = client.get(
            f"/api/v1/stations/{seg(station_id)}/meter-values",
            start=_iso(start),
            end=_iso(end),
            measurand=measurand,
            evse_id=evse,
            transaction_id=transaction,
            limit=limit,
        )
    if as_json:
        print_json(page)
        return
    table = Table("time", "EVSE", "transaction", "measurand", "phase", "value", "unit", box=None, pad_edge=False)
    for m in page["items"]:
        table.add_row(
            ts(m["timestamp"]),
            str(m["evse_id"]),
            escape(m.get("transaction_id") or "-"),
            escape(m["measurand"]),
            m.get("phase") or "",
            f"{m['value']:g}",
            escape(m.get("unit") or ""),
        )
    out.print(table)
    if page.get("next_offset") is not None:
        out.print(f"[dim]more samples: narrow the range or raise --limit (showing {len(page['items'])})[/]")


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
    body = {"type": _choice(type_, RESET_TYPES, "a reset type"), "evse_id": evse}
    _send(url, token, as_json, station_id, "Reset", body, timeout)


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
    _send(url, token, as_json, station_id, "UnlockConnector", {"evse_id": evse, "connector_id": connector}, timeout)


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
    op = _choice(status, ("Operative", "Inoperative"), "an operational status")
    if connector is not None and evse is None:
        raise typer.BadParameter("--connector needs --evse")
    body = {"operational_status": op, "evse_id": evse, "connector_id": connector}
    _send(url, token, as_json, station_id, "ChangeAvailability", body, timeout)


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
    msg = _choice(message, TRIGGERS, "a message")
    if connector is not None and evse is None:
        raise typer.BadParameter("--connector needs --evse")
    body = {"requested_message": msg, "evse_id": evse, "connector_id": connector}
    _send(url, token, as_json, station_id, "TriggerMessage", body, timeout)


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
    attr = _choice(attribute, ("Actual", "Target", "MinSet", "MaxSet"), "an attribute") if attribute else None
    refs = [{**parse_variable(v), "evse_id": evse, "attribute_type": attr} for v in variables]
    _send(
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
    attr = _choice(attribute, ("Actual", "Target", "MinSet", "MaxSet"), "an attribute") if attribute else None
    item = {**parse_variable(variable), "value": value, "evse_id": evse, "attribute_type": attr}
    _send(
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
    rb = _choice(base, ("FullInventory", "ConfigurationInventory", "SummaryInventory"), "a report base")
    _send(url, token, as_json, station_id, "GetBaseReport", {"report_base": rb}, timeout)


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
        body["charging_profile"] = _json_file(profile, "--profile")
    _send(url, token, as_json, station_id, "RequestStartTransaction", body, timeout)


def stop(
    station_id: StationArg,
    transaction_id: Annotated[str, typer.Argument(help="transaction id (see `csms station ID`)")],
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a transaction remotely (RequestStopTransaction)."""
    _send(url, token, as_json, station_id, "RequestStopTransaction", {"transaction_id": transaction_id}, timeout)


def _json_file(path: Path, name: str) -> Any:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as exc:
        raise typer.BadParameter(f"{name}: cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{name}: {path} is not JSON: {exc}") from None


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
    profile = _json_file(file, "FILE")
    if not isinstance(profile, dict):
        raise typer.BadParameter("FILE must hold one JSON object (a ChargingProfileType)")
    _send(
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
        "purpose": _choice(purpose, PURPOSES, "a purpose") if purpose else None,
        "stack_level": stack_level,
    }
    _send(
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
    u = _choice(unit, ("W", "A"), "W or A") if unit else None
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
    _send(url, token, as_json, station_id, "GetCompositeSchedule", body, timeout, render=_composite_render)


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


def _last_event_id(client: ApiClient, sid: str, kind: str) -> int:
    items = client.get(f"/api/v1/stations/{seg(sid)}/events", kind=kind, limit=1)["items"]
    return items[0]["id"] if items else 0


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
            page = client.get(f"/api/v1/stations/{seg(sid)}/events", kind=kind, after_id=after_id, limit=100)
            for e in sorted(page["items"], key=lambda x: x["id"]):
                after_id = max(after_id, e["id"])
                p = e.get("payload") or {}
                rid = p.get("requestId")
                if request_id is not None and rid is not None and rid != request_id:
                    continue
                status = str(p.get("status", "?"))
                seen.append(e)
                if not quiet:
                    out.print(f"  {ts(e['timestamp'])}  {styled(status)}")
                    if spinner is not None:
                        spinner.update(f"{sid}: {status}…")
                if status in done or status in failed:
                    return status, seen
            time.sleep(interval)
    return None, seen


def _long_operation(
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
        after = _last_event_id(client, station_id, kind) if wait else 0
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


WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="follow the station's status notifications")]
WaitTimeoutOpt = Annotated[float, typer.Option(min=1, help="give up waiting after this many seconds")]


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
        "retrieve_at": _iso(parse_when(retrieve_at, "--retrieve-at")) if retrieve_at else None,
        "install_at": _iso(parse_when(install_at, "--install-at")) if install_at else None,
        "retries": retries,
        "retry_interval": retry_interval,
        "signature": signature,
        "signing_certificate": _read_text(certificate, "--certificate") if certificate else None,
    }
    _long_operation(
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


def _read_text(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"{name}: cannot read {path}: {exc.strerror or exc}") from None


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
        "log_type": _choice(log_type, LOG_TYPES, "a log type"),
        "oldest": _iso(parse_when(since, "--since")),
        "latest": _iso(parse_when(until, "--until")),
        "retries": retries,
        "retry_interval": retry_interval,
    }
    _long_operation(
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


# ============================================================================ id tokens
id_tokens = typer.Typer(no_args_is_help=True, help="The CSMS's id tokens (RFID cards, apps ...).")

STATUSES = (
    "Accepted",
    "Blocked",
    "ConcurrentTx",
    "Expired",
    "Invalid",
    "NoCredit",
    "NotAllowedTypeEVSE",
    "NotAtThisLocation",
    "NotAtThisTime",
    "Unknown",
)


@id_tokens.command("list")
def id_token_list(
    status: Annotated[str | None, typer.Option()] = None,
    group: Annotated[str | None, typer.Option(help="group id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List id tokens."""
    st = _choice(status, STATUSES, "a status") if status else None
    with api(url, token, as_json) as client:
        page = client.get("/api/v1/id-tokens", status=st, group_id=group, limit=limit, offset=offset)
    if as_json:
        print_json(page)
        return
    table = Table("id token", "type", "status", "group", "expires", "energy transfer", box=None, pad_edge=False)
    for t in page["items"]:
        table.add_row(
            escape(t["id_token"]),
            escape(t["type"]),
            styled(t["status"]),
            escape(t.get("group_id") or "-"),
            ts(t.get("expires_at")),
            ", ".join(t.get("allowed_energy_transfer") or []) or "-",
        )
    out.print(table)


@id_tokens.command("add")
def id_token_add(
    id_token: Annotated[str, typer.Argument(help="the token value, e.g. the RFID UID")],
    type_: Annotated[str, typer.Option("--type", help="ISO14443, ISO15693, Central, eMAID, KeyCode, Local ...")] = (
        "ISO14443"
    ),
    status: Annotated[str, typer.Option()] = "Accepted",
    group: Annotated[str | None, typer.Option(help="group id")] = None,
    expires: Annotated[str | None, typer.Option(help="RFC 3339")] = None,
    energy_transfer: Annotated[
        list[str] | None, typer.Option("--energy-transfer", help="allowed mode, repeatable (e.g. DC_BPT)")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or replace an id token."""
    body: dict[str, Any] = {"status": _choice(status, STATUSES, "a status"), "group_id": group}
    if expires:
        body["expires_at"] = _iso(parse_when(expires, "--expires"))
    if energy_transfer:
        body["allowed_energy_transfer"] = energy_transfer
    with api(url, token, as_json) as client:
        row = client.put(f"/api/v1/id-tokens/{seg(type_)}/{seg(id_token)}", body)
    if as_json:
        print_json(row)
        return
    out.print(f"id token {escape(row['type'])}/{escape(row['id_token'])}: {styled(row['status'])}")


@id_tokens.command("remove")
def id_token_remove(
    id_token: Annotated[str, typer.Argument()],
    type_: Annotated[str, typer.Option("--type")] = "ISO14443",
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete an id token."""
    with api(url, token, as_json) as client:
        client.delete(f"/api/v1/id-tokens/{seg(type_)}/{seg(id_token)}")
    if as_json:
        print_json({"deleted": {"id_token": id_token, "type": type_}})
        return
    out.print(f"id token {escape(type_)}/{escape(id_token)} removed")


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
    return [s["id"] for s in _all_pages(client, "/api/v1/stations", params)]


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

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err.console(),
        disable=as_json,
    )
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
    body = {"type": _choice(type_, RESET_TYPES, "a reset type")}
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
    body = {"requested_message": _choice(message, TRIGGERS, "a message")}
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
        after = {sid: _last_event_id(client, sid, "FirmwareStatus") for sid in ids} if wait else {}
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
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err.console(),
        disable=as_json,
    )
    with progress:
        task = progress.add_task("firmware installed", total=len(pending))
        while pending and time.monotonic() < deadline:
            for sid, rid in list(pending.items()):
                page = client.get(
                    f"/api/v1/stations/{seg(sid)}/events", kind="FirmwareStatus", after_id=after[sid], limit=100
                )
                for e in sorted(page["items"], key=lambda x: x["id"]):
                    after[sid] = max(after[sid], e["id"])
                    p = e.get("payload") or {}
                    if p.get("requestId") not in (None, rid):
                        continue
                    status = str(p.get("status"))
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
