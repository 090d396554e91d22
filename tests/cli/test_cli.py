"""The technician's commands against a running CSMS with simulated stations: printed results,
--json output, progress of long operations, and errors that say what to do next."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from csms.clock import to_rfc3339
from tests.api.support import now_ts, wait_for
from tests.cli.conftest import Cli


def js(result: object) -> object:
    return json.loads(result.stdout)  # type: ignore[attr-defined]


async def test_stations_table_and_json(cli: Cli) -> None:
    await cli.env.connect("FE-0001")
    await wait_for(lambda: _connected(cli))
    r = await cli("stations")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    fe1 = next(line for line in lines if line.startswith("FE-0001"))
    assert "online" in fe1 and "Accepted" in fe1 and "Fermata FE-20" in fe1 and "2.0.1" in fe1
    fe3 = next(line for line in lines if line.startswith("FE-0003"))
    assert "offline" in fe3 and "never booted" in fe3
    assert "3 stations" in r.stdout
    r = await cli("stations", "--connected", "--json")
    assert r.exit_code == 0
    page = js(r)
    assert [s["id"] for s in page["items"]] == ["FE-0001"] and page["next_offset"] is None
    r = await cli("stations", "--limit", "2")
    assert "more with --offset 2" in r.stdout
    r = await cli("stations", "--status", "sleeping")
    assert r.exit_code == 2 and "expected a boot status (Accepted, Pending, Rejected), got 'sleeping'" in r.output


async def _connected(cli: Cli) -> bool:
    return bool(await cli.env.store.list_stations(connected=True))


async def test_station_health_summary(cli: Cli) -> None:
    station = await cli.env.connect("FE-0001")
    await station.call(
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": now_ts(),
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-42", "chargingState": "Charging"},
            "evse": {"id": 1, "connectorId": 1},
            "idToken": {"idToken": "TOKEN-1", "type": "Central"},
        },
    )
    await station.call("SecurityEventNotification", {"type": "TamperDetectionActivated", "timestamp": now_ts()})
    await station.ws.send('[2,"bad-1","Heartbeat",{"unexpected":1}]')
    await cli.env.store.flush()
    await asyncio.sleep(0.6)  # frames are written in batches
    await cli.env.store.flush()
    r = await cli("station", "FE-0001")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert out.startswith("FE-0001  ● connected since")
    assert "Fermata FE-20" in out and "OCPP 2.0.1" in out and "boot Accepted (policy accept)" in out
    assert "active transaction TX-42 on EVSE 1" in out and "token TOKEN-1" in out
    assert "profiles: none" in out
    assert "← BootNotification" in out and "← TransactionEvent" in out
    assert "recent errors" in out and "CSMS sent FormatViolation to Heartbeat" in out
    assert "TamperDetectionActivated" in out
    r = await cli("station", "FE-0001", "--json")
    data = js(r)
    assert data["station"]["id"] == "FE-0001" and data["active_transactions"][0]["transaction_id"] == "TX-42"
    assert data["recent_errors"][0]["error_code"] == "FormatViolation"
    assert data["security_events"][0]["type"] == "TamperDetectionActivated"
    r = await cli("station", "FE-0003")
    assert r.exit_code == 0 and "○ offline never seen" in r.stdout and "no EVSE reported yet" in r.stdout
    r = await cli("station", "FE-0001", "tail")
    assert r.exit_code == 2 and "expected 'watch'" in r.output


async def test_watch_tails_frames(cli: Cli) -> None:
    station = await cli.env.connect("FE-0001")
    await cli.env.quiet("FE-0001")

    async def traffic() -> None:
        await asyncio.sleep(1.0)
        for _ in range(2):
            await station.call("Heartbeat", {})

    task = asyncio.create_task(traffic())
    r = await cli("station", "FE-0001", "watch", "--history", "2", "--count", "6", "--interval", "0.2")
    await task
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 6
    assert sum("← Heartbeat" in line for line in lines) == 2
    assert sum("Heartbeat result" in line and "→" in line for line in lines) == 2
    assert "watching FE-0001 (connected)" in r.stderr
    r = await cli("station", "FE-0001", "watch", "--history", "3", "--duration", "0.3", "--json")
    frames = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(frames) == 3 and all({"id", "direction", "message_type", "frame"} <= set(f) for f in frames)


async def test_commands_print_the_ocpp_result(cli: Cli) -> None:
    station = await cli.env.connect("FE-0001")
    r = await cli("reset", "FE-0001", "--type", "immediate")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == "FE-0001 Reset: Accepted"
    assert 'OCPP response: {"status": "Accepted"}' in r.stdout
    assert station.calls_of("Reset")[-1] == {"type": "Immediate"}

    r = await cli("reset", "FE-0001", "--json")
    data = js(r)
    assert data["request"] == {"type": "OnIdle"} and data["response"] == {"status": "Accepted"}

    r = await cli("unlock", "FE-0001", "--evse", "1")
    assert "FE-0001 UnlockConnector: Unlocked" in r.stdout
    r = await cli("unlock", "FE-0001", "--evse", "1", "--connector", "2")
    assert "UnknownConnector" in r.stdout and r.exit_code == 0

    r = await cli("availability", "FE-0001", "--evse", "1", "inoperative")
    assert "ChangeAvailability: Accepted" in r.stdout
    assert station.calls_of("ChangeAvailability")[-1] == {"operationalStatus": "Inoperative", "evse": {"id": 1}}
    r = await cli("availability", "FE-0001", "broken")
    assert r.exit_code == 2 and "expected an operational status (Operative, Inoperative), got 'broken'" in r.output

    r = await cli("get-variable", "FE-0001", "OCPPCommCtrlr.HeartbeatInterval", "Foo.Bar")
    assert r.exit_code == 0, r.output
    rows = r.stdout.splitlines()
    assert any("OCPPCommCtrlr" in x and "HeartbeatInterval" in x and "Accepted" in x and "300" in x for x in rows)
    assert any("Foo" in x and "UnknownVariable" in x for x in rows)
    r = await cli("get-variable", "FE-0001", "NoDotHere")
    assert r.exit_code == 2 and "expected Component.Variable" in r.output

    r = await cli("set-variable", "FE-0001", "OCPPCommCtrlr.HeartbeatInterval", "60")
    assert any("HeartbeatInterval" in x and "Accepted" in x for x in r.stdout.splitlines())
    r = await cli("get-variable", "FE-0001", "OCPPCommCtrlr.HeartbeatInterval", "--json")
    assert js(r)["response"]["getVariableResult"][0]["attributeValue"] == "60"
    r = await cli("set-variable", "FE-0001", "Identity.SerialNumber", "X")
    assert "Rejected" in r.stdout

    r = await cli("trigger", "FE-0001", "statusnotification", "--evse", "1")
    assert "TriggerMessage: Accepted" in r.stdout
    r = await cli("trigger", "FE-0001", "Coffee")
    assert r.exit_code == 2 and "expected a message" in r.output

    r = await cli("start", "FE-0001", "--id-token", "04A2B3", "--id-type", "ISO14443", "--evse", "1", "--json")
    data = js(r)
    assert data["response"]["status"] == "Accepted"
    tx = data["response"]["transactionId"]
    r = await cli("stop", "FE-0001", tx)
    assert "RequestStopTransaction: Accepted" in r.stdout
    r = await cli("stop", "FE-0001", tx)
    assert "RequestStopTransaction: Rejected" in r.stdout

    r = await cli("report", "FE-0001")
    assert "GetBaseReport: Accepted" in r.stdout


async def test_profiles_and_composite(cli: Cli, tmp_path: Path) -> None:
    await cli.env.connect("FE-0001")
    profile = {
        "id": 21,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": to_rfc3339(cli.env.central.now()),
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}],
            }
        ],
    }
    f = tmp_path / "profile.json"
    f.write_text(json.dumps(profile))
    r = await cli("set-profile", "FE-0001", str(f), "--evse", "1")
    assert "SetChargingProfile: Accepted" in r.stdout, r.output
    r = await cli("profiles", "FE-0001")
    row = next(x for x in r.stdout.splitlines() if x.lstrip().startswith("21"))
    assert "TxDefaultProfile" in row and "operator" in row and "0s:11000.0W" in row
    assert js(await cli("profiles", "FE-0001", "--json"))[0]["profile_id"] == 21

    r = await cli("composite", "FE-0001", "--evse", "1", "--duration", "3600")
    assert "GetCompositeSchedule: Accepted" in r.stdout and "11000 W" in r.stdout
    r = await cli("composite", "FE-0001", "--evse", "1", "--duration", "600", "--predicted")
    assert "predicted composite schedule" in r.stdout and "11000 W" in r.stdout
    r = await cli("composite", "FE-0001", "--evse", "1", "--predicted", "--json")
    assert js(r)["periods"][0]["limit"] == 11000.0

    r = await cli("clear-profile", "FE-0001")
    assert r.exit_code == 2 and "say which profiles" in r.output
    r = await cli("clear-profile", "FE-0001", "--id", "21")
    assert "ClearChargingProfile: Accepted" in r.stdout
    r = await cli("profiles", "FE-0001")
    assert "no charging profiles recorded for FE-0001" in r.stdout
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    r = await cli("set-profile", "FE-0001", str(bad))
    assert r.exit_code == 2 and "is not JSON" in r.output


async def test_firmware_and_log_show_progress_until_done(cli: Cli) -> None:
    await cli.env.connect("FE-0001")
    r = await cli("firmware", "FE-0001", "https://fw.example.com/fe20-2.5.0.bin", "--interval", "0.1")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "UpdateFirmware: Accepted" in out
    positions = [out.index(s) for s in ("Downloading", "Downloaded", "Installing", "Installed")]
    assert positions == sorted(positions)
    assert out.rstrip().endswith("FE-0001: Installed")

    r = await cli("firmware", "FE-0001", "https://fw.example.com/fail.bin", "--interval", "0.1")
    assert r.exit_code == 1 and "DownloadFailed" in r.stdout and "UpdateFirmware failed: DownloadFailed" in r.stderr

    r = await cli("firmware", "FE-0001", "https://fw.example.com/x.bin", "--interval", "0.1", "--json")
    data = js(r)
    assert data["final_status"] == "Installed"
    assert [n["payload"]["status"] for n in data["notifications"]][-1] == "Installed"

    r = await cli("firmware", "FE-0001", "https://fw.example.com/x.bin", "--no-wait")
    assert r.exit_code == 0 and "Installed" not in r.stdout

    r = await cli("get-log", "FE-0001", "ftp://logs.example.com/", "--type", "securitylog", "--interval", "0.1")
    assert r.exit_code == 0, r.output
    assert "GetLog: Accepted" in r.stdout and "Uploading" in r.stdout and "FE-0001: Uploaded" in r.stdout


async def test_errors_say_what_to_do_next(cli: Cli) -> None:
    await cli.env.connect("FE-0001")
    r = await cli("reset", "FE-0001", token="csms_wrong")
    assert r.exit_code == 1
    assert "error: invalid or revoked API token" in r.stderr and "csms admin token create" in r.stderr
    r = await cli("stations", token=None)
    assert r.exit_code == 1 and "no API token given" in r.stderr
    r = await cli("reset", "FE-0001", token="read")
    assert r.exit_code == 1 and "scope 'operator'" in r.stderr
    r = await cli("reset", "FE-0002")
    assert r.exit_code == 1
    assert "FE-0002 is offline (never connected)" in r.stderr and "check the station's power" in r.stderr
    r = await cli("reset", "FE-001")
    assert r.exit_code == 1 and "unknown station 'FE-001'" in r.stderr and "did you mean" in r.stderr
    assert "csms stations" in r.stderr
    r = await cli("unlock", "FE-001", "--json")
    err = js(r)["error"]
    assert r.exit_code == 1 and err["code"] == "unknown_station" and err["status"] == 404
    assert err["details"]["close_matches"] and "close matches: FE-0001" in err["hint"]
    r = await cli("stations", url="http://127.0.0.1:9")
    assert r.exit_code == 1 and "cannot reach the CSMS API" in r.stderr and "csms serve" in r.stderr
    r = await cli("stations", url="ftp://x")
    assert r.exit_code == 2 and "--url must start with http" in r.stderr
    r = await cli("reset", "FE-0001", "--type", "later")
    assert r.exit_code == 2 and "expected a reset type (Immediate, OnIdle, ImmediateAndResume), got 'later'" in r.output
    r = await cli("reset", "FE-0001", "--type", "ImmediateAndResume")  # a 2.0.1 station
    assert r.exit_code == 1 and "OCPP 2.0.1 schema at 'type'" in r.stderr and "OCPP field 'type'" in r.stderr
    r = await cli("unlock", "FE-0001", "--evse", "zero")
    assert r.exit_code == 2 and "'--evse'" in r.output and "integer" in r.output


async def test_callerror_and_timeout_from_the_station(cli: Cli) -> None:
    await cli.env.connect("FE-0001", errors={"UnlockConnector": "NotSupported"}, delay={"Reset": 3})
    r = await cli("unlock", "FE-0001", "--evse", "1")
    assert r.exit_code == 1 and "CALLERROR NotSupported" in r.stderr and "does not implement" in r.stderr
    r = await cli("reset", "FE-0001", "--timeout", "1")
    assert r.exit_code == 1 and "did not answer Reset within 1 s" in r.stderr and "retry" in r.stderr


async def test_history_commands(cli: Cli) -> None:
    station = await cli.env.connect("FE-0001")
    base = {"evse": {"id": 1, "connectorId": 1}, "transactionInfo": {"transactionId": "TX-9"}}
    await station.call(
        "TransactionEvent",
        {
            **base,
            "eventType": "Started",
            "timestamp": now_ts(),
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "meterValue": [
                {
                    "timestamp": now_ts(),
                    "sampledValue": [{"value": 1234.5, "measurand": "Energy.Active.Import.Register"}],
                }
            ],
        },
    )
    await cli.env.store.flush()
    r = await cli("transactions", "FE-0001", "--active")
    assert any("TX-9" in x and "FE-0001" in x for x in r.stdout.splitlines()), r.output
    assert js(await cli("transactions", "--json"))["items"][0]["transaction_id"] == "TX-9"
    r = await cli("meter", "FE-0001", "--since", "1h")
    assert any("Energy.Active.Import.Register" in x and "1234.5" in x for x in r.stdout.splitlines()), r.output
    r = await cli("meter", "FE-0001", "--since", "yesterday")
    assert r.exit_code == 2 and "expected RFC 3339" in r.output


async def test_id_tokens(cli: Cli) -> None:
    r = await cli("id-token", "add", "04A2B3C4", "--group", "fleet-a", "--energy-transfer", "DC_BPT")
    assert r.exit_code == 0 and "ISO14443/04A2B3C4: Accepted" in r.stdout, r.output
    r = await cli("id-token", "list")
    assert any("04A2B3C4" in x and "fleet-a" in x and "DC_BPT" in x for x in r.stdout.splitlines())
    r = await cli("id-token", "add", "04A2B3C4", "--status", "blocked", "--json")
    assert js(r)["status"] == "Blocked"
    r = await cli("id-token", "remove", "04A2B3C4")
    assert "removed" in r.stdout
    r = await cli("id-token", "remove", "04A2B3C4")
    assert r.exit_code == 1 and "no id token" in r.stderr


async def test_fleet_commands_with_progress(cli: Cli) -> None:
    a = await cli.env.connect("FE-0001")
    b = await cli.env.connect("FE-0002", version="2.1")
    await wait_for(lambda: _count_connected(cli, 2))
    r = await cli("fleet", "reset", "--type", "Immediate")
    assert r.exit_code == 0, r.output
    assert "2/2 stations answered" in r.stdout
    assert a.calls_of("Reset") and b.calls_of("Reset")
    r = await cli("fleet", "trigger", "Heartbeat", "--json")
    assert [(x["station_id"], x["status"]) for x in js(r)] == [("FE-0001", "Accepted"), ("FE-0002", "Accepted")]
    r = await cli("fleet", "set-variable", "OCPPCommCtrlr.HeartbeatInterval", "120", "-s", "FE-0001", "-s", "FE-0003")
    assert r.exit_code == 1
    assert any("FE-0001" in x and "Accepted" in x for x in r.stdout.splitlines())
    assert any("FE-0003" in x and "station_offline" in x for x in r.stdout.splitlines())
    r = await cli("fleet", "firmware", "https://fw.example.com/fe20-2.5.0.bin", "--interval", "0.1")
    assert r.exit_code == 0, r.output
    assert sum("Installed" in x for x in r.stdout.splitlines()) == 2


async def _count_connected(cli: Cli, n: int) -> bool:
    return len(await cli.env.store.list_stations(connected=True)) == n


async def test_login_config_file_and_whoami(cli: Cli) -> None:
    r = await cli("login", cli.env.url, "--token", cli.env.read_token, env={"CSMS_API_TOKEN": ""})
    assert r.exit_code == 0, r.output
    assert "logged in" in r.stdout and "reader" in r.stdout
    assert cli.config.stat().st_mode & 0o777 == 0o600
    # no flags, no environment: the config file is used
    r = await cli("whoami", "--json", env={"CSMS_API_URL": "", "CSMS_API_TOKEN": ""})
    assert js(r) == {"name": "reader", "scope": "read", "url": cli.env.url}
    # flags beat the config file
    r = await cli("whoami", "--token", cli.env.operator_token, env={"CSMS_API_URL": "", "CSMS_API_TOKEN": ""})
    assert "scope operator" in r.stdout


async def test_admin_tokens_on_the_servers_database(cli: Cli) -> None:
    data_dir = str(cli.env.central.settings.data_dir)
    r = await cli("admin", "token", "create", "tech-anna", "--scope", "operator", "--data-dir", data_dir)
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    assert token.startswith("csms_") and "shown only now" in r.stderr
    r = await cli("whoami", token=token)
    assert "tech-anna" in r.stdout and "scope operator" in r.stdout
    r = await cli("admin", "token", "create", "tech-anna", "--data-dir", data_dir)
    assert r.exit_code == 1 and "already exists" in r.stderr
    r = await cli("admin", "token", "create", "x", "--scope", "root", "--data-dir", data_dir)
    assert r.exit_code == 2 and "--scope must be one of read, operator, admin" in r.stderr
    r = await cli("admin", "token", "list", "--data-dir", data_dir, "--json")
    rows = {t["name"]: t for t in js(r)}
    assert rows["tech-anna"]["scope"] == "operator" and not rows["tech-anna"]["revoked"]
    assert token not in r.stdout
    r = await cli("admin", "token", "revoke", "tech-anna", "--data-dir", data_dir)
    assert r.exit_code == 0
    r = await cli("whoami", token=token)
    assert r.exit_code == 1 and "revoked" in r.stderr
    r = await cli("admin", "token", "revoke", "tech-anna", "--data-dir", data_dir)
    assert r.exit_code == 1 and "no active token" in r.stderr


async def test_other_command_groups_are_mounted(cli: Cli) -> None:
    r = await cli("--help")
    for name in ("serve", "admin", "stations", "station", "reset", "firmware", "fleet", "simulate"):
        assert name in r.stdout
    r = await cli("admin", "add-station", "--help")
    assert r.exit_code == 0
    try:
        import simulators.cli  # noqa: F401
    except ImportError:
        pass
    else:
        r = await cli("simulate", "--help")
        assert r.exit_code == 0 and "Usage: csms simulate" in r.stdout and "run" in r.stdout
    try:
        from csms.grid.cli import event_app  # noqa: F401
    except ImportError:
        pass
    else:
        r = await cli("event", "--help")
        assert r.exit_code == 0 and "Grid events" in r.stdout
