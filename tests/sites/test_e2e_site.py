"""Site load balancing end to end: a 100 kW grid connection, 20 Fermata-style stations replaying a
Caltech ACN day (real WebSockets, accelerated clock), the building load on a real MQTT broker.

The ground truth is the simulators' own power stages (sampled every 5 simulated seconds, ramps
included) plus the building load the test publishes: the site power may be over the limit only
in short transients (never for longer than one control interval), and every car whose request
fits in its guaranteed fair share gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import pytest

from csms.config import SiteMeterSettings, SiteSettings
from csms.demo.site import Site, caltech_fleet, running_site
from simulators.cars import car as car_model
from tests.conftest import service_up

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

LA = ZoneInfo("America/Los_Angeles")
DAY = datetime(2026, 8, 20, tzinfo=LA)  # a Thursday; the replayed ACN day is 2019-07-16
LIMIT_KW = 100.0
INTERVAL_S = 60.0
SAMPLE_S = 5.0
SPEED = 200  # x300 left the stations minutes behind the clock on the shared, loaded 2-core machine


def local(h: int, m: int = 0) -> datetime:
    return DAY.replace(hour=h, minute=m)


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


@pytest.mark.skipif(not service_up("127.0.0.1", 1883), reason="needs Mosquitto on 127.0.0.1:1883")
async def test_site_limit_over_a_replayed_day(tmp_path: Path) -> None:
    fleet = caltech_fleet(20, date="2019-07-16", tx_interval_s=60)
    ratings = {s.id: s.charge_kw for s in fleet.stations}
    topic = f"test/site/{uuid.uuid4().hex}/meter"
    site_cfg = SiteSettings(
        id="garage",
        import_limit_kw=LIMIT_KW,
        stations=list(ratings),
        station_ratings_kw=ratings,
        meter=SiteMeterSettings(mqtt_topic=topic, measures="building", stale_after_s=45),
        building_kw=35.0,
        control_interval_s=INTERVAL_S,
    )
    plans: dict[str, dict[str, Any]] = {}

    def remember(fl: Any) -> None:
        for st in fl:
            for evse in st.evses.values():
                for p in evse.plans:
                    plans[p.session_id] = {"station": st.id, "plug_in": p.plug_in_t, "departure": p.departure_t,
                                           "car": p.car, "initial": p.initial_soc, "target": p.target_soc}  # fmt: skip

    epoch, end = local(6), local(20, 30)
    async with running_site(fleet, tmp_path, epoch=epoch, speed=SPEED, sites=[site_cfg], prepare=remember) as site:
        truth = SiteTruth(site, topic)
        # the stations boot a few simulated minutes after the epoch (setup takes wall seconds at
        # x200) and run uncapped until their first cap: the limit is checked from then on
        async with asyncio.timeout(30):
            while not all(has_cap(st) for st in site.fleet):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        ready = site.clock.now()
        await site.clock.sleep_until(local(9))
        off = ["ACN-04", "ACN-09"]  # two chargers drop off the network for 40 minutes at 09:00
        for sid in off:
            site.fleet[sid].disconnect(40 * 60)
        await site.clock.sleep_until(end)
        await truth.stop()
        balancer = site.service.sites
        view = balancer.view("garage")
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

    samples = [s for s in truth.samples if s[0] >= ready.timestamp()]
    site_kw = [c + b for _, c, b in samples]
    runs = over_limit_runs(samples, LIMIT_KW)
    seconds_over = sum(1 for p in site_kw if p > LIMIT_KW) * SAMPLE_S
    requested = delivered = 0.0
    possible = 0.0  # what each departed car could have had at its station's full rating
    short: list[tuple[str, float, float, float]] = []
    owed: list[tuple[str, float, float]] = []
    fair_kw = (LIMIT_KW - 35.0 - site_cfg.margin_kw) / 20  # what every car is sure to get
    for sid, p in plans.items():
        if sid not in finished:
            continue  # never plugged in (its slot was taken)
        cap = car_model(p["car"]).capacity_kwh
        req = max(p["target"] - p["initial"], 0) / 100 * cap
        got = max(finished[sid] - p["initial"], 0) / 100 * cap
        requested += req
        delivered += min(got, req)
        dwell_h = (min(p["departure"], end.timestamp()) - max(p["plug_in"], epoch.timestamp())) / 3600
        alone = min(req, ratings[p["station"]] * 0.95 * dwell_h)  # the station alone, no limit
        possible += alone
        if got < alone - 0.01 * cap:
            short.append((sid, round(req, 1), round(alone, 1), round(got, 1)))
        if p["departure"] <= end.timestamp() and req <= 0.8 * fair_kw * dwell_h and got < req - 0.01 * cap:
            owed.append((sid, round(req, 1), round(got, 1)))
    longest = max((r[1] for r in runs), default=0.0)
    print(
        f"\nsite {LIMIT_KW} kW from {ready.astimezone(LA):%H:%M:%S}, {len(finished)} sessions: "
        f"peak {max(site_kw):.1f} kW, "
        f"{seconds_over:.0f} s over the limit (longest {longest:.0f} s, {len(runs)} stretches), "
        f"delivered {delivered:.1f} of {requested:.1f} kWh requested ({delivered / requested:.1%}; "
        f"{possible:.1f} kWh possible at full station power in the dwell time), "
        f"rounds {view['rounds']}, commands {view['commands']}, MQTT broker outages {truth.broker_outages}"
    )
    for start, length in runs:
        print(f"  over the limit from {datetime.fromtimestamp(start, LA):%H:%M:%S} for {length:.0f} s")
    for row in short:
        print("  short (session, requested, possible alone, got kWh):", row)
    assert len(finished) >= 30  # a replayed day: cars arrive and leave all day
    assert longest <= INTERVAL_S  # never over the limit longer than one interval
    assert seconds_over <= 0.01 * len(site_kw) * SAMPLE_S
    assert max(site_kw) > 0.85 * LIMIT_KW  # the limit was binding: the test means something
    assert owed == []  # every car whose request fits in its fair share got it
    # what the cars could physically take (each charger alone at full power for the car's dwell
    # time) is the yardstick; requests beyond it cannot be met with any limit
    assert delivered >= 0.95 * possible
    assert view["commands"]["decrease"] > 20 and view["commands"]["increase"] > 20
    assert view["building_source"].startswith("mqtt")
