"""Dispatch across a cluster, and the loss of the node that runs it.

Two ``csms serve`` nodes behind a TCP load balancer, Fermata-style simulated stations (their own
energy registers are the ground truth) on one accelerated clock shared with the nodes, and an
export event submitted to the node that does *not* run dispatch. The dispatch leader commands
stations held by both nodes. Then it is killed (kill -9) mid-event: its stations reconnect
through the balancer to the other node, which takes the leadership over within two control
intervals, reloads the event and the schedules already sent from PostgreSQL, and carries on.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from csms.clock import Clock
from csms.cluster.leader import asyncpg_dsn
from csms.demo.site import evening_fleet
from csms.dispatch.ledger import COMPLETE_AFTER_S
from csms.store.repository import Store
from simulators import handlers as sim_handlers
from tests.cluster.balancer import Balancer
from tests.cluster.conftest import LEASE_TTL_S, Cluster, until

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(150)]

SPEED = 30.0
INTERVAL_S = 60.0  # simulated: 2 wall seconds
STATIONS = 12


async def stored_transaction_events(db_url: str) -> Counter[tuple[str, int]]:
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        rows = await conn.fetch(
            "select t.transaction_id, e.seq_no from transaction_events e join transactions t on t.id = e.transaction_pk"
        )
    finally:
        await conn.close()
    return Counter((r["transaction_id"], r["seq_no"]) for r in rows)


@pytest.fixture
def profiles_received(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """(station id, wall time) of every SetChargingProfile the simulated stations accept."""
    seen: list[tuple[str, float]] = []
    for version, table in sim_handlers.HANDLERS.items():
        original = table["SetChargingProfile"]

        async def counting(st: Any, p: dict[str, Any], _orig: Any = original) -> dict[str, Any]:
            result = await _orig(st, p)
            if result.get("status") == "Accepted":
                seen.append((st.id, time.monotonic()))
            return dict(result)

        monkeypatch.setitem(sim_handlers.HANDLERS[version], "SetChargingProfile", counting)
    return seen


async def test_dispatch_survives_losing_its_leader(
    cluster: Cluster, tmp_path: Path, profiles_received: list[tuple[str, float]]
) -> None:
    from simulators import Fleet

    anchor = datetime.now(UTC)
    epoch = datetime(2026, 8, 18, 23, 0, tzinfo=UTC)  # 16:00 in California
    cluster.env.update(
        {
            "CSMS_CLOCK__SPEED": str(SPEED),
            "CSMS_CLOCK__EPOCH": epoch.isoformat(),
            "CSMS_CLOCK__ANCHOR": anchor.isoformat(),
            "CSMS_DISPATCH__CONTROL_INTERVAL_S": str(INTERVAL_S),
            "CSMS_V2X__ALLOW_UNKNOWN_TOKENS": "true",
            "CSMS_STORAGE__FRAME_LOG_LIMIT": "0",
            "CSMS_SERVER__CALL_TIMEOUT": "10",
        }
    )
    config = evening_fleet(STATIONS, epoch=epoch, seed=3, share_201=0.3)
    ids = [s.id for s in config.all_stations()]
    store = await Store.open(cluster.db_url)
    try:
        await store.bulk_register_stations(ids, None)
    finally:
        await store.close()

    a, b = await cluster.start("a", "b")
    nodes = {"a": a, "b": b}
    balancer = Balancer(lambda: [n.ocpp_port for n in nodes.values() if n.alive])
    await balancer.start()
    clock = Clock(epoch, SPEED, anchor)
    fleet = Fleet(config, clock, url=f"ws://127.0.0.1:{balancer.port}", record=True)
    try:
        await fleet.start()
        await fleet.wait_online(30)
        views = {n: await cluster.view(n) for n in nodes}
        leader = next(n for n, v in views.items() if v["dispatch_leader"])
        standby = "b" if leader == "a" else "a"
        held = {sid: await cluster.holder(standby, sid) for sid in ids}
        assert set(held.values()) == {"a", "b"}, held  # the leader dispatches stations on both nodes

        now = clock.now()
        start, end = now + timedelta(minutes=1), now + timedelta(minutes=61)
        event = {
            "id": f"export-{cluster.prefix}",
            "program": "DSGS-3",
            "direction": "export",
            "intervals": [{"start": start.isoformat(), "end": end.isoformat(), "target_kw": 40}],
        }
        async with cluster.api(standby) as http:  # grid events may arrive on any node
            r = await http.post("/grid/events", json=event)
            assert r.status_code == 201, r.text

        async def dispatched_on_both() -> bool:
            return {held[sid] for sid, _ in profiles_received} == {"a", "b"}

        await until(dispatched_on_both, 40, "the leader commands stations on both nodes")
        commanded = Counter(sid for sid, _ in profiles_received)
        # kill it once the event's first 5-minute interval is complete (and what it sent is saved)
        first_complete = start + timedelta(minutes=5, seconds=COMPLETE_AFTER_S)
        await asyncio.sleep(max(2 * INTERVAL_S, (first_complete - clock.now()).total_seconds()) / SPEED)

        # the premise of the restore check below: the leader has stored a live report with what it
        # planned for an interval already begun (it does every report_every_s; a loaded machine
        # can delay that past the first interval)
        reader = await Store.open(cluster.db_url)

        async def report_stored() -> bool:
            row = await reader.get_event_report(event["id"])
            intervals = row.report["intervals"] if row is not None else []
            begun = [iv for iv in intervals if datetime.fromisoformat(iv["start"]) < clock.now()]
            return any(iv.get("planned_kw") is not None for iv in begun)

        try:
            await until(report_stored, 20, "the leader stores a live report", every=0.3)
        finally:
            await reader.close()
        exported_before = fleet.totals()["export_wh"]
        nodes[leader].kill()
        killed, killed_at = time.monotonic(), clock.now()

        async def standby_leads() -> bool:
            return bool((await cluster.view(standby))["dispatch_leader"])

        await until(standby_leads, 20, "the standby takes over")
        took_over = time.monotonic() - killed
        view = await cluster.view(standby)
        print(
            f"\ndispatch taken over in {took_over:.2f} s wall = {took_over * SPEED:.0f} s simulated "
            f"(control interval {INTERVAL_S:.0f} s); schedules loaded: {view['dispatch_schedules_loaded']}"
        )
        assert took_over * SPEED <= 2 * INTERVAL_S
        assert event["id"] in view["dispatch_events"]
        assert view["dispatch_schedules_loaded"] >= len(commanded)  # what the old leader had sent

        # the killed node's stations reconnect through the balancer and are served by the survivor
        async def all_on_standby() -> bool:
            return all([await cluster.holder(standby, sid) == standby for sid in ids])

        await until(all_on_standby, 30, "every station served by the survivor", every=0.5)

        moved = next(sid for sid, node in held.items() if node == leader)
        async with cluster.api(standby) as http:  # a moved station answers commands at once
            r = await http.post(
                f"/api/v1/stations/{moved}/commands/TriggerMessage", json={"requested_message": "Heartbeat"}
            )
            assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text

        # the dead node's lease lapses: it drops out of the cluster
        async def leader_gone() -> bool:
            return leader not in (await cluster.view(standby))["nodes"]

        await until(leader_gone, 3 * LEASE_TTL_S, "the killed node's lease lapses", every=0.3)

        # dispatch goes on: the fleet keeps exporting
        await asyncio.sleep(2 * INTERVAL_S / SPEED)
        assert fleet.totals()["export_wh"] > exported_before
        before_kill = {sid for sid, at in profiles_received if at < killed}
        stayed = {sid for sid, node in held.items() if node == standby and sid in before_kill}
        resent = {sid for sid, at in profiles_received if at > killed and sid in stayed}
        print(f"stations that stayed: {len(stayed)} commanded, {len(resent)} sent a new profile after the takeover")

        # no TransactionEvent lost or stored twice across the kill: what the stations had
        # acknowledged (their own log) is exactly what PostgreSQL holds, once per seqNo
        # (the fleet goes on sending meanwhile: stored must lie between what was acknowledged
        # before the read and what was acknowledged or still in flight after it)
        def key(p: dict[str, Any]) -> tuple[str, int]:
            return p["transactionInfo"]["transactionId"], p["seqNo"]

        def acknowledged() -> Counter[tuple[str, int]]:
            return Counter(key(p) for st in fleet for action, p in st.sent if action == "TransactionEvent")

        async def consistent() -> bool:
            before = acknowledged()
            stored = await stored_transaction_events(cluster.db_url)
            after = set(acknowledged()) | {key(p) for st in fleet for p in st.queued("TransactionEvent")}
            return set(before) <= set(stored) <= after

        await until(consistent, 10, "the stored TransactionEvents are exactly the acknowledged ones", every=0.2)
        acked, stored = acknowledged(), await stored_transaction_events(cluster.db_url)
        assert acked and max(acked.values()) == 1 and max(stored.values()) == 1
        print(f"TransactionEvents: {len(acked)} acknowledged by the CSMS, {len(stored)} stored, none twice")

        # the new leader's report covers the event from its start, not from the takeover: it
        # reloaded the meter readings from PostgreSQL (stopping it stores its live report). Wait
        # until the 5-minute interval in which the leader died is complete, too.
        step = timedelta(minutes=5)
        kill_interval_end = start + step * -(-(killed_at - start) // step)
        wait_s = (kill_interval_end + timedelta(seconds=COMPLETE_AFTER_S + 10) - clock.now()).total_seconds()
        await asyncio.sleep(max(0.0, wait_s) / SPEED)
        await asyncio.to_thread(nodes[standby].stop)
        store = await Store.open(cluster.db_url)
        try:
            row = await store.get_event_report(event["id"])
        finally:
            await store.close()
        assert row is not None
        intervals = row.report["intervals"]
        before = [iv for iv in intervals if datetime.fromisoformat(iv["end"]) <= killed_at]
        assert before, intervals
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(intervals))  # no gap
        print("5-minute intervals before the kill, delivered kW:", [iv["delivered_kw"] for iv in before])
        assert all(iv["delivered_kw"] > 0.5 * iv["target_kw"] for iv in before), before
        # and keeps what the old leader planned for them (restored from its last stored report)
        assert view["dispatch_report_samples_restored"] >= 1, [
            line for line in nodes[standby].log().splitlines() if "restore" in line or "leader" in line
        ]
        assert all(iv["planned_kw"] is not None and iv["cars_connected"] > 0 for iv in before), before
        done = [iv for iv in intervals if iv["complete"]]
        ratio = sum(iv["delivered_kw"] for iv in done) / sum(iv["feasible_kw"] for iv in done)
        print(
            "complete intervals (delivered / feasible kW):",
            [f"{iv['delivered_kw']:.1f}/{iv['feasible_kw']:.1f}" for iv in done],
            f"-> {ratio:.1%} of the feasible target",
        )
        assert len(done) >= 2 and ratio >= 0.95
    finally:
        await fleet.stop()
        await balancer.stop()
