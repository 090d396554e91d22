"""H - Reservation over real sockets with the bundled station simulator on OCPP 2.0.1 and 2.1
(OCA test cases TC_H_01/07/08/14/15/17/19/20/22 and negative cases)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from simulators import reservations
from tests.support import TestStation, open_ws, raw_exchange

from .conftest import SPEED, Rig, received, running_rig, sent, wait_for
from .test_d_local_auth_list import _CliEnv, rig_path


async def _reserve(rig: Rig, station: str = "FE-0001", **body: Any) -> dict[str, Any]:
    body.setdefault("id_token", "DRIVER-1")
    r = await rig.post(f"/api/v1/stations/{station}/reservations", body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _get(rig: Rig, rid: int) -> dict[str, Any]:
    async with rig.client() as c:
        r = await c.get(f"/api/v1/reservations/{rid}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _connector(rig: Rig, evse_id: int = 1, station: str = "FE-0001") -> str | None:
    return rig.central.state(station).evse(evse_id).connectors.get(1)  # type: ignore[no-any-return]


async def _status(rig: Rig, rid: int, status: str) -> bool:
    return (await _get(rig, rid))["status"] == status


async def test_TC_H_01_reserve_a_specific_evse_accepted_H01(rig: Rig) -> None:
    st = await rig.station()
    out = await _reserve(rig, evse_id=1, id_token_type="ISO14443")
    res = out["reservation"]
    assert out["command"]["status"] == "Accepted" and res["status"] == "Accepted" and res["evse_id"] == 1
    request = received(st, "ReserveNow")[-1]
    assert request["id"] == res["id"] and request["evseId"] == 1
    assert request["idToken"] == {"idToken": "DRIVER-1", "type": "ISO14443"}
    await wait_for(lambda: _connector(rig) == "Reserved")
    assert sent(st, "StatusNotification")[-1]["connectorStatus"] == "Reserved"


async def test_TC_H_07_reservation_ended_not_used_expires_H04(rig: Rig) -> None:
    st = await rig.station()
    res = (await _reserve(rig, evse_id=1, duration_s=int(2 * SPEED)))["reservation"]
    await wait_for(lambda: _connector(rig) == "Reserved")
    await wait_for(lambda: sent(st, "ReservationStatusUpdate"), timeout=10)
    assert (await _get(rig, res["id"]))["status"] == "Expired"
    update = sent(st, "ReservationStatusUpdate")
    assert update == [{"reservationId": res["id"], "reservationUpdateStatus": "Expired"}]
    await wait_for(lambda: _connector(rig) == "Available")


async def test_TC_H_08_any_evse_and_TC_H_14_evses_equal_reservations_H01(rig: Rig) -> None:
    st = await rig.station(evse_count=2)
    first = await _reserve(rig, id_token="A")
    second = await _reserve(rig, id_token="B")
    assert first["command"]["status"] == second["command"]["status"] == "Accepted"
    assert "evseId" not in received(st, "ReserveNow")[0]
    third = await _reserve(rig, id_token="C")
    assert third["command"]["status"] == "Occupied" and third["reservation"]["status"] == "Occupied"
    await wait_for(lambda: _connector(rig, 1) == "Reserved" and _connector(rig, 2) == "Reserved")


async def test_TC_H_15_reserve_a_connector_type(rig: Rig) -> None:
    await rig.station()
    ok = await _reserve(rig, connector_type="cG105")
    assert ok["command"]["status"] == "Accepted"
    other = await _reserve(rig, id_token="B", connector_type="cType2")
    assert other["command"]["status"] == "Rejected"


async def test_TC_H_17_cancel_reservation_H02(rig: Rig) -> None:
    st = await rig.station()
    res = (await _reserve(rig, evse_id=1))["reservation"]
    await wait_for(lambda: _connector(rig) == "Reserved")
    async with rig.client() as c:
        r = await c.delete(f"/api/v1/reservations/{res['id']}")
        assert r.status_code == 200 and r.json()["status"] == "Accepted"
        assert received(st, "CancelReservation")[-1] == {"reservationId": res["id"]}
        assert (await _get(rig, res["id"]))["status"] == "Cancelled"
        await wait_for(lambda: _connector(rig) == "Available")
        again = await c.delete(f"/api/v1/reservations/{res['id']}")  # the station no longer has it
        assert again.status_code == 200 and again.json()["status"] == "Rejected"
        assert (await c.delete("/api/v1/reservations/999999")).status_code == 404
    assert sent(st, "ReservationStatusUpdate") == []  # a cancelled reservation is not reported


async def test_TC_H_19_use_a_reserved_evse_with_group_id_H03(rig: Rig) -> None:
    await rig.store.upsert_id_token("MEMBER-2", "ISO14443", status="Accepted", group_id="FLEET-A")
    st = await rig.station()
    res = (await _reserve(rig, evse_id=1, id_token="MEMBER-1", group_id="FLEET-A"))["reservation"]
    start = await rig.command(
        "RequestStartTransaction", {"id_token": "MEMBER-2", "id_token_type": "ISO14443", "evse_id": 1}
    )
    assert start["status"] == "Accepted"
    st.plug_in(1, departure_s=600)
    await wait_for(lambda: _status(rig, res["id"], "Used"), timeout=10)
    events = [p for p in sent(st, "TransactionEvent") if "reservationId" in p]
    assert len(events) == 1 and events[0]["reservationId"] == res["id"]
    assert st.evses[1].tx is not None and st.evses[1].tx.authorized


async def test_another_token_is_refused_on_a_reserved_evse_H03(rig: Rig) -> None:
    await rig.store.upsert_id_token("STRANGER", "eMAID", status="Accepted")
    st = await rig.station()
    res = (await _reserve(rig, evse_id=1, id_token="DRIVER-1"))["reservation"]
    st.plug_in(1, id_token="STRANGER", departure_s=600)
    await wait_for(lambda: sent(st, "Authorize"))
    await wait_for(lambda: any(p["triggerReason"] == "Deauthorized" for p in sent(st, "TransactionEvent")))
    assert (await _get(rig, res["id"]))["status"] == "Accepted"
    assert all("reservationId" not in p for p in sent(st, "TransactionEvent"))


async def test_TC_H_20_station_removes_reservation_when_faulted_H04(rig: Rig) -> None:
    st = await rig.station()
    res = (await _reserve(rig, evse_id=1))["reservation"]
    await wait_for(lambda: _connector(rig) == "Reserved")
    reservations.set_faulted(st, 1)
    await wait_for(lambda: _status(rig, res["id"], "Removed"))
    await wait_for(lambda: _connector(rig) == "Faulted")
    refused = await _reserve(rig, evse_id=1, id_token="B")
    assert refused["command"]["status"] == "Faulted"


async def test_TC_H_22_reserve_configured_to_reject_H01(rig: Rig) -> None:
    await rig.station()
    await rig.command(
        "SetVariables", {"variables": [{"component": "ReservationCtrlr", "variable": "Enabled", "value": "false"}]}
    )
    out = await _reserve(rig, evse_id=1)
    assert out["command"]["status"] == "Rejected" and out["reservation"]["status"] == "Rejected"


async def test_occupied_and_unknown_evse_and_past_expiry(rig: Rig) -> None:
    st = await rig.station()
    st.plug_in(1, departure_s=600)
    await wait_for(lambda: _connector(rig) == "Occupied")
    assert (await _reserve(rig, evse_id=1))["command"]["status"] == "Occupied"
    assert (await _reserve(rig, evse_id=7))["command"]["status"] == "Rejected"
    r = await rig.post("/api/v1/stations/FE-0001/reservations", {"id_token": "A", "expires_at": "2020-01-01T00:00:00Z"})
    assert r.status_code == 422
    r = await rig.post("/api/v1/stations/FE-0003/reservations", {"id_token": "A"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "station_offline"


async def test_reservation_past_expiry_reads_expired_while_the_station_is_offline(rig: Rig) -> None:
    st = await rig.station()
    res = (await _reserve(rig, evse_id=1, duration_s=int(1 * SPEED)))["reservation"]
    st.disconnect()
    await wait_for(lambda: not rig.central.state("FE-0001").connected)
    await asyncio.sleep(1.2)
    assert (await _get(rig, res["id"]))["status"] == "Expired"
    async with rig.client() as c:
        listed = (await c.get("/api/v1/reservations", params={"status": "Expired"})).json()
    assert [r["id"] for r in listed] == [res["id"]]
    st.reconnect()
    await st.wait_online()
    await wait_for(lambda: sent(st, "ReservationStatusUpdate"))  # queued while offline, sent on return


async def test_malformed_and_unknown_reservation_status_updates(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.0.1", call_timeout=5) as rig:
        ws = await open_ws(rig.port, "FE-0002")
        boot = [
            2,
            "b1",
            "BootNotification",
            {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"},
        ]
        assert (await raw_exchange(ws, orjson.dumps(boot).decode()))[0] == 3
        missing = await raw_exchange(ws, '[2,"r1","ReservationStatusUpdate",{"reservationId":1}]')
        assert missing[:3] == [4, "r1", "OccurrenceConstraintViolation"]
        bad_enum = await raw_exchange(
            ws, '[2,"r2","ReservationStatusUpdate",{"reservationId":1,"reservationUpdateStatus":"Gone"}]'
        )
        assert bad_enum[:3] == [4, "r2", "PropertyConstraintViolation"]
        wrong_type = await raw_exchange(
            ws, '[2,"r3","ReservationStatusUpdate",{"reservationId":"1","reservationUpdateStatus":"Expired"}]'
        )
        assert wrong_type[:3] == [4, "r3", "TypeConstraintViolation"]
        # 2.1's NoTransaction is not a 2.0.1 value
        v21_only = await raw_exchange(
            ws, '[2,"r4","ReservationStatusUpdate",{"reservationId":1,"reservationUpdateStatus":"NoTransaction"}]'
        )
        assert v21_only[:3] == [4, "r4", "PropertyConstraintViolation"]
        # a reservation of another station is acknowledged and left alone
        other = await rig.store.upsert_id_token("X", "Central")
        assert other is not None
        from csms.store import operations as ops

        await ops.put_reservation(
            rig.store, id=41, station_id="FE-0001", id_token="X", id_token_type="Central",
            expiry_at=rig.central.now(), status="Accepted",
        )  # fmt: skip
        ok = await raw_exchange(
            ws, '[2,"r5","ReservationStatusUpdate",{"reservationId":41,"reservationUpdateStatus":"Removed"}]'
        )
        assert ok == [3, "r5", {}]
        assert (await ops.get_reservation(rig.store, 41)).status == "Accepted"  # type: ignore[union-attr]
        await ws.close()


async def test_reservation_status_update_before_boot_is_refused(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.1", call_timeout=5) as rig:
        ws = await open_ws(rig.port, "FE-0002", protocols=("ocpp2.1",))
        early = await raw_exchange(
            ws, '[2,"e1","ReservationStatusUpdate",{"reservationId":1,"reservationUpdateStatus":"NoTransaction"}]'
        )
        assert early[:3] == [4, "e1", "SecurityError"]
        station = TestStation(ws)
        await station.boot()
        assert (
            await station.call(
                "ReservationStatusUpdate", {"reservationId": 1, "reservationUpdateStatus": "NoTransaction"}
            )
            == {}
        )
        await station.close()


async def test_cli_reservation_reserve_list_cancel(rig: Rig) -> None:
    from tests.cli.conftest import Cli

    await rig.station()
    cli = Cli(_CliEnv(rig), rig_path(rig))  # type: ignore[arg-type]
    r = await cli("reservation", "reserve", "FE-0001", "DRIVER-9", "--evse", "1", "--minutes", "30")
    assert r.exit_code == 0 and "Accepted" in r.stdout, r.output
    r = await cli("reservation", "list", "--json")
    rows = __import__("json").loads(r.stdout)
    assert rows[0]["id_token"] == "DRIVER-9" and rows[0]["status"] == "Accepted"
    r = await cli("reservation", "list")
    assert "DRIVER-9" in r.stdout, r.output
    r = await cli("reservation", "cancel", str(rows[0]["id"]))
    assert r.exit_code == 0 and "Accepted" in r.stdout, r.output
    r = await cli("reservation", "show", str(rows[0]["id"]))
    assert "Cancelled" in r.stdout, r.output
