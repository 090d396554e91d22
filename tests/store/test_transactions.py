"""TransactionEvent handling: duplicates, offline/out-of-order events, concurrency."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.store import Store

T0 = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)


def ts(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def event(kind: str, seq: int, minutes: float, tx: str = "TX-1", **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"transactionId": tx}
    info.update(extra.pop("info", {}))
    ev: dict[str, Any] = {
        "eventType": kind,
        "timestamp": ts(minutes),
        "triggerReason": {
            "Started": "CablePluggedIn",
            "Updated": "MeterValuePeriodic",
            "Ended": "EVDeparted",
        }[kind],
        "seqNo": seq,
        "transactionInfo": info,
        "evse": {"id": 1, "connectorId": 1},
    }
    ev.update(extra)
    return ev


def meter(minutes: float, wh: float) -> list[dict[str, Any]]:
    return [{"timestamp": ts(minutes), "sampledValue": [{"value": wh, "unitOfMeasure": {"unit": "Wh"}}]}]


async def test_duplicate_event_is_stored_once(store: Store) -> None:
    started = event(
        "Started",
        0,
        0,
        idToken={"idToken": "TOK", "type": "ISO14443"},
        meterValue=meter(0, 100),
        info={"chargingState": "EVConnected"},
    )
    inserted, row = await store.apply_transaction_event("CS-1", started)
    assert inserted and row.state == "Started" and row.last_seq_no == 0
    assert (row.evse_id, row.connector_id, row.id_token, row.id_token_type) == (1, 1, "TOK", "ISO14443")
    again, row2 = await store.apply_transaction_event("CS-1", dict(started, offline=True))
    assert not again and row2 == row
    events = await store.transaction_events("CS-1", "TX-1")
    assert [(e.seq_no, e.offline, e.event_type) for e in events] == [(0, False, "Started")]
    assert events[0].payload["idToken"] == {"idToken": "TOK", "type": "ISO14443"}
    await store.flush()
    assert [s.value for s in await store.meter_samples("CS-1", transaction_id="TX-1")] == [100.0]  # not twice
    # the same seqNo for another transaction or station is a different event
    assert (await store.apply_transaction_event("CS-1", event("Started", 0, 0, tx="TX-2")))[0]
    assert (await store.apply_transaction_event("CS-2", started))[0]


async def test_offline_events_after_live_ones(store: Store) -> None:
    await store.apply_transaction_event("CS-1", event("Started", 0, 0, info={"chargingState": "EVConnected"}))
    live = event("Updated", 3, 30, info={"chargingState": "Charging"}, meterValue=meter(30, 3000))
    await store.apply_transaction_event("CS-1", live)
    for seq in (1, 2):  # queued while offline, delivered after the live event
        inserted, row = await store.apply_transaction_event(
            "CS-1",
            event(
                "Updated",
                seq,
                seq * 10,
                offline=True,
                info={"chargingState": "SuspendedEV"},
                meterValue=meter(seq * 10, seq * 1000.0),
            ),
        )
        assert inserted
        assert row.last_seq_no == 3 and row.charging_state == "Charging" and row.state == "Updated"
    events = await store.transaction_events("CS-1", "TX-1")
    assert [e.seq_no for e in events] == [0, 1, 2, 3]
    assert [e.offline for e in events] == [False, True, True, False]
    ended = event("Ended", 4, 40, info={"stoppedReason": "EVDisconnected", "chargingState": "Idle"})
    inserted, row = await store.apply_transaction_event("CS-1", ended)
    assert inserted and row.state == "Ended" and row.ended_at == T0 + timedelta(minutes=40)
    assert (row.stopped_reason, row.charging_state, row.last_seq_no) == ("EVDisconnected", "Idle", 4)
    assert row.started_at == T0 and not row.active
    assert not (await store.apply_transaction_event("CS-1", ended))[0]
    assert await store.active_transaction("CS-1", 1) is None
    await store.flush()
    samples = await store.meter_samples("CS-1", transaction_id="TX-1")
    assert [s.value for s in samples] == [1000.0, 2000.0, 3000.0]  # ordered by timestamp


async def test_ended_always_ends_even_out_of_order(store: Store) -> None:
    # the station sends Ended (seq 5) live, then an offline Updated with a higher seqNo shows up
    await store.apply_transaction_event("CS-1", event("Ended", 5, 50, info={"stoppedReason": "Local"}))
    _, row = await store.apply_transaction_event(
        "CS-1", event("Updated", 6, 45, offline=True, info={"chargingState": "SuspendedEVSE"})
    )
    assert row.state == "Ended" and row.last_seq_no == 6 and row.charging_state == "SuspendedEVSE"
    assert row.stopped_reason == "Local" and row.ended_at == T0 + timedelta(minutes=50)
    # a Started arriving last (lower seqNo) sets started_at but cannot reopen the transaction
    _, row = await store.apply_transaction_event("CS-1", event("Started", 0, 0, offline=True))
    assert row.state == "Ended" and row.started_at == T0 and row.last_seq_no == 6


async def test_ended_with_lower_seq_still_ends(store: Store) -> None:
    await store.apply_transaction_event("CS-1", event("Started", 0, 0))
    await store.apply_transaction_event("CS-1", event("Updated", 7, 70, info={"chargingState": "Charging"}))
    _, row = await store.apply_transaction_event(
        "CS-1", event("Ended", 6, 60, offline=True, info={"stoppedReason": "PowerLoss"})
    )
    assert row.state == "Ended" and row.ended_at == T0 + timedelta(minutes=60)
    assert row.stopped_reason == "PowerLoss" and row.last_seq_no == 7 and row.charging_state == "Charging"
    assert [t.transaction_id for t in await store.list_transactions(active=False)] == ["TX-1"]
    assert await store.list_transactions(active=True) == []


async def test_started_at_is_earliest_started_and_fallback(store: Store) -> None:
    _, row = await store.apply_transaction_event("CS-1", event("Updated", 2, 20))
    assert row.started_at == T0 + timedelta(minutes=20)  # no Started seen yet: first event's time
    _, row = await store.apply_transaction_event("CS-1", event("Started", 1, 10))
    assert row.started_at == T0 + timedelta(minutes=10)
    _, row = await store.apply_transaction_event("CS-1", event("Started", 0, 5))  # odd, but earliest wins
    assert row.started_at == T0 + timedelta(minutes=5)
    assert row.state == "Updated" and row.last_seq_no == 2


async def test_concurrent_events_for_one_transaction(store: Store) -> None:
    events = [event("Started", 0, 0)] + [event("Updated", i, i) for i in range(1, 40)] + [event("Ended", 40, 40)]
    deliveries = events + random.Random(7).sample(events, 20)  # 20 resends
    random.Random(1).shuffle(deliveries)
    results = await asyncio.gather(*(store.apply_transaction_event("CS-1", e) for e in deliveries))
    assert sum(1 for inserted, _ in results if inserted) == len(events)
    if store._tx_group is not None:  # SQLite: events arriving together are committed together
        assert store._tx_group.batches < len(deliveries) / 4
    tx = await store.get_transaction("CS-1", "TX-1")
    assert tx is not None and tx.state == "Ended" and tx.last_seq_no == 40 and tx.started_at == T0
    assert [e.seq_no for e in await store.transaction_events("CS-1", "TX-1")] == list(range(41))


async def test_concurrent_transactions_many_stations(store: Store) -> None:
    async def run(i: int) -> None:
        sid = f"CS-{i}"
        for seq, kind in enumerate(("Started", "Updated", "Ended")):
            await store.apply_transaction_event(sid, event(kind, seq, seq, tx=f"TX-{i}", meterValue=meter(seq, seq)))

    await asyncio.gather(*(run(i) for i in range(25)))
    txs = await store.list_transactions(limit=100)
    assert len(txs) == 25 and all(t.state == "Ended" for t in txs)
    await store.flush()
    assert len(await store.meter_samples("CS-3", transaction_id="TX-3")) == 3


async def test_snake_case_payload_and_fields(store: Store) -> None:
    snake = {
        "event_type": "Started",
        "timestamp": ts(0),
        "trigger_reason": "Authorized",
        "seq_no": 0,
        "transaction_info": {"transaction_id": "TX-S", "charging_state": "EVConnected"},
        "evse": {"id": 2, "connector_id": 1},
        "id_token": {"id_token": "ABC", "type": "Central"},
    }
    inserted, row = await store.apply_transaction_event("CS-1", snake)
    assert inserted and (row.evse_id, row.id_token, row.charging_state) == (2, "ABC", "EVConnected")
    active = await store.active_transaction("CS-1", 2)
    assert active is not None and active.transaction_id == "TX-S"
    needs = {"requestedEnergyTransfer": "DC_BPT", "dcChargingParameters": {"evMaxPower": 11000}}
    row2 = await store.set_transaction_fields(
        "CS-1",
        "TX-S",
        charging_needs=needs,
        allowed_energy_transfer=["DC", "DC_BPT"],
        energy_import_wh=1234.5,
    )
    assert row2 is not None and row2.charging_needs == needs and row2.energy_import_wh == 1234.5
    assert row2.allowed_energy_transfer == ["DC", "DC_BPT"]
    assert await store.set_transaction_fields("CS-1", "NOPE", energy_import_wh=1) is None
    with pytest.raises(TypeError):
        await store.set_transaction_fields("CS-1", "TX-S", state="Ended")


async def test_invalid_events_are_rejected(store: Store) -> None:
    bad_events: list[dict[str, Any]] = [
        {"eventType": "Started", "timestamp": ts(0), "seqNo": 0, "transactionInfo": {}},
        {"eventType": "Paused", "timestamp": ts(0), "seqNo": 0, "transactionInfo": {"transactionId": "T"}},
        {"eventType": "Started", "timestamp": ts(0), "transactionInfo": {"transactionId": "T"}},
        {"eventType": "Started", "seqNo": 0, "transactionInfo": {"transactionId": "T"}},
        {"eventType": "Started", "timestamp": "yesterday", "seqNo": 0, "transactionInfo": {"transactionId": "T"}},
    ]
    for bad in bad_events:
        with pytest.raises(ValueError):
            await store.apply_transaction_event("CS-1", bad)
    assert await store.list_transactions() == []
