"""``csms serve`` as operators run it: a real process with the admin commands, a station,
grid intake over HTTP and MQTT, and a graceful SIGTERM (close 1001, data flushed)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_service
from tests.support import PASSWORD, TestStation, open_ws, wait_for_api

CSMS = [sys.executable, "-m", "csms"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CSMS, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.mark.mqtt
async def test_serve_process_end_to_end(tmp_path: Path) -> None:
    require_service("Mosquitto", "127.0.0.1", 1883)
    import aiomqtt

    topic = f"csms-test-{uuid.uuid4().hex[:8]}"
    ocpp_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "CSMS_MQTT__ENABLED": "true",
        "CSMS_MQTT__EVENT_TOPIC": f"{topic}/events",
        "CSMS_MQTT__STATUS_TOPIC": f"{topic}/status",
        "CSMS_MQTT__CLIENT_ID": f"csms-{topic}",
    }
    data = ["--data-dir", str(tmp_path)]
    assert run("admin", "add-station", "CS-P1", "--password", PASSWORD, *data, env=env).returncode == 0
    created = run("admin", "token", "create", "ops", "--scope", "operator", *data, env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    bad = run("admin", "add-station", "CS-P2", "--password", "short", *data, env=env)
    assert bad.returncode == 2 and "16-40 characters" in bad.stderr

    proc = subprocess.Popen(  # noqa: ASYNC220 - a long-running server, not awaited
        [*CSMS, "serve", "--port", str(ocpp_port), "--api-port", str(api_port), *data],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers=headers) as http:
            await wait_for_api(api_port)
            station = TestStation(await open_ws(ocpp_port, "CS-P1", protocols=["ocpp2.1"]))
            assert (await station.boot())["status"] == "Accepted"

            event = {
                "id": f"{topic}-http",
                "program": "test",
                "direction": "export",
                "intervals": [{"start": "2030-01-01T16:00:00Z", "end": "2030-01-01T21:00:00Z", "target_kw": 40}],
            }
            r = await http.post("/grid/events", json=event)
            assert r.status_code == 201, r.text
            async with aiomqtt.Client("127.0.0.1", 1883) as mqtt:
                await mqtt.subscribe(f"{topic}/status/#", qos=1)
                await mqtt.publish(f"{topic}/events", json.dumps({**event, "id": f"{topic}-mqtt"}).encode(), qos=1)
                async with asyncio.timeout(10):
                    async for msg in mqtt.messages:
                        if str(msg.topic) == f"{topic}/status/{topic}-mqtt/ack":
                            assert json.loads(msg.payload)["accepted"] is True
                            break
            ids = {e["id"] for e in (await http.get("/grid/events")).json()["events"]}
            assert {f"{topic}-http", f"{topic}-mqtt"} <= ids

        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(station._task, 10)
        assert station.ws.close_code == 1001
        assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.stdout.read() if proc.stdout else ""
    assert "ocpp server stopped" in output
    listed = run("admin", "token", "list", "--json", *data, env=env)
    assert listed.returncode == 0 and "ops" in listed.stdout
