"""ISO 15118 Plug & Charge (OCPP 2.0.1 and 2.1): Get15118EVCertificate (M02/M03) forwarded to the
contract-certificate provider, GetCertificateStatus (M06) answered from OCSP, and the contract
certificate check of Authorize (C07).

- Get15118EVCertificate: the station's ``exiRequest`` goes verbatim to the configured provider
  (``pnc.contract_provider_url``, :mod:`csms.pnc.provider`) and its ``exiResponse`` comes back
  verbatim; no provider, provider unreachable / timing out / answering garbage: ``Failed`` with
  the reason (NoProvider, ProviderUnreachable, ProviderTimeout, ProviderError, ProviderBadAnswer).
  On 2.1 the provider's ``remainingContracts`` is passed on.
- GetCertificateStatus: a real OCSP request (``cryptography.x509.ocsp``) to the ``responderURL``
  the station names; a successful answer about that certificate is returned as ``ocspResult``
  (DER, base64) with ``Accepted`` whatever the certificate's status (the station judges it), and
  kept until its ``nextUpdate``; unreachable or slow responder, bad hash data, an unsuccessful,
  foreign or stale answer: ``Failed`` with the reason (OCSPUnreachable, OCSPTimeout,
  InvalidHashData, OCSPNotSuccessful, OCSPMismatch, OCSPStale, OCSPBadResponse).
- Authorize with ``certificate`` (central validation) or ``iso15118CertificateHashData`` (the
  station validated the chain locally): ``certificateStatus`` from :func:`contract_status`; any
  status but Accepted makes ``idTokenInfo.status`` Invalid.

Each outcome is kept as a ``PlugAndCharge`` station event (message, status, reason).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from cryptography import x509

from csms.ocpp import schemas
from csms.pnc.ocsp import OcspClient
from csms.pnc.provider import ContractCertificateProvider, HttpContractProvider, ProviderError
from csms.security import pnc

if TYPE_CHECKING:
    from csms.blocks.context import Central, Session

log = structlog.get_logger("csms.pnc")

EXTENSION = "plug_and_charge"
EVENT = "PlugAndCharge"
NO_EXI = {"exiResponse": ""}  # required in Get15118EVCertificateResponse, even when Failed


class PlugAndCharge:
    def __init__(self, central: Central) -> None:
        self.central = central
        cfg = central.settings.pnc
        self.ocsp = OcspClient(timeout=cfg.ocsp_timeout, max_entries=cfg.ocsp_cache_entries)
        self.provider: ContractCertificateProvider | None = None
        if cfg.contract_provider_url:
            self.provider = HttpContractProvider(
                cfg.contract_provider_url, timeout=cfg.contract_provider_timeout, token=cfg.contract_provider_token
            )
        self.roots_file: Path | None = cfg.contract_roots_file
        self._roots: tuple[float, list[x509.Certificate]] | None = None

    @classmethod
    def of(cls, central: Central) -> PlugAndCharge:
        found = central.extensions.get(EXTENSION)
        if found is None:
            found = central.extensions[EXTENSION] = cls(central)
        return found  # type: ignore[no-any-return]

    def roots(self) -> list[x509.Certificate]:
        """The trusted contract roots (``pnc.contract_roots_file``, re-read when it changes)."""
        if self.roots_file is None:
            return []
        try:
            mtime = self.roots_file.stat().st_mtime
            if self._roots is None or self._roots[0] != mtime:
                certs = x509.load_pem_x509_certificates(self.roots_file.read_bytes())
                self._roots = (mtime, certs)
        except (OSError, ValueError) as exc:
            log.error("contract roots unreadable", file=str(self.roots_file), error=str(exc))
            return []
        return list(self._roots[1])

    async def record(self, station_id: str, facts: dict[str, Any]) -> None:
        assert self.central.store is not None
        await self.central.store.add_station_event(station_id, EVENT, self.central.now(), facts)
        self.central.emit("pnc", station_id, facts)

    # ------------------------------------------------------------------ Get15118EVCertificate
    async def ev_certificate(self, station_id: str, version: str, p: dict[str, Any]) -> dict[str, Any]:
        facts: dict[str, Any] = {"message": "Get15118EVCertificate", "action": p["action"],
                                 "iso15118SchemaVersion": p["iso15118SchemaVersion"]}  # fmt: skip
        response: dict[str, Any]
        if self.provider is None:
            response = {**NO_EXI, **_failed("NoProvider", "no contract provider (pnc.contract_provider_url)")}
        else:
            try:
                answer = await self.provider.get_ev_certificate(station_id, p)
            except ProviderError as exc:
                log.warning("contract provider failed", station=station_id, reason=exc.reason, error=exc.message)
                response = {**NO_EXI, **_failed(exc.reason, exc.message)}
            else:
                response = {"status": answer.status, "exiResponse": answer.exi_response}
                if answer.status == "Failed":
                    response["statusInfo"] = {"reasonCode": (answer.reason or "ProviderFailed")[:20]}
                    if answer.info:
                        response["statusInfo"]["additionalInfo"] = answer.info[:512]
                if version == "2.1" and answer.remaining_contracts is not None:
                    response["remainingContracts"] = answer.remaining_contracts
                try:
                    schemas.validate(version, "Get15118EVCertificate", "response", response)
                except schemas.SchemaViolation as exc:
                    response = {**NO_EXI, **_failed("ProviderBadAnswer", f"answer does not fit OCPP: {exc.message}")}
        facts["status"] = response["status"]
        if "statusInfo" in response:
            facts["reason"] = response["statusInfo"]["reasonCode"]
        await self.record(station_id, facts)
        return response

    # ------------------------------------------------------------------ GetCertificateStatus
    async def certificate_status(self, station_id: str, version: str, p: dict[str, Any]) -> dict[str, Any]:
        data = p["ocspRequestData"]
        facts: dict[str, Any] = {"message": "GetCertificateStatus", "serialNumber": data["serialNumber"],
                                 "responderURL": data["responderURL"]}  # fmt: skip
        response: dict[str, Any]
        try:
            result = await self.ocsp.check(data)
        except pnc.OcspError as exc:
            response = _failed(exc.reason, exc.message)
            facts["reason"] = exc.reason
        else:
            response = {"status": "Accepted", "ocspResult": result.ocsp_result}
            facts.update(result.answer.facts(), cached=result.cached)
            try:
                schemas.validate(version, "GetCertificateStatus", "response", response)
            except schemas.SchemaViolation:
                response = _failed("OCSPTooLarge", "the OCSP response is longer than ocspResult allows")
                facts["reason"] = "OCSPTooLarge"
        facts["status"] = response["status"]
        await self.record(station_id, facts)
        return response

    # ------------------------------------------------------------------ Authorize (C07)
    async def contract_status(self, p: dict[str, Any], now: datetime | None = None) -> tuple[str, list[str]]:
        """(certificateStatus, notes) for an Authorize carrying ``certificate`` or
        ``iso15118CertificateHashData``:

        - ``certificate``: the chain must lead to a trusted root with valid signatures and dates
          (CertChainError, SignatureError, CertificateExpired); then every certificate on it with
          an OCSP responder is checked;
        - ``iso15118CertificateHashData``: each entry is checked over OCSP.

        OCSP: revoked -> CertificateRevoked; unknown to the responder -> CertChainError; no usable
        answer (unreachable, unsigned by the issuer, stale) -> NoCertificateAvailable, since the
        status could not be established."""
        now = now or datetime.now(UTC)
        roots = self.roots()
        notes: list[str] = []
        checks: list[dict[str, Any]] = []
        known: list[x509.Certificate] = list(roots)
        if "certificate" in p:
            status, path = pnc.check_contract_chain(p["certificate"], roots, now)
            if status != "Accepted":
                notes.append(f"chain: {status}" + ("" if roots else " (no contract roots configured)"))
                return status, notes
            known += path
            for cert, issuer in itertools.pairwise(path):
                try:
                    checks.append(pnc.ocsp_request_data(cert, issuer))
                except pnc.OcspError:
                    notes.append(f"no OCSP responder for {cert.subject.rfc4514_string()}")
        else:
            checks = list(p.get("iso15118CertificateHashData", []))
        for data in checks:
            try:
                result = await self.ocsp.check(data)
                pnc.verify_ocsp_response(result.der, data, known, now)
            except pnc.OcspError as exc:
                notes.append(f"serial {data['serialNumber']}: {exc.message}")
                return ("CertChainError" if exc.reason == "InvalidHashData" else "NoCertificateAvailable"), notes
            if result.answer.status == "revoked":
                notes.append(f"serial {data['serialNumber']} revoked")
                return "CertificateRevoked", notes
            if result.answer.status == "unknown":
                notes.append(f"serial {data['serialNumber']} unknown to its OCSP responder")
                return "CertChainError", notes
        return "Accepted", notes

    async def authorize(self, s: Session, p: dict[str, Any]) -> str | None:
        """The ``certificateStatus`` of an Authorize, or None when it carries no certificate data;
        Accepted also needs the chain's eMAID to be the token's."""
        if "certificate" not in p and "iso15118CertificateHashData" not in p:
            return None
        status, notes = await self.contract_status(p)
        mode = "central" if "certificate" in p else "local"
        if status == "Accepted" and "certificate" in p:
            leaf = pnc.load_chain(p["certificate"])[0]
            emaid = pnc.emaid_of(leaf)
            if emaid is None or not pnc.same_emaid(emaid, p["idToken"]["idToken"]):
                status = "CertChainError"
                notes.append(f"the certificate is for eMAID {emaid}, not {p['idToken']['idToken']}")
        facts: dict[str, Any] = {"message": "Authorize", "validation": mode, "certificateStatus": status,
                                 "idToken": p["idToken"]["idToken"]}  # fmt: skip
        if notes:
            facts["notes"] = notes[:10]
        await self.record(s.station_id, facts)
        if status != "Accepted":
            s.log.warning("contract certificate refused", status=status, notes=notes)
        return status


def _failed(reason: str, message: str) -> dict[str, Any]:
    return {"status": "Failed", "statusInfo": {"reasonCode": reason[:20], "additionalInfo": message[:512]}}


async def get_15118_ev_certificate(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    return await PlugAndCharge.of(s.central).ev_certificate(s.station_id, s.version, p)


async def get_certificate_status(s: Session, p: dict[str, Any]) -> dict[str, Any]:
    return await PlugAndCharge.of(s.central).certificate_status(s.station_id, s.version, p)


HANDLERS = {"Get15118EVCertificate": get_15118_ev_certificate, "GetCertificateStatus": get_certificate_status}
