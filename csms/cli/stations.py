"""Reading: the station list, one station's summary and live watch, its transactions and meter values."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .client import ApiClient, seg
from .options import JsonOpt, StationArg, TokenOpt, UrlOpt, api, choice, iso, parse_when
from .render import ago, clock, compact, err, kw, out, print_json, styled, ts


# ============================================================================ reading
def all_pages(client: ApiClient, path: str, params: dict[str, Any], cap: int = 100_000) -> list[dict[str, Any]]:
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
    boot = choice(status, ("Accepted", "Pending", "Rejected"), "a boot status") if status else None
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
            start=iso(start),
            end=iso(end),
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
