"""Certificate management over real sockets (OCPP A02/A03, M03-M05): the CSMS signs a station's
CSR with its station CA, the bundled simulator installs the certificate and reconnects with it
under security profile 3; bad CSRs and a missing CA are Rejected with the reason; the simulator
refuses what real firmware refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from csms.api.routes.stations import _client_certificate
from csms.central import CentralSystem
from csms.clock import Clock
from csms.config import ConfigError, SecuritySettings, tls_problems
from csms.ocpp.errors import InvalidPayload
from simulators import Station, StationConfig
from tests.api.support import wait_for
from tests.conftest import make_settings, profile3_security, start_central
from tests.support import PASSWORD, TestStation, open_ws

trustme = pytest.importorskip("trustme")


def _ca_files(tmp_path: Path, ca: trustme.CA) -> tuple[Path, Path]:
    ca_file, key_file = tmp_path / "ca.pem", tmp_path / "ca.key"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.private_key_pem.write_to_path(str(key_file))
    return ca_file, key_file


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def central3(tmp_path: Path, ca: trustme.CA) -> AsyncIterator[CentralSystem]:
    """Profile 3; the CA that the TLS server trusts for client certificates also signs CSRs."""
    ca_file, key_file = _ca_files(tmp_path, ca)
    security = profile3_security(
        tmp_path, ca, station_ca_cert_file=ca_file, station_ca_key_file=key_file, station_cert_days=90
    )
    central = await start_central(tmp_path, security)
    try:
        yield central
    finally:
        await central.stop()


async def _events(central: CentralSystem, station_id: str) -> list[dict[str, Any]]:
    assert central.store is not None
    rows = await central.store.list_station_events(station_id, kind="StationCertificate")
    return [r.payload for r in rows]


def _peer_serial(central: CentralSystem, station_id: str) -> int:
    cert = central.sessions[station_id].ws.transport.get_extra_info("peercert")
    return int(cert["serialNumber"], 16)


async def test_profile3_station_renews_its_certificate_and_reconnects_with_it(
    central3: CentralSystem, ca: trustme.CA, tmp_path: Path
) -> None:
    cert_file, key_file = _station_files(tmp_path, ca, "FE-1")
    await central3.register_station("FE-1")  # no password: the certificate authenticates
    cfg = StationConfig(
        id="FE-1",
        ocpp=["2.0.1"],
        security_profile=3,
        ca_file=str(tmp_path / "ca.pem"),
        client_cert_file=str(cert_file),
        client_key_file=str(key_file),
    )
    st = Station(cfg, Clock(speed=300), f"ws://127.0.0.1:{central3.port}/ocpp")  # profile 3 -> wss://
    await st.start()
    try:
        await st.wait_online()
        old = st.certificates.certificate
        assert old is not None and _peer_serial(central3, "FE-1") == old.serial_number

        reply = await central3.call("FE-1", "TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"})
        assert reply["status"] == "Accepted"
        events = await wait_for(lambda: _events(central3, "FE-1"))
        assert events[0]["step"] == "CertificateSigned" and events[0]["status"] == "Accepted", events
        new = st.certificates.certificate
        assert new is not None and new.serial_number != old.serial_number
        assert int(events[0]["serialNumber"], 16) == new.serial_number
        assert new.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "FE-1"
        assert 89 <= (new.not_valid_after_utc - new.not_valid_before_utc).days <= 90
        # the CSR carried a fresh key, and the station kept it
        assert st.certificates.key_pem is not None and st.certificates.key_pem != key_file.read_bytes()

        st.disconnect(duration_s=1)  # the next TLS handshake presents the new certificate
        await wait_for(lambda: "FE-1" not in central3.sessions or _peer_serial(central3, "FE-1") != old.serial_number)
        await st.wait_online()
        await wait_for(lambda: "FE-1" in central3.sessions)
        assert _peer_serial(central3, "FE-1") == new.serial_number
    finally:
        await st.stop()


def _station_files(tmp_path: Path, ca: trustme.CA, station_id: str, **issue: Any) -> tuple[Path, Path]:
    issued = ca.issue_cert(station_id, common_name=station_id, **issue)
    cert_file, key_file = tmp_path / f"{station_id}.pem", tmp_path / f"{station_id}.key"
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(cert_file), append=True)
    issued.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file


async def test_a_certificate_close_to_expiry_is_renewed_automatically_after_boot(
    central3: CentralSystem, ca: trustme.CA, tmp_path: Path
) -> None:
    soon = datetime.now(UTC) + timedelta(days=10)  # inside station_cert_renew_days (30)
    cert_file, key_file = _station_files(tmp_path, ca, "FE-3", not_after=soon)
    await central3.register_station("FE-3")
    cfg = StationConfig(
        id="FE-3",
        ocpp=["2.1"],
        security_profile=3,
        ca_file=str(tmp_path / "ca.pem"),
        client_cert_file=str(cert_file),
        client_key_file=str(key_file),
    )
    st = Station(cfg, Clock(speed=300), f"ws://127.0.0.1:{central3.port}/ocpp")
    await st.start()
    try:
        await st.wait_online()
        presented = central3.state("FE-3").client_certificate
        assert presented is not None and presented["subject"] == "FE-3"
        assert abs((presented["notAfter"] - soon).total_seconds()) < 1
        live = _client_certificate(central3.state("FE-3"), datetime.now(UTC))
        assert live is not None and 9.9 < live.expires_in_days <= 10
        events = await wait_for(lambda: _events(central3, "FE-3"))  # nobody asked: the CSMS did
        assert events[0]["status"] == "Accepted"
        new = st.certificates.certificate
        assert new is not None and new.not_valid_after_utc > soon + timedelta(days=60)
        boots = st.boots
        st.reboot()  # boots again, presenting the new certificate
        await wait_for(lambda: st.boots > boots and st.registration == "Accepted" and "FE-3" in central3.sessions)
        assert _peer_serial(central3, "FE-3") == new.serial_number
        await asyncio.sleep(0.5)
        assert len(await _events(central3, "FE-3")) == 1  # far from expiry now: not renewed again
    finally:
        await st.stop()


async def test_csr_for_another_station_is_rejected_with_the_reason(tmp_path: Path, ca: trustme.CA) -> None:
    ca_file, key_file = _ca_files(tmp_path, ca)
    central = await start_central(
        tmp_path, SecuritySettings(station_ca_cert_file=ca_file, station_ca_key_file=key_file)
    )
    try:
        await central.register_station("CS-1", PASSWORD)
        signed: list[dict[str, Any]] = []

        async def on_signed(_ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
            signed.append(p)
            return {"status": "Accepted"}

        station = TestStation(await open_ws(central.port, "CS-1"), {"CertificateSigned": on_signed})
        try:
            assert (await station.boot())["status"] == "Accepted"
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CS-2")])
            csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
            pem = csr.public_bytes(serialization.Encoding.PEM).decode()
            reply = await station.call("SignCertificate", {"csr": pem, "certificateType": "ChargingStationCertificate"})
            assert reply["status"] == "Rejected"
            assert reply["statusInfo"]["reasonCode"] == "InvalidCSR"
            assert "'CS-2' does not match station id 'CS-1'" in reply["statusInfo"]["additionalInfo"]
            assert (await _events(central, "CS-1"))[0]["status"] == "Rejected"

            # the right commonName is signed, and the chain arrives with CertificateSigned
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CS-1")])
            csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
            pem = csr.public_bytes(serialization.Encoding.PEM).decode()
            assert (await station.call("SignCertificate", {"csr": pem}))["status"] == "Accepted"
            await wait_for(lambda: signed)
            chain = x509.load_pem_x509_certificates(signed[0]["certificateChain"].encode())
            chain[0].verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem.bytes()))
            assert chain[0].public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
        finally:
            await station.close()
    finally:
        await central.stop()


async def test_without_a_station_ca_sign_certificate_is_rejected(central: CentralSystem) -> None:
    await central.register_station("CS-1", PASSWORD)
    station = TestStation(await open_ws(central.port, "CS-1"))
    try:
        await station.boot()
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CS-1")])
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        reply = await station.call("SignCertificate", {"csr": csr.public_bytes(serialization.Encoding.PEM).decode()})
        assert reply["status"] == "Rejected"
        assert reply["statusInfo"]["reasonCode"] == "NoSigningCA"
        assert "station_ca_cert_file" in reply["statusInfo"]["additionalInfo"]
    finally:
        await station.close()


async def test_simulator_refuses_a_certificate_it_did_not_ask_for(central: CentralSystem, ca: trustme.CA) -> None:
    await central.register_station("FE-2", PASSWORD)
    cfg = StationConfig(id="FE-2", ocpp=["2.1"], password=PASSWORD)
    st = Station(cfg, Clock(speed=300), f"ws://127.0.0.1:{central.port}/ocpp")
    await st.start()
    try:
        await st.wait_online()
        foreign = ca.issue_cert("FE-2", common_name="FE-2").cert_chain_pems[0].bytes().decode()
        reply = await central.call("FE-2", "CertificateSigned", {"certificateChain": foreign})
        assert reply["status"] == "Rejected"
        assert "no certificate signing request" in reply["statusInfo"]["additionalInfo"]
        assert central.store is not None
        events = await wait_for(lambda: central.store.list_security_events("FE-2"))
        assert events[0].type == "InvalidChargingStationCertificate"
        with pytest.raises(InvalidPayload):  # over the schema's maxLength: the CSMS refuses to send it
            await central.call("FE-2", "CertificateSigned", {"certificateChain": "x" * 20_000})

        # with a CSR outstanding (this CSMS has no CA, so it rejected the request), the station
        # still checks what it gets: garbage does not parse, a certificate for another key is refused
        reply = await central.call("FE-2", "TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"})
        assert reply["status"] == "Accepted"
        await wait_for(lambda: st.sign_certificate_status == "Rejected")
        reply = await central.call("FE-2", "CertificateSigned", {"certificateChain": "not a certificate"})
        assert reply["status"] == "Rejected" and "does not parse" in reply["statusInfo"]["additionalInfo"]
        reply = await central.call("FE-2", "CertificateSigned", {"certificateChain": foreign})
        assert reply["status"] == "Rejected" and "not for the key" in reply["statusInfo"]["additionalInfo"]
        assert st.certificates.certificate is None
    finally:
        await st.stop()


async def test_a_station_ca_that_does_not_load_names_the_key_and_the_file(tmp_path: Path, ca: trustme.CA) -> None:
    ca_file, _ = _ca_files(tmp_path, ca)
    other_key = tmp_path / "other.key"
    trustme.CA().private_key_pem.write_to_path(str(other_key))
    settings = make_settings(tmp_path)
    settings.security = SecuritySettings(station_ca_cert_file=ca_file, station_ca_key_file=other_key)
    with pytest.raises(ConfigError, match=r"station_ca_cert_file / station_ca_key_file: .*other.key.*does not belong"):
        await CentralSystem(settings).start()
    assert tls_problems(SecuritySettings(station_ca_cert_file=ca_file)) == [
        "security.station_ca_key_file: required with the other station_ca_* file (both or neither)"
    ]
    assert tls_problems(SecuritySettings(station_ca_cert_file=ca_file, station_ca_key_file=tmp_path / "nope.key")) == [
        f"security.station_ca_key_file: file not found: {tmp_path / 'nope.key'}"
    ]
