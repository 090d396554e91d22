"""``csms pnc``: ISO 15118 Plug & Charge over the HTTP API.

- ``pnc status``: the contract-certificate provider, the trusted contract roots, the OCSP cache;
- ``pnc check-contract FILE [--emaid]``: the certificateStatus an Authorize with this contract
  chain (PEM) would get;
- ``pnc check-ocsp --issuer-name-hash .. --issuer-key-hash .. --serial .. --responder URL``: an
  OCSP look-up as GetCertificateStatus does;
- ``pnc events ID``: the station's Get15118EVCertificate, GetCertificateStatus and Authorize
  outcomes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from .client import seg
from .options import JsonOpt, StationArg, TokenOpt, UrlOpt, api, read_text
from .render import event_rows, out, print_json, styled, ts

pnc = typer.Typer(no_args_is_help=True, help="ISO 15118 Plug & Charge: set-up, contract and OCSP checks, events.")


@pnc.command("status")
def pnc_status(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """The provider, the trusted contract roots and the cached OCSP answers."""
    with api(url, token, as_json) as client:
        data = client.get("/api/v1/pnc")
    if as_json:
        print_json(data)
        return
    out.print(f"contract provider: {escape(data['contract_provider_url'] or 'none (Get15118EVCertificate: Failed)')}")
    if data["contract_roots"]:
        for r in data["contract_roots"]:
            out.print(f"contract root: {escape(r['subject'])} (until {ts(r['notAfter'])})")
    else:
        out.print("contract roots: none (central contract validation answers CertChainError)")
    out.print(f"OCSP: {len(data['ocsp_cache'])} answers cached, {data['ocsp_fetches']} requests sent")


@pnc.command("check-contract")
def pnc_check_contract(
    file: Annotated[Path, typer.Argument(help="contract certificate chain, PEM, leaf first")],
    emaid: Annotated[str | None, typer.Option(help="also check the chain is this eMAID's")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check an EV contract certificate chain as Authorize does (central validation + OCSP)."""
    body = {"certificate": read_text(file, "certificate"), "emaid": emaid}
    with api(url, token, as_json) as client:
        data = client.post("/api/v1/pnc/contract-check", body)
    if as_json:
        print_json(data)
        return
    out.print(f"{styled(data['certificate_status'])} eMAID {escape(str(data['emaid']))}")
    for note in data["notes"]:
        out.print(f"  {escape(note)}")


@pnc.command("check-ocsp")
def pnc_check_ocsp(
    issuer_name_hash: Annotated[str, typer.Option(help="hex")],
    issuer_key_hash: Annotated[str, typer.Option(help="hex")],
    serial: Annotated[str, typer.Option(help="serial number, hex")],
    responder: Annotated[str, typer.Option(help="OCSP responder URL")],
    hash_algorithm: Annotated[str, typer.Option(help="SHA256, SHA384, SHA512")] = "SHA256",
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask an OCSP responder about one certificate (as GetCertificateStatus does)."""
    body = {
        "hash_algorithm": hash_algorithm,
        "issuer_name_hash": issuer_name_hash,
        "issuer_key_hash": issuer_key_hash,
        "serial_number": serial,
        "responder_url": responder,
    }
    with api(url, token, as_json) as client:
        data = client.post("/api/v1/pnc/ocsp-check", body)
    if as_json:
        print_json(data)
        return
    if data["status"] != "Accepted":
        out.print(f"{styled('Failed')} {escape(str(data['reason']))}: {escape(str(data['message']))}")
        raise typer.Exit(1)
    cached = " (cached)" if data["cached"] else ""
    out.print(f"{escape(data['cert_status'])}{cached}, next update {ts(data['next_update'])}")


@pnc.command("events")
def pnc_events(
    station_id: StationArg,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The station's Plug & Charge outcomes, newest first."""
    with api(url, token, as_json) as client:
        rows = client.get(f"/api/v1/stations/{seg(station_id)}/pnc/events", limit=limit)
    event_rows(
        rows, as_json, f"{escape(station_id)}: no Plug & Charge messages", ("message", "outcome", "detail"), _outcome
    )


def _outcome(r: dict[str, Any]) -> list[str]:
    p = r["payload"]
    outcome = p.get("certificateStatus") or p.get("status") or "-"
    detail = p.get("reason") or p.get("certStatus") or p.get("action") or p.get("validation") or ""
    return [p["message"], styled(outcome), escape(str(detail))]


def register(app: typer.Typer) -> None:
    app.add_typer(pnc, name="pnc")
