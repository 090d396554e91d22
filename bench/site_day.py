"""Site load balancing over a replayed Caltech ACN day: a 100 kW grid connection, 20 Fermata-style
stations (real WebSockets, accelerated clock), the building load published on the real MQTT
broker (127.0.0.1:1883), two chargers offline for 40 minutes at 09:00.

The ground truth is the simulators' own power stages (sampled every 5 simulated seconds, ramps
included) plus the building load this module publishes. Prints the peak site power, the seconds
above the limit, the energy delivered against what the cars could have taken, and the
balancer's rounds and commands:

    .venv/bin/python -m bench.site_day                  # 06:00-20:30 at x200, about 4.5 min
    .venv/bin/python -m bench.site_day --start 07:30 --end 14:30 --speed 200

``tests/sites/test_e2e_site.py`` runs a shorter window of the same day through :func:`replay`
and asserts on the same figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt

from csms.config import SiteMeterSettings, SiteSettings
from csms.demo.site import Site, caltech_fleet, running_site
from simulators.cars import car as car_model

LA = ZoneInfo("America/Los_Angeles")
DAY = datetime(2026, 8, 20, tzinfo=LA)  # a Thursday; the replayed ACN day is 2019-07-16
ACN_DATE = "2019-07-16"
N_STATIONS = 20
LIMIT_KW = 100.0
BUILDING_PEAK_KW = 35.0
INTERVAL_S = 60.0
SAMPLE_S = 5.0
SPEED = 200  # x300 left the stations minutes behind the clock on the shared, loaded 2-core machine
OFFLINE = ("ACN-04", "ACN-09")  # drop off the network for OFFLINE_S at OFFLINE_AT
OFFLINE_S = 40 * 60


def local(h: int, m: int = 0) -> datetime:
    return DAY.replace(hour=h, minute=m)


OFFLINE_AT = local(9)


def building_kw(t: datetime) -> float:
    """An office building: 10 kW at night, 25 kW from 08:00, 35 kW over lunch, 15 kW after 17:00."""
    h = t.astimezone(LA).hour
    return 10.0 if h < 8 else 25.0 if h < 12 else 35.0 if h < 14 else 25.0 if h < 17 else 15.0


def has_cap(station: Any) -> bool:
    return any(p.profile.purpose.value == "ChargingStationMaxProfile" for p in station.profiles)


def stage_power_w(stage: Any, t: float) -> float:
    """A simulated power stage's grid power at ``t`` (its ramp toward the target included)."""
    p, tgt = stage.power_w, stage.target_w
    if p == tgt or stage.ramp_w_per_s <= 0:
        return tgt
    step = stage.ramp_w_per_s * max(t - stage.t, 0.0)
    return tgt if step >= abs(tgt - p) else p + math.copysign(step, tgt - p)


class SiteTruth:
    """Samples the true site power and publishes the building load as a site meter would."""

    def __init__(self, site: Site, topic: str) -> None:
        self.site, self.topic = site, topic
        self.samples: list[tuple[float, float, float]] = []  # (t, chargers kW, building kW)
        self.broker_outages = 0
        self._tasks = [asyncio.create_task(self._sample()), asyncio.create_task(self._meter())]

    async def _sample(self) -> None:
        clock = self.site.clock
        while True:
            now = clock.now()
            t = now.timestamp()
            chargers = sum(stage_power_w(e.stage, t) for st in self.site.fleet for e in st.evses.values())
            self.samples.append((t, chargers / 1000.0, building_kw(now)))
            await clock.sleep(SAMPLE_S)

    async def _meter(self) -> None:
        """Publish the building load every 30 simulated seconds; reconnect when the broker goes
        away (other test runs restart the shared Mosquitto)."""
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", 1883) as client:
                    while True:
                        now = self.site.clock.now()
                        await client.publish(self.topic, f'{{"power_kw": {building_kw(now)}}}')
                        await self.site.clock.sleep(30.0)
            except aiomqtt.MqttError:
                self.broker_outages += 1
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task  # the tasks only end by cancellation


