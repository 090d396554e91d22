"""A - Security: SecurityEventNotification (A04) kept per station; SignCertificate (A02/A03):
the CSR is checked at once and answered Accepted / Rejected, then signed by the configured
station CA and sent back with CertificateSigned, outside the receive loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from csms.clock import parse_rfc3339
from csms.ocpp.errors import OcppError
from csms.security.certificates import STATION_CERTIFICATE, CertificateError, check_csr, describe

CERTIFICATE_EVENT = "StationCertificate"

if TYPE_CHECKING:
    from cryptography import x509

    from csms.central import CentralSystem
    from csms.server.session import StationSession


async def security_event_notification(s: StationSession, p: dict[str, Any]) -> dict[str, Any]:
    await s.central.store.add_security_event(s.station_id, p["type"], parse_rfc3339(p["timestamp"]), p.get("techInfo"))
    s.log.warning("security event", type=p["type"], tech_info=p.get("techInfo"))
    s.central.emit("security", s.station_id, {"type": p["type"]})
    return {}


async def sign_certificate(s: StationSession, p: dict[str, Any]) -> dict[str, Any]:
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


async def _issue(s: StationSession, csr: x509.CertificateSigningRequest, cert_type: str) -> None:
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


class CertificateRenewal:
    """A02: once a profile-3 station's boot is Accepted, if the certificate it presented expires
    within ``security.station_cert_renew_days``, ask it for a new one (TriggerMessage
    SignChargingStationCertificate); the SignCertificate flow above does the rest."""

    def __init__(self, central: CentralSystem) -> None:
        self.central = central
        central.subscribe(self._on_event)

    def _on_event(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        if kind != "boot" or data.get("status") != "Accepted":
            return
        days = self.central.settings.security.station_cert_renew_days
        cert = self.central.state(station_id).client_certificate
        if not days or cert is None or self.central.signing_ca is None:
            return
        left = cert["notAfter"] - datetime.now(UTC)  # wall clock, as TLS
        if left < timedelta(days=days):
            self.central.background(self._renew(station_id, left))

    async def _renew(self, station_id: str, left: timedelta) -> None:
        log = structlog.get_logger("csms.security").bind(station=station_id)
        log.info(
            "station certificate expires soon; asking for a new one", days_left=round(left.total_seconds() / 86400, 1)
        )
        try:
            reply = await self.central.call(
                station_id, "TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}
            )
        except OcppError as exc:
            log.warning("certificate renewal not started", error=str(exc))
            return
        if reply.get("status") != "Accepted":
            log.warning("station declined certificate renewal", status=reply.get("status"))


async def _record(s: StationSession, step: str, payload: dict[str, Any]) -> None:
    """One ``StationCertificate`` station event per outcome: SignCertificate Rejected by us, or
    CertificateSigned Accepted / Rejected by the station / NotDelivered."""
    await s.central.store.add_station_event(s.station_id, CERTIFICATE_EVENT, s.central.now(), {"step": step, **payload})


HANDLERS = {"SecurityEventNotification": security_event_notification, "SignCertificate": sign_certificate}
