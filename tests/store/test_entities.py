"""CRUD of the smaller entities: stations, connectors, id tokens, profiles, device model, events,
grid events and reports, API tokens."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.store import Store

T0 = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)


async def test_stations(store: Store) -> None:
    row = await store.upsert_station("CS-1", meta={"boot_policy": "accept"}, password_hash="h1")
    assert row.meta == {"boot_policy": "accept"} and not row.connected and row.boot_status is None
    await store.record_boot("CS-1", "ACME", "FE-20", "SN-1", "1.2", "2.0.1", "Accepted", T0)
    await store.record_boot("CS-2", "ACME", "FE-40", "SN-2", "1.2", "2.1", "Pending", T0)
    row = await store.set_connected("CS-1", True, T0 + timedelta(minutes=1))
    assert row.connected and row.connected_since == T0 + timedelta(minutes=1)
    assert row.password_hash == "h1" and row.meta == {"boot_policy": "accept"}  # untouched by upserts
    assert [s.id for s in await store.list_stations(connected=True)] == ["CS-1"]
    assert [s.id for s in await store.list_stations(status="Pending")] == ["CS-2"]
    assert [s.id for s in await store.list_stations(model="FE-20")] == ["CS-1"]
    assert [s.id for s in await store.list_stations(limit=1, offset=1)] == ["CS-2"]
    row = await store.set_connected("CS-1", False, T0 + timedelta(minutes=2))
    assert not row.connected and row.connected_since is None and row.last_seen_at == T0 + timedelta(minutes=2)
    assert (await store.set_credentials("CS-2", "h2")).password_hash == "h2"
    caps = {"chargingRateUnits": ["W", "A"], "v2x": {"modes": ["DC_BPT"]}}
    assert (await store.set_capabilities("CS-2", caps)).capabilities == caps
    with pytest.raises(TypeError):
        await store.upsert_station("CS-1", colour="red")
    with pytest.raises(ValueError):
        await store.upsert_station("X" * 49)
    assert await store.bulk_register_stations([f"B-{i}" for i in range(50)] + ["CS-1"], "hb") == 51
    assert len(await store.list_stations(limit=1000)) == 52
    assert (await store.get_station("CS-1")).password_hash == "hb"  # type: ignore[union-attr]
    assert await store.delete_station("B-0") and not await store.delete_station("B-0")
    assert await store.get_station("B-0") is None


async def test_concurrent_station_writes(store: Store) -> None:
    await asyncio.gather(
        *(store.set_connected(f"CS-{i % 5}", bool(i % 2), T0 + timedelta(seconds=i)) for i in range(40)),
        *(store.set_connector_status(f"CS-{i % 5}", 1, 1, f"S{i}", T0 + timedelta(seconds=i)) for i in range(40)),
    )
    assert len(await store.list_stations()) == 5
    statuses = {(await store.connector_statuses(f"CS-{k}"))[0].status for k in range(5)}
    assert statuses == {"S35", "S36", "S37", "S38", "S39"}  # newest per station wins, whatever the order


async def test_connector_status(store: Store) -> None:
    assert await store.set_connector_status("CS-1", 1, 1, "Available", T0)
    assert await store.set_connector_status("CS-1", 2, 1, "Occupied", T0)
    assert await store.set_connector_status("CS-1", 1, 1, "Occupied", T0 + timedelta(seconds=5))
    assert not await store.set_connector_status("CS-1", 1, 1, "Faulted", T0 + timedelta(seconds=1))  # late
    rows = await store.connector_statuses("CS-1")
    assert [(r.evse_id, r.connector_id, r.status) for r in rows] == [(1, 1, "Occupied"), (2, 1, "Occupied")]
    assert rows[0].updated_at == T0 + timedelta(seconds=5)
    assert await store.connector_statuses("CS-2") == []


async def test_id_token_crud(store: Store) -> None:
    exp = T0 + timedelta(days=30)
    row = await store.upsert_id_token(
        "04A1B2",
        "ISO14443",
        status="Accepted",
        expires_at=exp,
        group_id="FLEET-1",
        allowed_energy_transfer=["DC_BPT"],
    )
    assert (row.status, row.expires_at, row.group_id, row.allowed_energy_transfer) == (
        "Accepted",
        exp,
        "FLEET-1",
        ["DC_BPT"],
    )
    await store.upsert_id_token("04A1B2", "Central", status="Blocked")  # same value, other type
    await store.upsert_id_token("ZZZ", "eMAID", status="Expired", group_id="FLEET-1")
    updated = await store.upsert_id_token("04A1B2", "ISO14443", status="Blocked")
    assert updated.status == "Blocked" and updated.expires_at is None and updated.created_at == row.created_at
    got = await store.get_id_token("04A1B2", "ISO14443")
    assert got == updated
    assert await store.get_id_token("04A1B2", "eMAID") is None
    assert [(t.id_token, t.type) for t in await store.list_id_tokens()] == [
        ("04A1B2", "Central"),
        ("04A1B2", "ISO14443"),
        ("ZZZ", "eMAID"),
    ]
    assert [t.id_token for t in await store.list_id_tokens(status="Expired")] == ["ZZZ"]
    assert [t.id_token for t in await store.list_id_tokens(group_id="FLEET-1")] == ["ZZZ"]
    assert await store.delete_id_token("04A1B2", "ISO14443")
    assert not await store.delete_id_token("04A1B2", "ISO14443")
    assert len(await store.list_id_tokens()) == 2


def profile(pid: int, purpose: str = "TxDefaultProfile", stack: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": pid,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}],
            }
        ],
        **extra,
    }


async def test_charging_profiles_crud(store: Store) -> None:
    row = await store.put_profile("CS-1", 1, profile(1), installed_at=T0)
    assert (row.profile_id, row.evse_id, row.purpose, row.stack_level, row.source) == (
        1,
        1,
        "TxDefaultProfile",
        0,
        "csms",
    )
    assert row.profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == 11000.0
    await store.put_profile("CS-1", 0, profile(2, "ChargingStationMaxProfile"))
    await store.put_profile("CS-1", 1, profile(3, "TxProfile", 1, transactionId="TX-1"))
    await store.put_profile("CS-2", 1, profile(1))
    replaced = await store.put_profile("CS-1", 2, profile(1, stack=5))  # same id replaces (K01.FR.05)
    assert (replaced.evse_id, replaced.stack_level) == (2, 5)
    rows = await store.profiles("CS-1")
    assert [(r.profile_id, r.evse_id) for r in rows] == [(2, 0), (3, 1), (1, 2)]
    assert next(r for r in rows if r.profile_id == 3).transaction_id == "TX-1"
    assert [r.profile_id for r in await store.profiles("CS-1", evse_id=1)] == [3]
    assert [r.profile_id for r in await store.profiles("CS-1", purpose="ChargingStationMaxProfile")] == [2]
    assert await store.delete_profiles("CS-1", purpose="TxProfile", stack_level=1) == 1
    assert await store.delete_profiles("CS-1", profile_id=99) == 0
    assert [r.profile_id for r in await store.profiles("CS-1")] == [2, 1]
    with pytest.raises(ValueError):
        await store.put_profile("CS-1", 1, {"id": 7})

    reported = await store.replace_profiles("CS-1", [(1, profile(10)), (0, profile(11, "ChargingStationMaxProfile"))])
    assert sorted((r.profile_id, r.source) for r in reported) == [(10, "station"), (11, "station")]
    assert [r.profile_id for r in await store.profiles("CS-2")] == [1]  # other stations untouched
    assert await store.delete_profiles("CS-1") == 2
    assert await store.replace_profiles("CS-1", []) == []


async def test_recorded_profiles_share_transactions_and_stay_ordered(store: Store) -> None:
    """Group commit: 300 concurrent records land in a handful of transactions, each caller
    returns only once its profile is committed, and a later write of the same id wins."""
    group = store._profile_group
    before = group.batches
    await asyncio.gather(*(store.record_profile(f"CS-{i % 30}", 1, profile(i // 30 + 1)) for i in range(300)))
    assert group.batches - before < 30
    rows = await store.profiles("CS-7")
    assert sorted(r.profile_id for r in rows) == list(range(1, 11)) and all(r.source == "csms" for r in rows)
    # the same (station, id) twice in one batch: the later one wins
    await asyncio.gather(
        store.record_profile("CS-0", 1, profile(1)), store.record_profile("CS-0", 2, profile(1, stack=4))
    )
    assert [(r.evse_id, r.stack_level) for r in await store.profiles("CS-0") if r.profile_id == 1] == [(2, 4)]
    pending = asyncio.ensure_future(store.record_profile("CS-0", 1, profile(99)))
    await asyncio.sleep(0)
    assert await store.delete_profiles("CS-0", profile_id=99) == 1  # not resurrected by the pending write
    await pending
    assert 99 not in {r.profile_id for r in await store.profiles("CS-0")}
    # a profile missing its required fields is refused before anything is queued
    with pytest.raises(ValueError):
        await store.record_profile("CS-1", 1, {"id": 7})
    await store.record_profile("CS-1", 1, profile(50))
    assert 50 in {r.profile_id for r in await store.profiles("CS-1")}


async def test_device_model(store: Store) -> None:
    report = [
        {
            "component": {"name": "EVSE", "evse": {"id": 1}},
            "variable": {"name": "Power"},
            "variableAttribute": [
                {"type": "Actual", "value": "11000", "mutability": "ReadOnly"},
                {"type": "MaxSet", "value": "22000"},
            ],
            "variableCharacteristics": {"unit": "W", "dataType": "decimal", "supportsMonitoring": True},
        },
        {
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "HeartbeatInterval"},
            "variableAttribute": [{"value": "300", "persistent": True}],
            "variableCharacteristics": {"dataType": "integer", "supportsMonitoring": False},
        },
        {
            "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}, "instance": "ccs"},
            "variable": {"name": "Available", "instance": "x"},
            "variableAttribute": [{"value": "true"}],
        },
        {"nonsense": True},  # skipped
    ]
    assert await store.upsert_variables("CS-1", report) == 4
    rows = await store.get_variables("CS-1")
    assert [(r.component, r.variable, r.attribute_type, r.value) for r in rows] == [
        ("Connector", "Available", "Actual", "true"),
        ("EVSE", "Power", "Actual", "11000"),
        ("EVSE", "Power", "MaxSet", "22000"),
        ("OCPPCommCtrlr", "HeartbeatInterval", "Actual", "300"),
    ]
    conn = rows[0]
    assert (conn.component_instance, conn.evse_id, conn.connector_id, conn.variable_instance) == (
        "ccs",
        1,
        1,
        "x",
    )
    power = rows[1]
    assert power.characteristics == {
        "unit": "W",
        "dataType": "decimal",
        "supportsMonitoring": True,
        "mutability": "ReadOnly",
    }
    hb = rows[3]
    assert (hb.evse_id, hb.connector_id, hb.component_instance) == (-1, -1, "")
    # flat rows (as built from GetVariables results): value updated, characteristics kept
    flat = {
        "component": "OCPPCommCtrlr",
        "variable": "HeartbeatInterval",
        "value": 60,
        "characteristics": None,
    }
    assert await store.upsert_variables("CS-1", [flat]) == 1
    hb2 = (await store.get_variables("CS-1", component="OCPPCommCtrlr"))[0]
    assert hb2.value == "60" and hb2.characteristics == {
        "dataType": "integer",
        "supportsMonitoring": False,
        "persistent": True,
    }
    assert len(await store.get_variables("CS-1", component="EVSE", variable="Power")) == 2
    assert await store.get_variables("CS-2") == []


async def test_security_and_station_events(store: Store) -> None:
    await store.add_security_event("CS-1", "FirmwareUpdated", "2026-06-01T16:00:00Z", "v1.2")
    await store.add_security_event("CS-1", "InvalidCsmsCertificate", T0 + timedelta(minutes=1))
    await store.add_security_event("CS-2", "ResetOrReboot", T0)
    events = await store.list_security_events("CS-1")
    assert [(e.type, e.tech_info) for e in events] == [
        ("InvalidCsmsCertificate", None),
        ("FirmwareUpdated", "v1.2"),
    ]
    assert len(await store.list_security_events()) == 3
    assert len(await store.list_security_events(limit=1, offset=1)) == 1

    await store.add_station_event("CS-1", "FirmwareStatus", T0, {"status": "Downloading", "requestId": 1})
    await store.add_station_event("CS-1", "NotifyEvent", T0 + timedelta(seconds=1), {"eventData": [{"eventId": 1}]})
    row = await store.add_station_event("CS-1", "FirmwareStatus", T0 + timedelta(seconds=2), {"status": "Installed"})
    assert row.id > 0 and row.timestamp == T0 + timedelta(seconds=2)
    fw = await store.list_station_events("CS-1", kind="FirmwareStatus")
    assert [e.payload["status"] for e in fw] == ["Installed", "Downloading"]
    assert [e.kind for e in await store.list_station_events("CS-1", limit=1)] == ["FirmwareStatus"]
    assert await store.list_station_events("CS-2") == []


async def test_grid_events_and_reports(store: Store) -> None:
    ev = await store.put_grid_event("GE-1", 1, "scheduled", {"start": "2026-06-01T18:00:00Z", "kw": 50})
    assert (ev.revision, ev.status) == (1, "scheduled")
    await store.put_grid_event("GE-2", 1, "scheduled", {})
    ev2 = await store.put_grid_event("GE-1", 2, "active", {"start": "2026-06-01T18:00:00Z", "kw": 80})
    assert (ev2.revision, ev2.status, ev2.payload["kw"]) == (2, "active", 80)
    assert ev2.created_at == ev.created_at and ev2.updated_at >= ev.updated_at
    stale = await store.put_grid_event("GE-1", 1, "cancelled", {})  # older revision: ignored
    assert (stale.revision, stale.status) == (2, "active")
    same = await store.put_grid_event("GE-1", 2, "completed", {"kw": 80})  # same revision: status moves
    assert same.status == "completed"
    assert await store.get_grid_event("nope") is None
    assert [e.id for e in await store.list_grid_events(status="scheduled")] == ["GE-2"]
    assert {e.id for e in await store.list_grid_events()} == {"GE-1", "GE-2"}

    assert await store.get_event_report("GE-1") is None
    await store.put_event_report("GE-1", {"delivered_kwh": 10.5})
    await store.put_event_report("GE-1", {"delivered_kwh": 12.0, "stations": ["CS-1"]})
    rep = await store.get_event_report("GE-1")
    assert rep is not None and rep.report == {"delivered_kwh": 12.0, "stations": ["CS-1"]}


async def test_api_tokens(store: Store) -> None:
    tok = await store.add_api_token("ops", "hash-1", "operator")
    assert (tok.name, tok.scope, tok.revoked) == ("ops", "operator", False)
    await store.add_api_token("ro", "hash-2", "read")
    with pytest.raises(ValueError):
        await store.add_api_token("ops", "hash-3", "admin")  # duplicate name
    with pytest.raises(ValueError):
        await store.add_api_token("other", "hash-1", "admin")  # duplicate hash
    with pytest.raises(ValueError):
        await store.add_api_token("bad", "hash-4", "root")
    found = await store.find_api_token_by_hash("hash-1")
    assert found is not None and found.name == "ops"
    assert await store.revoke_api_token("ops")
    assert not await store.revoke_api_token("ops")
    assert await store.find_api_token_by_hash("hash-1") is None
    assert [(t.name, t.revoked) for t in await store.list_api_tokens()] == [("ops", True), ("ro", False)]
    assert [t.name for t in await store.list_api_tokens(include_revoked=False)] == ["ro"]


async def test_update_stations_bulk_groups_by_columns(store) -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)
    await store.bulk_register_stations(["B-1", "B-2", "B-3"], None)
    await store.update_stations(
        [
            ("B-1", {"connected": True, "connected_since": at, "last_seen_at": at}),
            ("B-2", {"connected": True, "connected_since": at, "last_seen_at": at}),
            ("B-3", {"model": "FE-20", "boot_status": "Accepted", "last_boot_at": at}),
        ]
    )
    b1, b3 = await store.get_station("B-1"), await store.get_station("B-3")
    assert b1.connected and b1.connected_since == at and b1.model is None
    assert b3.model == "FE-20" and b3.boot_status == "Accepted" and not b3.connected
