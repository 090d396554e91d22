"""The station registry changes under a running server (issue 12): stations added, blocked,
unblocked and removed by ``csms admin`` in another process, or through the HTTP API, take effect
at once for new connections, and a removed or blocked station's live connection is closed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from csms.central import CLOSE_POLICY
from tests.support import PASSWORD, TestStation, open_ws, wait_for_api
from tests.test_serve import free_port

CSMS = [sys.executable, "-m", "csms"]
OTHER_PASSWORD = "another-password-0123"


async def admin(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*CSMS, "admin", *args, "--data-dir", str(data_dir)]
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=60, check=False)


@asynccontextmanager
async def serving(data_dir: Path) -> AsyncIterator[tuple[int, int]]:
    """``csms serve`` in its own process, on SQLite in ``data_dir``; yields (ocpp port, api port)."""
    ocpp_port, api_port = free_port(), free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - a long-running server, not awaited
        [*CSMS, "serve", "--port", str(ocpp_port), "--api-port", str(api_port), "--data-dir", str(data_dir)],
        env={**os.environ, "CSMS_SERVER__REGISTRY_POLL_INTERVAL": "0.2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_for_api(api_port)
        yield ocpp_port, api_port
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 15)


async def refused_with(port: int, station_id: str, password: str | None = PASSWORD) -> int:
    with pytest.raises(InvalidStatus) as info:
        await open_ws(port, station_id, password)
    return info.value.response.status_code


async def closed_within(station: TestStation, seconds: float) -> int | None:
    await asyncio.wait_for(station._task, seconds)
    return station.ws.close_code


async def test_a03_station_added_blocked_and_removed_by_the_cli_while_serving(tmp_path: Path) -> None:
    # the database exists before the server starts (as after `make demo`), with one station
    assert (await admin(tmp_path, "add-station", "OLD", "--password", PASSWORD)).returncode == 0
    async with serving(tmp_path) as (port, _api):
        assert await refused_with(port, "NEW") == 404

        added = await admin(tmp_path, "add-station", "NEW", "--password", PASSWORD)
        assert added.returncode == 0, added.stderr
        t0 = time.monotonic()
        station = TestStation(await open_ws(port, "NEW", protocols=["ocpp2.1"]))
        assert (await station.boot())["status"] == "Accepted"
        assert time.monotonic() - t0 < 1.0  # no restart, no waiting for a poll

        assert (await admin(tmp_path, "block-station", "NEW")).returncode == 0
        assert await closed_within(station, 5) == CLOSE_POLICY
        assert await refused_with(port, "NEW") == 403
        assert await refused_with(port, "NEW", "wrong-password-000000") == 401  # credentials first
        assert "already was" in (await admin(tmp_path, "block-station", "NEW")).stdout

        assert (await admin(tmp_path, "unblock-station", "NEW")).returncode == 0
        for _ in range(50):  # the unblock reaches the server's cache through the change feed
            try:
                station = TestStation(await open_ws(port, "NEW"))
                break
            except InvalidStatus:
                await asyncio.sleep(0.1)
        assert (await station.boot())["status"] == "Accepted"

        # a new password from the CLI holds at once: the old one is refused, the new one admitted
        assert (await admin(tmp_path, "add-station", "OLD", "--password", OTHER_PASSWORD)).returncode == 0
        await asyncio.sleep(0.6)
        assert await refused_with(port, "OLD") == 401
        (await open_ws(port, "OLD", OTHER_PASSWORD)).transport.close()

        removed = await admin(tmp_path, "remove-station", "NEW")
        assert removed.returncode == 0, removed.stderr
        assert await closed_within(station, 5) == CLOSE_POLICY
        assert await refused_with(port, "NEW") == 404

    missing = await admin(tmp_path, "remove-station", "NEW")
    assert missing.returncode == 1 and "no station 'NEW'" in missing.stderr
    bad = await admin(tmp_path, "add-station", "a:b", "--password", PASSWORD)
    assert bad.returncode == 2 and "must not contain ':'" in bad.stderr


async def test_station_registry_over_the_http_api(tmp_path: Path) -> None:
    made = await admin(tmp_path, "token", "create", "root", "--scope", "admin")
    assert made.returncode == 0, made.stderr
    admin_token = made.stdout.strip().splitlines()[-1]
    ops = (await admin(tmp_path, "token", "create", "ops", "--scope", "operator")).stdout.strip().splitlines()[-1]
    async with serving(tmp_path) as (port, api_port):
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}/api/v1", headers={"Authorization": f"Bearer {admin_token}"}
        ) as http:
            r = await http.post("/stations", json={"id": "API-1"}, headers={"Authorization": f"Bearer {ops}"})
            assert r.status_code == 403 and r.json()["error"]["details"]["required_scope"] == "admin"
            r = await http.post("/stations", json={"id": "bad:id"})
            assert r.status_code == 422 and "must not contain ':'" in r.text
            r = await http.post("/stations", json={"id": "API-1", "password": "short"})
            assert r.status_code == 422 and "password" in r.text

            r = await http.post("/stations", json={"id": "API-1"})
            assert r.status_code == 201, r.text
            body = r.json()
            assert body["blocked"] is False and body["boot_policy"] == "accept"
            password = body["password"]  # generated, shown once
            assert len(password) >= 16
            assert (await http.post("/stations", json={"id": "API-1"})).status_code == 409

            station = TestStation(await open_ws(port, "API-1", password))
            assert (await station.boot())["status"] == "Accepted"

            r = await http.patch("/stations/API-1", json={"blocked": True})
            assert r.status_code == 200 and r.json()["blocked"] is True and r.json()["password"] is None
            assert await closed_within(station, 5) == CLOSE_POLICY
            assert await refused_with(port, "API-1", password) == 403
            assert (await http.get("/stations/API-1")).json()["blocked"] is True

            r = await http.patch("/stations/API-1", json={"blocked": False, "boot_policy": "pending"})
            assert r.status_code == 200 and r.json()["boot_policy"] == "pending"
            station = TestStation(await open_ws(port, "API-1", password))
            assert (await station.boot())["status"] == "Pending"

            assert (await http.delete("/stations/API-1")).status_code == 204
            assert await closed_within(station, 5) == CLOSE_POLICY
            assert await refused_with(port, "API-1", password) == 404
            r = await http.delete("/stations/API-1")
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_station"
            assert (await http.patch("/stations/NOPE", json={"blocked": True})).status_code == 404
