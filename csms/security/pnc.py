"""ISO 15118 Plug & Charge, pure: OCSP request data of a certificate (OCPP ``OCSPRequestDataType``),
the DER OCSP request for it, reading and checking an OCSP response against it, and validating an
EV contract certificate chain against trusted contract roots.

No sockets and no clock of its own: every function takes ``now`` (certificates and OCSP answers
live on the wall clock). Used by :mod:`csms.blocks.pnc`, the HTTP API and the simulators.

Contract certificate statuses (OCPP ``AuthorizeCertificateStatusEnumType``) this module decides:
``CertChainError`` (not PEM, or no path to a trusted root), ``SignatureError`` (a signature on the
path does not verify), ``CertificateExpired`` (a certificate on the path is outside its validity),
else ``Accepted``; revocation (``CertificateRevoked``) comes from OCSP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from .certificates import _public_key_bits

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
MAX_PATH = 6
CLOCK_SKEW = timedelta(minutes=5)

CertStatus = Literal["good", "revoked", "unknown"]


class OcspError(ValueError):
    """An OCSP request or response that cannot be used; ``reason`` is an OCPP reasonCode (<= 20)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason[:20]
        self.message = message


# ---------------------------------------------------------------------------- request data
def ocsp_url(cert: x509.Certificate) -> str | None:
    """The OCSP responder URL of the certificate's Authority Information Access extension."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for desc in aia:
        if desc.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
            desc.access_location, x509.UniformResourceIdentifier
        ):
            return str(desc.access_location.value)
    return None


def key_hash(cert: x509.Certificate, algorithm: str = "SHA256") -> str:
    return hashlib.new(algorithm.lower(), _public_key_bits(cert)).hexdigest()


def ocsp_request_data(
    cert: x509.Certificate, issuer: x509.Certificate, responder_url: str | None = None, algorithm: str = "SHA256"
) -> dict[str, str]:
    """OCPP ``OCSPRequestDataType`` of ``cert`` issued by ``issuer`` (the responder from the AIA
    extension unless given); OcspError when there is no responder."""
    url = responder_url or ocsp_url(cert)
    if not url:
        raise OcspError("NoOCSPResponder", f"certificate {cert.subject.rfc4514_string()} names no OCSP responder")
    return {
        "hashAlgorithm": algorithm,
        "issuerNameHash": hashlib.new(algorithm.lower(), cert.issuer.public_bytes()).hexdigest(),
        "issuerKeyHash": key_hash(issuer, algorithm),
        "serialNumber": format(cert.serial_number, "x"),
        "responderURL": url,
    }


@dataclass(frozen=True)
class CertId:
    algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> CertId:
        """From OCSPRequestDataType; OcspError (``InvalidHashData``) for hashes that are no hex
        of the algorithm's length, or a serial number that is no hex."""
        algorithm = data["hashAlgorithm"]
        size = HASHES[algorithm].digest_size
        try:
            name = bytes.fromhex(data["issuerNameHash"])
            key = bytes.fromhex(data["issuerKeyHash"])
            serial = int(data["serialNumber"], 16)
        except ValueError:
            raise OcspError("InvalidHashData", "issuerNameHash, issuerKeyHash and serialNumber must be hex") from None
        if len(name) != size or len(key) != size:
            raise OcspError("InvalidHashData", f"{algorithm} hashes are {size} bytes ({2 * size} hex digits)")
        return cls(algorithm, name, key, serial)

    def key(self, responder_url: str) -> tuple[str, bytes, bytes, int, str]:
        return (self.algorithm, self.issuer_name_hash, self.issuer_key_hash, self.serial, responder_url)


def build_ocsp_request(data: Mapping[str, Any]) -> bytes:
    """The DER OCSP request (RFC 6960) for one certificate named by its OCSPRequestDataType."""
    cid = CertId.of(data)
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        cid.issuer_name_hash, cid.issuer_key_hash, cid.serial, HASHES[cid.algorithm]()
    )
    return builder.build().public_bytes(serialization.Encoding.DER)


# ---------------------------------------------------------------------------- responses
@dataclass(frozen=True)
class OcspAnswer:
    status: CertStatus
    this_update: datetime
    next_update: datetime | None
    revoked_at: datetime | None = None

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {"certStatus": self.status, "thisUpdate": self.this_update.isoformat()}
        if self.next_update is not None:
            out["nextUpdate"] = self.next_update.isoformat()
        if self.revoked_at is not None:
            out["revokedAt"] = self.revoked_at.isoformat()
        return out


