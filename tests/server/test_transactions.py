"""Boot, status, a full transaction with meter values on 2.0.1 and 2.1, persistence across a
CSMS restart, duplicate and offline TransactionEvents."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from csms.central import CentralSystem
from csms.clock import to_rfc3339
from tests.conftest import make_settings
from tests.support import PASSWORD, TestStation, open_ws

T0 = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)


def ts(minutes: float) -> str:
    return to_rfc3339(T0 + timedelta(minutes=minutes))


def meter(minutes: float, wh: float, w: float) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": ts(minutes),
            "sampledValue": [
                {"value": wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
                {"value": w / 1000, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}},
            ],
        }
    ]


def tx_event(kind: str, seq: int, minutes: float, tx: str, **extra: Any) -> dict[str, Any]:
    event = {
        "eventType": kind,
        "timestamp": ts(minutes),
        "triggerReason": {"Started": "CablePluggedIn", "Updated": "MeterValuePeriodic", "Ended": "EVDeparted"}[kind],
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx},
        "evse": {"id": 1, "connectorId": 1},
    }
    event.update(extra)
    return event


async def run_session(station: TestStation, tx: str) -> None:
    await station.boot()
    await station.call(
        "StatusNotification", {"timestamp": ts(0), "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}
    )
    r = await station.call(
        "TransactionEvent",
        tx_event("Started", 0, 0, tx, idToken={"idToken": "TOKEN-1", "type": "Central"}, meterValue=meter(0, 0, 0)),
    )
    assert r["idTokenInfo"]["status"] == "Accepted"
    for i in range(1, 4):
        await station.call(
            "TransactionEvent", tx_event("Updated", i, i * 10, tx, meterValue=meter(i * 10, i * 1000.0, 6000))
        )
    await station.call("MeterValues", {"evseId": 1, "meterValue": meter(35, 3500, 6000)})
    await station.call(
        "TransactionEvent",
        tx_event(
            "Ended",
            4,
            40,
            tx,
            meterValue=meter(40, 4000, 0),
            transactionInfo={"transactionId": tx, "stoppedReason": "EVDisconnected"},
        ),
    )


async def test_two_versions_full_session_survive_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    central = CentralSystem(settings)
    await central.start()
    await central.store.upsert_id_token("TOKEN-1", "Central", status="Accepted")
    stations = {}
    for sid, proto in (("CS-201", "ocpp2.0.1"), ("CS-21", "ocpp2.1")):
        await central.register_station(sid, PASSWORD)
        stations[sid] = TestStation(await open_ws(central.port, sid, protocols=[proto]))
    await asyncio.gather(*(run_session(st, f"TX-{sid}") for sid, st in stations.items()))
    assert central.state("CS-21").evse(1).connectors[1] == "Occupied"
    await central.stop()  # flushes batched meter samples, closes sockets with 1001
    for st in stations.values():
        await st._task
        assert st.ws.close_code == 1001

    central = CentralSystem(settings)
    await central.start()
    try:
        for sid, proto in (("CS-201", "2.0.1"), ("CS-21", "2.1")):
            row = await central.store.get_station(sid)
            assert row.ocpp_version == proto and row.boot_status == "Accepted" and row.model == "FE-20"
            tx = await central.store.get_transaction(sid, f"TX-{sid}")
            assert tx.state == "Ended" and tx.stopped_reason == "EVDisconnected"
            events = await central.store.transaction_events(sid, f"TX-{sid}")
            assert [e.seq_no for e in events] == [0, 1, 2, 3, 4]
            samples = await central.store.meter_samples(sid, measurand="Energy.Active.Import.Register")
            assert sorted(s.value for s in samples) == [0, 1000, 2000, 3000, 3500, 4000]
            power = await central.store.meter_samples(sid, measurand="Power.Active.Import")
            assert {s.value for s in power} == {0.0, 6000.0}  # kW converted to W
            statuses = await central.store.connector_statuses(sid)  # written behind, flushed on stop
            assert [(c.evse_id, c.connector_id, c.status) for c in statuses] == [(1, 1, "Occupied")]
        # both reconnect without a new BootNotification and are still Accepted
        for sid, proto in (("CS-201", "ocpp2.0.1"), ("CS-21", "ocpp2.1")):
            st = TestStation(await open_ws(central.port, sid, protocols=[proto]))
            assert "currentTime" in await st.call("Heartbeat", {})
            await st.close()
    finally:
        await central.stop()


async def test_duplicate_and_offline_transaction_events(central: CentralSystem) -> None:
    await central.register_station("CS-1", PASSWORD)
    st = TestStation(await open_ws(central.port, "CS-1"))
    await st.boot()
    started = tx_event("Started", 0, 0, "TX-9")
    await st.call("TransactionEvent", started)
    await st.call("TransactionEvent", started)  # resent: acknowledged again, stored once
    # live event with seqNo 3 arrives before the queued offline events 1 and 2
    await st.call("TransactionEvent", tx_event("Updated", 3, 30, "TX-9", meterValue=meter(30, 3000, 5000)))
    for seq in (1, 2):
        await st.call(
            "TransactionEvent",
            tx_event("Updated", seq, seq * 10, "TX-9", offline=True, meterValue=meter(seq * 10, seq * 1000.0, 5000)),
        )
    events = await central.store.transaction_events("CS-1", "TX-9")
    assert [e.seq_no for e in events] == [0, 1, 2, 3]
    assert [e.offline for e in events] == [False, True, True, False]
    tx = await central.store.get_transaction("CS-1", "TX-9")
    assert tx.last_seq_no == 3 and tx.state != "Ended"
    # live state kept the live reading, not the older offline ones
    assert central.state("CS-1").evse(1).energy_import_wh == 3000
    await st.call("TransactionEvent", tx_event("Ended", 4, 40, "TX-9"))
    await st.call("TransactionEvent", tx_event("Ended", 4, 40, "TX-9"))
    assert len(await central.store.transaction_events("CS-1", "TX-9")) == 5
    assert (await central.store.get_transaction("CS-1", "TX-9")).state == "Ended"
    assert central.state("CS-1").evse(1).transaction_id is None
    await central.store.flush()
    samples = await central.store.meter_samples(
        "CS-1", transaction_id="TX-9", measurand="Energy.Active.Import.Register"
    )
    assert sorted(s.value for s in samples) == [1000, 2000, 3000]
    await st.close()


async def test_authorize_statuses(central: CentralSystem) -> None:
    store = central.store
    await store.upsert_id_token("OK", "ISO14443", status="Accepted")
    await store.upsert_id_token("BLK", "ISO14443", status="Blocked")
    await store.upsert_id_token("OLD", "ISO14443", status="Accepted", expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    await store.upsert_id_token("V2X", "ISO14443", status="Accepted", allowed_energy_transfer=["DC_BPT"])
    await central.register_station("CS-21", PASSWORD)
    st = TestStation(await open_ws(central.port, "CS-21", protocols=["ocpp2.1"]))
    await st.boot()

    async def auth(token: str) -> dict[str, Any]:
        return await st.call("Authorize", {"idToken": {"idToken": token, "type": "ISO14443"}})

    assert (await auth("OK"))["idTokenInfo"]["status"] == "Accepted"
    assert (await auth("BLK"))["idTokenInfo"]["status"] == "Blocked"
    assert (await auth("OLD"))["idTokenInfo"]["status"] == "Expired"
    assert (await auth("NOPE"))["idTokenInfo"]["status"] == "Unknown"
    assert "allowedEnergyTransfer" not in await auth("NOPE")
    assert (await auth("V2X"))["allowedEnergyTransfer"] == ["DC_BPT"]
    await st.close()
