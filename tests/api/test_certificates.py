"""Certificate management through the HTTP API and the CLI, against the bundled simulator:
InstallCertificate -> GetInstalledCertificateIds -> DeleteCertificate, scopes, and
``csms certificate renew`` following the station until it has installed its new certificate."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from csms.clock import Clock
from csms.config import SecuritySettings
from csms.security.certificates import hash_data
from tests.api.support import Env, running_csms, server_logs_to_stderr
from tests.cli.conftest import Cli
from tests.support import PASSWORD

simulators = pytest.importorskip("simulators")
trustme = pytest.importorskip("trustme")


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def signing_env(tmp_path: Path, ca: trustme.CA) -> AsyncIterator[Env]:
    ca_file, key_file = tmp_path / "ca.pem", tmp_path / "ca.key"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.private_key_pem.write_to_path(str(key_file))
    security = SecuritySettings(station_ca_cert_file=ca_file, station_ca_key_file=key_file)
    with server_logs_to_stderr():
        async with running_csms(tmp_path / "csms", security, call_timeout=5) as env:
            yield env


@pytest.fixture
async def sim(signing_env: Env, ca: trustme.CA, tmp_path: Path) -> AsyncIterator[Any]:
    issued = ca.issue_cert("FE-0001", common_name="FE-0001")  # the station's factory certificate
    cert_file, key_file = tmp_path / "fe.pem", tmp_path / "fe.key"
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(cert_file), append=True)
    issued.private_key_pem.write_to_path(str(key_file))
    cfg = simulators.StationConfig(
        id="FE-0001",
        password=PASSWORD,
        ocpp=["2.1"],
        client_cert_file=str(cert_file),
        client_key_file=str(key_file),
    )
    st = simulators.Station(cfg, Clock(speed=300), f"ws://127.0.0.1:{signing_env.ocpp_port}/ocpp")
    await st.start()
    await st.wait_online()
    try:
        yield st
    finally:
        await st.stop()


async def _cmd(env: Env, action: str, body: dict[str, Any], token: str = "operator") -> Any:
    async with env.client(token) as c:
        return await c.post(f"/api/v1/stations/FE-0001/commands/{action}", json=body)


async def test_install_list_delete_over_the_api(signing_env: Env, sim: Any) -> None:
    root = trustme.CA()
    pem = root.cert_pem.bytes().decode()
    r = await _cmd(signing_env, "InstallCertificate", {"certificate_type": "CSMSRootCertificate", "certificate": pem})
    assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
    r = await _cmd(signing_env, "GetInstalledCertificateIds", {"certificate_type": ["CSMSRootCertificate"]})
    chain = r.json()["response"]["certificateHashDataChain"]
    expected = hash_data(x509.load_pem_x509_certificate(pem.encode()))
    assert chain == [{"certificateType": "CSMSRootCertificate", "certificateHashData": expected}]
    assert (await _cmd(signing_env, "GetInstalledCertificateIds", {"certificate_type": ["V2GRootCertificate"]})).json()[
        "status"
    ] == "NotFound"

    # a leaf is not a CA certificate: firmware refuses it
    leaf = root.issue_cert("x", common_name="x").cert_chain_pems[0].bytes().decode()
    r = await _cmd(signing_env, "InstallCertificate", {"certificate_type": "CSMSRootCertificate", "certificate": leaf})
    assert r.json()["status"] == "Rejected"

    snake = {
        "hash_algorithm": "SHA256",
        "issuer_name_hash": expected["issuerNameHash"],
        "issuer_key_hash": expected["issuerKeyHash"],
        "serial_number": expected["serialNumber"],
    }
    r = await _cmd(signing_env, "DeleteCertificate", {"certificate_hash_data": snake}, token="read")
    assert r.status_code == 403
    assert (await _cmd(signing_env, "DeleteCertificate", {"certificate_hash_data": snake})).json()["status"] == (
        "Accepted"
    )
    assert (await _cmd(signing_env, "DeleteCertificate", {"certificate_hash_data": snake})).json()["status"] == (
        "NotFound"
    )
    own = sim.certificates.own_hash()
    own_snake = {
        "issuer_name_hash": own["issuerNameHash"],
        "issuer_key_hash": own["issuerKeyHash"],
        "serial_number": own["serialNumber"],
    }
    r = await _cmd(signing_env, "DeleteCertificate", {"certificate_hash_data": own_snake})
    assert r.json()["status"] == "Failed"  # M04.FR.06: never its own certificate

    r = await _cmd(
        signing_env, "InstallCertificate", {"certificate_type": "CSMSRootCertificate", "certificate": pem}, token="read"
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = await _cmd(signing_env, "DeleteCertificate", {"certificate_hash_data": {**snake, "serial_number": "xyz"}})
    assert r.status_code == 422


async def test_cli_certificate_commands(signing_env: Env, sim: Any, tmp_path: Path) -> None:
    cli = Cli(signing_env, tmp_path / "cli.toml")
    old_serial = sim.certificates.certificate.serial_number
    r = await cli("certificate", "renew", "FE-0001", "--interval", "0.2", "--wait-timeout", "20")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "TriggerMessage: Accepted" in r.stdout and "FE-0001: Accepted" in r.stdout
    assert sim.certificates.certificate.serial_number != old_serial

    root_file = tmp_path / "root.pem"
    trustme.CA().cert_pem.write_to_path(str(root_file))
    r = await cli("certificate", "install", "FE-0001", "csmsrootcertificate", str(root_file))
    assert r.exit_code == 0 and "InstallCertificate: Accepted" in r.stdout, r.stdout
    r = await cli("certificate", "list", "FE-0001", "--json")
    assert r.exit_code == 0
    listed = json.loads(r.stdout)["response"]["certificateHashDataChain"]
    assert [c["certificateType"] for c in listed] == ["CSMSRootCertificate"]
    r = await cli("certificate", "list", "FE-0001")
    assert "CSMSRootCertificate" in r.stdout and listed[0]["certificateHashData"]["serialNumber"] in r.stdout
    h = listed[0]["certificateHashData"]
    args = ["--serial", h["serialNumber"], "--issuer-name-hash", h["issuerNameHash"]]
    r = await cli("certificate", "delete", "FE-0001", *args, "--issuer-key-hash", h["issuerKeyHash"])
    assert r.exit_code == 0 and "DeleteCertificate: Accepted" in r.stdout, r.stdout
    r = await cli("certificate", "install", "FE-0001", "SomethingElse", str(root_file))
    assert r.exit_code == 2 and "expected a certificate type" in r.stderr
    r = await cli("certificate", "install", "FE-0001", "CSMSRootCertificate", str(tmp_path / "missing.pem"))
    assert r.exit_code == 2 and "cannot read" in r.stderr
