"""Security profile 3 (TLS with client certificates) over real sockets: the station's certificate,
signed by ``security.tls_client_ca_file`` with commonName = station id, replaces HTTP Basic."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidMessage, InvalidStatus

from csms.central import CentralSystem
from csms.config import ConfigError, load_settings
from csms.server.tls import subject_common_name
from tests.conftest import make_settings, profile3_security, start_central
from tests.support import PASSWORD, TestStation, open_ws

trustme = pytest.importorskip("trustme")

# what a client sees when the server refuses its certificate: a TLS alert (TLS 1.2) or, with TLS 1.3
# where the client finishes its side first, the connection closed before any HTTP response
# (InvalidMessage). Never an HTTP status (InvalidStatus): the request does not get that far.
TLS_REFUSED = (ssl.SSLError, ConnectionError, InvalidMessage)
TLS_VERSIONS = pytest.mark.parametrize(
    "tls_version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def central3(tmp_path: Path, ca: trustme.CA) -> AsyncIterator[CentralSystem]:
    central = await start_central(tmp_path, profile3_security(tmp_path, ca))
    try:
        yield central
    finally:
        await central.stop()


def client_context(
    trust: trustme.CA,
    client_ca: trustme.CA | None = None,
    common_name: str = "CS-1",
    tls_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
) -> ssl.SSLContext:
    """A station's TLS context: trusts the CSMS's CA, presents a certificate with ``common_name``
    issued by ``client_ca`` (none when ``client_ca`` is None), speaks at most ``tls_version``."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.maximum_version = tls_version
    trust.configure_trust(ctx)
    if client_ca is not None:
        client_ca.issue_cert(common_name, common_name=common_name).configure_cert(ctx)
    return ctx


async def test_station_with_valid_client_certificate_boots_without_basic_auth(
    central3: CentralSystem, ca: trustme.CA
) -> None:
    await central3.register_station("CS-1")  # no password: the certificate authenticates
    ws = await open_ws(central3.port, "CS-1", None, ssl=client_context(ca, ca, "CS-1"))
    assert "Authorization" not in ws.request.headers  # type: ignore[union-attr]
    station = TestStation(ws)
    try:
        reply = await station.boot()
        assert reply["status"] == "Accepted"
    finally:
        await station.close()


async def test_station_registered_with_password_needs_no_basic_auth_either(
    central3: CentralSystem, ca: trustme.CA
) -> None:
    await central3.register_station("CS-1", PASSWORD)
    ws = await open_ws(central3.port, "CS-1", None, ssl=client_context(ca, ca, "CS-1"))
    await ws.close()


@TLS_VERSIONS
async def test_no_client_certificate_fails_the_tls_handshake(
    central3: CentralSystem, ca: trustme.CA, tls_version: ssl.TLSVersion
) -> None:
    await central3.register_station("CS-1", PASSWORD)
    with pytest.raises(TLS_REFUSED):
        await open_ws(central3.port, "CS-1", None, ssl=client_context(ca, None, tls_version=tls_version))
    # HTTP Basic does not replace the certificate
    with pytest.raises(TLS_REFUSED):
        await open_ws(central3.port, "CS-1", PASSWORD, ssl=client_context(ca, None, tls_version=tls_version))
    assert "CS-1" not in central3.sessions


@TLS_VERSIONS
async def test_certificate_from_another_ca_fails_the_tls_handshake(
    central3: CentralSystem, ca: trustme.CA, tls_version: ssl.TLSVersion
) -> None:
    await central3.register_station("CS-1")
    with pytest.raises(TLS_REFUSED):
        await open_ws(central3.port, "CS-1", None, ssl=client_context(ca, trustme.CA(), "CS-1", tls_version))
    assert "CS-1" not in central3.sessions


async def test_certificate_of_another_station_is_401(central3: CentralSystem, ca: trustme.CA) -> None:
    await central3.register_station("CS-1")
    await central3.register_station("CS-2")
    with pytest.raises(InvalidStatus) as info:
        await open_ws(central3.port, "CS-1", None, ssl=client_context(ca, ca, "CS-2"))
    assert info.value.response.status_code == 401
    assert "CS-1" not in central3.sessions
    ws = await open_ws(central3.port, "CS-2", None, ssl=client_context(ca, ca, "CS-2"))  # its own id is fine
    await ws.close()


