"""Run many simulated stations in one process: ``Fleet(config, clock).start()`` / ``stop()``.

One asyncio task per station for its firmware, one for its link (plus the reader of the open
connection); no threads. The fleet adds one task for scheduled faults and one monitor task that
reports clock lag (a firmware loop waking later than planned, in simulated seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import structlog

from csms.clock import Clock
from csms.ocpp import schemas

from .clock import SyncedClock
from .config import FleetConfig, ScheduledFault
from .sessions import ReplayResult, build_replay
from .station import Station

log = structlog.get_logger("simulators.fleet")


class Fleet:
    """A set of :class:`~simulators.station.Station` objects sharing one clock and CSMS URL."""

    def __init__(
        self,
        config: FleetConfig,
        clock: Clock | None = None,
        *,
        url: str | None = None,
        record: bool = False,
    ) -> None:
        self.config = config
        self.prewarm()
        sc = config.scenario.clock
        self.clock = clock or SyncedClock(sc.epoch, sc.speed)
        self.url = url or config.url
        self.stations: dict[str, Station] = {}
        for cfg in config.all_stations():
            self.stations[cfg.id] = Station(
                cfg, self.clock, self.url, record=record, lag_warning_s=config.lag_warning_s
            )
        self.replay: ReplayResult | None = None
        if config.scenario.replay is not None:
            slots = [(s.id, e) for s in self.stations.values() for e in s.evses]
            self.replay = build_replay(config.scenario.replay, self.clock.epoch, slots)
            for a in self.replay.assignments:
                self.stations[a.station_id].add_session(a.evse_id, a.plan)
            if self.replay.skipped:
                log.warning("replay sessions skipped: no free EVSE", count=len(self.replay.skipped))
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    # ------------------------------------------------------------------ access
    def __getitem__(self, station_id: str) -> Station:
        return self.stations[station_id]

    def __iter__(self) -> Iterator[Station]:
        return iter(self.stations.values())

    def __len__(self) -> int:
        return len(self.stations)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, *, connect_rate: float = 500.0) -> None:
        """Start every station; at most ``connect_rate`` stations start per wall second."""
        if self._started:
            return
        self._started = True
        batch = max(1, int(connect_rate / 20))
        for i, station in enumerate(self.stations.values()):
            await station.start()
            if (i + 1) % batch == 0 and i + 1 < len(self.stations):
                await asyncio.sleep(0.05)
        if self.config.scenario.faults:
            self._tasks.append(asyncio.create_task(self._fault_schedule(), name="fleet:faults"))
        self._tasks.append(asyncio.create_task(self._monitor(), name="fleet:monitor"))

    def prewarm(self) -> None:
        """Compile the schema validators now, not in the middle of the run."""
        schemas.prepare(sorted({v for s in self.config.all_stations() for v in s.ocpp}))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks = []
        await asyncio.gather(*(s.stop() for s in self.stations.values()), return_exceptions=True)
        self._started = False

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_online(self, timeout: float = 30.0) -> None:
        """Wait until every station is connected and accepted."""
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(s.wait_online(timeout) for s in self.stations.values()))

    async def run(self, duration_s: float | None = None) -> None:
        """Start, run ``duration_s`` simulated seconds (forever when None), stop."""
        await self.start()
        try:
            if duration_s is None:
                await asyncio.Event().wait()
            else:
                await self.clock.sleep(duration_s)
        finally:
            await self.stop()

    # ------------------------------------------------------------------ observability
    def lag(self) -> dict[str, float]:
        """Clock lag over the fleet (simulated seconds): worst ever, worst and mean of the latest."""
        if not self.stations:
            return {"max_s": 0.0, "last_max_s": 0.0, "last_mean_s": 0.0, "behind": 0}
        last = [s.lag_last_s for s in self.stations.values()]
        return {
            "max_s": max(s.lag_max_s for s in self.stations.values()),
            "last_max_s": max(last),
            "last_mean_s": sum(last) / len(last),
            "behind": sum(1 for v in last if v > self.config.lag_warning_s),
        }

    def totals(self) -> dict[str, Any]:
        evses = [e for s in self.stations.values() for e in s.evses.values()]
        return {
            "stations": len(self.stations),
            "online": sum(1 for s in self.stations.values() if s.online),
            "evs": sum(1 for e in evses if e.ev is not None),
            "transactions": sum(1 for e in evses if e.transaction_id is not None),
            "power_w": sum(e.power_w for e in evses),
            "import_wh": sum(e.import_wh for e in evses),
            "export_wh": sum(e.export_wh for e in evses),
            "sent": sum(s.sent_count for s in self.stations.values()),
            "queued": sum(s.outbox_size for s in self.stations.values()),
        }

    async def _monitor(self, every_wall_s: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every_wall_s)
            lag = self.lag()
            if lag["last_max_s"] > self.config.lag_warning_s:
                log.warning(
                    "fleet is behind the simulated clock",
                    behind=lag["behind"],
                    last_max_s=round(lag["last_max_s"], 2),
                    max_s=round(lag["max_s"], 2),
                )

    # ------------------------------------------------------------------ scheduled faults
    async def _fault_schedule(self) -> None:
        epoch = self.clock.epoch
        items = sorted(self.config.scenario.faults, key=lambda f: f.at.resolve(epoch))
        for fault in items:
            await self.clock.sleep_until(fault.at.resolve(epoch))
            targets = list(self.stations.values()) if fault.station == "*" else [self.stations.get(fault.station)]
            for st in targets:
                if st is None:
                    log.warning("fault for unknown station", station=fault.station)
                    continue
                self.apply_fault(st, fault)

    def apply_fault(self, st: Station, fault: ScheduledFault) -> None:
        log.info("fault injected", station=st.id, kind=fault.kind)
        dur = fault.duration_s or None
        if fault.kind == "disconnect":
            st.disconnect(dur)
        elif fault.kind == "ev_leaves":
            for evse_id in [fault.evse] if fault.evse else list(st.evses):
                st.ev_leaves(evse_id)
        elif fault.kind == "reboot":
            st.reboot()
        else:
            name, on, off = {
                "reject_profiles": ("reject_profiles", True, False),
                "ignore_profiles": ("ignore_profiles", True, False),
                "drift": ("power_drift", fault.value, 0.0),
                "noise": ("meter_noise", fault.value, 0.0),
            }[fault.kind]
            st.set_faults(**{name: on})
            if dur:
                self.clock_call_later(dur, lambda st=st, name=name, off=off: st.set_faults(**{name: off}))

    def clock_call_later(self, sim_s: float, fn: Any) -> None:
        asyncio.get_running_loop().call_later(self.clock.wall_seconds(sim_s), fn)
