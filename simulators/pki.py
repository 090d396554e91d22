"""A local ISO 15118 contract-certificate PKI for tests and demos (cryptography, EC P-256 as
ISO 15118 uses): a contract root (as a V2G / MO root), an MO sub-CA, and contract certificates for
eMAIDs, each naming the given OCSP responder in its Authority Information Access extension.

Certificates live on the wall clock (like the CSMS's checks of them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(cn: str, org: str = "Test MO") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def issue(
    cn: str,
    issuer: Issued | None,
    *,
    ca: bool,
    ocsp_url: str | None = None,
    not_before: datetime | None = None,
    days: float = 365,
    ocsp_signing: bool = False,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or datetime.now(UTC) - timedelta(hours=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=not ca,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if ocsp_url and issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]
            ),
            critical=False,
        )
    if ocsp_signing:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


class ContractPki:
    """Root -> MO sub-CA -> contract certificates (CN = eMAID), all with ``ocsp_url``."""

    def __init__(self, ocsp_url: str, name: str = "Test") -> None:
        self.ocsp_url = ocsp_url
        self.root = issue(f"{name} V2G Root CA", None, ca=True, days=3650)
        self.sub_ca = issue(f"{name} MO Sub-CA", self.root, ca=True, ocsp_url=ocsp_url, days=1825)
        self.issued: list[Issued] = [self.sub_ca]

    def contract(self, emaid: str, *, days: float = 365, not_before: datetime | None = None) -> Issued:
        leaf = issue(emaid, self.sub_ca, ca=False, ocsp_url=self.ocsp_url, days=days, not_before=not_before)
        self.issued.append(leaf)
        return leaf

    def chain_pem(self, leaf: Issued) -> str:
        """The contract certificate chain an EV presents: leaf, then the sub-CA (no root)."""
        return leaf.pem + self.sub_ca.pem

    @property
    def roots_pem(self) -> str:
        return self.root.pem

    def issuer_of(self, cert: x509.Certificate) -> Issued:
        return self.root if cert.issuer == self.root.cert.subject else self.sub_ca