async def test_unknown_station_with_valid_certificate_is_404(central3: CentralSystem, ca: trustme.CA) -> None:
    with pytest.raises(InvalidStatus) as info:
        await open_ws(central3.port, "CS-9", None, ssl=client_context(ca, ca, "CS-9"))
    assert info.value.response.status_code == 404


async def test_auto_registration_with_certificate_answers_pending(tmp_path: Path, ca: trustme.CA) -> None:
    central = await start_central(tmp_path, profile3_security(tmp_path, ca, auto_register=True))
    try:
        ws = await open_ws(central.port, "CS-NEW", None, ssl=client_context(ca, ca, "CS-NEW"))
        station = TestStation(ws)
        try:
            assert (await station.boot())["status"] == "Pending"
        finally:
            await station.close()
        with pytest.raises(InvalidStatus) as info:  # auto-registration still checks the commonName
            await open_ws(central.port, "CS-OTHER", None, ssl=client_context(ca, ca, "CS-NEW"))
        assert info.value.response.status_code == 401
    finally:
        await central.stop()


def test_subject_common_name() -> None:
    cert = {"subject": ((("countryName", "NL"),), (("organizationName", "CPO"),), (("commonName", "CS-1"),))}
    assert subject_common_name(cert) == "CS-1"
    assert subject_common_name(None) is None
    assert subject_common_name({}) is None
    assert subject_common_name({"subject": ((("organizationName", "CPO"),),)}) is None
    two = {"subject": ((("commonName", "CS-1"),), (("commonName", "CS-2"),))}
    assert subject_common_name(two) is None


def test_profile_3_config_needs_the_client_ca_file(tmp_path: Path) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_text("x")
    key.write_text("x")
    config = tmp_path / "csms.toml"
    config.write_text(f'[security]\nprofile = 3\ntls_cert_file = "{cert}"\ntls_key_file = "{key}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert str(info.value) == f"{config}: security.tls_client_ca_file: required when security.profile = 3"

    missing = tmp_path / "nowhere" / "ca.pem"
    config.write_text(config.read_text() + f'tls_client_ca_file = "{missing}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert str(info.value) == f"{config}: security.tls_client_ca_file: file not found: {missing}"

    missing.parent.mkdir()
    missing.write_text("x")
    assert load_settings(config).security.profile == 3


def test_profile_2_config_does_not_need_a_client_ca(tmp_path: Path) -> None:
    config = tmp_path / "csms.toml"
    config.write_text("[security]\nprofile = 2\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert "security.tls_cert_file: required when security.profile = 2" in str(info.value)
    assert "tls_client_ca_file" not in str(info.value)


async def test_unreadable_client_ca_is_a_config_error_at_start(tmp_path: Path, ca: trustme.CA) -> None:
    security = profile3_security(tmp_path, ca)
    assert security.tls_client_ca_file is not None
    security.tls_client_ca_file.write_text("not a certificate\n")
    settings = make_settings(tmp_path)
    settings.security = security
    central = CentralSystem(settings)
    with pytest.raises(ConfigError, match=r"security\.tls_client_ca_file: cannot load"):
        await central.start()
    await central.stop()


@pytest.mark.parametrize("problem", ["missing", "unreadable"])
def test_serve_refuses_to_start_naming_the_client_ca_key(tmp_path: Path, ca: trustme.CA, problem: str) -> None:
    security = profile3_security(tmp_path, ca)
    ca_file = security.tls_client_ca_file
    assert ca_file is not None
    if problem == "missing":
        ca_file.unlink()
    else:
        ca_file.write_text("not a certificate\n")
    config = tmp_path / "csms.toml"
    config.write_text(
        "[security]\nprofile = 3\n"
        f'tls_cert_file = "{security.tls_cert_file}"\ntls_key_file = "{security.tls_key_file}"\n'
        f'tls_client_ca_file = "{ca_file}"\n'
    )
    args = ["serve", "-c", str(config), "--data-dir", str(tmp_path / "data"), "--port", "0", "--api-port", "0"]
    proc = subprocess.run(
        [sys.executable, "-m", "csms", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "configuration error" in proc.stderr
    assert "security.tls_client_ca_file" in proc.stderr
    assert str(ca_file) in proc.stderr
