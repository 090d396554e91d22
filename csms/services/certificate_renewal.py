"""A02: the CSMS asks a security-profile-3 station to renew a certificate that expires soon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from csms.blocks.context import Central
from csms.ocpp.errors import OcppError


class CertificateRenewal:
    """A02: once a profile-3 station's boot is Accepted, if the certificate it presented expires
    within ``security.station_cert_renew_days``, ask it for a new one (TriggerMessage
    SignChargingStationCertificate); the SignCertificate flow above does the rest."""

    def __init__(self, central: Central) -> None:
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
