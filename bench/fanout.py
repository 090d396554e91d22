"""Dispatch fan-out benchmark (issue 5): grid event received -> SetChargingProfile accepted by
every station, over real sockets, for N simulated Fermata-style stations (1,000 by default).

    python -m bench.fanout [--stations 1000] [--concurrency 1000] [--share-201 0.35]

The CSMS (SQLite, the dispatch controller) runs in this process; the simulated fleet runs in a
child process on the other core, on the same clock (``Clock`` epoch, speed 1 and wall anchor
shared). Every station has one bidirectional car plugged in (SoC 80 %, promise 50 %, leaving in
6 hours), about a third of the stations on OCPP 2.0.1 with the vendor V2X convention, the rest on
2.1. Once every car's charging needs are known, an export event is handed to the event book
and the clock starts:

* ``accepted``: until the CSMS holds the station's Accepted SetChargingProfileResponse;
* ``recorded``: until the profile is also written to the store and the controller counts the
  station as commanded (what ``all_commanded_s`` in the event report measures).

Prints total time and p50/p99 per station for both, the planning time and the method.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def fleet_config(n: int, epoch: datetime, share_201: float) -> Any:
    from simulators import FleetConfig, SessionConfig, StationConfig

    stations = []
    every = round(1 / share_201) if share_201 > 0 else 0
    for i in range(1, n + 1):
        session = SessionConfig(
            evse=1,
            plug_in=epoch,
            departure=epoch + timedelta(hours=6),
            car="nissan-leaf-62",
            initial_soc=80,
            target_soc=50,
        )
        common: dict[str, Any] = {
            "evse_count": 1,
            "discharge_kw": 15.0,
            "tx_updated_interval_s": 600,
            "aligned_interval_s": 0,
            "heartbeat_interval_s": 3600,
            "sessions": [session],
        }
        if every and i % every == 0:
            stations.append(
                StationConfig(id=f"FO-{i:04d}", ocpp=["2.0.1"], model="FE-15", v2x_vendor_convention=True, **common)
            )
        else:
            stations.append(StationConfig(id=f"FO-{i:04d}", ocpp=["2.1"], model="FE-20", **common))
    return FleetConfig(stations=stations)


def _fleet_process(config: Any, url: str, epoch: str, anchor: str) -> None:
    """Child process: run the fleet on the CSMS's clock until terminated."""
    from csms.clock import Clock
    from csms.logging import configure_logging
    from simulators import Fleet

    configure_logging("error")
    clock = Clock(datetime.fromisoformat(epoch), 1.0, anchor=datetime.fromisoformat(anchor))

    async def run() -> None:
        fleet = Fleet(config, clock, url=url)
        await fleet.start(connect_rate=400)
        await asyncio.Event().wait()

    asyncio.run(run())


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * (len(values) - 1)))] if values else float("nan")


async def fanout(stations: int, concurrency: int, share_201: float) -> dict[str, Any]:
    from csms.clock import Clock
    from csms.demo.site import make_settings, register
    from csms.dispatch.controller import ControllerOptions, DispatchController
    from csms.service import Service

    epoch = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp), epoch=epoch, speed=1.0)
        config = fleet_config(stations, epoch, share_201)
        await register(settings, [s.id for s in config.stations])
        clock = Clock(epoch, 1.0)
        service = Service(settings, clock=clock)
        options = ControllerOptions(concurrency=concurrency, write_files=False, perfect_foresight=False)
        controller = DispatchController(service.central, options=options)
        service.parts.append(controller)
        await service.start()
        central = service.central
        proc = mp.get_context("spawn").Process(
            target=_fleet_process,
            args=(config, f"ws://127.0.0.1:{central.port}", epoch.isoformat(), clock.anchor.isoformat()),
            daemon=True,
        )
        proc.start()
        try:
            t_setup = time.perf_counter()

            def ready() -> int:
                return sum(
                    1
                    for st in central.states.values()
                    if st.connected
                    for e in st.evses.values()
                    if e.transaction_id and e.charging_needs is not None and st.capabilities is not None
                )

            while ready() < stations and time.perf_counter() - t_setup < 300:  # noqa: ASYNC110
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.0)  # post-boot reconciliations settle
            cars = ready()
            setup_s = time.perf_counter() - t_setup

            accepted: dict[str, float] = {}
            recorded: dict[str, float] = {}
            original_call = central.call

            async def timed_call(station_id: str, action: str, payload: dict[str, Any], **kw: Any) -> dict[str, Any]:
                response = await original_call(station_id, action, payload, **kw)
                if action == "SetChargingProfile" and response.get("status") == "Accepted":
                    accepted.setdefault(station_id, time.perf_counter())
                return response

            central.call = timed_call  # type: ignore[method-assign]

            def on_event(kind: str, station_id: str, data: dict[str, Any]) -> None:
                if kind == "profile" and data.get("set"):
                    recorded.setdefault(station_id, time.perf_counter())

            central.subscribe(on_event)
            start = clock.now() + timedelta(minutes=1)
            event = {
                "id": "fanout",
                "program": "bench",
                "intervals": [
                    {
                        "start": start.isoformat(),
                        "end": (start + timedelta(hours=1)).isoformat(),
                        "target_kw": 5.0 * cars,
                    }
                ],
            }
            t0 = time.perf_counter()
            await controller.book.submit(event, source="api")
            while len(recorded) < cars and time.perf_counter() - t0 < 120:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            run = controller.runs.get("fanout")
            plan = run.last_plan if run is not None else None
            acc = sorted(t - t0 for t in accepted.values())
            rec = sorted(t - t0 for t in recorded.values())
        finally:
            proc.terminate()
            proc.join(10)
            await service.stop()
    return {
        "stations": stations,
        "cars": cars,
        "setup_s": setup_s,
        "accepted": len(acc),
        "accepted_total_s": acc[-1] if acc else float("nan"),
        "accepted_p50_s": statistics.median(acc) if acc else float("nan"),
        "accepted_p99_s": _pct(acc, 0.99),
        "recorded": len(rec),
        "recorded_total_s": rec[-1] if rec else float("nan"),
        "recorded_p50_s": statistics.median(rec) if rec else float("nan"),
        "recorded_p99_s": _pct(rec, 0.99),
        "plan_method": plan["method"] if plan else None,
        "plan_s": plan["solve_time_s"] if plan else None,
        "concurrency": concurrency,
    }


def main() -> None:
    from csms.logging import configure_logging

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1000, help="executor: stations commanded at once")
    parser.add_argument("--share-201", type=float, default=0.35, help="share of OCPP 2.0.1 stations")
    args = parser.parse_args()
    configure_logging("error")
    r = asyncio.run(fanout(args.stations, args.concurrency, args.share_201))
    print(
        f"fan-out: {r['stations']} stations, {r['cars']} with a bidirectional car and known needs "
        f"(fleet ready in {r['setup_s']:.1f} s); executor concurrency {r['concurrency']}"
    )
    print(f"  plan: {r['plan_method']} in {r['plan_s']} s")
    print(
        f"  event received -> SetChargingProfile accepted by {r['accepted']}/{r['cars']}: "
        f"{r['accepted_total_s']:.2f} s (target < 2 s); per station p50 {r['accepted_p50_s']:.2f} s, "
        f"p99 {r['accepted_p99_s']:.2f} s"
    )
    print(
        f"  ... and recorded in the store (controller: all commanded) {r['recorded']}/{r['cars']}: "
        f"{r['recorded_total_s']:.2f} s; p50 {r['recorded_p50_s']:.2f} s, p99 {r['recorded_p99_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
