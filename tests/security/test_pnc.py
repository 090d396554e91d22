"""csms.security.pnc with plain function calls: OCSP request data and requests, reading and
verifying OCSP responses (issuer-signed, delegated responder, strangers), contract chains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from csms.security import pnc
from simulators.pki import ContractPki, Issued, issue

URL = "http://127.0.0.1:1/ocsp"
NOW = datetime.now(UTC)


def _response(
    pki: ContractPki,
    leaf: Issued,
    signer: Issued,
    *,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    this_update: datetime | None = None,
    next_update: datetime | None = None,
    certs: list[Issued] | None = None,
) -> bytes:
    this_update = this_update or NOW - timedelta(minutes=1)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf.cert,
            issuer=pki.sub_ca.cert,
            algorithm=hashes.SHA256(),
            cert_status=status,
            this_update=this_update,
            next_update=next_update if next_update is not None else this_update + timedelta(hours=1),
            revocation_time=NOW - timedelta(hours=1) if status == ocsp.OCSPCertStatus.REVOKED else None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
        .certificates([c.cert for c in (certs if certs is not None else [signer])])
    )
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def pki() -> ContractPki:
    return ContractPki(URL)


def test_request_data_and_ocsp_request(pki: ContractPki) -> None:
    leaf = pki.contract("DE-ABC-C1")
    data = pnc.ocsp_request_data(leaf.cert, pki.sub_ca.cert)
    assert data["responderURL"] == URL and data["serialNumber"] == format(leaf.cert.serial_number, "x")
    req = ocsp.load_der_ocsp_request(pnc.build_ocsp_request(data))
    assert req.serial_number == leaf.cert.serial_number
    assert req.issuer_key_hash.hex() == data["issuerKeyHash"] == pnc.key_hash(pki.sub_ca.cert)
    sha512 = pnc.ocsp_request_data(leaf.cert, pki.sub_ca.cert, algorithm="SHA512")
    assert len(sha512["issuerKeyHash"]) == 128
    with pytest.raises(pnc.OcspError) as no_url:
        pnc.ocsp_request_data(pki.root.cert, pki.root.cert)
    assert no_url.value.reason == "NoOCSPResponder"
    with pytest.raises(pnc.OcspError) as bad:
        pnc.build_ocsp_request({**data, "serialNumber": "xyz"})
    assert bad.value.reason == "InvalidHashData"


def test_read_response_status_mismatch_and_staleness(pki: ContractPki) -> None:
    leaf, other = pki.contract("DE-ABC-C2"), pki.contract("DE-ABC-C3")
    data = pnc.ocsp_request_data(leaf.cert, pki.sub_ca.cert)
    assert pnc.read_ocsp_response(_response(pki, leaf, pki.sub_ca), data, NOW).status == "good"
    revoked = pnc.read_ocsp_response(_response(pki, leaf, pki.sub_ca, status=ocsp.OCSPCertStatus.REVOKED), data, NOW)
    assert revoked.status == "revoked" and revoked.revoked_at is not None
    with pytest.raises(pnc.OcspError) as mismatch:
        pnc.read_ocsp_response(_response(pki, other, pki.sub_ca), data, NOW)
    assert mismatch.value.reason == "OCSPMismatch"
    old = _response(pki, leaf, pki.sub_ca, this_update=NOW - timedelta(hours=3), next_update=NOW - timedelta(hours=1))
    with pytest.raises(pnc.OcspError) as stale:
        pnc.read_ocsp_response(old, data, NOW)
    assert stale.value.reason == "OCSPStale"
    with pytest.raises(pnc.OcspError) as garbage:
        pnc.read_ocsp_response(b"\x30\x03\x0a\x01\x00", data, NOW)
    assert garbage.value.reason in ("OCSPBadResponse", "OCSPNotSuccessful")


def test_verify_issuer_delegated_and_strangers(pki: ContractPki) -> None:
    leaf = pki.contract("DE-ABC-C4")
    data = pnc.ocsp_request_data(leaf.cert, pki.sub_ca.cert)
    trusted = [pki.root.cert]
    # the issuer, chained to the root through the certificate the response carries
    pnc.verify_ocsp_response(_response(pki, leaf, pki.sub_ca), data, trusted, NOW)
    delegate = issue("OCSP signer", pki.sub_ca, ca=False, ocsp_signing=True)
    pnc.verify_ocsp_response(_response(pki, leaf, delegate, certs=[delegate, pki.sub_ca]), data, trusted, NOW)
    no_eku = issue("not a signer", pki.sub_ca, ca=False)
    with pytest.raises(pnc.OcspError):
        pnc.verify_ocsp_response(_response(pki, leaf, no_eku, certs=[no_eku, pki.sub_ca]), data, trusted, NOW)
    stranger = ContractPki(URL, name="Other")
    with pytest.raises(pnc.OcspError):  # signed by a key that is not the issuer's
        pnc.verify_ocsp_response(_response(pki, leaf, stranger.sub_ca), data, trusted, NOW)
    with pytest.raises(pnc.OcspError):  # the issuer, but nothing it chains to is trusted
        pnc.verify_ocsp_response(_response(pki, leaf, pki.sub_ca), data, [stranger.root.cert], NOW)


def test_contract_chain_statuses(pki: ContractPki) -> None:
    roots = [pki.root.cert]
    leaf = pki.contract("DE-ABC-C5")
    status, path = pnc.check_contract_chain(pki.chain_pem(leaf), roots, NOW)
    assert status == "Accepted" and [c.subject for c in path] == [leaf.cert.subject, pki.sub_ca.cert.subject,
                                                                  pki.root.cert.subject]  # fmt: skip
    assert pnc.check_contract_chain(pki.chain_pem(leaf), [], NOW)[0] == "CertChainError"
    assert pnc.check_contract_chain(leaf.pem, roots, NOW)[0] == "CertChainError"  # sub-CA missing
    assert pnc.check_contract_chain("garbage", roots, NOW)[0] == "CertChainError"
    assert pnc.check_contract_chain(pki.chain_pem(leaf), roots, NOW + timedelta(days=400))[0] == "CertificateExpired"
    impostor = issue(pki.sub_ca.cert.subject.rfc4514_string(), None, ca=True)
    forged = issue("DE-ABC-C6", Issued(impostor.cert, impostor.key), ca=False)
    # same issuer name as the real sub-CA, another key
    forged_leaf = issue("DE-ABC-C6", Issued(pki.sub_ca.cert, impostor.key), ca=False)
    assert pnc.check_contract_chain(forged_leaf.pem + pki.sub_ca.pem, roots, NOW)[0] == "SignatureError"
    assert pnc.check_contract_chain(forged.pem, roots, NOW)[0] == "CertChainError"
    assert pnc.emaid_of(leaf.cert) == "DE-ABC-C5"
    assert pnc.same_emaid("de-abc-c5", "DEABCC5") and not pnc.same_emaid("DE-ABC-C5", "DE-ABC-C6")
