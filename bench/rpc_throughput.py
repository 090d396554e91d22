"""RPC throughput, latency, memory and connection-storm benchmark (issue 2).

Starts each server in its own process pinned to CPU 0 and drives it from this process
(pinned to CPU 1) with N simulated stations over real sockets, each keeping one call
outstanding: a mix of MeterValues with several sampled values (60 %), Heartbeat (20 %) and
StatusNotification (20 %). Prints calls/s, p50/p99 latency and server RSS for

- bare:  websockets server that parses and answers (no validation, no storage): the ceiling
- stock: the ``ocpp`` package's ChargePoint as its documentation shows
- ours:  this CSMS with validation and persistence (SQLite) on

then, for ours only: RSS per connected, heartbeating station at scale, and a storm of
stations connecting at once (time until all are Accepted, failures).

    python -m bench.rpc_throughput [--stations 50] [--seconds 8] [--repeat 3]
                                   [--scale 10000] [--storm 5000] [--ablate]

``--ablate`` adds rows for this CSMS with parts of its persistence switched off (frame log,
meter samples, both), to show what each costs per call.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

from bench.servers import BENCH_PASSWORD

NOW = "2026-06-01T16:00:00.000Z"
BOOT = {"chargingStation": {"model": "FE-20", "vendorName": "Fermata"}, "reason": "PowerUp"}
METER = {
    "evseId": 1,
    "meterValue": [
        {
            "timestamp": NOW,
            "sampledValue": [
                {"value": 12345.0, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
                {"value": 2345.0, "measurand": "Energy.Active.Export.Register", "unitOfMeasure": {"unit": "Wh"}},
                {"value": 0.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
                {"value": 11000.0, "measurand": "Power.Active.Export", "unitOfMeasure": {"unit": "W"}},
                {"value": 61.5, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}, "location": "EV"},
                {"value": 398.0, "measurand": "Voltage", "unitOfMeasure": {"unit": "V"}},
            ],
        }
    ],
}
STATUS = {"timestamp": NOW, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}
MIX = [("MeterValues", METER)] * 3 + [("Heartbeat", {}), ("StatusNotification", STATUS)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextmanager
def server(kind: str, stations: int):
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cpu = "0" if os.cpu_count() and os.cpu_count() > 1 else "-"
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.servers", kind, str(port), cpu, tmp, str(stations)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"{kind} server did not start")
            yield port, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _auth(i: int) -> dict[str, str]:
    token = base64.b64encode(f"BENCH-{i}:{BENCH_PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _station_open(port: int, i: int):
    ws = await connect(
        f"ws://127.0.0.1:{port}/ocpp/BENCH-{i}",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=_auth(i),
        compression=None,
        open_timeout=60,
        ping_interval=None,
    )
    await ws.send(orjson.dumps([2, "boot", "BootNotification", BOOT]).decode())
    reply = orjson.loads(await ws.recv())
    while reply[0] == 2:
        await ws.send(orjson.dumps([4, reply[1], "NotSupported", "", {}]).decode())
        reply = orjson.loads(await ws.recv())
    if reply[0] != 3 or reply[2].get("status") != "Accepted":
        raise RuntimeError(f"boot failed: {reply}")
    return ws


async def load(port: int, stations: int, seconds: float) -> tuple[float, float, float, int]:
    sockets = await asyncio.gather(*(_station_open(port, i) for i in range(stations)))
    latencies: list[float] = []
    errors = 0
    stop_at = 0.0

    async def drive(ws, k: int) -> None:
        nonlocal errors
        frames = [(a, orjson.dumps(p).decode()) for a, p in MIX]
        n = k
        while time.perf_counter() < stop_at:
            action, body = frames[n % len(frames)]
            n += 1
            t0 = time.perf_counter()
            await ws.send(f'[2,"{n}","{action}",{body}]')
            reply = await ws.recv()
            while reply.startswith("[2,"):  # a CSMS-initiated CALL (e.g. capability discovery)
                await ws.send(f'[4,{orjson.loads(reply)[1]!r},"NotSupported","",{{}}]'.replace("'", '"'))
                reply = await ws.recv()
            latencies.append(time.perf_counter() - t0)
            if not reply.startswith("[3,"):
                errors += 1

    # warm-up, then measure
    stop_at = time.perf_counter() + 1.0
    await asyncio.gather(*(drive(ws, i) for i, ws in enumerate(sockets)))
    latencies.clear()
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(drive(ws, i) for i, ws in enumerate(sockets)))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(ws.close() for ws in sockets))
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    return len(latencies) / elapsed, p50, p99, errors


async def scale(port: int, pid: int, stations: int) -> tuple[int, int, int]:
    """Connect ``stations`` heartbeating stations; return (base RSS, loaded RSS, connected)."""
    base = rss_kib(pid)
    sockets = []
    for start in range(0, stations, 500):
        batch = await asyncio.gather(
            *(_station_open(port, i) for i in range(start, min(stations, start + 500))), return_exceptions=True
        )
        sockets += [ws for ws in batch if not isinstance(ws, BaseException)]
    for ws in sockets:  # one heartbeat round over all of them
        await ws.send('[2,"hb","Heartbeat",{}]')
    for ws in sockets:
        while (await ws.recv()).startswith("[2,"):
            pass
    await asyncio.sleep(2)
    loaded = rss_kib(pid)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return base, loaded, len(sockets)


async def storm(port: int, stations: int) -> tuple[float, int, int]:
    started = time.perf_counter()
    results = await asyncio.gather(*(_station_open(port, i) for i in range(stations)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    ok = [r for r in results if not isinstance(r, BaseException)]
    await asyncio.gather(*(ws.close() for ws in ok), return_exceptions=True)
    return elapsed, len(ok), len(results) - len(ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=int, default=10_000)
    parser.add_argument("--storm", type=int, default=5_000)
    parser.add_argument("--ablate", action="store_true", help="also measure ours without frame log / meter storage")
    args = parser.parse_args()
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run

    if args.repeat:
        rows = {}
        kinds = ["bare", "stock", "ours"]
        if args.ablate:
            kinds += ["ours-noframes", "ours-nometers", "ours-nostore"]
        for kind in kinds:
            samples = []
            for _ in range(args.repeat):
                with server(kind, args.stations) as (port, pid):
                    rate, p50, p99, errors = run(load(port, args.stations, args.seconds))
                    samples.append((rate, p50, p99, errors, rss_kib(pid)))
            rows[kind] = [statistics.median(col) for col in zip(*samples, strict=True)]
            print(f"  {kind}: " + ", ".join(f"{s[0]:.0f}/s" for s in samples), file=sys.stderr, flush=True)

        print(
            f"\nRPC throughput: {args.stations} stations, one call outstanding each, {args.seconds:g} s, "
            f"median of {args.repeat} runs; server pinned to one core"
        )
        print(f"{'server':<14} {'calls/s':>9} {'us/call':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'RSS MiB':>8}")
        for kind, (rate, p50, p99, errors, rss) in rows.items():
            print(
                f"{kind:<14} {rate:>9.0f} {1e6 / rate:>8.1f} {p50:>8.2f} {p99:>8.2f} {errors:>7.0f} {rss / 1024:>8.1f}"
            )
        ours, stock, bare = rows["ours"][0], rows["stock"][0], rows["bare"][0]
        print(f"ours / stock = {ours / stock:.2f}x (target >= 3x); ours / bare = {ours / bare:.0%} (target >= 50%)")
        if args.ablate:
            for kind in kinds[3:]:
                rate = rows[kind][0]
                saved = 1e6 / ours - 1e6 / rate
                print(f"{kind} / bare = {rate / bare:.0%}; leaving that persistence out saves {saved:.1f} us/call")

    if args.scale:
        with server("ours", max(args.scale, args.storm)) as (port, pid):
            base, loaded, n = run(scale(port, pid, args.scale))
        per = (loaded - base) / max(n, 1)
        print(
            f"\nscale: {n} connected heartbeating stations, server RSS {base / 1024:.0f} -> {loaded / 1024:.0f} MiB, "
            f"{per:.1f} KiB per station (target <= 50)"
        )
    if args.storm:
        with server("ours", max(args.scale, args.storm)) as (port, _pid):
            elapsed, ok, failed = run(storm(port, args.storm))
        print(
            f"storm: {args.storm} stations connecting at once: {ok} Accepted in {elapsed:.1f} s, {failed} failed "
            f"(target: all within 10 s)"
        )


if __name__ == "__main__":
    main()
