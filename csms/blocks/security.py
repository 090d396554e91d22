"""A - Security: SecurityEventNotification (A04) kept per station; SignCertificate (A02/A03):
the CSR is checked at once and answered Accepted / Rejected, then signed by the configured
station CA and sent back with CertificateSigned, outside the receive loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from csms.blocks.context import Session
from csms.clock import parse_rfc3339
from csms.ocpp.errors import OcppError
from csms.security.certificates import STATION_CERTIFICATE, CertificateError, check_csr, describe

CERTIFICATE_EVENT = "StationCertificate"

if TYPE_CHECKING:
    from cryptography import x509


async def security_event_notification(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    await s.central.store.add_security_event(s.station_id, p["type"], parse_rfc3339(p["timestamp"]), p.get("techInfo"))
    s.log.warning("security event", type=p["type"], tech_info=p.get("techInfo"))
    s.central.emit("security", s.station_id, {"type": p["type"]})
    return {}


async def sign_certificate(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    ca = s.central.signing_ca
    cert_type = p.get("certificateType", STATION_CERTIFICATE)
    try:
        if ca is None:
            raise CertificateError(
                "NoSigningCA",
                "this CSMS has no station CA configured (security.station_ca_cert_file / station_ca_key_file)",
            )
        csr = await asyncio.to_thread(check_csr, p["csr"], s.station_id, cert_type)  # signature check: CPU
    except CertificateError as exc:
        s.log.warning("SignCertificate rejected", reason=exc.message)
        await _record(s, "SignCertificate", {"status": "Rejected", "certificateType": cert_type, "error": exc.message})
        return {"status": "Rejected", "statusInfo": exc.status_info()}
    s.central.background(_issue(s, csr, cert_type))
    return {"status": "Accepted"}


async def _issue(s: Session, csr: x509.CertificateSigningRequest, cert_type: str) -> None:
    """Sign and send CertificateSigned once the SignCertificate answer is on its way."""
    await asyncio.sleep(0)  # let the endpoint transmit the CALLRESULT first
    ca = s.central.signing_ca
    assert ca is not None
    # certificates live on the wall clock (TLS checks them against it), not on the CSMS's
    # possibly accelerated simulation clock
    leaf = await asyncio.to_thread(ca.sign, csr, datetime.now(UTC), s.central.settings.security.station_cert_days)
    facts: dict[str, Any] = {"certificateType": cert_type, **describe(leaf)}
    try:
        reply = await s.central.call(
            s.station_id, "CertificateSigned", {"certificateChain": ca.chain_pem(leaf), "certificateType": cert_type}
        )
    except OcppError as exc:
        s.log.warning("CertificateSigned not delivered", error=str(exc), serial=facts["serialNumber"])
        await _record(s, "CertificateSigned", {**facts, "status": "NotDelivered", "error": str(exc)})
        return
    facts["status"] = reply.get("status")
    if reply.get("statusInfo"):
        facts["statusInfo"] = reply["statusInfo"]
    s.log.info("station certificate issued", status=facts["status"], serial=facts["serialNumber"])
    await _record(s, "CertificateSigned", facts)
    s.central.emit("certificate", s.station_id, facts)


async def _record(s: Session, step: str, payload: dict[str, Any]) -> None:
    """One ``StationCertificate`` station event per outcome: SignCertificate Rejected by us, or
    CertificateSigned Accepted / Rejected by the station / NotDelivered."""
    await s.central.store.add_station_event(s.station_id, CERTIFICATE_EVENT, s.central.now(), {"step": step, **payload})


HANDLERS = {"SecurityEventNotification": security_event_notification, "SignCertificate": sign_certificate}
