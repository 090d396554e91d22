"""The fleet runner over real sockets against a minimal in-test CSMS (tests/simulators/minicsms.py)."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest

from csms.clock import Clock
from csms.ocpp.errors import CallErrorReceived, CallTimeout
from simulators import Fleet, FleetConfig, StationConfig

from .minicsms import MiniCsms

pytestmark = pytest.mark.timeout(60)

EPOCH = datetime(2026, 8, 18, 23, 0, tzinfo=UTC)


def clock(speed: float = 60.0) -> Clock:
    return Clock(EPOCH, speed)


def fleet_of(csms: MiniCsms, *stations: StationConfig, **kw: object) -> Fleet:
    return Fleet(FleetConfig(url=csms.url, stations=list(stations), **kw), csms.clock, record=True)  # type: ignore[arg-type]


async def test_subprotocol_preference_boot_status_and_heartbeat() -> None:
    async with MiniCsms(clock(100)) as csms:
        fleet = fleet_of(
            csms,
            StationConfig(id="A", ocpp=["2.1", "2.0.1"]),
            StationConfig(id="B", ocpp=["2.0.1", "2.1"]),
            StationConfig(id="C", ocpp=["2.0.1"]),
        )
        csms.boot_status = lambda sid, n: ("Accepted", 20)
        async with fleet:
            await fleet.wait_online(10)
            assert {s.id: s.version for s in fleet} == {"A": "2.1", "B": "2.0.1", "C": "2.0.1"}
            boot = csms.of("A", "BootNotification")[0]
            assert boot["reason"] == "PowerUp" and boot["chargingStation"]["vendorName"] == "Fermata Energy"
            assert [p["connectorStatus"] for p in csms.of("A", "StatusNotification")] == ["Available"]
            # heartbeat every 20 simulated s = 0.2 wall s at x100
            await csms.wait_for(lambda: len(csms.of("C", "Heartbeat")) >= 3, timeout=5)


async def test_boot_pending_then_accepted_and_csms_calls_while_pending() -> None:
    async with MiniCsms(clock(100)) as csms:
        csms.boot_status = lambda sid, n: ("Pending", 30) if n < 2 else ("Accepted", 300)
        fleet = fleet_of(csms, StationConfig(id="P1"))
        async with fleet:
            await csms.wait_for(lambda: csms.boots.get("P1", 0) >= 1)
            st = fleet["P1"]
            assert st.registration in ("Pending", "")
            # the CSMS may read the device model while the station is pending
            res = await csms.call("P1", "GetVariables", {"getVariableData": [
                {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "Identity"}}]})  # fmt: skip
            assert res["getVariableResult"][0]["attributeValue"] == "P1"
            await st.wait_online(5)
            assert csms.boots["P1"] == 3
            assert st.heartbeat_interval == 300
            assert not csms.of("P1", "Heartbeat")


async def test_subprotocol_mismatch_never_comes_online() -> None:
    async with MiniCsms(clock(100), accept=("ocpp2.0.1",)) as csms:
        fleet = fleet_of(csms, StationConfig(id="ONLY21", ocpp=["2.1"]), StationConfig(id="BOTH"))
        async with fleet:
            await fleet["BOTH"].wait_online(5)
            assert fleet["BOTH"].version == "2.0.1"
            await asyncio.sleep(0.3)
            assert not fleet["ONLY21"].online and "ONLY21" not in csms.boots


async def test_basic_auth_rejection_retry_and_password_rotation() -> None:
    async with MiniCsms(clock(100)) as csms:
        cfg = StationConfig(id="AUTH-1", password="wrong-password-0000")
        csms.passwords = {"AUTH-1": "right-password-1111"}
        fleet = fleet_of(csms, cfg)
        async with fleet:
            await asyncio.sleep(0.3)
            st = fleet["AUTH-1"]
            assert not st.online
            st.password = "right-password-1111"  # fixed on the unit (e.g. by the installer)
            await st.wait_online(5)
            # the CSMS rotates the password: the station reconnects with the new one
            csms.passwords["AUTH-1"] = "rotated-password-2222"
            res = await csms.call("AUTH-1", "SetVariables", {"setVariableData": [{
                "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
                "attributeValue": "rotated-password-2222"}]})  # fmt: skip
            assert res["setVariableResult"][0]["attributeStatus"] == "Accepted"
            await csms.wait_for(lambda: csms.connects.get("AUTH-1", 0) >= 2, timeout=5)
            await st.wait_online(5)
            assert csms.boots["AUTH-1"] == 1  # a reconnection, not a reboot


async def test_disconnect_backoff_and_offline_queue_over_sockets() -> None:
    async with MiniCsms(clock(60)) as csms:
        cfg = StationConfig(id="NET-1", tx_updated_interval_s=10, aligned_interval_s=0)
        fleet = fleet_of(csms, cfg)
        async with fleet:
            st = fleet["NET-1"]
            await st.wait_online(5)
            st.plug_in(1, soc=30.0, target_soc=90.0, departure_s=3600)
            await csms.wait_for(lambda: any(p["triggerReason"] == "ChargingStateChanged"
                                            for p in csms.of("NET-1", "TransactionEvent")))  # fmt: skip
            cut = csms.clock.timestamp()
            st.disconnect(90)  # 1.5 wall s offline
            await asyncio.sleep(0.5)
            assert not st.online
            queued = [p for p in st.queued("TransactionEvent") if p["timestamp"] > cut]
            assert queued and all(p["offline"] for p in queued)
            await csms.wait_for(lambda: csms.connects.get("NET-1", 0) >= 2, timeout=10)
            await st.wait_online(5)
            await st.wait_idle_outbox(5)
            tes = csms.of("NET-1", "TransactionEvent")
            seqs = [p["seqNo"] for p in tes]
            # in order; an event whose CALLRESULT was lost in the cut is sent again (same seqNo)
            assert seqs == sorted(seqs) and sorted(set(seqs)) == list(range(len(set(seqs))))
            assert len(seqs) - len(set(seqs)) <= 1
            offline = [p for p in tes if p.get("offline")]
            assert len(offline) >= 5
            assert csms.boots["NET-1"] == 1
            # the CSMS's stored readings match the station's own counters
            st.ev_leaves(1)
            await csms.wait_for(lambda: csms.of("NET-1", "TransactionEvent")[-1]["eventType"] == "Ended")
            ended = csms.of("NET-1", "TransactionEvent")[-1]
            reading = {s["measurand"]: s["value"] for s in ended["meterValue"][0]["sampledValue"]}
            assert abs(reading["Energy.Active.Import.Register"] - st.evses[1].import_wh) < 0.01
            assert reading["Energy.Active.Import.Register"] > 100


async def test_reset_reboots_and_keeps_persistent_profiles() -> None:
    async with MiniCsms(clock(60)) as csms:
        fleet = fleet_of(csms, StationConfig(id="RST-1", reboot_s=30))
        async with fleet:
            st = fleet["RST-1"]
            await st.wait_online(5)
            st.plug_in(1, soc=50.0, departure_s=7200)
            await csms.wait_for(lambda: st.evses[1].transaction_id and st.evses[1].tx.authorized)  # type: ignore[union-attr]
            tx = st.evses[1].transaction_id
            now = csms.clock.timestamp()
            sched = {"id": 1, "startSchedule": now, "chargingRateUnit": "W",
                     "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 9000.0}]}  # fmt: skip
            for pid, purpose in ((1, "TxDefaultProfile"), (2, "TxProfile")):
                prof = {"id": pid, "stackLevel": 0, "chargingProfilePurpose": purpose,
                        "chargingProfileKind": "Absolute", "chargingSchedule": [sched]}  # fmt: skip
                if purpose == "TxProfile":
                    prof["transactionId"] = tx
                resp = await csms.call("RST-1", "SetChargingProfile", {"evseId": 1, "chargingProfile": prof})
                assert resp["status"] == "Accepted"
            resp = await csms.call("RST-1", "Reset", {"type": "Immediate"})
            assert resp == {"status": "Accepted"}
            await csms.wait_for(lambda: csms.boots.get("RST-1", 0) >= 2, timeout=10)
            boots = csms.of("RST-1", "BootNotification")
            assert boots[-1]["reason"] == "RemoteReset"
            ended = [p for p in csms.of("RST-1", "TransactionEvent") if p["eventType"] == "Ended"]
            assert ended[0]["triggerReason"] == "ResetCommand"
            assert ended[0]["transactionInfo"]["stoppedReason"] == "ImmediateReset"
            assert [p.profile.id for p in st.profiles] == [1]
            # the car is still plugged in: a new transaction starts after the boot
            await csms.wait_for(lambda: st.evses[1].transaction_id not in (None, tx), timeout=5)


async def test_firmware_update_and_log_upload_sequences() -> None:
    async with MiniCsms(clock(300)) as csms:
        fleet = fleet_of(csms, StationConfig(id="FW-1", reboot_s=10))
        async with fleet:
            st = fleet["FW-1"]
            await st.wait_online(5)
            log_req = {
                "logType": "DiagnosticsLog",
                "requestId": 5,
                "log": {"remoteLocation": "https://logs.example/up"},
            }
            resp = await csms.call("FW-1", "GetLog", log_req)
            assert resp["status"] == "Accepted" and resp["filename"].startswith("FW-1-DiagnosticsLog")
            fw = {"location": "https://fw.example/fe20-2.5.0.bin", "retrieveDateTime": csms.clock.timestamp()}
            resp = await csms.call("FW-1", "UpdateFirmware", {"requestId": 9, "firmware": fw})
            assert resp["status"] == "Accepted"
            await csms.wait_for(lambda: any(p["status"] == "Installed" for p in csms.of("FW-1",
                                                                                         "FirmwareStatusNotification")),
                                timeout=10)  # fmt: skip
            statuses = [p["status"] for p in csms.of("FW-1", "FirmwareStatusNotification")]
            assert statuses == ["Downloading", "Downloaded", "Installing", "InstallRebooting", "Installed"]
            assert [p["status"] for p in csms.of("FW-1", "LogStatusNotification")] == ["Uploading", "Uploaded"]
            boots = csms.of("FW-1", "BootNotification")
            assert boots[-1]["reason"] == "FirmwareUpdate"
            assert boots[-1]["chargingStation"]["firmwareVersion"] == "fe20-2.5.0"


async def test_unsupported_actions_and_answer_delay_fault() -> None:
    async with MiniCsms(clock(60)) as csms:
        fleet = fleet_of(csms, StationConfig(id="NS-1"))
        async with fleet:
            await fleet["NS-1"].wait_online(5)
            with pytest.raises(CallErrorReceived) as err:
                # (reservations are supported now; customer information is not)
                await csms.call("NS-1", "CustomerInformation", {"requestId": 1, "report": True, "clear": False})
            assert err.value.code == "NotSupported"
            fleet["NS-1"].set_faults(answer_delay_s=1.0)
            with pytest.raises(CallTimeout):
                item = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
                await csms.call("NS-1", "GetVariables", {"getVariableData": [item]}, timeout=0.3)


async def test_security_profile_2_over_tls(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with MiniCsms(clock(60), ssl_context=server_ctx, passwords={"TLS-1": "tls-basic-password-01"}) as csms:
        cfg = StationConfig(id="TLS-1", security_profile=2, ca_file=str(ca_file), password="tls-basic-password-01")
        fleet = Fleet(FleetConfig(url=csms.url.replace("wss://", "ws://"), stations=[cfg]), csms.clock)
        async with fleet:
            await fleet["TLS-1"].wait_online(5)  # profile 2 upgrades ws:// to wss://
            assert csms.of("TLS-1", "BootNotification")
            res = await csms.call("TLS-1", "GetVariables", {"getVariableData": [
                {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "SecurityProfile"}}]})  # fmt: skip
            assert res["getVariableResult"][0]["attributeValue"] == "2"


async def test_scheduled_faults_from_the_scenario() -> None:
    async with MiniCsms(clock(100)) as csms:
        cfg = FleetConfig.model_validate({
            "url": csms.url,
            "stations": [{"id": "F-1", "sessions": [{"plug_in": "0", "departure": "2h", "initial_soc": 40}]}],
            "scenario": {"faults": [
                {"station": "F-1", "at": "+30s", "kind": "disconnect", "duration_s": "60s"},
                {"station": "*", "at": "+40s", "kind": "ev_leaves"},
            ]},
        })  # fmt: skip
        fleet = Fleet(cfg, csms.clock)
        async with fleet:
            await csms.wait_for(lambda: csms.connects.get("F-1", 0) >= 2, timeout=10)
            await fleet["F-1"].wait_online(5)
            await fleet["F-1"].wait_idle_outbox(5)
            tes = csms.of("F-1", "TransactionEvent")
            assert tes[-1]["eventType"] == "Ended" and tes[-1].get("offline") is True
            assert tes[-1]["triggerReason"] == "EVDeparted"


async def test_many_stations_in_one_process() -> None:
    n = 200
    async with MiniCsms(clock(10)) as csms:
        csms.boot_status = lambda sid, k: ("Accepted", 10)
        cfg = FleetConfig.model_validate({
            "url": csms.url,
            "groups": [{"id": "S-{n:04d}", "count": n, "aligned_interval_s": 10, "tx_updated_interval_s": 10}],
        })  # fmt: skip
        fleet = Fleet(cfg, csms.clock)
        async with fleet:
            await fleet.wait_online(20)
            start = len(csms.calls)
            await asyncio.sleep(2.0)  # 40 simulated seconds
            window = csms.calls[start:]
            hb = sum(1 for _, a, _ in window if a == "Heartbeat")
            mv = sum(1 for _, a, _ in window if a == "MeterValues")
            assert hb >= n and mv >= n
            assert fleet.lag()["last_max_s"] < 10.0
            assert fleet.totals()["online"] == n
