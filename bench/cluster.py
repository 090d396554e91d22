"""Cluster benchmark (issue 13): throughput of 1 node vs 2 nodes, and what forwarding a
command to another node costs.

Needs PostgreSQL (``CSMS_TEST_PG``, default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``;
a database of its own is created and dropped) and NATS with JetStream on 127.0.0.1:4222.

1. **Throughput**: the same load generator as ``bench.rpc_throughput`` (N stations, one call
   outstanding each: MeterValues 60 %, Heartbeat 20 %, StatusNotification 20 %; validation and
   persistence on, PostgreSQL) against one ``csms serve`` node pinned to CPU 0, then against two
   nodes pinned to CPUs 0 and 1 with the stations split between them. The load generator is
   not pinned: on a 2-core machine it shares the cores with the nodes in the second run.
2. **Command latency**: stations connected to node B, commands (TriggerMessage Heartbeat) sent
   one at a time through the HTTP API of node B (local) and of node A (forwarded over NATS):
   p50/p99 as the API client sees them and as the CSMS measures the call.

3. **Storm** (``--storm N``): N stations connected across 2 nodes (RSS per station on each),
   then one node is killed (SIGKILL) and its stations all reconnect to the other at once: time
   until every one is Accepted again, and failures.

    python -m bench.cluster [--stations 60] [--seconds 8] [--commands 300] [--storm 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench.rpc_throughput import MIX, _station_open, free_port, rss_kib
from bench.servers import BENCH_PASSWORD

PG_URL = os.environ.get("CSMS_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


class Node:
    def __init__(self, name: str, env: dict[str, str], cpu: int | None, data_dir: Path) -> None:
        self.name, self.cpu = name, cpu
        self.ocpp_port, self.api_port = free_port(), free_port()
        self.env = {**env, "CSMS_CLUSTER__NODE_ID": name}
        self.data_dir = data_dir / name
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "csms", "serve", "--port", str(self.ocpp_port), "--api-port", str(self.api_port)]
        cmd += ["--data-dir", str(self.data_dir), "--log-level", "warning"]
        if self.cpu is not None and (os.cpu_count() or 1) > self.cpu:
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def start(self) -> None:
        self.spawn()
        assert self.proc is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.api_port}") as http:
            async with asyncio.timeout(60):
                while True:
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"node {self.name} exited")
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get("/health")).status_code == 200:
                            return
                    await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@contextlib.asynccontextmanager
async def database(stations: int) -> AsyncIterator[tuple[str, str]]:
    """A fresh database with BENCH-0.. registered; yields (url, operator API token)."""
    from csms.api.apitokens import issue_token
    from csms.server import credentials
    from csms.store.repository import Store

    admin = PG_URL.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    name = f"bench_cluster_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    store = await Store.open(url)
    try:
        pw_hash = credentials.hash_password(BENCH_PASSWORD, 1_000)
        await store.bulk_register_stations([f"BENCH-{i}" for i in range(stations)], pw_hash)
        token, _ = await issue_token(store, "bench", "operator")
    finally:
        await store.close()
    try:
        yield url, token
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@contextlib.asynccontextmanager
async def cluster(url: str, cpus: list[int | None]) -> AsyncIterator[list[Node]]:
    env = {
        **os.environ,
        "CSMS_STORAGE__URL": url,
        "CSMS_CLUSTER__ENABLED": "true",
        "CSMS_CLUSTER__PREFIX": f"bench{uuid.uuid4().hex[:8]}",
        "CSMS_MQTT__ENABLED": "false",
    }
    with tempfile.TemporaryDirectory() as tmp:
        nodes = [Node(f"n{i}", env, cpu, Path(tmp)) for i, cpu in enumerate(cpus)]
        try:
            for node in nodes:
                await node.start()
            yield nodes
        finally:
            for node in nodes:
                node.stop()


async def throughput(ports: list[int], stations: int, seconds: float) -> tuple[float, float, float, int]:
    """Completed calls/s, p50 and p99 ms, errors: stations spread round-robin over ``ports``."""
    sockets = await asyncio.gather(*(_station_open(ports[i % len(ports)], i) for i in range(stations)))
    latencies: list[float] = []
    errors = 0
    stop_at = 0.0
    frames = [(a, orjson.dumps(p).decode()) for a, p in MIX]

    async def drive(ws: Any, k: int) -> None:
        nonlocal errors
        n = k
        while time.perf_counter() < stop_at:
            action, body = frames[n % len(frames)]
            n += 1
            t0 = time.perf_counter()
            await ws.send(f'[2,"{n}","{action}",{body}]')
            reply = await ws.recv()
            while reply.startswith("[2,"):  # a CSMS-initiated CALL (capability discovery)
                await ws.send(orjson.dumps([4, orjson.loads(reply)[1], "NotSupported", "", {}]).decode())
                reply = await ws.recv()
            latencies.append(time.perf_counter() - t0)
            if not reply.startswith("[3,"):
                errors += 1

    stop_at = time.perf_counter() + 1.0  # warm-up
    await asyncio.gather(*(drive(ws, i) for i, ws in enumerate(sockets)))
    latencies.clear()
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(drive(ws, i) for i, ws in enumerate(sockets)))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(ws.close() for ws in sockets))
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2] * 1e3, latencies[int(len(latencies) * 0.99)] * 1e3
    return len(latencies) / elapsed, p50, p99, errors


async def _answer(ws: Any) -> None:
    """A station that accepts every CALL the CSMS sends."""
    with contextlib.suppress(Exception):
        async for msg in ws:
            frame = orjson.loads(msg)
            if frame[0] == 2:
                answer = {"status": "Accepted"} if frame[2] == "TriggerMessage" else {}
                await ws.send(orjson.dumps([3, frame[1], answer]).decode())


async def command_latency(nodes: list[Node], token: str, stations: int, commands: int) -> dict[str, list[float]]:
    a, b = nodes
    sockets = await asyncio.gather(*(_station_open(b.ocpp_port, i) for i in range(stations)))
    answering = [asyncio.create_task(_answer(ws)) for ws in sockets]
    await asyncio.sleep(1.0)  # claims written, discovery done
    out: dict[str, list[float]] = {"local client": [], "local csms": [], "forwarded client": [], "forwarded csms": []}
    headers = {"Authorization": f"Bearer {token}"}
    body = {"requested_message": "Heartbeat"}
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{b.api_port}", headers=headers) as local,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{a.api_port}", headers=headers) as remote,
    ):
        for i in range(commands):
            sid = f"BENCH-{i % stations}"
            for kind, http in (("local", local), ("forwarded", remote)):
                t0 = time.perf_counter()
                r = await http.post(f"/api/v1/stations/{sid}/commands/TriggerMessage", json=body)
                elapsed = (time.perf_counter() - t0) * 1e3
                r.raise_for_status()
                if i >= 10:  # warm-up
                    out[f"{kind} client"].append(elapsed)
                    out[f"{kind} csms"].append(r.json()["duration_ms"])
    for task in answering:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return out


async def storm(url: str, stations: int) -> dict[str, float]:
    async with cluster(url, [None, None]) as nodes:
        a, b = nodes
        assert a.proc is not None and b.proc is not None
        base = {n.name: rss_kib(n.proc.pid) for n in nodes}  # type: ignore[union-attr]
        sockets: list[Any] = []
        for start in range(0, stations, 500):
            batch = await asyncio.gather(
                *(_station_open(nodes[i % 2].ocpp_port, i) for i in range(start, min(stations, start + 500))),
                return_exceptions=True,
            )
            sockets += [ws for ws in batch if not isinstance(ws, BaseException)]
        await asyncio.sleep(2)
        per_station = {
            n.name: (rss_kib(n.proc.pid) - base[n.name]) / max(1, len(sockets) / 2)  # type: ignore[union-attr]
            for n in nodes
        }
        moved = [i for i in range(stations) if i % 2 == 0]
        a.proc.kill()
        a.proc.wait()
        started = time.perf_counter()
        results = await asyncio.gather(*(_station_open(b.ocpp_port, i) for i in moved), return_exceptions=True)
        elapsed = time.perf_counter() - started
        ok = [r for r in results if not isinstance(r, BaseException)]
        await asyncio.gather(*(ws.close() for ws in [*sockets, *ok]), return_exceptions=True)
        return {
            "connected": len(sockets),
            "rss_kib_per_station": max(per_station.values()),
            "moved": len(moved),
            "accepted": len(ok),
            "failed": len(results) - len(ok),
            "seconds": elapsed,
        }


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def main_async(args: argparse.Namespace) -> None:
    if args.storm_only:
        async with database(args.storm) as (url, _token):
            print_storm(await storm(url, args.storm))
        return
    async with database(args.stations) as (url, token):
        rows = {}
        for label, cpus in (("1 node, CPU 0", [0]), ("2 nodes, CPUs 0+1", [0, 1])):
            async with cluster(url, cpus) as nodes:
                rows[label] = await throughput([n.ocpp_port for n in nodes], args.stations, args.seconds)
            print(f"  {label}: {rows[label][0]:.0f} calls/s", file=sys.stderr, flush=True)
        async with cluster(url, [None, None]) as nodes:
            latency = await command_latency(nodes, token, min(args.stations, 20), args.commands)
    stormed = None
    if args.storm:
        async with database(args.storm) as (url, _token):
            stormed = await storm(url, args.storm)

    print(
        f"\nCluster throughput: {args.stations} stations, one call outstanding each, {args.seconds:g} s, "
        "validation + persistence (PostgreSQL) on, os.cpu_count() = "
        f"{os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'nodes':<20} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for label, (rate, p50, p99, errors) in rows.items():
        print(f"{label:<20} {rate:>9.0f} {p50:>8.2f} {p99:>8.2f} {errors:>7}")
    one, two = (r[0] for r in rows.values())
    print(f"2 nodes / 1 node = {two / one:.2f}x (target >= 1.7x)")
    print(f"\nCommand latency, {args.commands - 10} TriggerMessage one at a time, station on node B")
    print(f"{'path':<20} {'p50 ms':>8} {'p99 ms':>8}")
    for key, xs in latency.items():
        print(f"{key:<20} {statistics.median(xs):>8.2f} {pct(xs, 0.99):>8.2f}")
    added = pct(latency["forwarded client"], 0.99) - pct(latency["local client"], 0.99)
    print(f"forwarding adds {added:.1f} ms at p99 (target < 50 ms)")
    if stormed is not None:
        print_storm(stormed)


def print_storm(stormed: dict[str, float]) -> None:
    print(
        f"\nStorm: {stormed['connected']:.0f} stations on 2 nodes, "
        f"{stormed['rss_kib_per_station']:.1f} KiB RSS per station (target <= 50); one node killed: "
        f"{stormed['accepted']:.0f}/{stormed['moved']:.0f} Accepted again on the other in "
        f"{stormed['seconds']:.1f} s (target: 10,000 within 20 s), {stormed['failed']:.0f} failed"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--storm", type=int, default=0, help="stations for the kill-one-node storm (0: skip)")
    parser.add_argument("--storm-only", action="store_true", help="only the storm")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
