"""K: what power to run (the composite schedule of the installed profiles); J: meter values;
connector status notifications."""

from __future__ import annotations

from typing import Any

import structlog

from csms.clock import parse_rfc3339
from csms.smartcharging.composite import Setpoint, effective_power_at
from csms.smartcharging.model import InstalledProfile, OperationMode

from . import der
from .model import (
    BPT_MODES,
    DEFAULT_MEASURANDS,
    Evse,
    _dt,
    _ts,
)

log = structlog.get_logger("simulators.station")


class Charging:
    """Smart charging, metering and status (mixed into :class:`~simulators.station.Station`)."""

    # ------------------------------------------------------------------ smart charging: what power to run
    def envelope(self, evse: Evse, now_t: float) -> Setpoint:
        """The profile envelope on ``evse`` now (faults and offline rules applied)."""
        tx = evse.tx
        if self.faults.ignore_profiles or not self.smart_charging_enabled or not self.profiles:
            return Setpoint(None, 0.0, None, OperationMode.CHARGING_ONLY)
        profiles = self._usable_profiles(now_t)
        return effective_power_at(
            profiles,
            evse_id=evse.id,
            at=_dt(now_t),
            transaction_start=_dt(tx.start_t) if tx else None,
            transaction_id=tx.id if tx else None,
            voltage=self.config.ac_voltage,
            phases=self.config.ac_phases,
        )

    def _usable_profiles(self, now_t: float) -> list[InstalledProfile]:
        if self.offline_since_t is None:
            return self.profiles
        offline_for = now_t - self.offline_since_t
        keep: list[InstalledProfile] = []
        invalid: list[InstalledProfile] = []
        for inst in self.profiles:
            mod = inst.profile.max_offline_duration
            if mod is not None and offline_for >= mod:
                if inst.profile.invalid_after_offline_duration:
                    invalid.append(inst)
                continue
            keep.append(inst)
        if invalid:
            self.log.info("profiles invalid after maxOfflineDuration", ids=[p.profile.id for p in invalid])
            self.profiles = [p for p in self.profiles if p not in invalid]
        return keep

    def discharge_allowed(self, evse: Evse, now_t: float) -> bool:
        ev, tx = evse.ev, evse.tx
        if ev is None or tx is None or not ev.bidirectional or not tx.authorized:
            return False
        if self.version == "2.1":
            if not self._dm_bool("V2XChargingCtrlr", "Enabled", True, evse=evse.id):
                return False
            return bool(BPT_MODES.intersection(tx.allowed))
        if not self.config.v2x_vendor_convention:
            return False
        if self.offline_since_t is not None and now_t - self.offline_since_t >= self.config.offline_discharge_timeout_s:
            return False
        return True

    def _station_share(self, now_t: float) -> tuple[float | None, float | None]:
        """Local load balancing on a multi-EVSE unit: the station-wide caps (ChargingStationMaxProfile,
        ExternalConstraints on evseId 0) are split equally over the EVSEs with an authorized session.
        Returns (charge cap W, discharge cap W as a positive number) per EVSE, None = unconstrained."""
        if len(self.evses) < 2 or not self.profiles or self.faults.ignore_profiles or not self.smart_charging_enabled:
            return None, None
        active = sum(1 for e in self.evses.values() if e.tx is not None and not e.tx.ended and e.tx.authorized)
        if active < 2:
            return None, None
        station = effective_power_at(
            self._usable_profiles(now_t), evse_id=0, at=_dt(now_t), voltage=self.config.ac_voltage,
            phases=self.config.ac_phases,
        )  # fmt: skip
        charge = None if station.charge_limit_w is None else station.charge_limit_w / active
        dis = None if station.discharge_limit_w is None else -station.discharge_limit_w / active
        return charge, dis

    def _control(self, evse: Evse, now_t: float, share: tuple[float | None, float | None] = (None, None)) -> None:
        tx = evse.tx
        ev = evse.ev
        stage = evse.stage
        assert tx is not None
        if ev is None:
            return
        mode: str | None = None
        if not tx.authorized or tx.stopped or not evse.operative or self.rebooting:
            desired = 0.0
            state = "EVConnected" if not tx.authorized else "SuspendedEVSE"
        else:
            env = self.envelope(evse, now_t)
            mode = env.operation_mode.value
            if env.setpoint_w is not None and env.setpoint_w > 0:
                stage.ceiling_wh = ev.full_wh
            else:
                stage.ceiling_wh = ev.target_wh
            may_discharge = self.discharge_allowed(evse, now_t)
            max_c = stage.max_import_w()
            max_d = stage.max_export_w() if may_discharge else 0.0
            if share[0] is not None:
                max_c = min(max_c, share[0])
            if share[1] is not None:
                max_d = min(max_d, share[1])
            der_cap = der.discharge_cap_w(self, stage.discharge_rating_w, now_t)  # R: LimitMaxDischarge
            if der_cap is not None:
                max_d = min(max_d, der_cap)
            desired = stage.clamp(env.target_power_w(max_charge_w=max_c, max_discharge_w=max_d))
            drift = self.faults.power_drift
            if drift and desired:
                desired = desired * (1.0 + drift)
                if desired > 0:
                    desired = min(desired, stage.charge_rating_w)
                else:
                    desired = max(desired, -stage.discharge_rating_w)
            if desired != 0:
                state = "Charging"
            else:
                hw_d = stage.discharge_rating_w if may_discharge else 0.0
                wanted = env.target_power_w(max_charge_w=stage.charge_rating_w, max_discharge_w=hw_d)
                if env.operation_mode is OperationMode.IDLE or wanted == 0:
                    state = "SuspendedEVSE"
                else:
                    state = "SuspendedEV"
        if abs(desired - stage.target_w) > 1e-6:
            stage.set_target(desired)
        state_changed = state != tx.charging_state
        mode_changed = self.version == "2.1" and mode is not None and mode != tx.op_mode
        tx.charging_state = state
        if mode is not None:
            tx.op_mode = mode
        if state_changed or mode_changed:
            self._tx_event(evse, "Updated", "ChargingStateChanged" if state_changed else "OperationModeChanged", now_t)
            return
        if state == "Charging":
            rating = max(stage.charge_rating_w, stage.discharge_rating_w)
            significance = self._limit_significance() * rating
            if abs(desired - tx.reported_w) > significance:
                self._tx_event(evse, "Updated", "ChargingRateChanged", now_t)

    def _limit_significance(self) -> float:
        if self._dm is None:
            return 0.10
        try:
            return self._dm.float("SmartChargingCtrlr", "LimitChangeSignificance") / 100.0
        except (KeyError, ValueError):
            return 0.10

    # ------------------------------------------------------------------ meter values
    def _measurands(self, name: str, component: str = "SampledDataCtrlr") -> list[str]:
        return self._dm_list(component, name, DEFAULT_MEASURANDS.get((component, name), ""))

    def sampled_values(self, evse: Evse, measurands: list[str], context: str) -> list[dict[str, Any]]:
        stage = evse.stage
        p = stage.power_w
        volts = self.config.ac_voltage
        out: list[dict[str, Any]] = []
        for m in measurands:
            if m == "Energy.Active.Import.Register":
                value, unit = round(stage.import_wh, 2), "Wh"
            elif m == "Energy.Active.Export.Register":
                value, unit = round(stage.export_wh, 2), "Wh"
            elif m == "Power.Active.Import":
                value, unit = round(self._noise(max(p, 0.0)), 1), "W"
            elif m == "Power.Active.Export":
                value, unit = round(self._noise(max(-p, 0.0)), 1), "W"
            elif m == "SoC":
                if evse.ev is None:
                    continue
                out.append({"value": round(evse.ev.soc, 1), "measurand": "SoC", "context": context,
                            "location": "EV", "unitOfMeasure": {"unit": "Percent"}})  # fmt: skip
                continue
            elif m == "Voltage":
                value, unit = round(self._noise(volts) if self.faults.meter_noise else volts, 1), "V"
            elif m == "Current.Import":
                value, unit = round(self._noise(max(p, 0.0)) / volts, 2), "A"
            elif m == "Current.Export":
                value, unit = round(self._noise(max(-p, 0.0)) / volts, 2), "A"
            elif m == "Power.Active.Setpoint":
                if evse.tx is None or evse.tx.op_mode != "CentralSetpoint":
                    continue
                value, unit = round(stage.target_w, 1), "W"
            else:
                continue
            out.append({"value": value, "measurand": m, "context": context, "unitOfMeasure": {"unit": unit}})
        return out

    def _meter_value(self, evse: Evse, measurands: list[str], context: str, now_t: float) -> list[dict[str, Any]]:
        sv = self.sampled_values(evse, measurands, context)
        return [{"timestamp": _ts(now_t), "sampledValue": sv}] if sv else []

    def _meter_timers(self, now_t: float) -> None:
        aligned = self.aligned_interval
        if aligned > 0:
            if self._next_aligned_t == 0.0:
                self._next_aligned_t = (now_t // aligned + 1) * aligned
            elif now_t >= self._next_aligned_t:
                at = self._next_aligned_t
                self._next_aligned_t = (now_t // aligned + 1) * aligned
                measurands = self._measurands("Measurands", "AlignedDataCtrlr")
                idle_too = self._dm_bool("AlignedDataCtrlr", "SendDuringIdle", True)
                for evse in self.evses.values():
                    tx = evse.tx
                    if tx is not None and not tx.ended:
                        meter = self._meter_value(evse, measurands, "Sample.Clock", at)
                        if meter:
                            self._tx_event(evse, "Updated", "MeterValueClock", now_t, meter=meter)
                    elif idle_too:
                        meter = self._meter_value(evse, measurands, "Sample.Clock", at)
                        if meter:
                            self._send_if_online("MeterValues", {"evseId": evse.id, "meterValue": meter})
        interval = self.tx_updated_interval
        if interval <= 0:
            return
        for evse in self.evses.values():
            tx = evse.tx
            if tx is None or tx.ended:
                continue
            if tx.next_periodic_t == 0.0:
                tx.next_periodic_t = now_t + interval
            elif now_t >= tx.next_periodic_t:
                # keep the phase of the transaction start
                missed = int((now_t - tx.next_periodic_t) // interval) + 1
                tx.next_periodic_t += missed * interval
                meter = self._meter_value(evse, self._measurands("TxUpdatedMeasurands"), "Sample.Periodic", now_t)
                if meter:
                    self._tx_event(evse, "Updated", "MeterValuePeriodic", now_t, meter=meter)

    # ------------------------------------------------------------------ status
    def _status_changed(self, evse: Evse) -> None:
        status = evse.connector_status()
        if status == evse.status_reported:
            return
        if self._send_status(evse, status):
            evse.status_reported = status

    def _send_status(self, evse: Evse, status: str | None = None) -> bool:
        status = status or evse.connector_status()
        payload = {"timestamp": self.clock.timestamp(), "connectorStatus": status, "evseId": evse.id, "connectorId": 1}

        def lost(exc: Exception, evse: Evse = evse) -> None:
            evse.status_reported = None

        return self._send_if_online("StatusNotification", payload, on_error=lost)

    def _heartbeat_result(self, response: dict[str, Any]) -> None:
        self._observe_time(response)

    def _observe_time(self, response: dict[str, Any]) -> None:
        """ClockCtrlr.TimeSource Heartbeat: follow the CSMS clock when it is a SyncedClock."""
        observe = getattr(self.clock, "observe", None)
        if observe is None:
            return
        try:
            observe(parse_rfc3339(response["currentTime"]))
        except (KeyError, ValueError):
            return
