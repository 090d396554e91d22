"""Shared fixtures: a real CSMS on an ephemeral port with a temporary SQLite database, and
real services (PostgreSQL, Mosquitto) that must be present when CI=true."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from csms.central import CentralSystem
from csms.config import ApiSettings, ServerSettings, Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("CSMS_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


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
