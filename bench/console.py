"""Operator console update latency with 1,000 stations (issue 14).

    python -m bench.console [--stations 1000] [--samples 100] [--meter-rate 200]

The CSMS (SQLite, HTTP API with the console) runs in this process together with headless
Chromium (``/usr/bin/chromium``, Playwright) showing the fleet page, signed in. The stations run
in a child process on the other core: plain OCPP 2.0.1 WebSocket clients that boot, report
their connector Available and then send ``MeterValues`` (import power) at ``--meter-rate``
messages per second in total, so the fleet table is busy all the time.

Measured: a station reports a StatusNotification (``Unavailable``) at t0 (the child's wall
clock, just before the frame is written to the socket); the page has applied that row at t1 (the
browser's ``Date.now()`` when the console's script has written the row; same machine, same
clock). ``--samples`` distinct stations change state, one every ``--gap`` seconds. Prints the
median, p95 and max of t1 - t0, how many batches the server sent, and how long the fleet page
takes from a reload to all rows shown with the live feed connected.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"


def _ts() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------- child: the stations
async def _station(url: str, sid: str, ready: asyncio.Event, control: dict[str, Any]) -> None:
    import orjson
    from websockets.asyncio.client import connect

    n = 0
    async with connect(f"{url}/{sid}", subprotocols=["ocpp2.0.1"], open_timeout=120, max_queue=None) as ws:  # type: ignore[list-item]
        pending: dict[str, asyncio.Future[Any]] = {}

        async def call(action: str, payload: dict[str, Any]) -> Any:
            nonlocal n
            n += 1
            mid = f"{sid}-{n}"
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            pending[mid] = fut
            await ws.send(orjson.dumps([2, mid, action, payload]).decode())
            return await fut

        async def reader() -> None:
            async for raw in ws:
                msg = orjson.loads(raw)
                if msg[0] == 2 and msg[2] == "GetChargingProfiles":  # profile reconciliation after boot
                    await ws.send(orjson.dumps([3, msg[1], {"status": "NoProfiles"}]).decode())
                elif msg[0] == 2:  # the CSMS's other calls (capability discovery): not implemented here
                    await ws.send(orjson.dumps([4, msg[1], "NotImplemented", "bench station", {}]).decode())
                elif msg[1] in pending:
                    pending.pop(msg[1]).set_result(msg[2] if msg[0] == 3 else None)

        task = asyncio.create_task(reader())
        boot = {"reason": "PowerUp", "chargingStation": {"model": "BENCH", "vendorName": "bench"}}
        await call("BootNotification", boot)
        status = {"timestamp": _ts(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
        await call("StatusNotification", status)
        control["online"] += 1
        if control["online"] == control["total"]:
            ready.set()
        queue: asyncio.Queue[tuple[str, Any]] = control["queues"][sid]
        while True:
            kind, arg = await queue.get()
            if kind == "stop":
                break
            if kind == "status":
                payload = {"timestamp": _ts(), "connectorStatus": arg, "evseId": 1, "connectorId": 1}
                control["sent"][sid] = time.time()
                await call("StatusNotification", payload)
            elif kind == "meter":
                sv = [{"value": arg, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}}]
                await call("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": _ts(), "sampledValue": sv}]})
        task.cancel()


async def _fleet(url: str, ids: list[str], conn: Any, meter_rate: float) -> None:
    ready = asyncio.Event()
    control: dict[str, Any] = {
        "online": 0,
        "total": len(ids),
        "sent": {},
        "queues": {sid: asyncio.Queue() for sid in ids},
    }
    tasks = []
    for i, sid in enumerate(ids):
        tasks.append(asyncio.create_task(_station(url, sid, ready, control)))
        if i % 100 == 99:
            await asyncio.sleep(0.2)
    await asyncio.wait_for(ready.wait(), 300)
    loop = asyncio.get_running_loop()
    conn.send(("ready", None))

    async def meter_load() -> None:
        rng = random.Random(1)
        step = 1.0 / meter_rate if meter_rate > 0 else 1.0
        while meter_rate > 0:
            sid = rng.choice(ids)
            control["queues"][sid].put_nowait(("meter", round(rng.uniform(0, 20000), 1)))
            await asyncio.sleep(step)

    load = asyncio.create_task(meter_load())
    while True:
        cmd, arg = await loop.run_in_executor(None, conn.recv)
        if cmd == "status":
            control["queues"][arg].put_nowait(("status", "Unavailable"))
        elif cmd == "sent":
            conn.send(("sent", dict(control["sent"])))
        elif cmd == "stop":
            load.cancel()
            for q in control["queues"].values():
                q.put_nowait(("stop", None))
            await asyncio.gather(*tasks, return_exceptions=True)
            conn.send(("stopped", None))
            return


def _child(url: str, ids: list[str], conn: Any, meter_rate: float) -> None:
    asyncio.run(_fleet(url, ids, conn, meter_rate))


# ---------------------------------------------------------------------------- parent
_SEEN_JS = """
window.__seen = {};
document.addEventListener("fleet:applied", (e) => {
  for (const r of e.detail.rows) {
    for (const ev of r.evses) {
      const key = r.id + "|" + ev.status;
      if (!(key in window.__seen)) window.__seen[key] = [e.detail.at, e.detail.sent];
    }
  }
});
"""


async def run(n: int, samples: int, gap: float, meter_rate: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from csms.api.apitokens import issue_token
    from csms.config import ApiSettings, LogSettings, ServerSettings, Settings
    from csms.logging import configure_logging
    from csms.service import Service
    from csms.store.repository import Store

    configure_logging("error", False)
    data = Path(tempfile.mkdtemp(prefix="csms-bench-console-"))
    settings = Settings(
        data_dir=data,
        server=ServerSettings(host="127.0.0.1", port=0, ping_interval=60, backlog=2048),
        api=ApiSettings(enabled=True, host="127.0.0.1", port=0),
        log=LogSettings(level="error"),
    )
    ids = [f"BC-{i:04d}" for i in range(1, n + 1)]
    store = await Store.open(settings.database_url)
    await store.bulk_register_stations(ids, None)
    await store.close()
    service = Service(settings)
    await service.start()
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=_child, args=(f"ws://127.0.0.1:{service.central.port}", ids, child, meter_rate), daemon=True
    )
    loop = asyncio.get_running_loop()
    try:
        token, _ = await issue_token(service.central.store, "bench", "read")
        proc.start()
        t0 = time.perf_counter()
        msg = await loop.run_in_executor(None, parent.recv)
        assert msg[0] == "ready"
        print(f"{n} stations online in {time.perf_counter() - t0:.1f} s")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            url = service.api.url
            await page.goto(f"{url}/console/login")
            await page.fill("#token", token)
            await page.click("#sign-in")
            await page.wait_for_url(f"{url}/console/")
            t_load = time.perf_counter()
            await page.reload()
            await page.wait_for_selector("#live[data-state=live]")
            await page.locator(f"#fleet tbody tr >> nth={n - 1}").wait_for()
            load_s = time.perf_counter() - t_load
            await page.evaluate(_SEEN_JS)
            rows = await page.locator("#fleet tbody tr").count()
            assert rows == n, rows
            await asyncio.sleep(3)  # meter load running, table busy
            hub = service.api.app.state.console_hub
            received: dict[str, float] = {}  # when the CSMS processed each StatusNotification

            def on_event(kind: str, sid: str, data: dict[str, Any]) -> None:
                if kind == "status" and data.get("status") == "Unavailable":
                    received.setdefault(sid, time.time())

            service.central.subscribe(on_event)
            batches0 = hub.batches
            chosen = random.Random(7).sample(ids, samples)
            started = time.perf_counter()
            for sid in chosen:
                parent.send(("status", sid))
                await asyncio.sleep(gap)
            deadline = time.perf_counter() + 20
            seen: dict[str, float] = {}
            while time.perf_counter() < deadline:
                seen = await page.evaluate("window.__seen")
                if all(f"{sid}|Unavailable" in seen for sid in chosen):
                    break
                await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - started
            parent.send(("sent", None))
            sent = (await loop.run_in_executor(None, parent.recv))[1]
            await browser.close()
        lat = sorted(
            seen[f"{sid}|Unavailable"][0] - sent[sid] * 1000.0
            for sid in chosen
            if f"{sid}|Unavailable" in seen and sid in sent
        )
        csms_ms = sorted((received[s] - sent[s]) * 1000.0 for s in chosen if s in received and s in sent)
        shown = {s: seen[f"{s}|Unavailable"] for s in chosen if f"{s}|Unavailable" in seen}
        page_ms = sorted(shown[s][0] - received[s] * 1000.0 for s in shown if s in received)
        batch_ms = sorted(shown[s][1] - received[s] * 1000.0 for s in shown if s in received)
        missing = samples - len(lat)
        batches = hub.batches - batches0
        parent.send(("stop", None))
        await loop.run_in_executor(None, parent.recv)
    finally:
        await service.stop()
        proc.join(10)
    p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))] if lat else float("nan")
    out = {
        "stations": n,
        "samples": len(lat),
        "missing": missing,
        "median_ms": statistics.median(lat) if lat else float("nan"),
        "p95_ms": p95,
        "max_ms": lat[-1] if lat else float("nan"),
        "batches_per_s": batches / elapsed,
        "meter_rate": meter_rate,
        "page_load_s": load_s,
        "station_to_csms_median_ms": statistics.median(csms_ms) if csms_ms else float("nan"),
        "csms_to_page_median_ms": statistics.median(page_ms) if page_ms else float("nan"),
        "csms_to_batch_median_ms": statistics.median(batch_ms) if batch_ms else float("nan"),
    }
    print(
        f"console fleet page, {n} stations, meter load {meter_rate:g} msg/s: update latency "
        f"median {out['median_ms']:.0f} ms, p95 {out['p95_ms']:.0f} ms, max {out['max_ms']:.0f} ms "
        f"({len(lat)} samples, {missing} missing; {out['batches_per_s']:.1f} batches/s to the browser); "
        f"page load to live {load_s:.2f} s"
    )
    print(
        f"  of which station -> CSMS event: median {out['station_to_csms_median_ms']:.0f} ms; "
        f"CSMS event -> batch sent: median {out['csms_to_batch_median_ms']:.0f} ms; "
        f"CSMS event -> row in the page: median {out['csms_to_page_median_ms']:.0f} ms"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stations", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--gap", type=float, default=0.1, help="seconds between two state changes")
    ap.add_argument("--meter-rate", type=float, default=200.0, help="MeterValues per second, whole fleet")
    a = ap.parse_args()
    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"bench.console needs headless Chromium at {CHROMIUM} (apt-get install -y chromium)")
    asyncio.run(run(a.stations, a.samples, a.gap, a.meter_rate))


if __name__ == "__main__":
    main()
