"""The simulated station's certificates, as firmware keeps them (OCPP A02/A03, M03-M05).

- Its own TLS client certificate and key (security profile 3), from the config files or the
  last CertificateSigned it accepted; renewed on TriggerMessage(SignChargingStationCertificate):
  a new EC P-256 key, a CSR with commonName = station id, SignCertificate to the CSMS.
- CertificateSigned is checked as A02.FR.06-10 ask: the chain parses, the leaf's key is the one
  the CSR was made with, the commonName is the station id; anything else is Rejected and
  reported with SecurityEventNotification(InvalidChargingStationCertificate).
- Installed CA certificates per type (InstallCertificate, GetInstalledCertificateIds,
  DeleteCertificate); the station's own certificate cannot be deleted (M04.FR.06).
"""

from __future__ import annotations

from typing import Any

from csms.clock import to_rfc3339

from .certificate_store import STATION_CERT, _info
from .model import Firmware


# ---------------------------------------------------------------------- handlers (CSMS -> station)
def request_signing(st: Firmware, certificate_type: str) -> None:
    """TriggerMessage(Sign...Certificate): send SignCertificate with a fresh CSR."""
    payload = {"csr": st.certificates.new_csr(certificate_type), "certificateType": certificate_type}

    def result(response: dict[str, Any]) -> None:
        st.sign_certificate_status = response.get("status")
        if response.get("status") != "Accepted":
            st.log.warning("SignCertificate rejected", status_info=response.get("statusInfo"))

    st._send_if_online("SignCertificate", payload, on_result=result)


async def certificate_signed(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    reason = st.certificates.accept_signed(p["certificateChain"], p.get("certificateType", STATION_CERT))
    if reason is not None:
        st.log.warning("CertificateSigned rejected", reason=reason)
        event = {"type": "InvalidChargingStationCertificate", "timestamp": to_rfc3339(st.clock.now())}
        st._send_if_online("SecurityEventNotification", {**event, "techInfo": reason[:255]})
        return {"status": "Rejected", "statusInfo": _info("InvalidCertificate", reason)}
    st.log.info("station certificate installed; used from the next connection")
    return {"status": "Accepted"}


async def install_certificate(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    reason = st.certificates.install(p["certificateType"], p["certificate"])
    if reason is not None:
        return {"status": "Rejected", "statusInfo": _info("InvalidCertificate", reason)}
    return {"status": "Accepted"}


async def get_installed_certificate_ids(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    chain = st.certificates.ids(p.get("certificateType"))
    if not chain:
        return {"status": "NotFound"}
    return {"status": "Accepted", "certificateHashDataChain": chain}


async def delete_certificate(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    status = st.certificates.delete(p["certificateHashData"])
    if status == "Failed":
        return {"status": "Failed", "statusInfo": _info("NotAllowed", "the station's own certificate (M04.FR.06)")}
    return {"status": status}


HANDLERS = {
    "CertificateSigned": certificate_signed,
    "InstallCertificate": install_certificate,
    "GetInstalledCertificateIds": get_installed_certificate_ids,
    "DeleteCertificate": delete_certificate,
}
