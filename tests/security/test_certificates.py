"""The pure certificate logic (csms.security.certificates): CSR checks, signing, hash data."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.security.certificates import CertificateError, SigningCa, check_csr, hash_data, load_pem_chain

trustme = pytest.importorskip("trustme")
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def csr_pem(common_name: str, key: object | None = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def ca() -> SigningCa:
    authority = trustme.CA()
    return SigningCa.from_pem(authority.cert_pem.bytes(), authority.private_key_pem.bytes())


def test_good_csr_is_signed_as_a_client_certificate_of_the_ca(ca: SigningCa) -> None:
    csr = check_csr(csr_pem("FE-0001"), "FE-0001")
    leaf = ca.sign(csr, NOW, days=30)
    leaf.verify_directly_issued_by(ca.certificate)  # raises when the signature or issuer is wrong
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "FE-0001"
    assert leaf.public_key().public_numbers() == csr.public_key().public_numbers()  # type: ignore[union-attr]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert (leaf.not_valid_after_utc - NOW).days == 30
    chain = load_pem_chain(ca.chain_pem(leaf))
    assert [c.serial_number for c in chain] == [leaf.serial_number, ca.certificate.serial_number]


def test_two_certificates_never_share_a_serial(ca: SigningCa) -> None:
    csr = check_csr(csr_pem("FE-0001"), "FE-0001")
    assert ca.sign(csr, NOW, 1).serial_number != ca.sign(csr, NOW, 1).serial_number


@pytest.mark.parametrize(
    ("pem", "station", "kind", "reason", "words"),
    [
        (lambda: csr_pem("FE-0002"), "FE-0001", "ChargingStationCertificate", "InvalidCSR", "'FE-0002' does not match"),
        (lambda: "not a csr", "FE-0001", "ChargingStationCertificate", "InvalidCSR", "not a PEM"),
        (
            lambda: csr_pem("FE-0001", rsa.generate_private_key(65537, 1024)),
            "FE-0001",
            "ChargingStationCertificate",
            "InvalidCSR",
            "1024 bits",
        ),
        (
            lambda: csr_pem("FE-0001", ec.generate_private_key(ec.SECP256K1())),
            "FE-0001",
            "ChargingStationCertificate",
            "InvalidCSR",
            "secp256k1",
        ),
        (lambda: csr_pem("FE-0001"), "FE-0001", "V2GCertificate", "UnsupportedCertType", "V2G PKI"),
    ],
    ids=["wrong-cn", "garbage", "weak-rsa", "odd-curve", "v2g"],
)
def test_bad_csrs_are_refused_with_the_reason(pem, station: str, kind: str, reason: str, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CertificateError) as caught:
        check_csr(pem(), station, kind)
    assert caught.value.reason_code == reason
    assert words in caught.value.message
    info = caught.value.status_info()
    assert len(info["reasonCode"]) <= 20 and len(info["additionalInfo"]) <= 512


def test_a_csr_whose_signature_was_tampered_with_is_refused() -> None:
    pem = csr_pem("FE-0001")
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the signature value
    body = base64.encodebytes(bytes(der)).decode()
    tampered = f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(CertificateError) as caught:
        check_csr(tampered, "FE-0001")
    assert caught.value.reason_code == "InvalidCSR"


def _der_tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER element at ``at``."""
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[at : at + n], "big")
        at += n
    return tag, at, at + length


def test_hash_data_is_the_ocsp_cert_id_of_the_certificate() -> None:
    authority = trustme.CA()
    root = x509.load_pem_x509_certificate(authority.cert_pem.bytes())
    leaf = x509.load_pem_x509_certificate(
        authority.issue_cert("FE-0001", common_name="FE-0001").cert_chain_pems[0].bytes()
    )
    # issuerKeyHash by hand: SPKI = SEQUENCE { AlgorithmIdentifier, BIT STRING }; hash the bits
    spki = root.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    _, inner, _ = _der_tlv(spki, 0)
    _, _, alg_end = _der_tlv(spki, inner)
    tag, bits, bits_end = _der_tlv(spki, alg_end)
    assert tag == 0x03
    key_hash = hashlib.sha256(spki[bits + 1 : bits_end]).hexdigest()  # skip the unused-bits byte
    got = hash_data(leaf, root)
    assert got == {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": hashlib.sha256(root.subject.public_bytes()).hexdigest(),
        "issuerKeyHash": key_hash,
        "serialNumber": format(leaf.serial_number, "x"),
    }
    assert hash_data(root) == {**got, "serialNumber": format(root.serial_number, "x")}  # a root is its own issuer


def test_signing_ca_refuses_a_key_that_is_not_its_own_and_a_non_ca_certificate() -> None:
    a, b = trustme.CA(), trustme.CA()
    with pytest.raises(ValueError, match="does not belong"):
        SigningCa.from_pem(a.cert_pem.bytes(), b.private_key_pem.bytes())
    leaf = a.issue_cert("not-a-ca", common_name="not-a-ca")
    with pytest.raises(ValueError, match="not a CA"):
        SigningCa.from_pem(leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes())
    with pytest.raises(ValueError, match="not a PEM certificate"):
        SigningCa.from_pem(b"junk", a.private_key_pem.bytes())
