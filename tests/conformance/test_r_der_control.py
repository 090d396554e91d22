"""R - DER control (OCPP 2.1 only) over real sockets with the bundled station simulator (OCA test
cases TC_R_107 and TC_R_108), plus the negative cases: 2.0.1 stations refused, settings that do
not fit the control type, unsupported types, malformed station messages, reports that never come."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from simulators import der as sim_der
from tests.support import TestStation, open_ws, raw_exchange

from .conftest import Rig, received, running_rig, sent, wait_for
from .test_d_local_auth_list import _CliEnv, rig_path

BASE = "/api/v1/stations/FE-0001/der"
VOLT_VAR = {"priority": 1, "yUnit": "PctMaxVar", "curveData": [{"x": 92, "y": 30}, {"x": 108, "y": -30}]}
ENTER_SERVICE = {"priority": 0, "highVoltage": 105, "lowVoltage": 92, "highFreq": 50.2, "lowFreq": 49.8}


@pytest.fixture
async def rig21(tmp_path: Path) -> Any:
    async with running_rig(tmp_path, "2.1", call_timeout=5) as r:
        yield r


async def _set(rig: Rig, control_type: str, settings: dict[str, Any], **body: Any) -> dict[str, Any]:
    r = await rig.post(f"{BASE}/controls", {"control_type": control_type, "settings": settings, **body})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _report(rig: Rig, **params: Any) -> dict[str, Any]:
    async with rig.client() as c:
        r = await c.get(f"{BASE}/report", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_TC_R_107_configure_der_control_settings_get_and_clear(rig21: Rig) -> None:
    st = await rig21.station()
    vv = await _set(rig21, "VoltVar", VOLT_VAR, control_id="VV-1")
    es = await _set(rig21, "EnterService", ENTER_SERVICE, control_id="ES-1", is_default=True)
    lmd = await _set(rig21, "LimitMaxDischarge", {"priority": 2, "pctMaxDischargePower": 50}, control_id="LMD-1")
    assert vv["status"] == es["status"] == lmd["status"] == "Accepted"
    assert received(st, "SetDERControl")[0] == {
        "isDefault": False,
        "controlId": "VV-1",
        "controlType": "VoltVar",
        "curve": VOLT_VAR,
    }
    assert {c["controlId"] for c in sim_der.controls(st)} == {"VV-1", "ES-1", "LMD-1"}
    # the CSMS keeps what it set
    async with rig21.client(rig21.read_token) as c:
        kept = (await c.get(f"{BASE}/controls")).json()
    assert [(c["controlId"], c["controlType"], c["isDefault"]) for c in kept] == [
        ("ES-1", "EnterService", True),
        ("LMD-1", "LimitMaxDischarge", False),
        ("VV-1", "VoltVar", False),
    ]
    # GetDERControl: the station reports what it holds
    report = await _report(rig21)
    assert report["status"] == "Accepted"
    by_id = {c["controlId"]: c for c in report["controls"]}
    assert by_id["VV-1"]["controlType"] == "VoltVar" and by_id["VV-1"]["data"] == VOLT_VAR
    assert by_id["ES-1"]["data"] == ENTER_SERVICE and by_id["LMD-1"]["data"]["pctMaxDischargePower"] == 50
    part = sent(st, "ReportDERControl")[-1]
    assert part["requestId"] == report["request_id"] and "tbc" not in part
    assert await rig21.store.list_station_events("FE-0001", kind="DERControlReport")
    only_default = await _report(rig21, is_default="true")
    assert [c["controlId"] for c in only_default["controls"]] == ["ES-1"]
    # ClearDERControl: the scheduled VoltVar goes, the CSMS forgets it too
    async with rig21.client() as c:
        cleared = (await c.delete(f"{BASE}/controls", params={"is_default": "false", "control_type": "VoltVar"})).json()
        again = (await c.delete(f"{BASE}/controls", params={"is_default": "false", "control_type": "VoltVar"})).json()
        kept = (await c.get(f"{BASE}/controls")).json()
    assert cleared["status"] == "Accepted" and again["status"] == "NotFound"
    assert {c["controlId"] for c in sim_der.controls(st)} == {"ES-1", "LMD-1"}
    assert {c["controlId"] for c in kept} == {"ES-1", "LMD-1"}
    missing = await _report(rig21, control_id="VV-1")
    assert missing == {
        "station_id": "FE-0001",
        "request_id": missing["request_id"],
        "status": "NotFound",
        "controls": [],
    }


async def test_same_priority_supersedes_and_same_id_replaces(rig21: Rig) -> None:
    st = await rig21.station()
    await _set(rig21, "FixedVar", {"priority": 3, "setpoint": 10, "unit": "PctMaxVar"}, control_id="FV-1")
    second = await _set(rig21, "FixedVar", {"priority": 2, "setpoint": 20, "unit": "PctMaxVar"}, control_id="FV-2")
    assert second["response"] == {"status": "Accepted", "supersededIds": ["FV-1"]}
    replaced = await _set(rig21, "FixedVar", {"priority": 2, "setpoint": 25, "unit": "PctMaxVar"}, control_id="FV-2")
    assert "supersededIds" not in replaced["response"]
    held = {c["controlId"]: c for c in sim_der.controls(st)}
    assert held["FV-1"]["isSuperseded"] and held["FV-2"]["data"]["setpoint"] == 25
    report = await _report(rig21, control_type="FixedVar")
    assert {(c["controlId"], c["isSuperseded"]) for c in report["controls"]} == {("FV-1", True), ("FV-2", False)}
    async with rig21.client() as c:
        kept = (await c.get(f"{BASE}/controls")).json()
    assert {(c["controlId"], c["isSuperseded"], c["data"].get("setpoint")) for c in kept} == {
        ("FV-1", True, 10),
        ("FV-2", False, 25),
    }


async def test_many_controls_come_in_several_reports_with_tbc(rig21: Rig) -> None:
    st = await rig21.station()
    n = sim_der.ITEMS_PER_MESSAGE * 2 + 1
    for i in range(n):
        curve = {**VOLT_VAR, "priority": 10 + i}
        assert (await _set(rig21, "VoltWatt", curve, control_id=f"VW-{i}"))["status"] == "Accepted"
    report = await _report(rig21, control_type="VoltWatt")
    assert sorted(c["controlId"] for c in report["controls"]) == sorted(f"VW-{i}" for i in range(n))
    assert [p.get("tbc", False) for p in sent(st, "ReportDERControl")] == [True, True, False]


async def test_TC_R_108_station_reports_a_der_event_alarm_and_its_end(rig21: Rig) -> None:
    st = await rig21.station()
    await _set(rig21, "EnterService", ENTER_SERVICE, control_id="ES-1", is_default=True)
    alerts: list[tuple[str, dict[str, Any]]] = []
    rig21.central.subscribe(lambda kind, sid, data: alerts.append((sid, data)) if kind == "alert" else None)
    raised = sim_der.set_grid(st, voltage=245.0)  # above 105 % of 230 V
    assert raised and raised[0]["gridEventFault"] == "OverVoltage" and raised[0]["controlType"] == "HVMustTrip"
    await wait_for(lambda: len(alerts) == 1)
    assert alerts[0][0] == "FE-0001"
    assert alerts[0][1]["source"] == "DERAlarm" and alerts[0][1]["cleared"] is False
    assert sim_der.set_grid(st, voltage=246.0) == []  # still out of band: no second alarm
    ended = sim_der.set_grid(st, voltage=231.0)
    assert ended[0]["alarmEnded"] is True
    await wait_for(lambda: len(alerts) == 2)
    assert alerts[1][1]["cleared"] is True
    sim_der.set_grid(st, frequency=49.5)
    await wait_for(lambda: len(alerts) == 3)
    assert alerts[2][1]["gridEventFault"] == "UnderFrequency"
    async with rig21.client(rig21.read_token) as c:
        listed = (await c.get(f"{BASE}/alarms")).json()
        open_only = (await c.get(f"{BASE}/alarms", params={"ended": "false"})).json()
    assert [(a["kind"], a["payload"]["gridEventFault"]) for a in listed] == [
        ("DERAlarm", "UnderFrequency"),
        ("DERAlarmEnded", "OverVoltage"),
        ("DERAlarm", "OverVoltage"),
    ]
    assert [a["kind"] for a in open_only] == ["DERAlarm", "DERAlarm"]
    assert listed[2]["payload"] == {
        "controlType": "HVMustTrip",
        "alarmEnded": False,
        "gridEventFault": "OverVoltage",
        "extraInfo": "grid 245.0 V 50.00 Hz",
    }


async def test_settings_that_do_not_fit_the_control_type_are_422_and_station_rejects_them(rig21: Rig) -> None:
    st = await rig21.station()
    # a curve for a FixedVar control: refused by the API with the field, nothing sent
    r = await rig21.post(f"{BASE}/controls", {"control_type": "FixedVar", "settings": VOLT_VAR})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_payload", r.text
    assert r.json()["error"]["details"]["field"] == "fixedVar"
    # decreasing curve points: our rule, not the schema's
    bad_curve = {**VOLT_VAR, "curveData": [{"x": 108, "y": 0}, {"x": 92, "y": 0}]}
    r = await rig21.post(f"{BASE}/controls", {"control_type": "VoltVar", "settings": bad_curve})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "curve.curveData"
    # schema: a curve without yUnit
    r = await rig21.post(f"{BASE}/controls", {"control_type": "VoltVar", "settings": {"priority": 1, "curveData": []}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_payload"
    r = await rig21.post(f"{BASE}/controls", {"control_type": "Bogus", "settings": {}})
    assert r.status_code == 422
    assert received(st, "SetDERControl") == []
    # sent past the API's checks (straight over OCPP), the simulator rejects it with the reason
    reply = await rig21.central.call(
        "FE-0001", "SetDERControl", {"isDefault": False, "controlId": "X", "controlType": "FixedVar", "curve": VOLT_VAR}
    )
    assert reply["status"] == "Rejected" and reply["statusInfo"]["reasonCode"] == "InvalidValue"
    # NotSupported: a control type the station does not offer
    r = await rig21.post(
        f"{BASE}/controls", {"control_type": "PowerMonitoringMustTrip", "settings": VOLT_VAR, "control_id": "P-1"}
    )
    assert r.json()["status"] == "NotSupported"
    # Rejected: DER control switched off on the station
    await rig21.command(
        "SetVariables", {"variables": [{"component": "DERCtrlr", "variable": "Enabled", "value": "false"}]}
    )
    off = await _set(rig21, "VoltVar", VOLT_VAR)
    assert off["status"] == "Rejected" and off["response"]["statusInfo"]["reasonCode"] == "Disabled"
    async with rig21.client() as c:
        assert (await c.get(f"{BASE}/controls")).json() == []  # nothing accepted, nothing kept


async def test_der_control_is_refused_for_a_201_station(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.0.1", call_timeout=5) as rig:
        st = await rig.station()
        r = await rig.post(f"{BASE}/controls", {"control_type": "VoltVar", "settings": VOLT_VAR})
        assert r.status_code == 409 and r.json()["error"]["code"] == "not_in_version", r.text
        async with rig.client() as c:
            get = await c.get(f"{BASE}/report")
            clear = await c.delete(f"{BASE}/controls", params={"is_default": "true"})
        assert get.status_code == clear.status_code == 409
        assert received(st, "SetDERControl") == []
        assert sim_der.set_grid(st, voltage=300.0) == []  # a 2.0.1 station sends no NotifyDERAlarm
        # a 2.0.1 connection does not know NotifyDERAlarm: NotImplemented
        ws = await open_ws(rig.port, "FE-0002")
        assert (await raw_exchange(ws, json.dumps([2, "b", "BootNotification", _boot()])))[0] == 3
        alarm = {"controlType": "HVMustTrip", "timestamp": "2026-12-07T16:00:00Z"}
        reply = await raw_exchange(ws, json.dumps([2, "a1", "NotifyDERAlarm", alarm]))
        assert reply[:3] == [4, "a1", "NotImplemented"]
        await ws.close()


def _boot() -> dict[str, Any]:
    return {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}


async def test_malformed_station_messages_get_the_callerror_the_schema_names(rig21: Rig) -> None:
    ws = await open_ws(rig21.port, "FE-0002", protocols=("ocpp2.1",))
    assert (await raw_exchange(ws, json.dumps([2, "b", "BootNotification", _boot()])))[0] == 3
    no_type = await raw_exchange(ws, '[2,"a1","NotifyDERAlarm",{"timestamp":"2026-12-07T16:00:00Z"}]')
    assert no_type[:3] == [4, "a1", "OccurrenceConstraintViolation"]
    bad_fault = await raw_exchange(
        ws,
        '[2,"a2","NotifyDERAlarm",{"controlType":"HVMustTrip","gridEventFault":"Lightning","timestamp":"2026-12-07T16:00:00Z"}]',
    )
    assert bad_fault[:3] == [4, "a2", "PropertyConstraintViolation"]
    naive_time = await raw_exchange(
        ws, '[2,"a3","NotifyDERAlarm",{"controlType":"HVMustTrip","timestamp":"2026-12-07T16:00:00"}]'
    )
    assert naive_time[:3] == [4, "a3", "PropertyConstraintViolation"]
    unknown_key = await raw_exchange(ws, '[2,"r1","ReportDERControl",{"requestId":1,"colour":"red"}]')
    assert unknown_key[:3] == [4, "r1", "FormatViolation"]
    bad_type = await raw_exchange(ws, '[2,"r2","ReportDERControl",{"requestId":"one"}]')
    assert bad_type[:3] == [4, "r2", "TypeConstraintViolation"]
    assert await rig21.store.list_station_events("FE-0002", kind="DERAlarm") == []
    assert await rig21.store.list_station_events("FE-0002", kind="DERControlReport") == []
    await ws.close()


async def test_report_that_never_comes_times_out_and_late_parts_are_kept(rig21: Rig) -> None:
    async def accepted(_ctx: Any, _p: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted"}

    ws = await open_ws(rig21.port, "FE-0002", protocols=("ocpp2.1",))
    station = TestStation(ws, {"GetDERControl": accepted})
    await station.boot()
    async with rig21.client() as c:
        r = await c.get("/api/v1/stations/FE-0002/der/report", params={"wait_s": 0.3})
    assert r.status_code == 504 and r.json()["error"]["code"] == "station_timeout"
    assert await station.call("ReportDERControl", {"requestId": 777}) == {}
    events = await rig21.store.list_station_events("FE-0002", kind="DERControlReport")
    assert events[0].payload == {"requestId": 777}
    await station.close()


async def test_station_that_does_not_answer_is_504(rig21: Rig) -> None:
    async def silent(_ctx: Any, _p: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"status": "Accepted"}

    ws = await open_ws(rig21.port, "FE-0002", protocols=("ocpp2.1",))
    station = TestStation(ws, {"SetDERControl": silent})
    await station.boot()
    r = await rig21.post(
        "/api/v1/stations/FE-0002/der/controls", {"control_type": "VoltVar", "settings": VOLT_VAR}, timeout=0.5
    )
    assert r.status_code == 504 and r.json()["error"]["code"] == "station_timeout"
    async with rig21.client() as c:
        assert (await c.get("/api/v1/stations/FE-0002/der/controls")).json() == []
    await station.close()


async def test_cli_der(rig21: Rig, tmp_path: Path) -> None:
    from tests.cli.conftest import Cli

    st = await rig21.station()
    cli = Cli(_CliEnv(rig21), rig_path(rig21))  # type: ignore[arg-type]
    path = tmp_path / "vv.json"
    path.write_text(json.dumps(VOLT_VAR))
    r = await cli("der", "set", "FE-0001", "VoltVar", str(path), "--id", "CLI-VV")
    assert r.exit_code == 0 and "Accepted" in r.stdout, r.output
    assert [c["controlId"] for c in sim_der.controls(st)] == ["CLI-VV"]
    r = await cli("der", "report", "FE-0001")
    assert r.exit_code == 0 and "CLI-VV" in r.stdout and "VoltVar" in r.stdout, r.output
    r = await cli("der", "list", "FE-0001", "--json")
    assert [c["controlId"] for c in json.loads(r.stdout)] == ["CLI-VV"]
    sim_der.set_grid(st, voltage=180.0)
    await wait_for(lambda: bool(sent(st, "NotifyDERAlarm")))
    await asyncio.sleep(0.2)
    r = await cli("der", "alarms", "FE-0001")
    assert r.exit_code == 0 and "UnderVoltage" in r.stdout, r.output
    r = await cli("der", "clear", "FE-0001", "--id", "CLI-VV")
    assert r.exit_code == 0 and "Accepted" in r.stdout, r.output
    r = await cli("der", "set", "FE-0001", "FixedVar", str(path))
    assert r.exit_code != 0 and "fixedVar" in r.output, r.output


async def test_console_station_page_shows_der_controls_and_alarms(rig21: Rig) -> None:
    import httpx

    from tests.web.test_session import _sign_in

    st = await rig21.station()
    await _set(rig21, "VoltVar", VOLT_VAR, control_id="VV-<b>1</b>")
    sim_der.set_grid(st, voltage=300.0)
    await wait_for(lambda: bool(sent(st, "NotifyDERAlarm")))
    async with httpx.AsyncClient(base_url=rig21.url) as c:
        await _sign_in(c, rig21.read_token)
        for _ in range(50):
            page = (await c.get("/console/stations/FE-0001")).text
            if "OverVoltage" in page:
                break
            await asyncio.sleep(0.1)
    assert 'id="der-controls"' in page and "VoltVar" in page and "VV-&lt;b&gt;1&lt;/b&gt;" in page
    assert 'id="der-alarms"' in page and "OverVoltage" in page and "HVMustTrip" in page
