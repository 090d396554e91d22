"""D - Local Authorization List and C - authorization cache / group ids, over real sockets with
the bundled station simulator on OCPP 2.0.1 and 2.1 (OCA test cases TC_D_*, TC_C_37/38/39/40/43).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from csms.store import operations as ops
from simulators import local_auth
from tests.api.support import now_ts
from tests.support import TestStation, open_ws, raw_exchange

from .conftest import Rig, received, running_rig, sent, wait_for


async def _put(rig: Rig, *entries: dict[str, Any], push: bool = True) -> dict[str, Any]:
    async with rig.client() as c:
        r = await c.put("/api/v1/local-list/entries", json={"entries": list(entries)}, params={"push": push})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _station_version(rig: Rig, station_id: str = "FE-0001") -> dict[str, Any]:
    async with rig.client() as c:
        r = await c.get(f"/api/v1/stations/{station_id}/local-list")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _synced(rig: Rig, version: int) -> bool:
    return (await _station_version(rig))["station_version"] == version


def _lists(st: Any) -> list[dict[str, Any]]:
    return received(st, "SendLocalList")


# ---------------------------------------------------------------------------------------- D01 / D02
async def test_TC_D_09_get_local_list_version_no_list_available_D02(rig: Rig) -> None:
    await rig.station()
    result = await rig.command("GetLocalListVersion")
    assert result["response"] == {"versionNumber": 0}


async def test_TC_D_01_full_list_on_edit_D01_FR_01_FR_06_FR_18(rig: Rig) -> None:
    st = await rig.station()
    await rig.store.upsert_id_token("CARD-1", "ISO14443", status="Accepted", group_id="FLEET-A")
    change = await _put(rig, {"id_token": "CARD-1"}, {"id_token": "CARD-2", "status": "Blocked"})
    assert change["version"] >= 1 and change["pushed_to"] == ["FE-0001"]
    await wait_for(lambda: _synced(rig, change["version"]))
    full = _lists(st)[-1]
    assert full["updateType"] == "Full" and full["versionNumber"] == change["version"] > 0  # FR.01, FR.18
    tokens = [e["idToken"]["idToken"] for e in full["localAuthorizationList"]]
    assert sorted(tokens) == ["CARD-1", "CARD-2"] and len(set(tokens)) == len(tokens)  # FR.06
    assert all("idTokenInfo" in e for e in full["localAuthorizationList"])
    by_token = {e["idToken"]["idToken"]: e["idTokenInfo"] for e in full["localAuthorizationList"]}
    assert by_token["CARD-1"] == {"status": "Accepted", "groupIdToken": {"idToken": "FLEET-A", "type": "Central"}}
    assert by_token["CARD-2"]["status"] == "Blocked"
    assert local_auth.state(st).version == change["version"]
    result = await rig.command("GetLocalListVersion")  # TC_D_08
    assert result["response"]["versionNumber"] == change["version"]


async def test_TC_D_02_differential_update_and_TC_D_03_differential_remove_D01(rig: Rig) -> None:
    st = await rig.station()
    first = await _put(rig, {"id_token": "CARD-1"}, {"id_token": "CARD-2"})
    await wait_for(lambda: _synced(rig, first["version"]))
    second = await _put(rig, {"id_token": "CARD-3", "status": "Accepted"})
    await wait_for(lambda: _synced(rig, second["version"]))
    diff = _lists(st)[-1]
    assert diff["updateType"] == "Differential" and diff["versionNumber"] == second["version"]
    assert [e["idToken"]["idToken"] for e in diff["localAuthorizationList"]] == ["CARD-3"]
    async with rig.client() as c:
        r = await c.delete("/api/v1/local-list/entries/ISO14443/CARD-1")
    assert r.status_code == 200, r.text
    third = r.json()["version"]
    await wait_for(lambda: _synced(rig, third))
    removal = _lists(st)[-1]
    assert removal["updateType"] == "Differential"
    assert removal["localAuthorizationList"] == [{"idToken": {"idToken": "CARD-1", "type": "ISO14443"}}]
    assert sorted(k[1] for k in local_auth.state(st).entries) == ["CARD-2", "CARD-3"]
    async with rig.client() as c:
        listed = (await c.get("/api/v1/local-list")).json()
        missing = await c.delete("/api/v1/local-list/entries/ISO14443/CARD-1")
    assert listed["version"] == third and [e["id_token"] for e in listed["entries"]] == ["CARD-2", "CARD-3"]
    assert missing.status_code == 404


async def test_TC_D_04_full_with_empty_list_D01(rig: Rig) -> None:
    st = await rig.station()
    first = await _put(rig, {"id_token": "CARD-1"})
    await wait_for(lambda: _synced(rig, first["version"]))
    async with rig.client() as c:
        gone = (await c.delete("/api/v1/local-list/entries/ISO14443/CARD-1", params={"push": "false"})).json()
        r = await c.post("/api/v1/stations/FE-0001/local-list/sync", params={"full": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["result"] == "Accepted"
    empty = _lists(st)[-1]
    assert empty == {"versionNumber": gone["version"], "updateType": "Full"}  # no localAuthorizationList
    assert local_auth.state(st).entries == {} and local_auth.state(st).version == gone["version"]


async def test_resend_after_reboot_when_the_station_lost_its_list_D02(rig: Rig) -> None:
    st = await rig.station()
    change = await _put(rig, {"id_token": "CARD-1"}, {"id_token": "CARD-2"})
    await wait_for(lambda: _synced(rig, change["version"]))
    local_auth.state(st).version, local_auth.state(st).entries = 0, {}  # flash wiped
    before = len(_lists(st))
    st.reboot()
    await wait_for(lambda: len(_lists(st)) > before, timeout=10)
    resent = _lists(st)[-1]
    assert resent["updateType"] == "Full" and len(resent["localAuthorizationList"]) == 2
    assert local_auth.state(st).version == change["version"]


async def test_sync_is_up_to_date_without_sending_a_list(rig: Rig) -> None:
    st = await rig.station()
    change = await _put(rig, {"id_token": "CARD-1"})
    await wait_for(lambda: _synced(rig, change["version"]))
    before = len(_lists(st))
    r = await rig.post("/api/v1/stations/FE-0001/local-list/sync")
    assert r.json()["result"] == "UpToDate" and len(_lists(st)) == before


async def test_station_reports_a_version_of_its_own_gets_a_full_list(rig: Rig) -> None:
    st = await rig.station()
    first = await _put(rig, {"id_token": "CARD-1"})
    await wait_for(lambda: _synced(rig, first["version"]))
    second = await _put(rig, {"id_token": "CARD-2"}, push=False)
    local_auth.state(st).version = 77  # someone else's list
    r = await rig.post("/api/v1/stations/FE-0001/local-list/sync")
    assert r.json()["result"] == "Accepted"
    last = _lists(st)[-1]
    assert last["updateType"] == "Full" and last["versionNumber"] == second["version"]


# ---------------------------------------------------------------------------------------- negative
async def test_station_refuses_the_list_failed_is_recorded_then_recovered(rig: Rig) -> None:
    await rig.station()
    await rig.command(
        "SetVariables", {"variables": [{"component": "LocalAuthListCtrlr", "variable": "Enabled", "value": "false"}]}
    )
    change = await _put(rig, {"id_token": "CARD-1"}, push=False)
    r = await rig.post("/api/v1/stations/FE-0001/local-list/sync")
    assert r.json()["result"] == "Failed"
    assert (await _station_version(rig))["status"] == "Failed"
    await rig.command(
        "SetVariables", {"variables": [{"component": "LocalAuthListCtrlr", "variable": "Enabled", "value": "true"}]}
    )
    r = await rig.post("/api/v1/stations/FE-0001/local-list/sync")
    assert r.json()["result"] == "Accepted" and r.json()["sent"][-1]["updateType"] == "Full"
    assert (await _station_version(rig))["station_version"] == change["version"]


async def test_differential_version_mismatch_falls_back_to_full_D01(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.1", call_timeout=5) as rig:
        got: list[dict[str, Any]] = []

        async def version(_ctx: Any, _p: dict[str, Any]) -> dict[str, Any]:
            return {"versionNumber": 1}

        async def send(_ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
            got.append(p)
            return {"status": "VersionMismatch" if p["updateType"] == "Differential" else "Accepted"}

        ws = await open_ws(rig.port, "FE-0002", protocols=("ocpp2.1",))
        station = TestStation(ws, {"GetLocalListVersion": version, "SendLocalList": send})
        await _put(rig, {"id_token": "CARD-1"}, push=False)
        await ops.set_local_list_station(rig.store, "FE-0002", 1, "Accepted")  # it got version 1 from us
        await _put(rig, {"id_token": "CARD-2"}, push=False)
        await station.boot()
        await wait_for(lambda: len(got) == 2, timeout=10)
        assert [p["updateType"] for p in got] == ["Differential", "Full"]
        assert [e["idToken"]["idToken"] for e in got[0]["localAuthorizationList"]] == ["CARD-2"]
        assert [e["idToken"]["idToken"] for e in got[1]["localAuthorizationList"]] == ["CARD-1", "CARD-2"]
        assert (await _station_version(rig, "FE-0002"))["station_version"] == 2
        await station.close()


async def test_simulator_answers_version_mismatch_to_an_old_differential_D01(rig: Rig) -> None:
    st = await rig.station()
    local_auth.state(st).version = 5
    bad = await rig.post(
        "/api/v1/stations/FE-0001/commands/SendLocalList",
        {"version_number": 5, "update_type": "Differential",
         "local_authorization_list": [{"idToken": {"idToken": "X", "type": "Central"}}]},
    )  # fmt: skip
    assert bad.json()["status"] == "VersionMismatch" and local_auth.state(st).version == 5


async def test_api_refuses_version_0_and_duplicates_D01_FR_18_FR_06(rig: Rig) -> None:
    await rig.station()
    r = await rig.post("/api/v1/stations/FE-0001/commands/SendLocalList", {"version_number": 0, "update_type": "Full"})
    assert r.status_code == 422
    entry = {"idToken": {"idToken": "A", "type": "Central"}, "idTokenInfo": {"status": "Accepted"}}
    r = await rig.post(
        "/api/v1/stations/FE-0001/commands/SendLocalList",
        {"version_number": 3, "update_type": "Full", "local_authorization_list": [entry, entry]},
    )
    assert r.status_code == 422 and "D01.FR.06" in r.text
    async with rig.client() as c:
        r = await c.put("/api/v1/local-list/entries", json={"entries": [{"id_token": "A"}, {"id_token": "A"}]})
    assert r.status_code == 422
    bad_info = {"idToken": {"idToken": "A", "type": "Central"}, "idTokenInfo": {"status": "Sure"}}
    r = await rig.post(
        "/api/v1/stations/FE-0001/commands/SendLocalList",
        {"version_number": 3, "update_type": "Full", "local_authorization_list": [bad_info]},
    )
    assert r.status_code == 422 and r.json()["error"]["details"]["ocpp_code"] == "PropertyConstraintViolation"


async def test_station_without_local_list_support_is_recorded_not_supported(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.0.1", call_timeout=5) as rig:
        ws = await open_ws(rig.port, "FE-0002")
        station = TestStation(ws)  # no handlers: every CALL is answered NotSupported
        await station.boot()
        r = await rig.post("/api/v1/stations/FE-0002/local-list/sync")
        assert r.status_code == 200 and r.json()["result"] == "NotSupported"
        assert (await _station_version(rig, "FE-0002"))["status"] == "NotSupported"
        await station.close()


async def test_station_that_never_answers_times_out(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.1", call_timeout=0.5) as rig:
        ws = await open_ws(rig.port, "FE-0002", protocols=("ocpp2.1",))
        import asyncio

        async def silent(_ctx: Any, _p: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(5)
            return {"versionNumber": 0}

        station = TestStation(ws, {"GetLocalListVersion": silent})
        await station.boot()
        r = await rig.post("/api/v1/stations/FE-0002/local-list/sync")
        assert r.status_code == 504 and r.json()["error"]["code"] == "station_timeout"
        r = await rig.post("/api/v1/stations/FE-0003/local-list/sync")
        assert r.status_code == 409 and r.json()["error"]["code"] == "station_offline"
        r = await rig.post("/api/v1/stations/NOPE/local-list/sync")
        assert r.status_code == 404
        await station.close()


async def test_malformed_get_local_list_version_answer_is_a_bad_response(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.0.1", call_timeout=2) as rig:
        ws = await open_ws(rig.port, "FE-0002")
        await raw_exchange(
            ws,
            orjson.dumps([2, "b1", "BootNotification",
                          {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}]).decode(),
        )  # fmt: skip
        import asyncio

        async with rig.client() as c:
            pending = asyncio.create_task(c.post("/api/v1/stations/FE-0002/commands/GetLocalListVersion", json={}))
            while True:
                frame = orjson.loads(await ws.recv())
                if frame[0] == 2 and frame[2] == "GetLocalListVersion":
                    await ws.send(orjson.dumps([3, frame[1], {"versionNumber": "one"}]).decode())
                    break
                if frame[0] == 2:
                    await ws.send(orjson.dumps([4, frame[1], "NotSupported", "", {}]).decode())
            r = await pending
        assert r.status_code == 502 and r.json()["error"]["code"] == "station_bad_response"
        await ws.close()


# ---------------------------------------------------------------------------------------- C
async def test_TC_C_37_clear_cache_accepted_and_TC_C_38_rejected_C11(rig: Rig) -> None:
    st = await rig.station()
    local_auth.state(st).cache[("ISO14443", "OLD")] = {"status": "Accepted"}
    result = await rig.command("ClearCache")
    assert result["status"] == "Accepted" and local_auth.state(st).cache == {}
    await rig.command(
        "SetVariables", {"variables": [{"component": "AuthCacheCtrlr", "variable": "Enabled", "value": "false"}]}
    )
    result = await rig.command("ClearCache")
    assert result["status"] == "Rejected"


async def test_TC_C_39_authorization_by_group_id_C09(rig: Rig) -> None:
    await rig.store.upsert_id_token("MEMBER-1", "ISO14443", status="Accepted", group_id="FLEET-A")
    ws = await open_ws(rig.port, "FE-0002", protocols=(f"ocpp{rig.version}",))
    station = TestStation(ws)
    await station.boot()
    r = await station.call("Authorize", {"idToken": {"idToken": "MEMBER-1", "type": "ISO14443"}})
    assert r["idTokenInfo"]["groupIdToken"] == {"idToken": "FLEET-A", "type": "Central"}
    await station.close()


async def test_TC_C_40_group_id_in_local_list_and_TC_C_43_invalid_status_offline(rig: Rig) -> None:
    await rig.store.upsert_id_token("MEMBER-1", "ISO14443", status="Accepted", group_id="FLEET-A")
    st = await rig.station()
    await rig.command(
        "SetVariables",
        {"variables": [{"component": "AuthCtrlr", "variable": "OfflineTxForUnknownIdEnabled", "value": "false"}]},
    )
    change = await _put(rig, {"id_token": "MEMBER-1"}, {"id_token": "BLOCKED-1", "status": "Blocked"})
    await wait_for(lambda: _synced(rig, change["version"]))
    entries = local_auth.state(st).entries
    assert entries[("ISO14443", "MEMBER-1")]["groupIdToken"]["idToken"] == "FLEET-A"
    # offline: the local list decides
    st.disconnect()
    await wait_for(lambda: not st.online)
    st.plug_in(1, id_token="BLOCKED-1")
    await wait_for(lambda: st.evses[1].tx is not None and st.evses[1].tx.id_token is not None)
    assert not st.evses[1].tx.authorized  # type: ignore[union-attr]
    assert local_auth.lookup(st, {"idToken": "MEMBER-1", "type": "ISO14443"})["status"] == "Accepted"  # type: ignore[index]
    st.reconnect()
    await st.wait_online()


async def test_cached_token_authorizes_offline_C12(rig: Rig) -> None:
    await rig.store.upsert_id_token("US-CACHED-1", "eMAID", status="Accepted")
    st = await rig.station()
    await rig.command(
        "SetVariables",
        {"variables": [{"component": "AuthCtrlr", "variable": "OfflineTxForUnknownIdEnabled", "value": "false"}]},
    )
    st.plug_in(1, id_token="US-CACHED-1", departure_s=60)
    await wait_for(lambda: st.evses[1].tx is not None and st.evses[1].tx.authorized)
    assert ("eMAID", "US-CACHED-1") in local_auth.state(st).cache
    assert sent(st, "Authorize")


async def test_TC_C_20_cached_invalid_token_is_refused_offline_C12(rig: Rig) -> None:
    await rig.store.upsert_id_token("US-BLOCKED-1", "eMAID", status="Blocked")
    st = await rig.station()
    st.plug_in(1, id_token="US-BLOCKED-1", departure_s=30)
    await wait_for(lambda: local_auth.state(st).cache.get(("eMAID", "US-BLOCKED-1")))
    assert local_auth.state(st).cache[("eMAID", "US-BLOCKED-1")]["status"] == "Blocked"
    await wait_for(lambda: st.evses[1].ev is None, timeout=10)  # the car left
    st.disconnect()
    await wait_for(lambda: not st.online)
    authorizes = len(sent(st, "Authorize"))
    st.plug_in(1, id_token="US-BLOCKED-1", departure_s=600)  # OfflineTxForUnknownIdEnabled is true
    await wait_for(lambda: any(p["triggerReason"] == "Deauthorized" for p in st.queued("TransactionEvent")))
    assert len(sent(st, "Authorize")) == authorizes  # decided from the cache, offline
    assert not st.evses[1].tx.authorized  # type: ignore[union-attr]
    st.reconnect()
    await st.wait_online()


async def test_cli_local_list_and_clear_cache(rig: Rig) -> None:
    from tests.cli.conftest import Cli

    st = await rig.station()
    cli = Cli(_CliEnv(rig), rig_path(rig))  # type: ignore[arg-type]
    r = await cli("local-list", "add", "CARD-9", "--status", "Accepted")
    assert r.exit_code == 0, r.output
    version = (await _station_version(rig))["csms_version"]
    await wait_for(lambda: _synced(rig, version))
    r = await cli("local-list", "show")
    assert r.exit_code == 0 and "CARD-9" in r.stdout, r.output
    r = await cli("local-list", "station", "FE-0001")
    assert r.exit_code == 0 and f"version {version}" in r.stdout, r.output
    r = await cli("local-list", "sync", "FE-0001", "--full")
    assert r.exit_code == 0 and "Accepted" in r.stdout, r.output
    r = await cli("local-list", "remove", "CARD-9")
    assert r.exit_code == 0, r.output
    r = await cli("clear-cache", "FE-0001")
    assert r.exit_code == 0 and "Accepted" in r.stdout, r.output
    assert local_auth.state(st).version >= version
    assert now_ts()


class _CliEnv:
    def __init__(self, rig: Rig) -> None:
        self.url, self.operator_token, self.read_token = rig.url, rig.token, rig.read_token


def rig_path(rig: Rig) -> Path:
    import tempfile

    return Path(tempfile.mkdtemp()) / "cli.toml"
