"""C - Authorization (C01/C03/C05): id tokens checked against the operator's list.

Statuses: Accepted, Blocked, Expired (``expires_at`` in the past), Unknown (not listed,
unless ``v2x.allow_unknown_tokens``). On OCPP 2.1 an Accepted token also carries the V2X
permission ``allowedEnergyTransfer``, chosen by operator policy: the token's own list (an
empty list forbids V2X), else the station's (``allowed_energy_transfer`` in its settings),
else ``v2x.allowed_energy_transfer``. A station with a tariff (see :mod:`csms.blocks.tariff`) also
gets it as the driver's ``tariff`` on OCPP 2.1. An Authorize with an ISO 15118 contract
certificate (``certificate`` or ``iso15118CertificateHashData``) gets ``certificateStatus`` from
:mod:`csms.blocks.pnc`, and Invalid unless that is Accepted.
"""

from __future__ import annotations

from typing import Any

from csms.blocks.context import Session
from csms.blocks.pnc import PlugAndCharge
from csms.blocks.tariff import Tariffs


def v2x_modes(s: Session, token_modes: list[str] | None) -> list[str] | None:
    if token_modes is not None:
        return list(token_modes) or None
    station_modes = (s.central.station_meta(s.station_id) or {}).get("allowed_energy_transfer")
    if station_modes is not None:
        return list(station_modes) or None
    return list(s.central.settings.v2x.allowed_energy_transfer) or None


async def token_info(s: Session, id_token: dict[str, Any]) -> tuple[dict[str, Any], list[str] | None]:
    """Return (IdTokenInfoType, allowed energy transfer modes or None)."""
    central = s.central
    if id_token.get("type") == "NoAuthorization":
        return {"status": "Accepted"}, v2x_modes(s, None)
    row = await central.store.get_id_token(id_token["idToken"], id_token["type"])
    if row is None:
        if central.settings.v2x.allow_unknown_tokens:
            return {"status": "Accepted"}, v2x_modes(s, None)
        return {"status": "Unknown"}, None
    status = row.status
    if status == "Accepted" and row.expires_at is not None and row.expires_at <= central.now():
        status = "Expired"
    info: dict[str, Any] = {"status": status}
    if row.group_id:
        info["groupIdToken"] = {"idToken": row.group_id, "type": "Central"}
    allowed = v2x_modes(s, row.allowed_energy_transfer) if status == "Accepted" else None
    return info, allowed


async def authorize(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    info, allowed = await token_info(s, p["idToken"])
    certificate_status = await PlugAndCharge.of(s.central).authorize(s, p)  # ISO 15118 contract (C07)
    if certificate_status not in (None, "Accepted"):
        info, allowed = {"status": "Invalid"}, None
    response: dict[str, Any] = {"idTokenInfo": info}
    if certificate_status is not None:
        response["certificateStatus"] = certificate_status
    if s.version == "2.1" and allowed:
        response["allowedEnergyTransfer"] = allowed
    if s.version == "2.1" and info["status"] == "Accepted":
        driver_tariff = Tariffs.of(s.central).driver_tariff(s.station_id)
        if driver_tariff is not None:
            response["tariff"] = driver_tariff
    s.log.info("authorize", id_token=p["idToken"]["idToken"], status=info["status"])
    return response


HANDLERS = {"Authorize": authorize}
