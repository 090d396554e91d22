"""The station's firmware loop: integrate the power stages, run the sessions (plug-in,
departure), sleep until the next predictable event; reboot and reset."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque

import structlog

from csms.smartcharging.composite import next_change_after
from csms.smartcharging.model import ChargingProfilePurpose

from .model import (
    _MAX_SLEEP_S,
    _TAPER_RECHECK_S,
    Evse,
    Outgoing,
    SessionPlan,
    _dt,
)

log = structlog.get_logger("simulators.station")


class FirmwareLoop:
    """The firmware loop, sessions and reboot (mixed into :class:`~simulators.station.Station`)."""

    # ================================================================== firmware loop
    async def _firmware_loop(self) -> None:
        loop = asyncio.get_running_loop()
        planned = self.now_t()
        offset = getattr(self.clock, "offset", None)
        while True:
            now_t = self.now_t()
            stepped = getattr(self.clock, "offset", None) != offset  # a clock correction is not lag
            offset = getattr(self.clock, "offset", None)
            if now_t > planned and not stepped:
                self._note_lag(now_t - planned, now_t)
            try:
                self._tick(now_t)
                nxt = self._next_wake(now_t)
            except Exception:
                self.log.exception("firmware tick failed")
                nxt = now_t + 1.0
            planned = nxt
            delay = max(0.0, (nxt - self.now_t()) / self.clock.speed)
            handle = loop.call_later(delay, self._wake.set)
            await self._wake.wait()
            self._wake.clear()
            handle.cancel()

    def _tick(self, now_t: float) -> None:
        for evse in self.evses.values():
            self._advance(evse, now_t)
        for evse in self.evses.values():
            if evse.ev is not None and evse.departure_t is not None and evse.departure_t <= now_t:
                self._ev_departs(evse, now_t)
            if evse.ev is None:
                while evse.plans and evse.plans[0].departure_t <= now_t:
                    stale = evse.plans.popleft()
                    self.log.info("session skipped: it ended before it could start", evse=evse.id,
                                  session=stale.session_id)  # fmt: skip
                if evse.plans and evse.plans[0].plug_in_t <= now_t and not self.rebooting:
                    self._ev_arrives(evse, evse.plans.popleft(), now_t)
            if evse.remote_auth is not None and evse.remote_auth[2] <= now_t:
                self.log.info("remote start expired: no EV connected in time", evse=evse.id)
                evse.remote_auth = None
            if evse.ev is not None and evse.tx is None and not evse.tx_done and not self.rebooting and evse.operative:
                self._start_transaction(evse, now_t)
        share = self._station_share(now_t)
        for evse in self.evses.values():
            if evse.tx is not None and not evse.tx.ended:
                self._control(evse, now_t, share)
            elif evse.stage.target_w != 0 or evse.stage.power_w != 0:
                evse.stage.set_target(0.0)
        self._meter_timers(now_t)
        if (
            self.online
            and self.registration == "Accepted"
            and self._next_heartbeat_t is not None
            and now_t >= self._next_heartbeat_t
        ):
            self._next_heartbeat_t = now_t + self.heartbeat_interval
            if not any(o.action == "Heartbeat" for o in self._outbox):
                self._enqueue(Outgoing("Heartbeat", {}, on_result=self._heartbeat_result))
        if (
            self.pending_reset
            and not self.rebooting
            and not any(e.tx is not None and not e.tx.ended for e in self.evses.values())
        ):
            self.pending_reset = False
            self._spawn(self._reboot(boot_reason="RemoteReset", trigger="ResetCommand", stopped="Reboot"))

    def _advance(self, evse: Evse, now_t: float) -> None:
        stage = evse.stage
        tx = evse.tx
        before = stage.t
        if tx is not None and not tx.ended and stage.power_w != 0:
            tx.charging_s += max(0.0, now_t - before)
        stage.advance(now_t)

    def _next_wake(self, now_t: float) -> float:
        cands = [now_t + _MAX_SLEEP_S]
        if self._next_heartbeat_t is not None and self.online:
            cands.append(self._next_heartbeat_t)
        if self.aligned_interval > 0:
            cands.append(self._next_aligned_t)
        offline_for = None if self.offline_since_t is None else now_t - self.offline_since_t
        for evse in self.evses.values():
            if evse.plans and evse.ev is None and not self.rebooting:
                cands.append(evse.plans[0].plug_in_t)
            if evse.departure_t is not None and evse.ev is not None:
                cands.append(evse.departure_t)
            if evse.remote_auth is not None:
                cands.append(evse.remote_auth[2])
            tx = evse.tx
            if tx is None or tx.ended:
                continue
            if self.tx_updated_interval > 0:
                cands.append(tx.next_periodic_t)
            stage = evse.stage
            ramp = stage.ramp_remaining_s()
            if ramp > 0:
                cands.append(now_t + ramp)
            to_limit = stage.seconds_to_limit()
            if to_limit is not None:
                cands.append(now_t + max(to_limit, 0.05))
            ev = evse.ev
            if ev is not None and stage.target_w > 0 and ev.soc >= ev.model.taper_start_soc:
                cands.append(now_t + _TAPER_RECHECK_S)
            if self.profiles:
                nxt = next_change_after(
                    self.profiles,
                    evse_id=evse.id,
                    at=_dt(now_t),
                    horizon_s=int(_MAX_SLEEP_S) + 1,
                    transaction_start=_dt(tx.start_t),
                    transaction_id=tx.id,
                )
                if nxt is not None:
                    cands.append(nxt.timestamp())
                if offline_for is not None:
                    for inst in self.profiles:
                        mod = inst.profile.max_offline_duration
                        if mod is not None and offline_for < mod:
                            cands.append(self.offline_since_t + mod)  # type: ignore[operator]
            if offline_for is not None and self.version == "2.0.1":
                limit = self.config.offline_discharge_timeout_s
                if offline_for < limit:
                    cands.append(self.offline_since_t + limit)  # type: ignore[operator]
        return max(min(cands), now_t)

    # ------------------------------------------------------------------ sessions
    def _ev_arrives(self, evse: Evse, plan: SessionPlan, now_t: float) -> None:
        if not evse.operative:
            self.log.info("car turned away: EVSE unavailable", evse=evse.id, session=plan.session_id)
            return
        ev = plan.make_ev()
        if not ev.id_token:
            seed = f"{self.id}:{evse.id}:{plan.session_id or plan.plug_in_t}"
            ev.id_token = "US-FEV-" + uuid.uuid5(uuid.NAMESPACE_OID, seed).hex[:12].upper()
        evse.stage.ev = ev
        evse.stage.ceiling_wh = ev.target_wh
        depart = plan.departure_t - (self.faults.early_departure_s or 0.0)
        evse.departure_t = max(depart, now_t)
        evse.tx_done = False
        evse.history.append({"event": "plug_in", "t": now_t, "session": plan.session_id, "car": plan.car,
                             "soc": ev.soc})  # fmt: skip
        self.log.debug("car plugged in", evse=evse.id, car=plan.car, soc=round(ev.soc, 1))
        self._status_changed(evse)

    def _ev_departs(self, evse: Evse, now_t: float) -> None:
        ev = evse.ev
        evse.stage.stop()
        tx = evse.tx
        if tx is not None and not tx.ended:
            if tx.charging_state != "EVConnected" and tx.authorized:
                tx.charging_state = "EVConnected"
                self._tx_event(evse, "Updated", "ChargingStateChanged", now_t)
            self._end_transaction(evse, now_t, trigger="EVDeparted", reason="EVDisconnected")
        evse.history.append({"event": "departure", "t": now_t, "soc": ev.soc if ev else None})
        evse.stage.ev = None
        evse.stage.ceiling_wh = None
        evse.departure_t = None
        evse.tx = None
        evse.tx_done = False
        evse.pending_tx_profile = None
        self._status_changed(evse)

    # ================================================================== reboot / reset
    async def _reboot(self, *, boot_reason: str, trigger: str, stopped: str) -> None:
        if self.rebooting:
            return
        now_t = self.now_t()
        for evse in self.evses.values():
            self._advance(evse, now_t)
            if evse.tx is not None and not evse.tx.ended:
                self._end_transaction(evse, now_t, trigger=trigger, reason=stopped)
        # give the CSMS the Ended events while the link is up
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while self.online and any(o.persistent for o in self._outbox):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        self.rebooting = True
        self.registration = ""
        self.boot_reason = boot_reason
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await ws.close(code=1012, reason="reboot")
        # volatile state is lost, persistent profiles survive (TxProfiles died with their transactions)
        self.profiles = [p for p in self.profiles if p.profile.purpose is not ChargingProfilePurpose.TX_PROFILE]
        self._outbox = deque(o for o in self._outbox if o.persistent)
        for evse in self.evses.values():
            evse.stage.stop()
            evse.tx = None
            evse.tx_done = False  # a car still plugged in starts a new transaction after the boot
            evse.remote_auth = None
            evse.pending_tx_profile = None
            evse.status_reported = None
        await self._sleep_sim(self.config.reboot_s, min_wall=0.01)
        self.rebooting = False
        self._next_aligned_t = 0.0
        self.log.info("rebooted", reason=boot_reason)
        self.wake()

    def _install_pending_tx_profile(self, evse: Evse, now_t: float) -> None:
        from .charging_profiles import install_tx_profile_from_remote_start

        pending = evse.pending_tx_profile
        evse.pending_tx_profile = None
        if pending is not None:
            install_tx_profile_from_remote_start(self, evse, pending, now_t)
