"""Station certificates, with no I/O (OCPP 2.0.1 A02/A03 and M03-M05).

- :func:`check_csr` decides whether a SignCertificate CSR may be signed: the PEM parses, its
  signature is valid, the key is strong enough and, for a ChargingStationCertificate, the
  subject commonName is the station id (A00.FR.511 / A02.FR.04).
- :class:`SigningCa` signs it as a TLS client certificate (profile 3) and returns the PEM chain
  that CertificateSigned carries.
- :func:`hash_data` computes OCPP ``CertificateHashDataType`` (the OCSP CertID fields, SHA256):
  what GetInstalledCertificateIds reports and DeleteCertificate names.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

STATION_CERTIFICATE = "ChargingStationCertificate"
V2G_CERTIFICATE = "V2GCertificate"
MIN_RSA_BITS = 2048
EC_CURVES = ("secp256r1", "secp384r1")
PEM_MAX = 5500  # SignCertificateRequest.csr and InstallCertificateRequest.certificate


class CertificateError(ValueError):
    """A CSR or certificate that cannot be used: ``reason_code`` (OCPP StatusInfo, <= 20
    characters) and a message for people (``additionalInfo``, <= 512)."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message

    def status_info(self) -> dict[str, str]:
        return {"reasonCode": self.reason_code, "additionalInfo": self.message[:512]}


def _common_names(name: x509.Name) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _check_key(key: Any, what: str) -> None:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CertificateError("InvalidCSR", f"{what}: RSA key of {key.key_size} bits; at least {MIN_RSA_BITS}")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise CertificateError("InvalidCSR", f"{what}: EC curve {key.curve.name}; use {' or '.join(EC_CURVES)}")
    else:
        raise CertificateError("InvalidCSR", f"{what}: {type(key).__name__} keys are not accepted; use RSA or EC")


def check_csr(pem: str, station_id: str, certificate_type: str = STATION_CERTIFICATE) -> x509.CertificateSigningRequest:
    """The parsed CSR if this station may have it signed; else :class:`CertificateError`."""
    if certificate_type != STATION_CERTIFICATE:
        raise CertificateError(
            "UnsupportedCertType",
            f"{certificate_type}: this CSMS signs only {STATION_CERTIFICATE}s; "
            "ISO 15118 certificates come from the V2G PKI",
        )
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError("InvalidCSR", f"the CSR is not a PEM certificate signing request: {exc}") from None
    try:
        signed = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError("InvalidCSR", f"the CSR's signature cannot be checked: {exc}") from None
    if not signed:
        raise CertificateError("InvalidCSR", "the CSR's signature does not match its public key")
    names = _common_names(csr.subject)
    if names != [station_id]:
        shown = ", ".join(repr(n) for n in names) or "none"
        raise CertificateError(
            "InvalidCSR", f"CSR subject commonName {shown} does not match station id {station_id!r} (A02.FR.04)"
        )
    _check_key(csr.public_key(), "CSR")
    return csr


@dataclass(frozen=True)
class SigningCa:
    """The CA that signs station certificates (for profile 3, the CA the TLS server trusts)."""

    certificate: x509.Certificate
    key: Any  # rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> SigningCa:
        """Raises ValueError saying which half is wrong."""
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise ValueError(f"not a PEM certificate: {exc}") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError(f"{type(key).__name__} keys cannot sign; use RSA or EC")
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise ValueError("the private key does not belong to the CA certificate")
        try:
            if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                raise ValueError("the certificate is not a CA (BasicConstraints CA=false)")
        except x509.ExtensionNotFound:
            raise ValueError("the certificate is not a CA (no BasicConstraints)") from None
        return cls(cert, key)

    def sign(self, csr: x509.CertificateSigningRequest, now: datetime, days: int) -> x509.Certificate:
        """A TLS client certificate for the CSR's subject and key, valid from ``now`` (UTC)."""
        public = csr.public_key()
        key_usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=isinstance(public, rsa.RSAPublicKey),
            data_encipherment=False,
            key_agreement=isinstance(public, ec.EllipticCurvePublicKey),
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        not_after = min(now + timedelta(days=days), self.certificate.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(public)  # type: ignore[arg-type]
            .serial_number(secrets.randbits(127) | 1 << 126)  # positive, 16 bytes, never leading zeros
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)  # type: ignore[arg-type]
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        return builder.sign(self.key, hashes.SHA256())

    def chain_pem(self, leaf: x509.Certificate) -> str:
        """CertificateSigned.certificateChain: the leaf, then the CA (PEM)."""
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in (leaf, self.certificate))


def load_pem_chain(pem: str) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, in order; CertificateError when there is none or one is bad."""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise CertificateError("InvalidCertificate", f"not a PEM certificate chain: {exc}") from None
    return certs


def _public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents (what OCSP's issuerKeyHash hashes)."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)  # type: ignore[union-attr]


def hash_data(cert: x509.Certificate, issuer: x509.Certificate | None = None) -> dict[str, str]:
    """OCPP ``CertificateHashDataType`` of ``cert`` (SHA256; ``issuer`` defaults to ``cert``
    itself, right for the self-signed roots that InstallCertificate installs)."""
    issuer = issuer or cert
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": hashlib.sha256(cert.issuer.public_bytes()).hexdigest(),
        "issuerKeyHash": hashlib.sha256(_public_key_bits(issuer)).hexdigest(),
        "serialNumber": format(cert.serial_number, "x"),
    }


def describe(cert: x509.Certificate) -> dict[str, Any]:
    """What an operator wants to see of a certificate."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serialNumber": format(cert.serial_number, "x"),
        "notBefore": cert.not_valid_before_utc.isoformat(),
        "notAfter": cert.not_valid_after_utc.isoformat(),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }
