"""Issue 3 against the real CSMS over real sockets: a mixed 2.0.1 / 2.1 fleet replaying real
Caltech sessions, stored meter readings equal to the simulators' own counters to the Wh, and
an offline period whose queued TransactionEvents complete the CSMS's transaction."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from simulators.config import ReplayConfig, ScenarioConfig
from tests.e2e.conftest import rig, station, until

FOUR_PM_PDT = datetime(2026, 8, 18, 23, 0, tzinfo=UTC)


async def _registers(central, sid: str, evse_id: int, measurand: str) -> float | None:
    rows = await central.store.meter_samples(sid, measurand=measurand, evse_id=evse_id, newest_first=True, limit=1)
    return rows[0].value if rows else None


async def test_fifty_station_caltech_replay_meter_readings_match_to_the_wh(tmp_path: Path) -> None:
    stations = [station(f"FE21-{n:02d}", "2.1") for n in range(25)]
    stations += [station(f"FE201-{n:02d}", "2.0.1") for n in range(25)]
    scenario = ScenarioConfig(replay=ReplayConfig(date="2019-07-16", window_s=3600))
    async with rig(tmp_path, stations, speed=300, epoch=FOUR_PM_PDT, scenario=scenario) as (central, fleet):
        assert fleet.replay is not None and len(fleet.replay.assignments) >= 20
        await until(lambda: all(central.state(s.id).boot.value == "Accepted" for s in stations), 30, "all booted")
        assert {central.state(s.id).ocpp_version for s in stations} == {"2.1", "2.0.1"}
        await until(lambda: sum(1 for st in fleet for e in st.evses.values() if e.transaction_id) >= 15,
                    30, "replayed cars plugged in")  # fmt: skip
        await asyncio.sleep(8)  # ~40 simulated minutes of charging and departures
        for st in fleet:  # every remaining car leaves; registers then stop moving
            for evse_id, evse in st.evses.items():
                if evse.ev is not None:
                    st.ev_leaves(evse_id)
        await until(lambda: all(e.transaction_id is None for st in fleet for e in st.evses.values()), 30, "departures")
        await until(lambda: not any(e.transaction_id for s in central.states.values() for e in s.evses.values()),
                    30, "CSMS saw every transaction end")  # fmt: skip
        triggered = await asyncio.gather(
            *(
                central.call(s.id, "TriggerMessage", {"requestedMessage": "MeterValues", "evse": {"id": 1}})
                for s in stations
            )
        )
        assert {t["status"] for t in triggered} == {"Accepted"}
        await asyncio.sleep(1.0)
        await central.store.flush()
        checked = moved = 0
        for st in fleet:
            for evse_id, evse in st.evses.items():
                stored_in = await _registers(central, st.config.id, evse_id, "Energy.Active.Import.Register")
                stored_out = await _registers(central, st.config.id, evse_id, "Energy.Active.Export.Register")
                assert stored_in is not None, st.config.id
                assert abs(stored_in - evse.import_wh) <= 1.0, (st.config.id, stored_in, evse.import_wh)
                assert abs((stored_out or 0.0) - evse.export_wh) <= 1.0, (st.config.id, stored_out, evse.export_wh)
                checked += 1
                moved += evse.import_wh > 100
        assert checked == 50 and moved >= 15
        txs = await central.store.list_transactions(limit=1000)
        assert len(txs) >= 15 and all(t.state == "Ended" for t in txs)


async def test_offline_period_events_queued_then_delivered_in_order(tmp_path: Path) -> None:
    async with rig(tmp_path, [station("FE21-OFF", "2.1")], speed=60) as (central, fleet):
        st = fleet["FE21-OFF"]
        st.plug_in(1, soc=30, target_soc=80, departure_s=8 * 3600)
        tx_id = await until(lambda: central.state("FE21-OFF").evse(1).transaction_id, what="transaction started")
        await asyncio.sleep(1)
        st.disconnect(1200)  # 20 simulated minutes without the CSMS: TxUpdated every 30 s queue up
        await until(lambda: not central.state("FE21-OFF").connected, what="CSMS sees it drop")
        await until(lambda: len(st.queued("TransactionEvent")) >= 5, 30, "events queued while offline")
        queued_seq = [e["seqNo"] for e in st.queued("TransactionEvent")]
        assert queued_seq == sorted(queued_seq)
        await until(lambda: central.state("FE21-OFF").connected and not st.queued("TransactionEvent"), 40,
                    "reconnect and drain")  # fmt: skip
        st.ev_leaves(1)
        await until(lambda: central.state("FE21-OFF").evse(1).transaction_id is None, what="Ended")
        events = await central.store.transaction_events("FE21-OFF", tx_id)
        seqs = [e.seq_no for e in events]
        assert seqs == list(range(len(seqs)))  # complete, no gaps, ordered by seqNo
        offline = [e.seq_no for e in events if e.offline]
        assert set(queued_seq) <= set(offline)
        assert events[-1].event_type == "Ended"
        tx = await central.store.get_transaction("FE21-OFF", tx_id)
        assert tx.state == "Ended" and tx.last_seq_no == seqs[-1]
