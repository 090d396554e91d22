"""A live NotifyReport from the bundled simulator, over a real socket, lands in the stored device
model with each attribute's mutability / persistent / constant flags (B07/B08)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from csms.central import CentralSystem
from csms.store.rows import VariableRow
from simulators import Fleet, FleetConfig, StationConfig
from tests.conftest import make_settings
from tests.support import PASSWORD

pytestmark = pytest.mark.timeout(60)


def _id(value: int | None) -> int:
    return -1 if value is None else value


def _key(r: VariableRow) -> tuple[str, str, int, int, str, str]:
    return (r.component, r.component_instance, r.evse_id, r.connector_id, r.variable, r.variable_instance)


async def test_live_notify_report_keeps_attribute_flags(tmp_path: Path) -> None:
    central = CentralSystem(make_settings(tmp_path, call_timeout=10))
    await central.start()
    station = StationConfig(id="NR-1", password=PASSWORD, ocpp=["2.0.1"])
    await central.register_station(station.id, PASSWORD)
    fleet = Fleet(FleetConfig(url=f"ws://127.0.0.1:{central.port}/ocpp", stations=[station]), central.clock)
    await fleet.start()
    try:
        await fleet.wait_online(30)
        sim = fleet["NR-1"]
        expected = {
            (v.component, v.component_instance or "", _id(v.evse), _id(v.connector), v.name, v.instance or ""): (
                v.mutability,
                v.persistent,
                v.constant,
            )
            for v in sim.dm
            if v.mutability != "WriteOnly"
        }
        reply = await central.call("NR-1", "GetBaseReport", {"requestId": 41, "reportBase": "FullInventory"})
        assert reply["status"] == "Accepted"
        assert central.store is not None
        rows = []
        for _ in range(200):  # NotifyReport arrives in parts after the answer
            rows = await central.store.get_variables("NR-1")
            if len({_key(r) for r in rows}) >= len(expected):
                break
            await asyncio.sleep(0.05)
        stored = {_key(r): r for r in rows if r.attribute_type == "Actual"}
        assert stored.keys() >= expected.keys()
        for key, (mutability, persistent, constant) in expected.items():
            chars = stored[key].characteristics or {}
            assert (chars.get("mutability"), chars.get("persistent"), chars.get("constant")) == (
                mutability,
                persistent,
                constant,
            ), key
            assert "dataType" in chars, key  # variableCharacteristics are kept next to the flags
        # a variable the station may change, with the flags the station reported
        writable = [k for k, flags in expected.items() if flags[0] == "ReadWrite"]
        assert writable and stored[writable[0]].characteristics["mutability"] == "ReadWrite"  # type: ignore[index]
    finally:
        await fleet.stop()
        await central.stop()
