"""Cluster mode end to end: three real ``csms serve`` processes on one PostgreSQL and one NATS.

Commands cross nodes with the same answers and errors as local ones; station events reach every
node; a station that reconnects to another node is served there and its stale connection is
closed; a station added on one node connects through another at once. (Killing nodes:
``test_dispatch_failover``.)
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.cluster.conftest import Cluster, Station, new_cluster, register
from tests.support import PASSWORD, TestStation, open_ws

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]

STATIONS = 300  # spread over three nodes


def answering(tag: str, *, silent: bool = False) -> dict[str, Any]:
    """A station's handlers: Reset answered with the station's own tag (or, ``silent``, never)."""

    async def never(_ctx: Any, _payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    if silent:
        return {"Reset": never}
    return {"Reset": lambda _ctx, _p: {"status": "Accepted", "statusInfo": {"reasonCode": tag}}}


def reporting_in_parts(station: Station, tag: str) -> None:
    """GetDisplayMessages answered Accepted, then the messages in two NotifyDisplayMessages parts."""
    pending: set[asyncio.Task[Any]] = set()

    async def parts(request_id: int) -> None:
        await asyncio.sleep(0.05)
        for n, tbc in ((1, True), (2, False)):
            assert station.current is not None
            info = {"id": n, "priority": "NormalCycle", "message": {"format": "UTF8", "content": f"{tag} {n}"}}
            await station.current.call(
                "NotifyDisplayMessages", {"requestId": request_id, "tbc": tbc, "messageInfo": [info]}
            )

    async def get(_ctx: Any, p: dict[str, Any]) -> dict[str, Any]:
        task = asyncio.create_task(parts(p["requestId"]))
        pending.add(task)
        task.add_done_callback(pending.discard)
        return {"status": "Accepted"}

    station.handlers["GetDisplayMessages"] = get


async def reset(cluster: Cluster, via: str, station_id: str, **params: Any) -> tuple[int, dict[str, Any]]:
    async with cluster.api(via) as http:
        r = await http.post(f"/api/v1/stations/{station_id}/commands/Reset", json={"type": "Immediate"}, params=params)
        return r.status_code, r.json()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def three(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    tmp_path: Path = tmp_path_factory.mktemp("cluster")
    async with new_cluster(tmp_path) as cluster:
        ids = [f"CL-{i:03d}" for i in range(STATIONS)]
        await register(cluster.db_url, tmp_path, [*ids, "CL-OFF", "CL-SILENT", "ST-1"])
        await cluster.start("a", "b", "c")
        yield cluster


async def test_commands_reach_stations_on_any_node(three: Cluster) -> None:
    cluster = three
    nodes = [cluster.nodes[n] for n in ("a", "b", "c")]
    ids = [f"CL-{i:03d}" for i in range(STATIONS)]
    stations = [Station(sid, lambda: [], answering(f"tag-{i}")) for i, sid in enumerate(ids)]
    for i, st in enumerate(stations):
        reporting_in_parts(st, f"tag-{i}")
    for i, st in enumerate(stations):
        st.start(nodes[i % 3].ocpp_port)
    silent = Station("CL-SILENT", lambda: [], answering("", silent=True))
    silent.start(nodes[2].ocpp_port)
    await asyncio.gather(*(st.wait_connected() for st in [*stations, silent]))

    # every node knows where every station is held
    on_a = [st for i, st in enumerate(stations) if i % 3 == 0]
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
    print(f"\n{len(on_c)} cross-node commands at once in {elapsed * 1000:.0f} ms")

    # a request answered in parts crosses nodes too: GetDisplayMessages through node A, the
    # station on node C sends its NotifyDisplayMessages there, node A collects them
    async with cluster.api("a") as http:
        r = await http.get(f"/api/v1/stations/{on_c[1].station_id}/display-messages", params={"wait_s": 10})
    assert r.status_code == 200, r.text
    tag = f"tag-{ids.index(on_c[1].station_id)}"
    assert [m["message"]["content"] for m in r.json()["messages"]] == [f"{tag} 1", f"{tag} 2"], r.text

    # latency, one command at a time through node A's API: to a station on A vs one on C
    local_ms, remote_ms = [], []
    for i in range(40):
        for st, out in ((on_a[i % len(on_a)], local_ms), (on_c[i % len(on_c)], remote_ms)):
            code, body = await reset(cluster, "a", st.station_id)
            assert code == 200, body
            out.append(body["duration_ms"])
    p50 = statistics.median
    p99 = lambda xs: sorted(xs)[int(0.99 * (len(xs) - 1))]  # noqa: E731
    print(
        f"command latency via node A (CSMS-side call, ms): local p50 {p50(local_ms):.1f} p99 {p99(local_ms):.1f}; "
        f"station on C p50 {p50(remote_ms):.1f} p99 {p99(remote_ms):.1f}"
    )

    # the same typed errors as a local call: a CALLERROR -> 502 with the station's code; a
    # station that does not answer -> 504 after its timeout; a registered station connected
    # nowhere -> 409; an unknown one -> 404
    async with cluster.api("a") as http:
        r = await http.post(
            f"/api/v1/stations/{on_c[0].station_id}/commands/TriggerMessage", json={"requested_message": "Heartbeat"}
        )
    assert r.status_code == 502 and r.json()["error"]["details"]["ocpp_code"] == "NotSupported", r.text
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
    assert (await cluster.view("b"))["events_received"] > 0

    await asyncio.gather(*(st.close() for st in [*stations, silent]))


async def test_station_reconnecting_elsewhere_closes_the_stale_connection(three: Cluster) -> None:
    """A half-open connection on node A (A has not noticed the station is gone) is closed as soon
    as the station connects to node B, and commands go to B."""
    cluster = three
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    old = TestStation(await open_ws(a.ocpp_port, "ST-1"), answering("old"))
    assert (await old.boot())["status"] == "Accepted"
    new = TestStation(await open_ws(b.ocpp_port, "ST-1"), answering("new"))
    assert (await new.boot())["status"] == "Accepted"
    await asyncio.wait_for(old._task, 5)  # A closed its copy
    assert old.ws.close_code == 4000
    assert await cluster.holder("c", "ST-1") == "b"
    for via in ("a", "b", "c"):
        code, body = await reset(cluster, via, "ST-1")
        assert code == 200 and body["response"]["statusInfo"]["reasonCode"] == "new", body
    await new.close()


async def test_station_added_on_one_node_connects_through_another(three: Cluster) -> None:
    cluster = three
    async with cluster.api("a") as http:
        r = await http.post("/api/v1/stations", json={"id": "NEW-1", "password": PASSWORD})
        assert r.status_code in (200, 201), r.text
    st = TestStation(await open_ws(cluster.nodes["b"].ocpp_port, "NEW-1"), answering("added"))
    assert (await st.boot())["status"] == "Accepted"
    code, body = await reset(cluster, "c", "NEW-1")  # and it is reachable from the third node
    assert code == 200 and body["response"]["statusInfo"]["reasonCode"] == "added", body
    await st.close()
