"""Dispatch fan-out benchmark (issue 5): grid event received -> SetChargingProfile accepted by
every station with a car, over real sockets, for N simulated Fermata-style stations.

    python -m bench.fanout [--stations 1000]

The CSMS, the dispatch controller and the simulated fleet share one process and one
accelerated clock (as in the demo); the clock is set so the event starts right away. Times are
wall-clock: from the moment the event is handed to the event book until the CSMS has each
station's Accepted SetChargingProfileResponse (its "profile" event). Prints total time and
p50/p99 per station.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from csms.dispatch.controller import ControllerOptions
from csms.dispatch.harness import evening_fleet, running_site
from csms.logging import configure_logging


async def fanout(stations: int) -> dict[str, Any]:
    epoch = datetime(2026, 8, 18, 22, 55, tzinfo=UTC)
    start = epoch + timedelta(minutes=5)
    fleet = evening_fleet(stations, epoch=epoch, seed=11, event_start=start)
    with tempfile.TemporaryDirectory() as tmp:
        async with running_site(fleet, Path(tmp), epoch=epoch, speed=2, options=ControllerOptions(),
                                wait_online_s=300) as site:  # fmt: skip

            def plugged() -> set[str]:
                return {
                    sid
                    for sid, st in site.central.states.items()
                    for e in st.evses.values()
                    if e.transaction_id and e.charging_needs is not None and e.charging_needs.bidirectional
                }

            # wait (wall time) until the cars present at the start have reported their needs
            settle_until, last = time.perf_counter() + 300, -1
            while time.perf_counter() < settle_until:
                await asyncio.sleep(3)
                n = len(plugged())
                if n == last and n >= 0.5 * stations:
                    break
                last = n
            cars = plugged()
            accepted: dict[str, float] = {}

            def on_event(kind: str, station_id: str, data: dict[str, Any]) -> None:
                if kind == "profile" and data.get("set") and station_id not in accepted:
                    accepted[station_id] = time.perf_counter()

            site.central.subscribe(on_event)
            event = {
                "id": "fanout",
                "program": "bench",
                "direction": "export",
                "intervals": [{"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(),
                               "target_kw": 2.0 * len(cars)}],
            }  # fmt: skip
            t0 = time.perf_counter()
            await site.book.submit(event, source="api")
            deadline = t0 + 120
            while not cars <= accepted.keys() and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            done = [accepted[s] - t0 for s in cars if s in accepted]
    done.sort()
    return {
        "stations": stations,
        "cars": len(cars),
        "accepted": len(done),
        "total_s": max(done) if done else float("nan"),
        "p50_s": statistics.median(done) if done else float("nan"),
        "p99_s": done[int(0.99 * (len(done) - 1))] if done else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", type=int, default=1000)
    args = parser.parse_args()
    configure_logging("error")
    r = asyncio.run(fanout(args.stations))
    print(f"fan-out: {r['stations']} stations, {r['cars']} with a bidirectional car plugged in")
    print(f"  event received -> SetChargingProfile accepted by {r['accepted']}/{r['cars']}: {r['total_s']:.2f} s")
    print(f"  (target < 2 s); per station p50 {r['p50_s']:.2f} s, p99 {r['p99_s']:.2f} s")


if __name__ == "__main__":
    main()
