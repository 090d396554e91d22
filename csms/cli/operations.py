"""``csms local-list``, ``clear-cache``, ``reservation``, ``display-message``, ``monitor``, ``alerts``.

- ``local-list show | add TOKEN | remove TOKEN``: the CSMS's Local Authorization List (D01); every
  change gets the next version and goes to the connected stations (``--no-push`` to hold it);
- ``local-list station ID | sync ID [--full] | version ID``: a station's list version, bring it
  up to date, or ask it (GetLocalListVersion);
- ``clear-cache ID``: ClearCache (C11);
- ``display-message set ID TEXT | list ID | clear ID MID``: SetDisplayMessage, GetDisplayMessages
  (with the NotifyDisplayMessages they cause), ClearDisplayMessage (O01-O05);
- ``monitor set | list | clear | base | level``, ``alerts``: variable monitoring (N02-N06) and
  the alerts raised from NotifyEvent (N07);
- ``tariff set | show | cost | default | list | clear | change``: central cost calculation,
  CostUpdated, and OCPP 2.1's SetDefaultTariff / GetTariffs / ClearTariffs / ChangeTransactionTariff;
- ``reservation reserve ID TOKEN [--evse N] | list | show RID | cancel RID``: ReserveNow for one
  EVSE or any EVSE (H01), the reservations and their state, CancelReservation (H02).

The display-message, monitor/alerts and tariff commands live in display.py, monitoring.py and
tariffs.py; register() adds them all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .client import seg
from .display import display
from .id_tokens import STATUSES
from .monitoring import alerts, monitor
from .options import JsonOpt, StationArg, TimeoutOpt, TokenOpt, UrlOpt, api, choice, send_command
from .render import command_result, out, print_json, styled, ts
from .tariffs import tariff

local_list = typer.Typer(no_args_is_help=True, help="The Local Authorization List: edit, push, check versions.")
reservation = typer.Typer(no_args_is_help=True, help="Reservations: reserve an EVSE, list, cancel.")

TypeOpt = Annotated[str, typer.Option("--type", help="ISO14443, ISO15693, Central, eMAID, KeyCode, Local ...")]


# ============================================================================ local list
@local_list.command("show")
def ll_show(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """The list and its version."""
    with api(url, token, as_json) as client:
        data = client.get("/api/v1/local-list")
    if as_json:
        print_json(data)
        return
    out.print(f"local list version {data['version']}, {len(data['entries'])} entries")
    table = Table("id token", "type", "status", "group", "expires", "changed in", box=None, pad_edge=False)
    for e in data["entries"]:
        info = e.get("id_token_info") or {}
        table.add_row(
            escape(e["id_token"]),
            escape(e["type"]),
            styled(info.get("status")),
            escape((info.get("groupIdToken") or {}).get("idToken") or "-"),
            ts(info.get("cacheExpiryDateTime")),
            str(e["version"]),
        )
    out.print(table)


def _change(data: dict[str, Any], what: str) -> None:
    pushed = ", ".join(data["pushed_to"]) or "no station (none connected, or --no-push)"
    out.print(f"{what}: local list now version {data['version']}; sending to {pushed}")


@local_list.command("add")
def ll_add(
    id_token: Annotated[str, typer.Argument(help="the token value, e.g. the RFID UID")],
    type_: TypeOpt = "ISO14443",
    status: Annotated[str | None, typer.Option(help="default: the CSMS id token's status, else Accepted")] = None,
    group: Annotated[str | None, typer.Option(help="group id token")] = None,
    push: Annotated[bool, typer.Option("--push/--no-push", help="send to the connected stations now")] = True,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or replace an entry."""
    entry: dict[str, Any] = {"id_token": id_token, "type": type_}
    if status:
        entry["status"] = choice(status, STATUSES, "a status")
    if group:
        entry["group_id"] = group
    with api(url, token, as_json) as client:
        data = client.put(f"/api/v1/local-list/entries?push={str(push).lower()}", {"entries": [entry]})
    if as_json:
        print_json(data)
        return
    _change(data, f"{type_}/{id_token} added")


