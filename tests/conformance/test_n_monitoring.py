"""N - Monitoring and NotifyEvent alerting over real sockets with the bundled station simulator
on OCPP 2.0.1 and 2.1 (OCA test cases TC_N_01/02/03/05/08/09/16/17/18/21/24/44/47, negative cases)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulators import monitoring
from tests.support import TestStation, open_ws, raw_exchange

from .conftest import Rig, running_rig, sent, wait_for
from .test_d_local_auth_list import _CliEnv, rig_path

BASE = "/api/v1/stations/FE-0001/monitors"
EVSE_POWER = {"component": "EVSE", "variable": "Power", "evse_id": 1}


async def _set(rig: Rig, *monitors: dict[str, Any]) -> list[dict[str, Any]]:
    r = await rig.post(BASE, {"monitors": list(monitors)})
    assert r.status_code == 200, r.text
    return r.json()["response"]["setMonitoringResult"]  # type: ignore[no-any-return]


async def _report(rig: Rig, **params: Any) -> dict[str, Any]:
    async with rig.client() as c:
        r = await c.get(BASE, params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _ids(report: dict[str, Any]) -> list[int]:
    return sorted(m["id"] for item in report["monitors"] for m in item["variableMonitoring"])


async def _events(rig: Rig, kind: str) -> list[Any]:
    return await rig.store.list_station_events("FE-0001", kind=kind)  # type: ignore[no-any-return]


async def test_TC_N_08_one_element_and_TC_N_09_multiple_elements_N04(rig: Rig) -> None:
    await rig.station()
    [one] = await _set(rig, {**EVSE_POWER, "type": "UpperThreshold", "value": 5000, "severity": 3})
    assert one["status"] == "Accepted" and isinstance(one["id"], int)
    results = await _set(
        rig,
        {"component": "ChargingStation", "variable": "Power", "type": "Delta", "value": 1000, "severity": 7},
        {"component": "NoSuchCtrlr", "variable": "X", "type": "Periodic", "value": 60, "severity": 8},
        {"component": "ChargingStation", "variable": "NoSuchVariable", "type": "Periodic", "value": 60, "severity": 8},
        {"component": "ChargingStation", "variable": "Model", "type": "UpperThreshold", "value": 1, "severity": 8},
        {**EVSE_POWER, "type": "UpperThreshold", "value": 9000, "severity": 3},  # same type + severity
    )
    assert [r["status"] for r in results] == [
        "Accepted",
        "UnknownComponent",
        "UnknownVariable",
        "Rejected",
        "Duplicate",
    ]
    assert results[4]["id"] == one["id"]


async def test_unsupported_monitor_type_is_version_checked(rig: Rig) -> None:
    await rig.station()
    r = await rig.post(BASE, {"monitors": [{**EVSE_POWER, "type": "TargetDelta", "value": 5, "severity": 5}]})
    if rig.version == "2.0.1":
        assert r.status_code == 422 and r.json()["error"]["details"]["ocpp_code"] == "PropertyConstraintViolation"
    else:
        assert r.json()["response"]["setMonitoringResult"][0]["status"] == "UnsupportedMonitorType"


async def test_TC_N_47_report_all_TC_N_01_criteria_TC_N_02_component_TC_N_03_both_N02(rig: Rig) -> None:
    st = await rig.station()
    [thr] = await _set(rig, {**EVSE_POWER, "type": "UpperThreshold", "value": 5000, "severity": 3})
    [per] = await _set(rig, {"component": "ChargingStation", "variable": "Power", "type": "Periodic", "value": 60})
    everything = await _report(rig)
    assert everything["status"] == "Accepted" and _ids(everything) == sorted([1, thr["id"], per["id"]])
    if rig.version == "2.1":
        kinds = {m["id"]: m["eventNotificationType"] for i in everything["monitors"] for m in i["variableMonitoring"]}
        assert kinds[1] == "PreconfiguredMonitor" and kinds[thr["id"]] == "CustomMonitor"
    assert _ids(await _report(rig, criteria="PeriodicMonitoring")) == [per["id"]]
    assert _ids(await _report(rig, component="EVSE", variable="Power", evse_id=1)) == [thr["id"]]
    both = await _report(rig, criteria="ThresholdMonitoring", component="ChargingStation")
    assert _ids(both) == [1]
    empty = await _report(rig, criteria="DeltaMonitoring")
    assert empty["status"] == "EmptyResultSet" and empty["monitors"] == []
    reports = sent(st, "NotifyMonitoringReport")
    assert all(r["seqNo"] == 0 and "tbc" not in r for r in reports)
    assert len(await _events(rig, "MonitoringReport")) == len(reports)


async def test_TC_N_60_criteria_and_a_list_of_components_variables_N02(rig: Rig) -> None:
    from csms.blocks.monitoring import Monitoring

    await rig.station()
    [thr] = await _set(rig, {**EVSE_POWER, "type": "UpperThreshold", "value": 5000, "severity": 3})
    [per] = await _set(rig, {"component": "ChargingStation", "variable": "Power", "type": "Periodic", "value": 60})
    [delta] = await _set(rig, {**EVSE_POWER, "type": "Delta", "value": 100, "severity": 6})
    request = {
        "requestId": 4242,
        "monitoringCriteria": ["ThresholdMonitoring", "PeriodicMonitoring"],
        "componentVariable": [
            {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}},
            {"component": {"name": "ChargingStation"}},
        ],
    }
    response, monitors = await Monitoring.of(rig.central).report("FE-0001", request, wait_s=5)
    assert response["status"] == "Accepted"
    found = sorted(m["id"] for item in monitors for m in item["variableMonitoring"])
    assert found == sorted([1, thr["id"], per["id"]]) and delta["id"] not in found


async def test_TC_N_05_set_monitoring_base_N03(rig: Rig) -> None:
    await rig.station()
    [custom] = await _set(rig, {**EVSE_POWER, "type": "UpperThreshold", "value": 5000, "severity": 3})
    assert (await rig.command("SetMonitoringBase", {"monitoring_base": "All"}))["status"] == "Accepted"
    assert _ids(await _report(rig)) == [1, custom["id"]]
    assert (await rig.command("SetMonitoringBase", {"monitoring_base": "FactoryDefault"}))["status"] == "Accepted"
    assert _ids(await _report(rig)) == [1]
    assert (await rig.command("SetMonitoringBase", {"monitoring_base": "HardWiredOnly"}))["status"] == "Accepted"
    assert (await _report(rig))["status"] == "EmptyResultSet"


async def test_TC_N_16_set_monitoring_level_and_TC_N_17_out_of_range_N05(rig: Rig) -> None:
    st = await rig.station()
    assert (await rig.command("SetMonitoringLevel", {"severity": 4}))["status"] == "Accepted"
    assert monitoring.state(st).level == 4
    r = await rig.post("/api/v1/stations/FE-0001/commands/SetMonitoringLevel", {"severity": 10})
    assert r.status_code == 422
    if rig.version == "2.0.1":  # the 2.0.1 schema has no bounds: the station must refuse it
        reply = await rig.central.call("FE-0001", "SetMonitoringLevel", {"severity": 10})
        assert reply["status"] == "Rejected" and monitoring.state(st).level == 4


async def test_TC_N_18_clear_too_many_and_TC_N_44_clear_rejected_N06(rig: Rig) -> None:
    await rig.station()
    [custom] = await _set(rig, {**EVSE_POWER, "type": "UpperThreshold", "value": 5000, "severity": 3})
    async with rig.client() as c:
        r = await c.delete(BASE, params={"id": [custom["id"], 1, 999]})
        assert r.status_code == 200, r.text
        statuses = {x["id"]: x["status"] for x in r.json()["response"]["clearMonitoringResult"]}
        assert statuses == {custom["id"]: "Accepted", 1: "Rejected", 999: "NotFound"}
        too_many = await c.delete(BASE, params={"id": list(range(monitoring.ITEMS_PER_MESSAGE + 1))})
    assert too_many.status_code == 502
    assert too_many.json()["error"]["details"]["ocpp_code"] == "OccurrenceConstraintViolation"


async def test_TC_N_21_alert_event_raised_and_cleared_N07(rig: Rig) -> None:
    await rig.store.upsert_id_token("TOKEN-1", "eMAID", status="Accepted")
    st = await rig.station()
    [m] = await _set(rig, {**EVSE_POWER, "type": "UpperThreshold", "value": 5000, "severity": 3})
    st.plug_in(1, id_token="TOKEN-1", departure_s=3600)
    alerts = await wait_for(lambda: _events(rig, "Alert"), timeout=10)
    facts = alerts[0].payload
    assert facts["variableMonitoringId"] == m["id"] and facts["severity"] == 3
    assert facts["component"]["name"] == "EVSE" and float(facts["actualValue"]) > 5000
    event = next(p for p in sent(st, "NotifyEvent") if p["eventData"][0]["trigger"] == "Alerting")
    assert ("severity" in event["eventData"][0]) is (rig.version == "2.1")  # 2.0.1: from the monitor
    async with rig.client(rig.read_token) as c:
        listed = (await c.get("/api/v1/alerts")).json()
    assert [a["payload"]["eventId"] for a in listed] == [facts["eventId"]]
    st.ev_leaves(1)
    cleared = await wait_for(lambda: _events(rig, "AlertCleared"), timeout=10)
    assert cleared[0].payload["variableMonitoringId"] == m["id"]
    assert len(await _events(rig, "NotifyEvent")) >= 2


async def test_low_severity_events_are_stored_without_alert_and_level_filters_them(rig: Rig) -> None:
    await rig.store.upsert_id_token("TOKEN-1", "eMAID", status="Accepted")
    st = await rig.station()
    await _set(rig, {**EVSE_POWER, "type": "UpperThreshold", "value": 5000, "severity": 7})
    [hidden] = await _set(rig, {**EVSE_POWER, "type": "UpperThreshold", "value": 6000, "severity": 6})
    await rig.command("SetMonitoringLevel", {"severity": 7})
    await rig.post(BASE, {"monitors": [{**EVSE_POWER, "type": "UpperThreshold", "value": 6000, "severity": 8,
                                        "id": hidden["id"]}]})  # fmt: skip
    st.plug_in(1, id_token="TOKEN-1", departure_s=3600)
    stored = await wait_for(lambda: _events(rig, "NotifyEvent"), timeout=10)
    data = [e for row in stored for e in row.payload["eventData"]]
    assert {e["variableMonitoringId"] for e in data} == {data[0]["variableMonitoringId"]}  # severity 8 filtered
    assert data[0]["variableMonitoringId"] != hidden["id"]
    assert await _events(rig, "Alert") == []  # severity 7 is below the alert threshold (4)


async def test_TC_N_24_periodic_event(rig: Rig) -> None:
    st = await rig.station()
    [m] = await _set(rig, {"component": "ChargingStation", "variable": "Power", "type": "Periodic", "value": 5})
    await wait_for(lambda: len([p for p in sent(st, "NotifyEvent") if p["eventData"][0]["trigger"] == "Periodic"]) >= 2)
    periodic = [p["eventData"][0] for p in sent(st, "NotifyEvent") if p["eventData"][0]["trigger"] == "Periodic"]
    assert all(e["variableMonitoringId"] == m["id"] for e in periodic)
    seqs = [p["seqNo"] for p in sent(st, "NotifyEvent")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    await wait_for(lambda: _events(rig, "NotifyEvent"))
    assert await _events(rig, "Alert") == []


async def test_hardwired_notification_from_a_raw_station_alerts(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.0.1", call_timeout=5) as rig:
        ws = await open_ws(rig.port, "FE-0002")
        station = TestStation(ws)
        await station.boot()
        event = {
            "eventId": 9, "timestamp": "2026-06-01T16:00:00Z", "trigger": "Alerting", "actualValue": "true",
            "eventNotificationType": "HardWiredNotification", "techCode": "E-TAMPER",
            "component": {"name": "ChargingStation"}, "variable": {"name": "Problem"},
        }  # fmt: skip
        assert await station.call("NotifyEvent", {"generatedAt": "2026-06-01T16:00:00Z", "seqNo": 0,
                                                  "eventData": [event]}) == {}  # fmt: skip
        alerts = await rig.store.list_station_events("FE-0002", kind="Alert")
        assert alerts[0].payload["severity"] == 0 and alerts[0].payload["techCode"] == "E-TAMPER"
        await station.close()


async def test_malformed_monitoring_messages(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.1", call_timeout=5) as rig:
        ws = await open_ws(rig.port, "FE-0002", protocols=("ocpp2.1",))
        boot = [
            2,
            "b1",
            "BootNotification",
            {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"},
        ]
        assert (await raw_exchange(ws, json.dumps(boot)))[0] == 3
        no_data = await raw_exchange(ws, '[2,"e1","NotifyEvent",{"generatedAt":"2026-06-01T16:00:00Z","seqNo":0}]')
        assert no_data[:3] == [4, "e1", "OccurrenceConstraintViolation"]
        naive = await raw_exchange(
            ws, '[2,"e2","NotifyMonitoringReport",{"requestId":1,"seqNo":0,"generatedAt":"2026-06-01T16:00:00"}]'
        )
        assert naive[:3] == [4, "e2", "PropertyConstraintViolation"]
        negative_seq = await raw_exchange(
            ws, '[2,"e3","NotifyMonitoringReport",{"requestId":1,"seqNo":-1,"generatedAt":"2026-06-01T16:00:00Z"}]'
        )
        assert negative_seq[:3] == [4, "e3", "PropertyConstraintViolation"]
        assert await rig.store.list_station_events("FE-0002") == []
        await ws.close()


async def test_report_that_never_comes_times_out(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.0.1", call_timeout=5) as rig:

        async def accepted(_ctx: Any, _p: dict[str, Any]) -> dict[str, Any]:
            return {"status": "Accepted"}

        ws = await open_ws(rig.port, "FE-0002")
        station = TestStation(ws, {"GetMonitoringReport": accepted})
        await station.boot()
        async with rig.client() as c:
            r = await c.get("/api/v1/stations/FE-0002/monitors", params={"wait_s": 0.3})
        assert r.status_code == 504
        await station.close()


async def test_cli_monitor_and_alerts(rig: Rig) -> None:
    from tests.cli.conftest import Cli

    await rig.station()
    cli = Cli(_CliEnv(rig), rig_path(rig))  # type: ignore[arg-type]
    r = await cli("monitor", "set", "FE-0001", "ChargingStation.Power", "--type", "delta", "--value", "500")
    assert r.exit_code == 0 and "Accepted" in r.stdout, r.output
    r = await cli("monitor", "list", "FE-0001")
    assert r.exit_code == 0 and "Delta" in r.stdout and "UpperThreshold" in r.stdout, r.output  # + preconfigured
    r = await cli("monitor", "level", "FE-0001", "5")
    assert r.exit_code == 0 and "Accepted" in r.stdout, r.output
    r = await cli("monitor", "base", "FE-0001", "factorydefault")
    assert r.exit_code == 0 and "Accepted" in r.stdout, r.output
    r = await cli("monitor", "clear", "FE-0001", "1")
    assert r.exit_code == 0 and "Rejected" in r.stdout, r.output
    r = await cli("alerts")
    assert r.exit_code == 0 and "no alerts" in r.stdout, r.output
