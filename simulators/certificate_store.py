"""The simulated station's key store: its TLS client certificate and key (security profile 3),
the CSR it makes for renewal, and the installed CA certificates per type (M03-M05)."""

from __future__ import annotations

import os
import ssl
import tempfile
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from csms.security.certificates import hash_data

STATION_CERT = "ChargingStationCertificate"


def _info(code: str, text: str) -> dict[str, str]:
    return {"reasonCode": code[:20], "additionalInfo": text[:512]}


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class CertificateStore:
    """One station's key material and installed certificates (kept across reconnects)."""

    def __init__(self, station_id: str, vendor: str, cert_file: str | None, key_file: str | None) -> None:
        self.station_id = station_id
        self.vendor = vendor
        self.chain: list[x509.Certificate] = []
        self.key_pem: bytes | None = None
        if cert_file and key_file:
            with open(cert_file, "rb") as f:
                self.chain = x509.load_pem_x509_certificates(f.read())
            with open(key_file, "rb") as f:
                self.key_pem = f.read()
        self.pending_key: ec.EllipticCurvePrivateKey | None = None
        self.pending_type = STATION_CERT
        self.installed: dict[str, list[x509.Certificate]] = {}

    # ------------------------------------------------------------------ own certificate
    @property
    def certificate(self) -> x509.Certificate | None:
        return self.chain[0] if self.chain else None

    def configure(self, ctx: ssl.SSLContext) -> None:
        """Present the current client certificate (ssl only loads key material from files)."""
        if not self.chain or self.key_pem is None:
            return
        fd, path = tempfile.mkstemp(prefix="sim-cert-", suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"".join(_pem(c) for c in self.chain) + self.key_pem)
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)

    def new_csr(self, certificate_type: str = STATION_CERT) -> str:
        """A fresh key and the SignCertificate CSR for it (the key waits for CertificateSigned)."""
        self.pending_key = ec.generate_private_key(ec.SECP256R1())
        self.pending_type = certificate_type
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, self.station_id),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.vendor),
            ]
        )
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(self.pending_key, hashes.SHA256())
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def accept_signed(self, chain_pem: str, certificate_type: str) -> str | None:
        """Install a CertificateSigned chain; the reason it is refused, or None when installed."""
        if self.pending_key is None:
            return "no certificate signing request is outstanding"
        if certificate_type != self.pending_type:
            return f"{certificate_type} received for a {self.pending_type} request"
        try:
            chain = x509.load_pem_x509_certificates(chain_pem.encode())
        except ValueError as exc:
            return f"certificateChain does not parse: {exc}"
        leaf = chain[0]
        mine = self.pending_key.public_key().public_numbers()
        if not isinstance(leaf.public_key(), ec.EllipticCurvePublicKey) or leaf.public_key().public_numbers() != mine:
            return "the certificate is not for the key of our signing request"
        names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if names != [self.station_id]:
            return f"commonName {names} is not this station's id"
        now = datetime.now(UTC)
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            return "the certificate is not valid now"
        if certificate_type == STATION_CERT:
            self.chain = chain
            self.key_pem = self.pending_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        self.pending_key = None
        return None

    def own_hash(self) -> dict[str, str] | None:
        if not self.chain:
            return None
        return hash_data(self.chain[0], self.chain[1] if len(self.chain) > 1 else None)

    # ------------------------------------------------------------------ installed CA certificates
    def install(self, certificate_type: str, pem: str) -> str | None:
        try:
            certs = x509.load_pem_x509_certificates(pem.encode())
        except ValueError as exc:
            return f"not a PEM certificate: {exc}"
        cert = certs[0]
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            return "not a CA certificate (BasicConstraints CA=false or missing)"
        same = [c for c in self.installed.setdefault(certificate_type, []) if c.serial_number == cert.serial_number]
        for old in same:
            self.installed[certificate_type].remove(old)
        self.installed[certificate_type].append(cert)
        return None

    def ids(self, types: list[str] | None) -> list[dict[str, Any]]:
        return [
            {"certificateType": kind, "certificateHashData": hash_data(cert)}
            for kind, certs in self.installed.items()
            if not types or kind in types
            for cert in certs
        ]

    def delete(self, wanted: dict[str, Any]) -> str:
        """Accepted / Failed / NotFound, per M04."""
        keys = ("hashAlgorithm", "issuerNameHash", "issuerKeyHash", "serialNumber")

        def same(h: dict[str, str]) -> bool:
            return all(str(h[k]).lower() == str(wanted.get(k, "")).lower() for k in keys)

        own = self.own_hash()
        if own is not None and same(own):
            return "Failed"
        for certs in self.installed.values():
            for cert in certs:
                if same(hash_data(cert)):
                    certs.remove(cert)
                    return "Accepted"
        return "NotFound"