@local_list.command("remove")
def ll_remove(
    id_token: Annotated[str, typer.Argument()],
    type_: TypeOpt = "ISO14443",
    push: Annotated[bool, typer.Option("--push/--no-push")] = True,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove an entry."""
    with api(url, token, as_json) as client:
        data = client.request(
            "DELETE", f"/api/v1/local-list/entries/{seg(type_)}/{seg(id_token)}", params={"push": str(push).lower()}
        )
    if as_json:
        print_json(data)
        return
    _change(data, f"{type_}/{id_token} removed")


@local_list.command("station")
def ll_station(station_id: StationArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """The list version a station last confirmed."""
    with api(url, token, as_json) as client:
        data = client.get(f"/api/v1/stations/{seg(station_id)}/local-list")
    if as_json:
        print_json(data)
        return
    theirs = data["station_version"]
    state = "never synchronised" if theirs is None else f"version {theirs} ({data['status']})"
    same = "up to date" if theirs == data["csms_version"] else f"CSMS is at version {data['csms_version']}"
    out.print(f"{escape(station_id)}: {state}; {same}")


@local_list.command("sync")
def ll_sync(
    station_id: StationArg,
    full: Annotated[bool, typer.Option("--full", help="send the whole list even if a differential would do")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Bring a station's list up to date (GetLocalListVersion, then SendLocalList)."""
    with api(url, token, as_json) as client:
        data = client.post(f"/api/v1/stations/{seg(station_id)}/local-list/sync", None, full=str(full).lower())
    if as_json:
        print_json(data)
        return
    for s in data.get("sent", []):
        out.print(f"SendLocalList {s['updateType']} version {s['versionNumber']}: {styled(s.get('status'))}")
    out.print(f"{escape(station_id)}: {styled(data['result'])} (station at version {data.get('station_version')})")


@local_list.command("version")
def ll_version(
    station_id: StationArg,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the station for its list version (GetLocalListVersion; 0 = no list)."""
    send_command(url, token, as_json, station_id, "GetLocalListVersion", {}, timeout)


def clear_cache(
    station_id: StationArg,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Empty the station's authorization cache (ClearCache)."""
    send_command(url, token, as_json, station_id, "ClearCache", {}, timeout)


# ============================================================================ reservations
def _res_table(rows: list[dict[str, Any]]) -> None:
    table = Table("id", "station", "evse", "id token", "group", "expires", "status", box=None, pad_edge=False)
    for r in rows:
        table.add_row(
            str(r["id"]),
            escape(r["station_id"]),
            "any" if r.get("evse_id") is None else str(r["evse_id"]),
            escape(f"{r['id_token_type']}/{r['id_token']}"),
            escape(r.get("group_id_token") or "-"),
            ts(r["expiry_at"]),
            styled(r["status"]),
        )
    out.print(table)


@reservation.command("reserve")
def res_reserve(
    station_id: StationArg,
    id_token: Annotated[str, typer.Argument(help="the driver's token")],
    type_: TypeOpt = "ISO14443",
    evse: Annotated[int | None, typer.Option(min=1, help="EVSE id (default: any EVSE)")] = None,
    connector_type: Annotated[str | None, typer.Option(help="e.g. cCCS2, cType2")] = None,
    group: Annotated[str | None, typer.Option(help="group id token: any member may use it")] = None,
    minutes: Annotated[float, typer.Option(min=0.1, max=7 * 1440, help="how long to hold it")] = 30.0,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reserve an EVSE (or any EVSE) for a token (ReserveNow)."""
    expires = (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    body = {
        "id_token": id_token,
        "id_token_type": type_,
        "evse_id": evse,
        "connector_type": connector_type,
        "group_id": group,
        "expires_at": expires,
    }
    with api(url, token, as_json) as client:
        params = {"timeout": timeout} if timeout else {}
        data = client.post(f"/api/v1/stations/{seg(station_id)}/reservations", body, **params)
    if as_json:
        print_json(data)
        return
    command_result(data["command"])
    r = data["reservation"]
    out.print(f"reservation {r['id']}: {styled(r['status'])}, until {ts(r['expiry_at'])}")


@reservation.command("list")
def res_list(
    station: Annotated[str | None, typer.Option(help="only this station")] = None,
    status: Annotated[str | None, typer.Option(help="Accepted, Cancelled, Expired, Used ...")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The reservations, newest first."""
    with api(url, token, as_json) as client:
        rows = client.get("/api/v1/reservations", station_id=station, status=status)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no reservations")
        return
    _res_table(rows)


@reservation.command("show")
def res_show(
    reservation_id: Annotated[int, typer.Argument(min=0)],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One reservation."""
    with api(url, token, as_json) as client:
        row = client.get(f"/api/v1/reservations/{reservation_id}")
    if as_json:
        print_json(row)
        return
    _res_table([row])


@reservation.command("cancel")
def res_cancel(
    reservation_id: Annotated[int, typer.Argument(min=0)],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a reservation (CancelReservation)."""
    with api(url, token, as_json) as client:
        data = client.request("DELETE", f"/api/v1/reservations/{reservation_id}")
    if as_json:
        print_json(data)
        return
    command_result(data)


def register(app: typer.Typer) -> None:
    app.command("clear-cache")(clear_cache)
    app.command("alerts")(alerts)
    app.add_typer(monitor, name="monitor")
    app.add_typer(tariff, name="tariff")
    app.add_typer(local_list, name="local-list")
    app.add_typer(reservation, name="reservation")
    app.add_typer(display, name="display-message")