def read_ocsp_response(der: bytes, data: Mapping[str, Any], now: datetime) -> OcspAnswer:
    """The status the response gives the certificate named by ``data``; OcspError when the
    response is unreadable, not ``successful``, about another certificate, or stale."""
    cid = CertId.of(data)
    try:
        resp = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise OcspError("OCSPBadResponse", f"not a DER OCSP response: {exc}") from None
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError("OCSPNotSuccessful", f"OCSP responder answered {resp.response_status.name}")
    for single in resp.responses:
        if (
            single.serial_number == cid.serial
            and single.issuer_key_hash == cid.issuer_key_hash
            and single.issuer_name_hash == cid.issuer_name_hash
            and single.hash_algorithm.name.upper().replace("-", "") == cid.algorithm
        ):
            break
    else:
        raise OcspError("OCSPMismatch", "the OCSP response is about another certificate")
    this_update = single.this_update_utc
    next_update = single.next_update_utc
    if this_update > now + CLOCK_SKEW:
        raise OcspError("OCSPStale", f"OCSP thisUpdate {this_update.isoformat()} is in the future")
    if next_update is not None and next_update <= now:
        raise OcspError("OCSPStale", f"OCSP nextUpdate {next_update.isoformat()} has passed")
    status = {
        ocsp.OCSPCertStatus.GOOD: "good",
        ocsp.OCSPCertStatus.REVOKED: "revoked",
        ocsp.OCSPCertStatus.UNKNOWN: "unknown",
    }[single.certificate_status]
    revoked_at = single.revocation_time_utc if status == "revoked" else None
    return OcspAnswer(status, this_update, next_update, revoked_at)  # type: ignore[arg-type]


def _verify_signature(signer: x509.Certificate, signature: bytes, data: bytes, algorithm: Any) -> None:
    key = signer.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, data)
    else:
        raise InvalidSignature(f"unsupported responder key {type(key).__name__}")


def verify_ocsp_response(
    der: bytes, data: Mapping[str, Any], trusted: Iterable[x509.Certificate], now: datetime
) -> None:
    """Check who signed the response (RFC 6960 4.2.2.2): the certificate's issuer itself, or a
    responder holding an id-kp-OCSPSigning certificate issued by it; the issuer must be a
    ``trusted`` certificate or chain to one through the certificates the response carries.
    OcspError (``OCSPSignature``) otherwise."""
    cid = CertId.of(data)
    resp = ocsp.load_der_ocsp_response(der)
    pool = [*resp.certificates, *trusted]
    trusted_fp = {c.fingerprint(hashes.SHA256()) for c in trusted}

    def is_signer(c: x509.Certificate) -> bool:
        if resp.responder_key_hash is not None:
            return hashlib.sha1(_public_key_bits(c)).digest() == resp.responder_key_hash  # RFC 6960 KeyHash is SHA-1
        return c.subject == resp.responder_name

    def is_issuer(c: x509.Certificate) -> bool:
        return hashlib.new(cid.algorithm.lower(), _public_key_bits(c)).digest() == cid.issuer_key_hash

    signers = [c for c in pool if is_signer(c)]
    if not signers:
        raise OcspError("OCSPSignature", "the OCSP response's signer is not known")
    for signer in signers:
        try:
            _verify_signature(signer, resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm)
        except InvalidSignature:
            continue
        if is_issuer(signer):
            issuer = signer
        else:
            try:
                usage = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except x509.ExtensionNotFound:
                continue
            if ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
                continue
            issuers = [c for c in pool if is_issuer(c) and _issued_by(signer, c)]
            if not issuers or not _valid_at(signer, now):
                continue
            issuer = issuers[0]
        if _chains_to(issuer, pool, trusted_fp, now):
            return
    raise OcspError("OCSPSignature", "the OCSP response is not signed by the issuer or its delegated responder")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _valid_at(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _chains_to(cert: x509.Certificate, pool: list[x509.Certificate], trusted_fp: set[bytes], now: datetime) -> bool:
    current = cert
    for _ in range(MAX_PATH):
        if current.fingerprint(hashes.SHA256()) in trusted_fp:
            return True
        parents = [c for c in pool if c.subject == current.issuer and c is not current and _issued_by(current, c)]
        if not parents or not _valid_at(current, now):
            return False
        current = parents[0]
    return False


# ---------------------------------------------------------------------------- contract chains
def load_chain(pem: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return []
    return certs


def check_contract_chain(
    pem: str, roots: Iterable[x509.Certificate], now: datetime
) -> tuple[str, list[x509.Certificate]]:
    """Validate an EV contract certificate chain (leaf first, then sub-CAs, PEM) against the
    trusted ``roots``: (AuthorizeCertificateStatus, path from the leaf up to and with the root)."""
    certs = load_chain(pem)
    if not certs:
        return "CertChainError", []
    roots = list(roots)
    root_fp = {r.fingerprint(hashes.SHA256()) for r in roots}
    pool = [*certs[1:], *roots]
    path = [certs[0]]
    for _ in range(MAX_PATH):
        current = path[-1]
        if not _valid_at(current, now):
            return "CertificateExpired", path
        if current.fingerprint(hashes.SHA256()) in root_fp:
            return "Accepted", path
        parents = [c for c in pool if c.subject == current.issuer and c is not current]
        if not parents:
            return "CertChainError", path
        verified = [c for c in parents if _issued_by(current, c)]
        if not verified:
            return "SignatureError", path  # issuer found by name, but its key did not sign this
        path.append(verified[0])
    return "CertChainError", path


def emaid_of(cert: x509.Certificate) -> str | None:
    """The eMAID a contract certificate is for (its subject common name)."""
    names = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def same_emaid(a: str, b: str) -> bool:
    """eMAIDs compare without case and without the optional dashes (ISO 15118-2 Annex H)."""
    return a.replace("-", "").upper() == b.replace("-", "").upper()
