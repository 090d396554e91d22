"""Cluster mode end to end: real ``csms serve`` processes on one PostgreSQL and one NATS.

Commands cross nodes with the same answers and errors as local ones; a killed node's stations
reconnect to the others and are served at once; a killed dispatch leader is replaced within two
control intervals; a station added on one node connects through another at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.cluster.conftest import CONTROL_INTERVAL_S, LEASE_TTL_S, Cluster, Station, register, until
from tests.support import PASSWORD, TestStation, open_ws

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]

STATIONS = 60  # spread over three nodes


def answering(tag: str, *, silent: bool = False) -> dict[str, Any]:
    """A station's handlers: Reset answered with the station's own tag (or, ``silent``, never)."""

    async def never(_ctx: Any, _payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    if silent:
        return {"Reset": never}
    return {"Reset": lambda _ctx, _p: {"status": "Accepted", "statusInfo": {"reasonCode": tag}}}


async def reset(cluster: Cluster, via: str, station_id: str, **params: Any) -> tuple[int, dict[str, Any]]:
    async with cluster.api(via) as http:
        r = await http.post(f"/api/v1/stations/{station_id}/commands/Reset", json={"type": "Immediate"}, params=params)
        return r.status_code, r.json()


async def test_commands_reach_stations_on_any_node(cluster: Cluster, tmp_path: Any) -> None:
    ids = [f"CL-{i:03d}" for i in range(STATIONS)]
    await register(cluster.db_url, tmp_path, [*ids, "CL-OFF", "CL-SILENT"])
    a, b, c = await cluster.start("a", "b", "c")
    nodes = [a, b, c]
    stations = [Station(sid, lambda: [], answering(f"tag-{i}")) for i, sid in enumerate(ids)]
    for i, st in enumerate(stations):
        st.start(nodes[i % 3].ocpp_port)
    silent = Station("CL-SILENT", lambda: [], answering("", silent=True))
    silent.start(c.ocpp_port)
    await asyncio.gather(*(st.wait_connected() for st in [*stations, silent]))

    # every node knows where every station is held
    on_c = [st for i, st in enumerate(stations) if i % 3 == 2]
    assert await cluster.holder("a", on_c[0].station_id) == "c"
    assert sorted((await cluster.view("b"))["nodes"]) == ["a", "b", "c"]

    # an API command on node A reaches stations connected to node C and returns their answers
    started = time.perf_counter()
    results = await asyncio.gather(*(reset(cluster, "a", st.station_id) for st in on_c))
    elapsed = time.perf_counter() - started
    for st, (code, body) in zip(on_c, results, strict=True):
        assert code == 200, body
        tag = f"tag-{ids.index(st.station_id)}"
        assert body["response"] == {"status": "Accepted", "statusInfo": {"reasonCode": tag}}
    assert (await cluster.view("a"))["commands_forwarded"] >= len(on_c)
    assert (await cluster.view("c"))["commands_served"] >= len(on_c)
    print(f"\n{len(on_c)} cross-node commands in {elapsed * 1000:.0f} ms")

    # the same typed errors as a local call: a station that does not answer -> 504 after its
    # timeout; a registered station connected nowhere -> 409; an unknown one -> 404
    assert await cluster.holder("b", "CL-SILENT") == "c"
    code, body = await reset(cluster, "b", "CL-SILENT", timeout=1)
    assert code == 504 and body["error"]["code"] == "station_timeout", body
    code, body = await reset(cluster, "b", "CL-OFF")
    assert code == 409 and body["error"]["code"] == "station_offline"
    code, body = await reset(cluster, "b", "CL-NOBODY")
    assert code == 404

    # station events cross nodes: B's live view sees a station on C connected and booted
    async with cluster.api("b") as http:
        r = await http.get(f"/api/v1/stations/{on_c[0].station_id}")
    assert r.status_code == 200 and r.json()["connected"] is True, r.text

    await asyncio.gather(*(st.close() for st in [*stations, silent]))


async def test_killed_node_stations_reconnect_and_are_served(cluster: Cluster, tmp_path: Any) -> None:
    ids = [f"KN-{i:03d}" for i in range(30)]
    await register(cluster.db_url, tmp_path, ids)
    a, b = await cluster.start("a", "b")
    live_ports = lambda: [n.ocpp_port for n in (a, b) if n.alive]  # noqa: E731
    stations = [Station(sid, live_ports, answering(sid[-3:])) for sid in ids]
    for i, st in enumerate(stations):
        st.start((a, b)[i % 2].ocpp_port)
    await asyncio.gather(*(st.wait_connected() for st in stations))
    on_a = [st for i, st in enumerate(stations) if i % 2 == 0]
    assert await cluster.holder("b", on_a[0].station_id) == "a"

    a.kill()
    killed = time.perf_counter()
    # the stations notice (TCP reset), reconnect to B, boot and are served there at once
    await asyncio.gather(*(st.wait_on(b.ocpp_port) for st in on_a))
    back = time.perf_counter() - killed
    results = await asyncio.gather(*(reset(cluster, "b", st.station_id) for st in on_a))
    assert all(code == 200 for code, _ in results), results
    assert all(st.port == b.ocpp_port and st.boots[-1] == b.ocpp_port for st in on_a)
    assert await cluster.holder("b", on_a[0].station_id) == "b"
    print(f"\n{len(on_a)} stations of the killed node Accepted again on B in {back:.2f} s")

    # A's lease lapses: it drops out of the cluster
    async def a_gone() -> bool:
        return "a" not in (await cluster.view("b"))["nodes"]

    await until(a_gone, LEASE_TTL_S * 3, "A's lease lapses")

    # a node that comes back (same name) serves stations again, and commands cross to it
    (a2,) = await cluster.start("a")
    moved = on_a[0]
    await moved.close()
    st = TestStation(await open_ws(a2.ocpp_port, moved.station_id), answering("again"))
    assert (await st.boot())["status"] == "Accepted"

    async def held_by_a() -> bool:
        return await cluster.holder("b", moved.station_id) == "a"

    await until(held_by_a, 5, "the returning node holds the station")
    code, body = await reset(cluster, "b", moved.station_id)
    assert code == 200 and body["response"]["statusInfo"]["reasonCode"] == "again", body
    await st.close()
    await asyncio.gather(*(s.close() for s in stations))


async def test_station_reconnecting_elsewhere_closes_the_stale_connection(cluster: Cluster, tmp_path: Any) -> None:
    """A half-open connection on node A (A has not noticed the station is gone) is closed as soon
    as the station connects to node B, and commands go to B."""
    await register(cluster.db_url, tmp_path, ["ST-1"])
    a, b = await cluster.start("a", "b")
    old = TestStation(await open_ws(a.ocpp_port, "ST-1"), answering("old"))
    assert (await old.boot())["status"] == "Accepted"
    new = TestStation(await open_ws(b.ocpp_port, "ST-1"), answering("new"))
    assert (await new.boot())["status"] == "Accepted"
    await asyncio.wait_for(old._task, 5)  # A closed its copy
    assert old.ws.close_code == 4000
    assert await cluster.holder("a", "ST-1") == "b"
    for via in ("a", "b"):
        code, body = await reset(cluster, via, "ST-1")
        assert code == 200 and body["response"]["statusInfo"]["reasonCode"] == "new", body
    await new.close()


async def test_dispatch_leader_killed_another_takes_over(cluster: Cluster, tmp_path: Any) -> None:
    await cluster.start("a", "b")
    views = {n: await cluster.view(n) for n in ("a", "b")}
    leaders = [n for n, v in views.items() if v["dispatch_leader"]]
    assert len(leaders) == 1, views
    leader = leaders[0]
    standby = "b" if leader == "a" else "a"

    # a grid event submitted on the standby reaches the leader's controller
    event = {
        "id": f"ev-{cluster.prefix}",
        "program": "test",
        "direction": "export",
        "intervals": [{"start": "2030-01-01T16:00:00Z", "end": "2030-01-01T21:00:00Z", "target_kw": 40}],
    }
    async with cluster.api(standby) as http:
        r = await http.post("/grid/events", json=event)
        assert r.status_code == 201, r.text

    async def leader_follows() -> bool:
        return event["id"] in (await cluster.view(leader))["dispatch_events"]

    await until(leader_follows, 5, "the leader's controller follows the event")

    cluster.nodes[leader].kill()
    killed = time.perf_counter()

    async def standby_leads() -> bool:
        return bool((await cluster.view(standby))["dispatch_leader"])

    await until(standby_leads, 2 * CONTROL_INTERVAL_S + 5, "the standby takes over")
    took_over = time.perf_counter() - killed
    print(f"\ndispatch leadership taken over in {took_over:.2f} s (control interval {CONTROL_INTERVAL_S} s)")
    assert took_over <= 2 * CONTROL_INTERVAL_S
    view = await cluster.view(standby)
    assert view["dispatch_terms"] == 1
    assert event["id"] in view["dispatch_events"]  # reloaded from PostgreSQL


async def test_station_added_on_one_node_connects_through_another(cluster: Cluster) -> None:
    _a, b = await cluster.start("a", "b")
    async with cluster.api("a") as http:
        r = await http.post("/api/v1/stations", json={"id": "NEW-1", "password": PASSWORD})
        assert r.status_code in (200, 201), r.text
    st = TestStation(await open_ws(b.ocpp_port, "NEW-1"))
    assert (await st.boot())["status"] == "Accepted"
    await st.close()