def over_limit_runs(samples: list[tuple[float, float, float]], limit: float) -> list[tuple[float, float]]:
    """(start, length s) of the stretches with the site power above ``limit``."""
    runs, start = [], None
    for t, chargers, building in samples:
        if chargers + building > limit + 1e-6:
            start = t if start is None else start
        elif start is not None:
            runs.append((start, t - start))
            start = None
    if start is not None:
        runs.append((start, samples[-1][0] - start))
    return runs


@dataclass
class DayResult:
    """What a replay measured; the figures are computed from ``ready`` (every station capped) on."""

    epoch: datetime
    end: datetime
    ready: datetime
    ratings: dict[str, float]
    margin_kw: float
    samples: list[tuple[float, float, float]]
    plans: dict[str, dict[str, Any]]
    finished: dict[str, float]  # session id -> SoC at departure (or at the end)
    view: dict[str, Any]
    broker_outages: int
    site_kw: list[float] = field(init=False)
    runs: list[tuple[float, float]] = field(init=False)
    seconds_over: float = field(init=False)
    requested: float = field(init=False, default=0.0)
    delivered: float = field(init=False, default=0.0)
    possible: float = field(init=False, default=0.0)  # each car at its station's full rating
    short: list[tuple[str, float, float, float]] = field(init=False, default_factory=list)
    owed: list[tuple[str, float, float]] = field(init=False, default_factory=list)
    departed: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        ready_t, end_t, epoch_t = self.ready.timestamp(), self.end.timestamp(), self.epoch.timestamp()
        samples = [s for s in self.samples if s[0] >= ready_t]
        self.samples = samples
        self.site_kw = [c + b for _, c, b in samples]
        self.runs = over_limit_runs(samples, LIMIT_KW)
        self.seconds_over = sum(1 for p in self.site_kw if p > LIMIT_KW) * SAMPLE_S
        fair_kw = (LIMIT_KW - BUILDING_PEAK_KW - self.margin_kw) / len(self.ratings)  # every car is sure of it
        for sid, p in self.plans.items():
            if sid not in self.finished:
                continue  # never plugged in (its slot was taken, or after the end)
            cap = car_model(p["car"]).capacity_kwh
            req = max(p["target"] - p["initial"], 0) / 100 * cap
            got = max(self.finished[sid] - p["initial"], 0) / 100 * cap
            self.requested += req
            self.delivered += min(got, req)
            dwell_h = (min(p["departure"], end_t) - max(p["plug_in"], epoch_t)) / 3600
            alone = min(req, self.ratings[p["station"]] * 0.95 * dwell_h)  # the station alone, no limit
            self.possible += alone
            if got < alone - 0.01 * cap:
                self.short.append((sid, round(req, 1), round(alone, 1), round(got, 1)))
            if p["departure"] <= end_t:
                self.departed += 1
                if req <= 0.8 * fair_kw * dwell_h and got < req - 0.01 * cap:
                    self.owed.append((sid, round(req, 1), round(got, 1)))

    @property
    def sessions(self) -> int:
        return len(self.finished)

    @property
    def longest(self) -> float:
        return max((r[1] for r in self.runs), default=0.0)

    def summary(self) -> str:
        lines = [
            f"site {LIMIT_KW} kW from {self.ready.astimezone(LA):%H:%M:%S} to {self.end.astimezone(LA):%H:%M}, "
            f"{self.sessions} sessions ({self.departed} departed): peak {max(self.site_kw):.1f} kW, "
            f"{self.seconds_over:.0f} s over the limit (longest {self.longest:.0f} s, {len(self.runs)} stretches), "
            f"delivered {self.delivered:.1f} of {self.requested:.1f} kWh requested "
            f"({self.delivered / max(self.requested, 1e-9):.1%}; "
            f"{self.possible:.1f} kWh possible at full station power in the dwell time), "
            f"rounds {self.view['rounds']}, commands {self.view['commands']}, "
            f"MQTT broker outages {self.broker_outages}"
        ]
        for start, length in self.runs:
            lines.append(f"  over the limit from {datetime.fromtimestamp(start, LA):%H:%M:%S} for {length:.0f} s")
        for row in self.short:
            lines.append(f"  short (session, requested, possible alone, got kWh): {row}")
        return "\n".join(lines)

    def timeline(self, every_s: float = 900.0) -> str:
        """The mean site power (chargers + building) per ``every_s`` window."""
        rows, bucket, acc = [], None, []
        for t, c, b in self.samples:
            k = int(t // every_s)
            if bucket is not None and k != bucket and acc:
                at = datetime.fromtimestamp(bucket * every_s, LA)
                rows.append(f"  {at:%H:%M} mean {sum(acc) / len(acc):5.1f} kW, max {max(acc):5.1f} kW")
                acc = []
            bucket = k
            acc.append(c + b)
        return "\n".join(rows)


async def replay(
    data_dir: Path,
    *,
    epoch: datetime = local(6),
    end: datetime = local(20, 30),
    speed: float = SPEED,
    ready_timeout_s: float = 30.0,
) -> DayResult:
    """Replay ``epoch``..``end`` of the day with the site limit; two chargers go offline for 40
    minutes at 09:00 (the window must contain it). Needs Mosquitto on 127.0.0.1:1883."""
    fleet = caltech_fleet(N_STATIONS, date=ACN_DATE, tx_interval_s=60)
    ratings = {s.id: s.charge_kw for s in fleet.stations}
    topic = f"test/site/{uuid.uuid4().hex}/meter"
    site_cfg = SiteSettings(
        id="garage",
        import_limit_kw=LIMIT_KW,
        stations=list(ratings),
        station_ratings_kw=ratings,
        meter=SiteMeterSettings(mqtt_topic=topic, measures="building", stale_after_s=45),
        building_kw=BUILDING_PEAK_KW,
        control_interval_s=INTERVAL_S,
    )
    plans: dict[str, dict[str, Any]] = {}

    def remember(fl: Any) -> None:
        for st in fl:
            for evse in st.evses.values():
                for p in evse.plans:
                    plans[p.session_id] = {"station": st.id, "plug_in": p.plug_in_t, "departure": p.departure_t,
                                           "car": p.car, "initial": p.initial_soc, "target": p.target_soc}  # fmt: skip

    if not epoch < OFFLINE_AT < end:
        raise ValueError("the window must contain the offline period")
    async with running_site(fleet, data_dir, epoch=epoch, speed=speed, sites=[site_cfg], prepare=remember) as site:
        truth = SiteTruth(site, topic)
        # the stations boot a few simulated minutes after the epoch (setup takes wall seconds at
        # x200) and run uncapped until their first cap: the limit is checked from then on
        async with asyncio.timeout(ready_timeout_s):
            while not all(has_cap(st) for st in site.fleet):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        ready = site.clock.now()
        await site.clock.sleep_until(OFFLINE_AT)
        for sid in OFFLINE:
            site.fleet[sid].disconnect(OFFLINE_S)
        await site.clock.sleep_until(end)
        await truth.stop()
        view = site.service.sites.view("garage")
        finished: dict[str, float] = {}
        for st in site.fleet:
            for evse in st.evses.values():
                current = None
                for h in evse.history:
                    if h["event"] == "plug_in":
                        current = h["session"]
                    elif h["event"] == "departure" and current is not None:
                        finished[current] = h["soc"]
                        current = None
                if current is not None and evse.soc is not None:
                    finished[current] = evse.soc
    return DayResult(
        epoch=epoch,
        end=end,
        ready=ready,
        ratings=ratings,
        margin_kw=site_cfg.margin_kw,
        samples=truth.samples,
        plans=plans,
        finished=finished,
        view=view,
        broker_outages=truth.broker_outages,
    )


def _hhmm(text: str) -> datetime:
    h, m = text.split(":")
    return local(int(h), int(m))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", default="06:00", help="local time the replay starts (default 06:00)")
    ap.add_argument("--end", default="20:30", help="local time the replay ends (default 20:30)")
    ap.add_argument("--speed", type=float, default=SPEED)
    ap.add_argument("--timeline", action="store_true", help="print the mean site power every 15 minutes")
    args = ap.parse_args()
    from csms.logging import configure_logging

    configure_logging("warning")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(replay(Path(tmp), epoch=_hhmm(args.start), end=_hhmm(args.end), speed=args.speed))
    print(result.summary())
    if args.timeline:
        print(result.timeline())
    print(f"wall time {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
