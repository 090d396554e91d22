"""O - Display messages over real sockets with the bundled station simulator on OCPP 2.0.1 and
2.1 (OCA test cases TC_O_01..TC_O_26, TC_O_100, and negative cases)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from simulators import display
from tests.support import TestStation, open_ws, raw_exchange

from .conftest import SPEED, Rig, received, running_rig, sent, wait_for
from .test_d_local_auth_list import _CliEnv, rig_path

BASE = "/api/v1/stations/FE-0001/display-messages"


async def _set(rig: Rig, **body: Any) -> dict[str, Any]:
    body.setdefault("content", "Welcome")
    r = await rig.post(BASE, body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _list(rig: Rig, **params: Any) -> dict[str, Any]:
    async with rig.client() as c:
        r = await c.get(BASE, params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_TC_O_01_set_and_TC_O_02_get_all_display_messages_O01_O03(rig: Rig) -> None:
    st = await rig.station()
    one = await _set(rig, id=1, content="Welcome", language="en")
    two = await _set(rig, id=2, content="Cheap energy after 22:00", priority="InFront")
    assert one["status"] == two["status"] == "Accepted"
    assert received(st, "SetDisplayMessage")[0] == {
        "message": {
            "id": 1,
            "priority": "NormalCycle",
            "message": {"format": "UTF8", "content": "Welcome", "language": "en"},
        }
    }
    listed = await _list(rig)
    assert listed["status"] == "Accepted"
    assert [(m["id"], m["message"]["content"]) for m in listed["messages"]] == [
        (1, "Welcome"),
        (2, "Cheap energy after 22:00"),
    ]
    notify = sent(st, "NotifyDisplayMessages")[-1]
    assert notify["requestId"] == listed["request_id"] and "tbc" not in notify
    events = await rig.store.list_station_events("FE-0001", kind="DisplayMessages")
    assert events and events[0].payload["requestId"] == listed["request_id"]
    assert len(await rig.store.list_station_events("FE-0001", kind="DisplayMessageSet")) == 2


async def test_TC_O_03_get_all_no_display_messages_configured(rig: Rig) -> None:
    st = await rig.station()
    listed = await _list(rig)
    assert listed == {"station_id": "FE-0001", "request_id": listed["request_id"], "status": "Unknown", "messages": []}
    assert sent(st, "NotifyDisplayMessages") == []


async def test_many_messages_arrive_in_several_notifications_with_tbc_O03(rig: Rig) -> None:
    st = await rig.station()
    for i in range(display.ITEMS_PER_MESSAGE + 2):
        assert (await _set(rig, id=10 + i, content=f"m{i}"))["status"] == "Accepted"
    listed = await _list(rig)
    assert [m["id"] for m in listed["messages"]] == list(range(10, 10 + display.ITEMS_PER_MESSAGE + 2))
    notes = sent(st, "NotifyDisplayMessages")
    assert [n.get("tbc", False) for n in notes] == [True, False]


async def test_TC_O_04_clear_and_TC_O_05_clear_unknown_key_O05(rig: Rig) -> None:
    st = await rig.station()
    await _set(rig, id=7)
    async with rig.client() as c:
        ok = await c.delete(f"{BASE}/7")
        unknown = await c.delete(f"{BASE}/7")
    assert ok.json()["status"] == "Accepted" and unknown.json()["status"] == "Unknown"
    assert display.shown(st) == []


async def test_TC_O_06_specific_transaction_and_TC_O_10_unknown_transaction_O06(rig: Rig) -> None:
    await rig.store.upsert_id_token("TOKEN-1", "eMAID", status="Accepted")
    st = await rig.station()
    st.plug_in(1, id_token="TOKEN-1", departure_s=600)
    await wait_for(lambda: st.evses[1].tx is not None and st.evses[1].tx.authorized)
    tx_id = st.evses[1].tx.id  # type: ignore[union-attr]
    assert (await _set(rig, id=3, content="Your car is charging", transaction_id=tx_id))["status"] == "Accepted"
    assert (await _set(rig, id=4, content="x", transaction_id="no-such-tx"))["status"] == "UnknownTransaction"


async def test_TC_O_07_by_id_TC_O_08_by_priority_TC_O_09_by_state_TC_O_11_unknown(rig: Rig) -> None:
    await rig.station()
    await _set(rig, id=1, priority="InFront", state="Charging")
    await _set(rig, id=2, priority="NormalCycle", state="Idle")
    await _set(rig, id=3, priority="NormalCycle")
    assert [m["id"] for m in (await _list(rig, id=2))["messages"]] == [2]
    assert [m["id"] for m in (await _list(rig, priority="NormalCycle"))["messages"]] == [2, 3]
    assert [m["id"] for m in (await _list(rig, state="Charging"))["messages"]] == [1]
    unknown = await _list(rig, id=99, priority="InFront")
    assert unknown["status"] == "Unknown" and unknown["messages"] == []


async def test_TC_O_12_replace_display_message_O02(rig: Rig) -> None:
    st = await rig.station()
    await _set(rig, id=5, content="old")
    await _set(rig, id=5, content="new")
    assert [m["message"]["content"] for m in display.shown(st)] == ["new"]


async def test_TC_O_14_message_removed_after_end_time_O01(rig: Rig) -> None:
    st = await rig.station()
    end = rig.clock().now().timestamp() + 1.0 * SPEED
    from datetime import UTC, datetime

    await _set(rig, id=8, end=datetime.fromtimestamp(end, UTC).isoformat())
    assert [m["id"] for m in display.shown(st)] == [8]
    await asyncio.sleep(1.3)
    assert (await _list(rig))["status"] == "Unknown" and display.shown(st) == []


async def test_TC_O_17_priority_TC_O_18_state_TC_O_19_format_not_supported(rig: Rig) -> None:
    st = await rig.station()
    assert (await _set(rig, id=1, priority="AlwaysFront"))["status"] == "NotSupportedPriority"
    assert (await _set(rig, id=2, state="Unavailable"))["status"] == "NotSupportedState"
    assert (await _set(rig, id=3, format="HTML", content="<b>hi</b>"))["status"] == "NotSupportedMessageFormat"
    assert display.shown(st) == []
    assert await rig.store.list_station_events("FE-0001", kind="DisplayMessageSet") == []


async def test_TC_O_26_set_display_message_rejected(rig: Rig) -> None:
    await rig.station()
    await rig.command(
        "SetVariables", {"variables": [{"component": "DisplayMessageCtrlr", "variable": "Enabled", "value": "false"}]}
    )
    assert (await _set(rig, id=1))["status"] == "Rejected"


async def test_TC_O_100_unsupported_language(rig: Rig) -> None:
    await rig.station()
    answer = (await _set(rig, id=1, language="fr"))["status"]
    assert answer == ("LanguageNotSupported" if rig.version == "2.1" else "Accepted")


async def test_version_specific_values_are_checked_against_the_station_version(rig: Rig) -> None:
    await rig.station()
    r = await rig.post(BASE, {"content": "x", "state": "Discharging"})
    if rig.version == "2.0.1":
        assert r.status_code == 422 and r.json()["error"]["details"]["ocpp_code"] == "PropertyConstraintViolation"
    else:
        assert r.status_code == 200 and r.json()["status"] == "NotSupportedState"
    r = await rig.post(BASE, {"content": "x", "start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"})
    assert r.status_code == 422
    async with rig.client() as c:  # GetDisplayMessages: refused by the station's RPC endpoint, not sent
        r = await c.get(BASE, params={"state": "Discharging", "wait_s": 0.5})
    if rig.version == "2.0.1":
        err = r.json()["error"]
        assert r.status_code == 422 and err["code"] == "invalid_payload"
        assert err["details"]["field"] == "state" and err["details"]["ocpp_code"] == "PropertyConstraintViolation"
        assert err["message"].startswith("GetDisplayMessages request breaks the OCPP 2.0.1 schema at 'state'")
    else:
        assert r.status_code == 200 and r.json()["status"] == "Unknown"


async def test_notifications_never_come_times_out(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.0.1", call_timeout=5) as rig:

        async def accepted(_ctx: Any, _p: dict[str, Any]) -> dict[str, Any]:
            return {"status": "Accepted"}

        ws = await open_ws(rig.port, "FE-0002")
        station = TestStation(ws, {"GetDisplayMessages": accepted})
        await station.boot()
        async with rig.client() as c:
            r = await c.get("/api/v1/stations/FE-0002/display-messages", params={"wait_s": 0.3})
        assert r.status_code == 504 and r.json()["error"]["code"] == "station_timeout"
        # an unsolicited (or late) NotifyDisplayMessages is acknowledged and stored
        reply = await station.call(
            "NotifyDisplayMessages",
            {"requestId": 424242, "messageInfo": [{"id": 1, "priority": "InFront",
                                                   "message": {"format": "ASCII", "content": "late"}}]},
        )  # fmt: skip
        assert reply == {}
        events = await rig.store.list_station_events("FE-0002", kind="DisplayMessages")
        assert events[0].payload["requestId"] == 424242
        await station.close()


async def test_malformed_notify_display_messages(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.1", call_timeout=5) as rig:
        ws = await open_ws(rig.port, "FE-0002", protocols=("ocpp2.1",))
        boot = [
            2,
            "b1",
            "BootNotification",
            {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"},
        ]
        assert (await raw_exchange(ws, json.dumps(boot)))[0] == 3
        no_request = await raw_exchange(ws, '[2,"n1","NotifyDisplayMessages",{}]')
        assert no_request[:3] == [4, "n1", "OccurrenceConstraintViolation"]
        no_priority = await raw_exchange(
            ws,
            '[2,"n2","NotifyDisplayMessages",{"requestId":1,"messageInfo":[{"id":1,'
            '"message":{"format":"ASCII","content":"x"}}]}]',
        )
        assert no_priority[:3] == [4, "n2", "OccurrenceConstraintViolation"]
        bad_format = await raw_exchange(
            ws,
            '[2,"n3","NotifyDisplayMessages",{"requestId":1,"messageInfo":[{"id":1,"priority":"InFront",'
            '"message":{"format":"PDF","content":"x"}}]}]',
        )
        assert bad_format[:3] == [4, "n3", "PropertyConstraintViolation"]
        assert await rig.store.list_station_events("FE-0002", kind="DisplayMessages") == []
        await ws.close()


async def test_cli_display_messages(rig: Rig) -> None:
    from tests.cli.conftest import Cli

    await rig.station()
    cli = Cli(_CliEnv(rig), rig_path(rig))  # type: ignore[arg-type]
    r = await cli("display-message", "set", "FE-0001", "Out of order soon", "--id", "42", "--priority", "InFront")
    assert r.exit_code == 0 and "Accepted" in r.stdout, r.output
    r = await cli("display-message", "list", "FE-0001")
    assert r.exit_code == 0 and "Out of order soon" in r.stdout and "42" in r.stdout, r.output
    r = await cli("display-message", "clear", "FE-0001", "42")
    assert r.exit_code == 0 and "Accepted" in r.stdout, r.output
    r = await cli("display-message", "list", "FE-0001")
    assert "no display messages (Unknown)" in r.stdout, r.output
