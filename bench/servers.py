"""Servers measured by ``bench.rpc_throughput``, each run in its own process.

- ``bare``: a plain ``websockets`` server that parses each frame and answers it, with no
  validation and no storage (the ceiling).
- ``stock``: a central system written with the ``ocpp`` package's ``ChargePoint`` the way its
  documentation shows (decorated handlers, ``cp.start()`` per connection).
- ``ours``: this CSMS, validation and persistence on (SQLite in a temp directory).

Ablations of ``ours`` (``--ablate``), to show where its time goes; not configurations to run:

- ``ours-noframes``: the OCPP frame log off (``storage.frame_log_limit = 0``, a real setting).
- ``ours-nometers``: meter samples parsed but not queued for SQLite.
- ``ours-nostore``: both; what validation, RPC and domain handling cost without persistence.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

NOW = "2026-06-01T16:00:00.000Z"


async def bare(port: int) -> None:
    from websockets.asyncio.server import serve

    async def handler(ws) -> None:
        async for message in ws:
            frame = orjson.loads(message)
            action = frame[2]
            if action == "BootNotification":
                payload = {"currentTime": NOW, "interval": 300, "status": "Accepted"}
            elif action == "Heartbeat":
                payload = {"currentTime": NOW}
            else:
                payload = {}
            await ws.send(orjson.dumps([3, frame[1], payload]).decode())

    async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp2.0.1"], ping_interval=None, compression=None):
        print("ready", flush=True)
        await asyncio.Future()


async def stock(port: int) -> None:
    from ocpp.routing import on
    from ocpp.v201 import ChargePoint as Cp
    from ocpp.v201 import call_result
    from ocpp.v201.enums import Action, RegistrationStatusEnumType
    from websockets.asyncio.server import serve

    class ChargePoint(Cp):
        @on(Action.boot_notification)
        def on_boot_notification(self, charging_station, reason, **kwargs):
            return call_result.BootNotification(
                current_time=datetime.now(UTC).isoformat(), interval=300, status=RegistrationStatusEnumType.accepted
            )

        @on(Action.heartbeat)
        def on_heartbeat(self, **kwargs):
            return call_result.Heartbeat(current_time=datetime.now(UTC).isoformat())

        @on(Action.status_notification)
        def on_status_notification(self, **kwargs):
            return call_result.StatusNotification()

        @on(Action.meter_values)
        def on_meter_values(self, **kwargs):
            return call_result.MeterValues()

    async def on_connect(ws) -> None:
        cp = ChargePoint(ws.request.path.strip("/").split("/")[-1], ws)
        try:
            await cp.start()
        except Exception:
            pass

    async with serve(on_connect, "127.0.0.1", port, subprotocols=["ocpp2.0.1"], ping_interval=None, compression=None):
        print("ready", flush=True)
        await asyncio.Future()


async def ours(port: int, data_dir: str, stations: int, ablate: str = "") -> None:
    from csms.central import CentralSystem
    from csms.config import ApiSettings, ServerSettings, Settings, StorageSettings
    from csms.logging import configure_logging
    from csms.runtime import settle_heap
    from csms.server import credentials

    configure_logging("warning")
    no_frames = ablate in ("noframes", "nostore")
    no_meters = ablate in ("nometers", "nostore")
    settings = Settings(
        data_dir=Path(data_dir),
        server=ServerSettings(host="127.0.0.1", port=port, ping_interval=None, call_timeout=30),
        api=ApiSettings(enabled=False),
        storage=StorageSettings(frame_log_limit=0) if no_frames else StorageSettings(),
    )
    central = CentralSystem(settings)
    await central.start()
    pw_hash = credentials.hash_password(BENCH_PASSWORD, settings.security.pbkdf2_iterations)
    await central.store.bulk_register_stations([f"BENCH-{i}" for i in range(stations)], pw_hash)
    await central.stop()
    central = CentralSystem(settings)  # restart so registration goes through the normal load path
    await central.start()
    if no_meters:
        assert central.store is not None
        central.store.meters.add_rows = lambda *args, **kwargs: 0  # type: ignore[method-assign]
    settle_heap()  # as ``csms serve`` does once started
    print("ready", flush=True)
    try:
        await asyncio.Future()
    finally:
        await central.stop()


BENCH_PASSWORD = "bench-password-0123456789"


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if len(sys.argv) > 3 and sys.argv[3] != "-":
        os.sched_setaffinity(0, {int(sys.argv[3])})
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    if kind == "bare":
        runner(bare(port))
    elif kind == "stock":
        runner(stock(port))
    else:
        runner(ours(port, sys.argv[4], int(sys.argv[5]), kind.partition("-")[2]))


if __name__ == "__main__":
    main()
