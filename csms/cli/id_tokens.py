"""``csms id-token``: the CSMS's id tokens (C: authorization)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .client import seg
from .options import JsonOpt, TokenOpt, UrlOpt, api, choice, iso, parse_when
from .render import out, print_json, styled, ts

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
    st = choice(status, STATUSES, "a status") if status else None
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
    body: dict[str, Any] = {"status": choice(status, STATUSES, "a status"), "group_id": group}
    if expires:
        body["expires_at"] = iso(parse_when(expires, "--expires"))
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
