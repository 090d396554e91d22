"""Shared fixtures: a real CSMS on an ephemeral port with a temporary SQLite database, and
real services (PostgreSQL, Mosquitto) that must be present when CI=true."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from csms.central import CentralSystem
from csms.config import ApiSettings, SecuritySettings, ServerSettings, Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("CSMS_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


# `make test` runs the suite on two pytest-xdist workers (-n 2 --dist loadgroup). The tests marked
# here go to one worker, one after another, in collection order: the accelerated-clock end-to-end
# runs (their timing was tuned for one at a time on the 2-core machine), the cluster (several
# `csms serve` processes) and everything on the Mosquitto broker, which two tests stop and restart.
SERIAL_MARKS = ("slow", "mqtt", "cluster")
SERIAL_GROUP = "serial"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker under --dist loadgroup, name the group in the test id as xdist's own
    ``xdist_group`` marker would: xdist 3.8 writes it to ``item._nodeid``, which pytest 9.2 no
    longer reads (the id lives in ``item._id``), so the marker alone groups nothing."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        if "@" not in item.nodeid and any(item.get_closest_marker(mark) for mark in SERIAL_MARKS):
            item._id = type(item._id).parse(f"{item.nodeid}@{SERIAL_GROUP}")  # type: ignore[attr-defined]


def service_up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Fail in CI, skip (with the reason printed) elsewhere, when a real service is missing."""
    if service_up(host, port):
        return
    msg = f"{name} not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{msg} (CI=true: real services are required)")
    pytest.skip(msg)


def make_settings(tmp_path: Path, **server: object) -> Settings:
    return Settings(
        data_dir=tmp_path,
        server=ServerSettings(host="127.0.0.1", port=0, ping_interval=5, **server),
        api=ApiSettings(enabled=False),
    )


@pytest.fixture
async def central(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    c = CentralSystem(make_settings(tmp_path, call_timeout=5))
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def start_central(tmp_path: Path, security: SecuritySettings) -> CentralSystem:
    """A started CSMS with these security settings (the caller stops it)."""
    settings = make_settings(tmp_path, call_timeout=5)
    settings.security = security
    central = CentralSystem(settings)
    await central.start()
    return central


def profile3_security(tmp_path: Path, ca: Any, **extra: Any) -> SecuritySettings:
    """Security profile 3 with a server certificate from the trustme ``ca``, which also signs the
    stations' client certificates (written to ``stations-ca.pem``)."""
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "stations-ca.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for blob in server_cert.cert_chain_pems[1:]:
        blob.write_to_path(str(cert_file), append=True)
    server_cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    return SecuritySettings(
        profile=3, tls_cert_file=cert_file, tls_key_file=key_file, tls_client_ca_file=ca_file, **extra
    )
