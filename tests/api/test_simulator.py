"""The API and the CLI against the bundled station simulator (simulators.Station: real firmware
state machine, device model, EV sessions, firmware update with reboot), on both OCPP versions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from csms.clock import Clock
from tests.api.support import Env, server_logs_to_stderr, wait_for
from tests.support import PASSWORD

simulators = pytest.importorskip("simulators")


@pytest.fixture
async def sim_factory(env: Env) -> AsyncIterator[Any]:
    started: list[Any] = []

    async def make(station_id: str = "FE-0001", version: str = "2.0.1") -> Any:
        cfg = simulators.StationConfig(id=station_id, password=PASSWORD, ocpp=[version], reboot_s=2)
        st = simulators.Station(cfg, Clock(speed=300), f"ws://127.0.0.1:{env.ocpp_port}/ocpp")
        await st.start()
        started.append(st)
        await st.wait_online()
        return st

    yield make
    for st in started:
        await st.stop()


async def cmd(env: Env, action: str, body: dict[str, Any], station: str = "FE-0001") -> dict[str, Any]:
    async with env.client() as c:
        r = await c.post(f"/api/v1/stations/{station}/commands/{action}", json=body)
    assert r.status_code == 200, (action, r.text)
    return r.json()["response"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
async def test_every_command_against_the_simulator(env: Env, sim_factory: Any, version: str) -> None:
    await sim_factory(version=version)
    got = await cmd(
        env, "GetVariables", {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]}
    )
    assert got["getVariableResult"][0]["attributeStatus"] == "Accepted"
    got = await cmd(
        env,
        "SetVariables",
        {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "120"}]},
    )
    assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
    got = await cmd(
        env, "GetVariables", {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]}
    )
    assert got["getVariableResult"][0]["attributeValue"] == "120"
    trig = {"requested_message": "StatusNotification", "evse_id": 1, "connector_id": 1}
    assert (await cmd(env, "TriggerMessage", trig))["status"] == "Accepted"
    assert (await cmd(env, "ChangeAvailability", {"operational_status": "Inoperative", "evse_id": 1}))[
        "status"
    ] == "Accepted"

    async def unavailable() -> bool:
        async with env.client("read") as c:
            live = (await c.get("/api/v1/stations/FE-0001/status")).json()
        return live["evses"][0]["connectors"][0]["status"] == "Unavailable"

    await wait_for(unavailable)
    assert (await cmd(env, "ChangeAvailability", {"operational_status": "Operative"}))["status"] == "Accepted"
    assert (await cmd(env, "UnlockConnector", {"evse_id": 1}))["status"] == "Unlocked"
    assert (await cmd(env, "GetBaseReport", {"report_base": "SummaryInventory"}))["status"] == "Accepted"
    profile = {
        "id": 7,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}]}
        ],
    }
    assert (await cmd(env, "SetChargingProfile", {"evse_id": 1, "charging_profile": profile}))["status"] == "Accepted"
    comp = await cmd(env, "GetCompositeSchedule", {"evse_id": 1, "duration": 600})
    assert comp["status"] == "Accepted" and comp["schedule"]["chargingSchedulePeriod"][0]["limit"] == 11000.0
    assert (await cmd(env, "ClearChargingProfile", {"charging_profile_id": 7}))["status"] == "Accepted"
    assert (await cmd(env, "RequestStartTransaction", {"id_token": "TOKEN-1", "evse_id": 1}))["status"] == "Accepted"
    stop = await cmd(env, "RequestStopTransaction", {"transaction_id": "no-such-tx"})
    assert stop["status"] == "Rejected"
    log = await cmd(env, "GetLog", {"remote_location": "https://logs.example.com/upload"})
    assert log["status"] == "Accepted" and log["filename"].startswith("FE-0001-DiagnosticsLog")
    assert (await cmd(env, "UpdateFirmware", {"location": "https://fw.example.com/fe20-2.5.0.bin"}))[
        "status"
    ] == "Accepted"

    async def firmware_done() -> list[str] | None:
        async with env.client("read") as c:
            items = (await c.get("/api/v1/stations/FE-0001/events", params={"kind": "FirmwareStatus"})).json()["items"]
        statuses = [e["payload"]["status"] for e in reversed(items)]
        return statuses if "Installed" in statuses else None

    statuses = await wait_for(firmware_done, timeout=20)
    assert statuses[:3] == ["Downloading", "Downloaded", "Installing"] and statuses[-1] == "Installed"

    async def rebooted_with_new_firmware() -> bool:
        async with env.client("read") as c:
            d = (await c.get("/api/v1/stations/FE-0001")).json()
        return bool(d["connected"] and d["firmware_version"] == "fe20-2.5.0")

    await wait_for(rebooted_with_new_firmware, timeout=20)
    assert (await cmd(env, "Reset", {"type": "Immediate"}))["status"] == "Accepted"


async def test_cli_against_a_simulated_station(env: Env, sim_factory: Any, tmp_path: Path) -> None:
    from tests.cli.conftest import Cli

    # the station is made inside: its logger, bound at construction, must not print debug lines
    # (a loaded machine's "clock lag") into the command's stdout either
    with server_logs_to_stderr():
        st = await sim_factory(version="2.1")
        # an Unknown token would (rightly) make the station end the transaction it started on plug-in
        await env.store.upsert_id_token("TOKEN-1", "eMAID", status="Accepted")
        st.plug_in(1, soc=40, id_token="TOKEN-1")
        cli = Cli(env, tmp_path / "cli.toml")
        await _cli_session(env, st, cli)


async def _cli_session(env: Env, st: Any, cli: Any) -> None:

    async def charging() -> bool:
        txs = await env.store.list_transactions(station_id="FE-0001", active=True)
        return bool(txs)

    await wait_for(charging, timeout=10)
    r = await cli("station", "FE-0001")
    assert r.exit_code == 0, r.output
    assert "● connected" in r.stdout and "OCPP 2.1" in r.stdout and "active transaction" in r.stdout, r.stdout
    r = await cli("get-variable", "FE-0001", "SmartChargingCtrlr.RateUnit", "--json")
    assert json.loads(r.stdout)["response"]["getVariableResult"][0]["attributeStatus"] == "Accepted"
    st.ev_leaves(1)
    r = await cli("firmware", "FE-0001", "https://fw.example.com/fe20-2.6.0.bin", "--interval", "0.2")
    assert r.exit_code == 0, r.output
    assert "Downloading" in r.stdout and r.stdout.rstrip().endswith("FE-0001: Installed")
