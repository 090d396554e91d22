"""Site load balancing, the running part: one task per ``[[sites]]`` entry.

Every ``control_interval_s`` (and at once when a car arrives or leaves, a charger connects,
disconnects or reboots, or the limits change) the balancer reads the live station state of
its site, asks :func:`csms.sites.allocate.allocate` for a cap per EVSE and sends one
**ChargingStationMaxProfile per station** (the sum of its EVSEs' caps, ``evseId`` 0) through
the charging-control service: every decrease first, and only when all of them are accepted
the increases. A station that refuses or does not answer a decrease keeps counting at its old
cap and the allocation is redone without it before any increase is sent.

Why station caps and not TxProfiles: a cap needs no transaction, so it also holds when a car
plugs in before the CSMS hears of it (an idle charger sits at the ``arrival_kw`` allowance,
which is budgeted), and it composes with grid-event dispatch, whose TxProfiles live under it
(the composite schedule takes the minimum). What a real station does offline: it keeps running
on the profiles it has. A ChargingStationMaxProfile is sent without ``maxOfflineDuration``, so
an offline station keeps its last cap indefinitely and the balancer keeps counting it at that
cap (at its rating if it never accepted one) until it is back.

Site power is ``building + chargers``: the chargers' metered power (MeterValues / TransactionEvent)
plus the building load from the site meter (MQTT topic or a station's EVSE 0 meter; a meter that
measures the whole connection has the chargers subtracted), or ``building_kw`` when there is no
fresh reading. Cluster mode is not covered (each node sees only its own stations).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from csms.config import SiteSettings
from csms.domain.station import BootState
from csms.sites.allocate import Allocation, EvseInput, allocate, floor_to, order_changes
from csms.sites.meter import MqttSiteMeters, Reading

if TYPE_CHECKING:
    from csms.central import CentralSystem

log = structlog.get_logger("csms.sites")

CAP_PURPOSE = "ChargingStationMaxProfile"
STEP_W = 100.0  # caps are rounded down to this
TOLERANCE_W = 1000.0  # smaller changes are not sent (see order_changes): less churn, same safety
HISTORY = 720
STEP_WAKE_W = 2000.0  # a site meter step this large re-balances without waiting for the interval


class UnknownSite(LookupError):
    pass


@dataclass(slots=True)
class SiteRuntime:
    settings: SiteSettings
    caps: dict[str, float | None] = field(default_factory=dict)  # accepted cap per station (W)
    cap_set_at: dict[str, datetime] = field(default_factory=dict)
    reading: Reading | None = None
    allocation: Allocation | None = None
    evse_caps: dict[tuple[str, int], float] = field(default_factory=dict)
    last_round: datetime | None = None
    rounds: int = 0
    commands: dict[str, int] = field(default_factory=lambda: {"decrease": 0, "increase": 0, "failed": 0})
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    soc_seen: dict[tuple[str, int], tuple[str | None, float]] = field(default_factory=dict)  # (tx, SoC)
    needs_tx: dict[tuple[str, int], str | None] = field(default_factory=dict)  # the tx the needs came in
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class SiteBalancer:
    """Service part (``csms serve`` adds it when ``[[sites]]`` is configured)."""

    def __init__(self, central: CentralSystem, sites: list[SiteSettings] | None = None) -> None:
        self.central = central
        self.sites: dict[str, SiteRuntime] = {
            s.id: SiteRuntime(s.model_copy(deep=True)) for s in (sites if sites is not None else central.settings.sites)
        }
        self._site_of: dict[str, str] = {
            sid: rt.settings.id for rt in self.sites.values() for sid in rt.settings.stations
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Any = None
        self.meters: MqttSiteMeters | None = None
        self._locks: dict[str, asyncio.Lock] = {k: asyncio.Lock() for k in self.sites}

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.central.extensions["sites"] = self
        await self._load_stored_limits()
        self._unsubscribe = self.central.subscribe(self._on_event)
        topics = [
            rt.settings.meter.mqtt_topic
            for rt in self.sites.values()
            if rt.settings.meter and rt.settings.meter.mqtt_topic
        ]
        if topics:
            self.meters = MqttSiteMeters(self.central.settings.mqtt, topics, self._on_mqtt, self.central.now)  # type: ignore[arg-type]
            await self.meters.start()
        for site_id in self.sites:
            self._tasks.append(asyncio.create_task(self._loop(site_id), name=f"site-{site_id}"))
        log.info("site load balancing started", sites=sorted(self.sites))

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.meters is not None:
            await self.meters.stop()
        self.central.extensions.pop("sites", None)

    # ------------------------------------------------------------------ inputs
    def _on_event(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        site_id = self._site_of.get(station_id)
        if site_id is None:
            return
        rt = self.sites[site_id]
        if kind == "site_meter":
            meter = rt.settings.meter
            if meter is not None and meter.station == station_id and data.get("at") is not None:
                w = float(data.get("power_import_w", 0.0)) - float(data.get("power_export_w", 0.0))
                self._new_reading(rt, Reading(w, data["at"], f"station {station_id} EVSE 0"))
            return
        if kind == "meter" and data.get("soc") is not None and data.get("evse_id"):
            eid = int(data["evse_id"])
            evse = self.central.state(station_id).evses.get(eid)
            rt.soc_seen[(station_id, eid)] = (evse.transaction_id if evse else None, float(data["soc"]))
            return
        if kind == "needs" and data.get("evse_id"):
            eid = int(data["evse_id"])
            evse = self.central.state(station_id).evses.get(eid)
            rt.needs_tx[(station_id, eid)] = evse.transaction_id if evse else None
        if kind == "boot":
            rt.caps[station_id] = None  # a rebooted station may have lost its cap: send it again
        if kind in ("transaction", "connected", "disconnected", "boot", "needs") and (
            kind != "transaction" or data.get("event_type") in ("Started", "Ended")
        ):
            rt.wake.set()

    def _on_mqtt(self, topic: str, watts: float, at: datetime) -> None:
        for rt in self.sites.values():
            if rt.settings.meter is not None and rt.settings.meter.mqtt_topic == topic:
                self._new_reading(rt, Reading(watts, at, f"mqtt {topic}"))

    @staticmethod
    def _new_reading(rt: SiteRuntime, reading: Reading) -> None:
        """Keep the newest reading; a step of more than STEP_WAKE_W re-balances at once."""
        old = rt.reading
        if old is not None and reading.at < old.at:
            return
        rt.reading = reading
        if old is None or abs(reading.power_w - old.power_w) > STEP_WAKE_W:
            rt.wake.set()

    async def _load_stored_limits(self) -> None:
        """Limits changed at run time (API, CLI, console) win over the configuration file."""
        if self.central.store is None:
            return
        from csms.store.sites import site_limits

        for site_id, limits in (await site_limits(self.central.store)).items():
            if site_id not in self.sites:
                continue
            try:
                self.set_limits(site_id, **limits)
            except (ValidationError, TypeError) as exc:
                log.warning("stored site limits ignored", site=site_id, limits=limits, error=str(exc))

    async def change_limits(self, site_id: str, **limits: Any) -> SiteSettings:
        """:meth:`set_limits` and store the change (it survives a restart)."""
        settings = self.set_limits(site_id, **limits)
        if self.central.store is not None:
            from csms.store.sites import put_site_limits

            keep = {k: getattr(settings, k) for k in ("import_limit_kw", "export_limit_kw", "strategy")}
            await put_site_limits(self.central.store, site_id, keep)
        return settings

    def site(self, site_id: str) -> SiteRuntime:
        try:
            return self.sites[site_id]
        except KeyError:
            raise UnknownSite(f"unknown site {site_id!r}") from None

    def set_limits(
        self,
        site_id: str,
        *,
        import_limit_kw: float | None = None,
        export_limit_kw: float | None = None,
        strategy: str | None = None,
    ) -> SiteSettings:
        """Change a site's limits at run time (validated like the config); re-balances at once."""
        rt = self.site(site_id)
        data = rt.settings.model_dump()
        if import_limit_kw is not None:
            data["import_limit_kw"] = import_limit_kw
        if export_limit_kw is not None:
            data["export_limit_kw"] = export_limit_kw
        if strategy is not None:
            data["strategy"] = strategy
        rt.settings = SiteSettings.model_validate(data)  # raises ValidationError naming the field
        rt.wake.set()
        log.info(
            "site limits changed", site=site_id, import_kw=rt.settings.import_limit_kw, strategy=rt.settings.strategy
        )
        return rt.settings

    # ------------------------------------------------------------------ state
    def _online(self, station_id: str) -> bool:
        st = self.central.states.get(station_id)
        return st is not None and self.central.reachable(station_id) and st.boot is BootState.ACCEPTED

    def _rating_w(self, s: SiteSettings, station_id: str) -> float:
        return 1000.0 * s.station_ratings_kw.get(station_id, s.station_max_kw)

    def chargers_w(self, rt: SiteRuntime) -> float:
        total = 0.0
        for sid in rt.settings.stations:
            st = self.central.states.get(sid)
            if st is None:
                continue
            for eid, evse in st.evses.items():
                if eid > 0 and (evse.transaction_id is not None or not st.connected):
                    total += evse.power_import_w - evse.power_export_w
        return total

    def building_w(self, rt: SiteRuntime, now: datetime) -> tuple[float, str]:
        s = rt.settings
        r = rt.reading
        if s.meter is not None and r is not None and (now - r.at).total_seconds() <= s.meter.stale_after_s:
            if s.meter.measures == "total":
                return max(r.power_w - self.chargers_w(rt), 0.0), r.source
            return r.power_w, r.source
        return 1000.0 * s.building_kw, "assumed (building_kw)"

    def inputs(self, rt: SiteRuntime, now: datetime) -> list[EvseInput]:
        s = rt.settings
        out: list[EvseInput] = []
        interval = timedelta(seconds=s.control_interval_s)
        for sid in s.stations:
            st = self.central.state(sid)
            online = self._online(sid)
            rating = self._rating_w(s, sid)
            evse_ids = sorted(e for e in st.evses if e > 0) or [1]
            held = rt.caps.get(sid)
            for eid in evse_ids:
                evse = st.evses.get(eid)
                active = evse is not None and evse.transaction_id is not None
                needs = evse.charging_needs if evse is not None else None
                tx = evse.transaction_id if evse is not None else None
                if needs is not None and rt.needs_tx.get((sid, eid), tx) != tx:
                    needs = None  # left over from an earlier car: not this car's needs
                max_w = rating
                if needs is not None and needs.max_charge_w:
                    max_w = min(max_w, float(needs.max_charge_w))
                wanted = departure = demand = None
                floor = min(1000.0 * s.arrival_kw, max_w)  # never less: a wrong guess must not starve a car
                if needs is not None:
                    departure = needs.departure_time
                    seen = rt.soc_seen.get((sid, eid))
                    soc = seen[1] if seen is not None and seen[0] == tx else needs.soc  # this car's SoC only
                    if needs.capacity_wh and needs.target_soc is not None and soc is not None:
                        wanted = (needs.target_soc - soc) / 100.0 * needs.capacity_wh
                if wanted is not None and wanted <= 0:
                    wanted, demand = None, floor  # looks full: the allowance, so it can resume
                if active and evse is not None:
                    if evse.charging_state == "SuspendedEV":
                        demand = floor  # the car takes nothing now (full, or waiting)
                    cap_at = rt.cap_set_at.get(sid)
                    per_evse = (held / len(evse_ids)) if held is not None else None
                    if (
                        per_evse is not None
                        and evse.metered_at is not None
                        and cap_at is not None
                        and evse.metered_at >= cap_at + interval
                        and evse.power_import_w < 0.7 * per_evse
                    ):
                        # drawing well under its cap (tapering, EV limit): leave it some headroom
                        demand = max(evse.power_import_w * 1.2 + 1000.0, floor)
                out.append(
                    EvseInput(
                        key=(sid, eid),
                        max_w=max_w,
                        active=active,
                        online=online,
                        held_w=(held / len(evse_ids)) if held is not None else None,
                        demand_w=demand,
                        wanted_wh=wanted,
                        departure=departure,
                        priority=s.priorities.get(sid, 0),
                    )
                )
        return out

    # ------------------------------------------------------------------ control loop
    async def _loop(self, site_id: str) -> None:
        rt = self.sites[site_id]
        clock = self.central.clock
        while True:
            try:
                await self.rebalance(site_id)
            except Exception:
                log.exception("site re-balance failed", site=site_id)
            sleeper = asyncio.ensure_future(clock.sleep(self._next_round_in(rt)))
            waker = asyncio.ensure_future(rt.wake.wait())
            try:
                await asyncio.wait([sleeper, waker], return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()
            rt.wake.clear()

    def _next_round_in(self, rt: SiteRuntime) -> float:
        """The control interval, or less: when the meter reading turns stale the building load
        falls back to ``building_kw`` and that must take effect at once, not an interval later."""
        wait = rt.settings.control_interval_s
        meter, r = rt.settings.meter, rt.reading
        if meter is not None and r is not None:
            left = meter.stale_after_s - (self.central.now() - r.at).total_seconds()
            if left > 0:
                wait = min(wait, left + 0.01)
        return wait

    async def rebalance(self, site_id: str) -> dict[str, Any]:
        """One round: allocate, send decreases, wait, send increases. Returns a summary."""
        rt = self.site(site_id)
        async with self._locks[site_id]:
            now = self.central.now()
            s = rt.settings
            building, source = self.building_w(rt, now)
            stuck: set[str] = set()
            sent = {"decrease": 0, "increase": 0, "failed": 0}
            target: dict[str, float] = {}
            for _ in range(3):
                evses = [e if e.key[0] not in stuck else _held(e) for e in self.inputs(rt, now)]
                alloc = allocate(
                    evses,
                    import_limit_w=1000.0 * s.import_limit_kw,
                    building_w=building,
                    margin_w=1000.0 * s.margin_kw,
                    arrival_w=1000.0 * s.arrival_kw,
                    strategy=s.strategy,
                    now=now,
                )
                evse_caps = {k: floor_to(v, STEP_W) for k, v in alloc.caps.items()}
                target = {}
                for (sid, _eid), w in evse_caps.items():
                    target[sid] = target.get(sid, 0.0) + w
                current = {sid: rt.caps.get(sid) for sid in target}
                ratings = {sid: self._rating_w(s, sid) * max(1, len(self.central.state(sid).evses)) for sid in target}
                decreases, increases = order_changes(current, target, tolerance_w=TOLERANCE_W, ratings=ratings)
                results = await asyncio.gather(*(self._send(rt, c.key, c.new_w, now) for c in decreases))
                sent["decrease"] += sum(results)
                failed = {c.key for c, ok in zip(decreases, results, strict=True) if not ok}
                sent["failed"] += len(failed)
                if not failed:
                    results = await asyncio.gather(*(self._send(rt, c.key, c.new_w, now) for c in increases))
                    sent["increase"] += sum(results)
                    sent["failed"] += results.count(False)
                    break
                stuck |= failed  # they keep their old cap: allocate again around them, decreases first
            rt.allocation = alloc
            rt.evse_caps = {k: v for k, v in evse_caps.items()}
            for k, v in alloc.held.items():
                rt.evse_caps[k] = v
            for k in sent:
                rt.commands[k] += sent[k]
            rt.rounds += 1
            rt.last_round = now
            chargers = self.chargers_w(rt)
            point = {
                "t": now.isoformat(),
                "limit_kw": s.import_limit_kw,
                "building_kw": round(building / 1000, 2),
                "chargers_kw": round(chargers / 1000, 2),
                "site_kw": round((building + chargers) / 1000, 2),
                "planned_kw": round((alloc.planned_w + building) / 1000, 2),
            }
            rt.history.append(point)
            if sent["decrease"] or sent["increase"] or sent["failed"]:
                log.info("site re-balanced", site=site_id, source=source, **point, **sent)
            return {**point, **sent, "notes": alloc.notes}

    async def _send(self, rt: SiteRuntime, station_id: str, cap_w: float, now: datetime) -> bool:
        if not self._online(station_id):
            return False
        try:
            await self.central.charging.set_power_schedule(
                station_id, 0, [(0, cap_w)], start=now - timedelta(seconds=60), purpose=CAP_PURPOSE
            )
        except Exception as exc:
            # not answered or refused: the station may hold the old or the new cap (a timed-out
            # call may still have been applied) -- count it at its rating until a cap is accepted
            log.warning("site cap not applied", station=station_id, cap_w=cap_w, error=str(exc))
            rt.caps[station_id] = None
            return False
        rt.caps[station_id] = cap_w
        rt.cap_set_at[station_id] = self.central.now()
        return True

    # ------------------------------------------------------------------ views (API, console, CLI)
    def view(self, site_id: str) -> dict[str, Any]:
        rt = self.site(site_id)
        s = rt.settings
        now = self.central.now()
        building, source = self.building_w(rt, now)
        chargers = self.chargers_w(rt)
        stations = []
        for sid in s.stations:
            st = self.central.state(sid)
            evses = []
            for eid in sorted(e for e in st.evses if e > 0) or [1]:
                evse = st.evses.get(eid)
                evses.append(
                    {
                        "evse_id": eid,
                        "transaction_id": evse.transaction_id if evse else None,
                        "power_kw": round((evse.power_import_w - evse.power_export_w) / 1000, 2) if evse else 0.0,
                        "allocated_kw": _kw(rt.evse_caps.get((sid, eid))),
                        "soc": evse.soc if evse else None,
                    }
                )
            stations.append(
                {
                    "station_id": sid,
                    "online": self._online(sid),
                    "cap_kw": _kw(rt.caps.get(sid)),
                    "priority": s.priorities.get(sid, 0),
                    "rating_kw": self._rating_w(s, sid) / 1000,
                    "evses": evses,
                }
            )
        return {
            "id": s.id,
            "name": s.name,
            "import_limit_kw": s.import_limit_kw,
            "export_limit_kw": s.export_limit_kw,
            "strategy": s.strategy,
            "control_interval_s": s.control_interval_s,
            "site_kw": round((building + chargers) / 1000, 2),
            "building_kw": round(building / 1000, 2),
            "building_source": source,
            "chargers_kw": round(chargers / 1000, 2),
            "allocated_kw": round(sum(rt.evse_caps.values()) / 1000, 2),
            "last_round": rt.last_round.isoformat() if rt.last_round else None,
            "rounds": rt.rounds,
            "commands": dict(rt.commands),
            "notes": list(rt.allocation.notes) if rt.allocation else [],
            "stations": stations,
        }

    def summaries(self) -> list[dict[str, Any]]:
        out = []
        for site_id in self.sites:
            v = self.view(site_id)
            v.pop("stations")
            v["stations"] = len(self.sites[site_id].settings.stations)
            out.append(v)
        return out


def _held(e: EvseInput) -> EvseInput:
    return EvseInput(key=e.key, max_w=e.max_w, active=e.active, online=False, held_w=e.held_w)


def _kw(w: float | None) -> float | None:
    return None if w is None else round(w / 1000, 2)
