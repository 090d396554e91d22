"""``csms certificate ...``: a station's certificates (OCPP A02/A03, M03-M05) over the HTTP API.

- ``list ID``: the CA certificates installed on the station (GetInstalledCertificateIds)
- ``install ID TYPE FILE``: install a CA certificate (InstallCertificate)
- ``delete ID --serial ... --issuer-name-hash ... --issuer-key-hash ...``: DeleteCertificate
- ``renew ID``: TriggerMessage(SignChargingStationCertificate); the station sends a CSR, the
  CSMS signs it with its station CA and sends CertificateSigned; waits for the outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .commands import command_result_head
from .maintenance import long_operation
from .options import (
    JsonOpt,
    StationArg,
    TimeoutOpt,
    TokenOpt,
    UrlOpt,
    WaitOpt,
    WaitTimeoutOpt,
    choice,
    read_text,
    send_command,
)
from .render import command_result, out

certificate = typer.Typer(no_args_is_help=True, help="A station's certificates: list, install, delete, renew.")

INSTALL_TYPES = (
    "CSMSRootCertificate",
    "ManufacturerRootCertificate",
    "V2GRootCertificate",
    "MORootCertificate",
    "OEMRootCertificate",
)
LIST_TYPES = (*INSTALL_TYPES, "V2GCertificateChain")


def _ids_table(result: dict[str, Any]) -> None:
    command_result_head(result)
    response = result["response"]
    rows = response.get("certificateHashDataChain") or []
    if not rows:
        out.print(f"no certificates installed ({response.get('status')})")
        return
    table = Table("type", "serial", "issuer name hash", "issuer key hash", box=None, pad_edge=False)
    for r in rows:
        h = r["certificateHashData"]
        table.add_row(
            escape(r["certificateType"]),
            escape(h["serialNumber"]),
            escape(h["issuerNameHash"][:16]) + "…",
            escape(h["issuerKeyHash"][:16]) + "…",
        )
    out.print(table)
    out.print("[dim]delete one with: csms certificate delete ID --serial S --issuer-name-hash N --issuer-key-hash K[/]")


@certificate.command("list")
def list_(
    station_id: StationArg,
    type_: Annotated[list[str] | None, typer.Option("--type", help=f"only these: {', '.join(LIST_TYPES)}")] = None,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The CA certificates installed on the station (GetInstalledCertificateIds)."""
    types = [choice(t, LIST_TYPES, "a certificate type") for t in type_ or []]
    body = {"certificate_type": types or None}
    send_command(url, token, as_json, station_id, "GetInstalledCertificateIds", body, timeout, render=_ids_table)


@certificate.command("install")
def install(
    station_id: StationArg,
    type_: Annotated[str, typer.Argument(metavar="TYPE", help=", ".join(INSTALL_TYPES), show_default=False)],
    pem_file: Annotated[Path, typer.Argument(help="the CA certificate, PEM", show_default=False)],
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Install a CA certificate on the station (InstallCertificate)."""
    kind = choice(type_, INSTALL_TYPES, "a certificate type")
    pem = read_text(pem_file, "PEM_FILE")
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise typer.BadParameter(f"{pem_file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    body = {"certificate_type": kind, "certificate": pem}
    send_command(url, token, as_json, station_id, "InstallCertificate", body, timeout, render=command_result)


@certificate.command("delete")
def delete(
    station_id: StationArg,
    serial: Annotated[str, typer.Option(help="serial number, hex (from `csms certificate list`)")],
    issuer_name_hash: Annotated[str, typer.Option(help="hex")],
    issuer_key_hash: Annotated[str, typer.Option(help="hex")],
    hash_algorithm: Annotated[str, typer.Option(help="SHA256, SHA384 or SHA512")] = "SHA256",
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove an installed CA certificate (DeleteCertificate)."""
    body = {
        "certificate_hash_data": {
            "hash_algorithm": choice(hash_algorithm, ("SHA256", "SHA384", "SHA512"), "a hash algorithm"),
            "issuer_name_hash": issuer_name_hash,
            "issuer_key_hash": issuer_key_hash,
            "serial_number": serial,
        }
    }
    send_command(url, token, as_json, station_id, "DeleteCertificate", body, timeout, render=command_result)


@certificate.command("renew")
def renew(
    station_id: StationArg,
    wait: WaitOpt = True,
    wait_timeout: WaitTimeoutOpt = 60.0,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between polls")] = 1.0,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Have the station renew its certificate (SignCertificate -> CertificateSigned).

    The station sends a CSR, the CSMS signs it with its station CA (security.station_ca_cert_file
    and station_ca_key_file) and the station installs it for its next connection."""
    long_operation(
        url=url,
        token=token,
        as_json=as_json,
        station_id=station_id,
        action="TriggerMessage",
        body={"requested_message": "SignChargingStationCertificate"},
        kind="StationCertificate",
        done={"Accepted"},
        failed={"Rejected", "NotDelivered"},
        wait=wait,
        wait_timeout=wait_timeout,
        interval=interval,
        timeout=timeout,
    )
