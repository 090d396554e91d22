"""I - Tariff and cost over real sockets on OCPP 2.0.1 and 2.1 (OCA test cases TC_I_01/02 with
central cost calculation, and 2.1's TC_I_101 (partly)/102/105/106/110/113/114/115), negative cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from simulators import tariff as sim_tariff
from tests.support import TestStation, open_ws

from .conftest import Rig, received, running_rig, wait_for
from .test_d_local_auth_list import _CliEnv, rig_path

TARIFF = {"currency": "EUR", "price_kwh": 0.5, "fixed_fee": 1.0, "cost_update_interval_s": 1}


def _tariff_21(
    tariff_id: str = "T-1", prices: int = 1, conditions: bool = False, currency: str = "EUR"
) -> dict[str, Any]:
    price: dict[str, Any] = {"priceKwh": 0.3}
    if conditions:
        price["conditions"] = {"startTimeOfDay": "22:00", "endTimeOfDay": "06:00"}
    return {
        "tariffId": tariff_id,
        "currency": currency,
        "energy": {"prices": [dict(price) for _ in range(prices)]},
    }


async def _put_tariff(rig: Rig, station: str = "FE-0001", **body: Any) -> None:
    async with rig.client() as c:
        r = await c.put(f"/api/v1/stations/{station}/tariff", json={**TARIFF, **body})
    assert r.status_code == 200, r.text


def _event(kind: str, seq: int, wh: float, at: datetime) -> dict[str, Any]:
    return {
        "eventType": kind,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "triggerReason": {"Started": "CablePluggedIn", "Updated": "MeterValuePeriodic", "Ended": "EVDeparted"}[kind],
        "seqNo": seq,
        "transactionInfo": {"transactionId": "TX-COST"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": at.isoformat().replace("+00:00", "Z"),
                "sampledValue": [
                    {"value": wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}
                ],
            }
        ],
    }


async def test_TC_I_02_final_total_cost_and_running_cost_in_responses_I02(rig: Rig) -> None:
    await _put_tariff(rig, station="FE-0002", cost_update_interval_s=3600)
    ws = await open_ws(rig.port, "FE-0002", protocols=(f"ocpp{rig.version}",))
    got: list[dict[str, Any]] = []

    async def cost_updated(_ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        got.append(p)
        return {}

    station = TestStation(ws, {"CostUpdated": cost_updated})
    await station.boot()
    t0 = datetime.now(UTC)
    started = await station.call("TransactionEvent", _event("Started", 0, 10_000.0, t0))
    assert started["totalCost"] == 1.0  # the fixed fee
    updated = await station.call("TransactionEvent", _event("Updated", 1, 14_000.0, t0 + timedelta(minutes=10)))
    assert updated["totalCost"] == 3.0  # 1 + 4 kWh * 0.5
    ended = await station.call("TransactionEvent", _event("Ended", 2, 20_000.0, t0 + timedelta(minutes=30)))
    assert ended["totalCost"] == 6.0  # final cost
    await wait_for(lambda: got)
    assert got == [{"totalCost": 3.0, "transactionId": "TX-COST"}]  # I01: CostUpdated while charging
    await station.close()


async def test_TC_I_01_running_total_cost_with_cost_updated_I01(rig: Rig) -> None:
    await rig.store.upsert_id_token("TOKEN-1", "eMAID", status="Accepted")
    await _put_tariff(rig)
    st = await rig.station(tx_updated_interval_s=20)
    st.plug_in(1, id_token="TOKEN-1", departure_s=3600)
    await wait_for(lambda: len(received(st, "CostUpdated")) >= 2, timeout=15)
    first, second = received(st, "CostUpdated")[:2]
    tx_id = st.evses[1].tx.id  # type: ignore[union-attr]
    assert first["transactionId"] == second["transactionId"] == tx_id
    assert 1.0 <= first["totalCost"] <= second["totalCost"]
    assert sim_tariff.costs(st)[tx_id] >= second["totalCost"]


async def test_no_tariff_no_cost(rig: Rig) -> None:
    ws = await open_ws(rig.port, "FE-0002", protocols=(f"ocpp{rig.version}",))
    station = TestStation(ws)
    await station.boot()
    t0 = datetime.now(UTC)
    assert "totalCost" not in await station.call("TransactionEvent", _event("Started", 0, 0.0, t0))
    async with rig.client() as c:
        assert (await c.get("/api/v1/stations/FE-0002/tariff")).status_code == 404
    await station.close()


async def test_cost_updated_command_and_tariff_crud(rig: Rig) -> None:
    st = await rig.station()
    result = await rig.command("CostUpdated", {"transaction_id": "TX-9", "total_cost": 12.5})
    assert result["response"] == {} and sim_tariff.costs(st)["TX-9"] == 12.5
    await _put_tariff(rig)
    async with rig.client() as c:
        assert (await c.get("/api/v1/stations/FE-0001/tariff")).json()["price_kwh"] == 0.5
        assert (await c.delete("/api/v1/stations/FE-0001/tariff")).status_code == 204
        assert (await c.get("/api/v1/stations/FE-0001/tariff")).status_code == 404
        bad = await c.put("/api/v1/stations/FE-0001/tariff", json={"currency": "EURO", "price_kwh": -1})
        assert bad.status_code == 422
    r = await rig.post("/api/v1/stations/FE-0001/commands/CostUpdated", {"transaction_id": "TX-9", "total_cost": -1})
    assert r.status_code == 422


# ---------------------------------------------------------------------------------------- 2.1 only
@pytest.fixture
async def rig21(tmp_path: Path) -> Any:
    async with running_rig(tmp_path, "2.1", call_timeout=5) as r:
        yield r


async def test_TC_I_101_set_default_tariff_without_conditions_and_get_tariffs(rig21: Rig) -> None:
    st = await rig21.station(evse_count=2)
    r = await rig21.command("SetDefaultTariff", {"evse_id": 0, "tariff": _tariff_21()})
    assert r["status"] == "Accepted"
    got = await rig21.command("GetTariffs", {"evse_id": 0})
    assert got["response"] == {
        "status": "Accepted",
        "tariffAssignments": [{"tariffId": "T-1", "tariffKind": "DefaultTariff", "evseIds": [1, 2]}],
    }
    assert received(st, "SetDefaultTariff")[0]["tariff"]["tariffId"] == "T-1"


async def test_TC_I_102_too_many_elements_TC_I_105_conditions_not_supported_TC_I_106_validations(rig21: Rig) -> None:
    await rig21.station()
    many = await rig21.command("SetDefaultTariff", {"tariff": _tariff_21(prices=sim_tariff.MAX_ELEMENTS + 1)})
    assert many["status"] == "TooManyElements"
    cond = await rig21.command("SetDefaultTariff", {"tariff": _tariff_21(conditions=True)})
    assert cond["status"] == "ConditionNotSupported"
    assert (await rig21.command("SetDefaultTariff", {"tariff": _tariff_21()}))["status"] == "Accepted"
    dup = await rig21.command("SetDefaultTariff", {"tariff": _tariff_21(currency="USD")})
    assert dup["status"] == "DuplicateTariffId"
    r = await rig21.post("/api/v1/stations/FE-0001/commands/SetDefaultTariff", {"tariff": {"tariffId": "X"}})
    assert r.status_code == 422 and r.json()["error"]["details"]["ocpp_code"] == "OccurrenceConstraintViolation"
    assert (await rig21.command("GetTariffs", {"evse_id": 0}))["response"]["tariffAssignments"][0]["tariffId"] == "T-1"


async def test_TC_I_109_receive_driver_tariff_in_authorize_response(rig: Rig) -> None:
    await rig.store.upsert_id_token("TOKEN-1", "eMAID", status="Accepted")
    await _put_tariff(rig)
    st = await rig.station()
    st.plug_in(1, id_token="TOKEN-1", departure_s=3600)
    await wait_for(lambda: st.evses[1].tx is not None and st.evses[1].tx.authorized)
    tx_id = st.evses[1].tx.id  # type: ignore[union-attr]
    driver = sim_tariff._state(st)["driver"]
    if rig.version == "2.0.1":  # no tariff in a 2.0.1 AuthorizeResponse
        assert driver == {}
        return
    assert driver[tx_id] == {
        "tariffId": "CSMS-FE-0001",
        "currency": "EUR",
        "energy": {"prices": [{"priceKwh": 0.5}]},
        "fixedFee": {"prices": [{"priceFixed": 1.0}]},
    }
    got = await rig.command("GetTariffs", {"evse_id": 1})
    assert got["response"]["tariffAssignments"] == [
        {"tariffId": "CSMS-FE-0001", "tariffKind": "DriverTariff", "evseIds": [1]}
    ]


async def test_TC_I_110_clear_tariffs(rig21: Rig) -> None:
    await rig21.station()
    await rig21.command("SetDefaultTariff", {"tariff": _tariff_21()})
    cleared = await rig21.command("ClearTariffs", {"tariff_ids": ["T-1", "T-404"]})
    assert cleared["response"]["clearTariffsResult"] == [
        {"tariffId": "T-1", "status": "Accepted"},
        {"tariffId": "T-404", "status": "NoTariff"},
    ]
    assert (await rig21.command("GetTariffs", {"evse_id": 0}))["status"] == "NoTariff"
    nothing = await rig21.command("ClearTariffs", {})
    assert nothing["response"]["clearTariffsResult"] == [{"status": "NoTariff"}]


async def test_TC_I_113_114_115_change_transaction_tariff(rig21: Rig) -> None:
    await rig21.store.upsert_id_token("TOKEN-1", "eMAID", status="Accepted")
    st = await rig21.station()
    await rig21.command("SetDefaultTariff", {"tariff": _tariff_21()})
    st.plug_in(1, id_token="TOKEN-1", departure_s=3600)
    await wait_for(lambda: st.evses[1].tx is not None)
    tx = st.evses[1].tx.id  # type: ignore[union-attr]

    async def change(t: dict[str, Any], tx_id: str = tx) -> str:
        return str((await rig21.command("ChangeTransactionTariff", {"transaction_id": tx_id, "tariff": t}))["status"])

    assert await change(_tariff_21("D-1", prices=sim_tariff.MAX_ELEMENTS + 1)) == "TooManyElements"  # TC_I_113
    assert await change(_tariff_21("D-1", conditions=True)) == "ConditionNotSupported"  # TC_I_114
    assert await change(_tariff_21("D-1", currency="USD")) == "NoCurrencyChange"
    await rig21.command(
        "SetVariables",
        {"variables": [{"component": "TariffCostCtrlr", "variable": "TariffConditionsSupported", "value": "true"}]},
    )
    assert await change(_tariff_21("D-1", conditions=True)) == "Accepted"  # TC_I_115
    assert await change(_tariff_21("D-2"), tx_id="no-such-tx") == "TxNotFound"
    got = await rig21.command("GetTariffs", {"evse_id": 1})
    kinds = {a["tariffId"]: a["tariffKind"] for a in got["response"]["tariffAssignments"]}
    assert kinds == {"T-1": "DefaultTariff", "D-1": "DriverTariff"}


async def test_21_tariff_messages_refused_for_a_201_station(tmp_path: Path) -> None:
    async with running_rig(tmp_path, "2.0.1", call_timeout=5) as rig:
        await rig.station()
        for action, body in (
            ("SetDefaultTariff", {"tariff": _tariff_21()}),
            ("GetTariffs", {}),
            ("ClearTariffs", {}),
            ("ChangeTransactionTariff", {"transaction_id": "T", "tariff": _tariff_21()}),
        ):
            r = await rig.post(f"/api/v1/stations/FE-0001/commands/{action}", body)
            assert r.status_code == 409 and r.json()["error"]["code"] == "not_in_version", action


async def test_cli_tariff(rig21: Rig, tmp_path: Path) -> None:
    from tests.cli.conftest import Cli

    st = await rig21.station()
    cli = Cli(_CliEnv(rig21), rig_path(rig21))  # type: ignore[arg-type]
    r = await cli("tariff", "set", "FE-0001", "--price-kwh", "0.4", "--currency", "EUR")
    assert r.exit_code == 0 and "0.4 EUR/kWh" in r.stdout, r.output
    r = await cli("tariff", "show", "FE-0001")
    assert "0.4 EUR/kWh" in r.stdout, r.output
    r = await cli("tariff", "cost", "FE-0001", "TX-1", "3.5")
    assert r.exit_code == 0, r.output
    assert sim_tariff.costs(st)["TX-1"] == 3.5
    path = tmp_path / "tariff.json"
    path.write_text(json.dumps(_tariff_21("CLI-1")))
    r = await cli("tariff", "default", "FE-0001", str(path))
    assert r.exit_code == 0 and "Accepted" in r.stdout, r.output
    r = await cli("tariff", "list", "FE-0001", "--json")
    assert json.loads(r.stdout)["response"]["tariffAssignments"][0]["tariffId"] == "CLI-1"
    r = await cli("tariff", "clear", "FE-0001", "--id", "CLI-1")
    assert r.exit_code == 0, r.output
