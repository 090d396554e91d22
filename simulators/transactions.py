"""E: the station's transactions: start on plug-in, authorization, TransactionEvents (queued
while offline), charging needs (K15-K17), end on departure."""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from csms.clock import to_rfc3339
from csms.ocpp.errors import ConnectionLost
from csms.smartcharging.model import ChargingProfilePurpose

from . import local_auth, reservations, tariff
from .model import (
    Evse,
    Outgoing,
    Transaction,
    _ts,
)

log = structlog.get_logger("simulators.station")


class Transactions:
    """Transactions (mixed into :class:`~simulators.station.Station`)."""

    # ------------------------------------------------------------------ transactions
    def _start_transaction(self, evse: Evse, now_t: float) -> None:
        tx = Transaction(str(uuid.uuid4()), now_t)
        tx.next_periodic_t = now_t + self.tx_updated_interval
        evse.tx = tx
        remote = evse.remote_auth
        if remote is not None:
            tx.remote_start_id = remote[1]
        meter = self._meter_value(evse, self._measurands("TxStartedMeasurands"), "Transaction.Begin", now_t)
        self._tx_event(evse, "Started", "CablePluggedIn", now_t, meter=meter)
        tx.charging_state = "EVConnected"
        self._tx_event(evse, "Updated", "EVDetected", now_t)
        if evse.pending_tx_profile is not None:
            self._install_pending_tx_profile(evse, now_t)
        if remote is not None:
            evse.remote_auth = None
            self._authorize(evse, remote[0], trigger="RemoteStart")
        else:
            ev = evse.ev
            assert ev is not None
            self._authorize(evse, {"idToken": ev.id_token, "type": "eMAID"}, trigger="Authorized")

    def _authorize(self, evse: Evse, id_token: dict[str, Any], *, trigger: str) -> None:
        tx = evse.tx
        assert tx is not None
        tx_id = tx.id
        if not self._dm_bool("AuthCtrlr", "Enabled", True):
            self._authorized(evse, tx_id, id_token, trigger, {"idTokenInfo": {"status": "Accepted"}})
            return
        if self.online and self.registration == "Accepted":
            self._enqueue(
                Outgoing(
                    "Authorize",
                    {"idToken": id_token},
                    on_result=lambda r: self._authorized(evse, tx_id, id_token, trigger, r),
                    on_error=lambda exc: self._authorize_failed(evse, tx_id, id_token, trigger, exc),
                )
            )
        else:
            self._authorize_offline(evse, tx_id, id_token, trigger)

    def _authorize_offline(self, evse: Evse, tx_id: str, id_token: dict[str, Any], trigger: str) -> None:
        known = local_auth.lookup(self, id_token)  # D/C: the local list, then the cache
        if known is not None and self._dm_bool("AuthCtrlr", "LocalAuthorizeOffline", True):
            self._authorized(evse, tx_id, id_token, trigger, {"idTokenInfo": known}, local=True)
        elif self._dm_bool("AuthCtrlr", "LocalAuthorizeOffline", True) and self._dm_bool(
            "AuthCtrlr", "OfflineTxForUnknownIdEnabled", True
        ):
            # authorized locally; no allowedEnergyTransfer known -> charge only until the CSMS says otherwise
            self._authorized(evse, tx_id, id_token, trigger, {"idTokenInfo": {"status": "Accepted"}}, local=True)
        else:
            self._authorized(evse, tx_id, id_token, trigger, {"idTokenInfo": {"status": "Unknown"}})

    def _authorize_failed(self, evse: Evse, tx_id: str, id_token: dict[str, Any], trigger: str, exc: Exception) -> None:
        self.log.warning("Authorize failed", evse=evse.id, error=str(exc))
        if isinstance(exc, ConnectionLost):
            self._authorize_offline(evse, tx_id, id_token, trigger)
        else:
            self._authorized(evse, tx_id, id_token, trigger, {"idTokenInfo": {"status": "Invalid"}})

    def _authorized(
        self,
        evse: Evse,
        tx_id: str,
        id_token: dict[str, Any],
        trigger: str,
        response: dict[str, Any],
        *,
        local: bool = False,
    ) -> None:
        tx = evse.tx
        if tx is None or tx.id != tx_id or tx.ended:
            return
        now_t = self.now_t()
        self._advance(evse, now_t)
        status = response.get("idTokenInfo", {}).get("status")
        if not local and status is not None:
            local_auth.remember(self, id_token, response["idTokenInfo"])  # C10: every answer
        if status != "Accepted":
            self.log.info("authorization refused", evse=evse.id, status=status)
            tx.id_token = id_token
            self._deauthorize(evse, now_t)
            return
        if not reservations.admit(self, evse, id_token, response["idTokenInfo"]):
            self.log.info("EVSE reserved for another idToken", evse=evse.id)
            tx.id_token = id_token
            self._deauthorize(evse, now_t)
            return
        tx.authorized = True
        tx.id_token = id_token
        tariff.on_authorized(self, tx.id, response)
        if not local:
            tx.allowed = list(response.get("allowedEnergyTransfer", []))
        self._tx_event(evse, "Updated", trigger, now_t, id_token=id_token)
        self._send_charging_needs(evse, now_t)
        self.wake()

    def _deauthorize(self, evse: Evse, now_t: float) -> None:
        tx = evse.tx
        if tx is None or tx.ended:
            return
        tx.authorized = False
        tx.stopped = True
        evse.stage.set_target(0.0)
        if tx.charging_state != "EVConnected":
            tx.charging_state = "EVConnected"
        self._tx_event(evse, "Updated", "Deauthorized", now_t)
        if self._dm_bool("TxCtrlr", "StopTxOnInvalidId", True):
            self._end_transaction(evse, now_t, trigger="Deauthorized", reason="DeAuthorized")

    def _end_transaction(self, evse: Evse, now_t: float, *, trigger: str, reason: str) -> None:
        tx = evse.tx
        if tx is None or tx.ended:
            return
        self._advance(evse, now_t)
        evse.stage.stop()
        meter = self._meter_value(evse, self._measurands("TxEndedMeasurands"), "Transaction.End", now_t)
        tx.charging_state = "EVConnected" if evse.ev is not None else "Idle"
        self._tx_event(evse, "Ended", trigger, now_t, meter=meter, stopped_reason=reason)
        tx.ended = True
        evse.tx_done = True
        # TxProfiles die with their transaction (K01.FR.?: TxProfile only for the duration of the tx)
        self.profiles = [
            p
            for p in self.profiles
            if not (p.profile.purpose is ChargingProfilePurpose.TX_PROFILE and p.profile.transaction_id == tx.id)
        ]
        if evse.scheduled_inoperative:
            evse.scheduled_inoperative = False
            evse.operative_flag = False
        self._status_changed(evse)

    def _tx_event(
        self,
        evse: Evse,
        event_type: str,
        trigger: str,
        now_t: float,
        *,
        meter: list[dict[str, Any]] | None = None,
        stopped_reason: str | None = None,
        id_token: dict[str, Any] | None = None,
    ) -> None:
        tx = evse.tx
        assert tx is not None
        info: dict[str, Any] = {"transactionId": tx.id, "chargingState": tx.charging_state}
        if tx.remote_start_id is not None and not tx.remote_start_reported:
            info["remoteStartId"] = tx.remote_start_id
            tx.remote_start_reported = True
        if self.version == "2.1" and tx.op_mode is not None:
            info["operationMode"] = tx.op_mode
        reservation_id = reservations.report(self, tx.id)
        if event_type == "Ended":
            info["stoppedReason"] = stopped_reason or "Local"
        if event_type != "Started":
            info["timeSpentCharging"] = int(tx.charging_s)
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": _ts(now_t),
            "triggerReason": trigger,
            "seqNo": tx.seq,
            "transactionInfo": info,
            "evse": {"id": evse.id, "connectorId": 1},
        }
        tx.seq += 1
        if not self.online:
            payload["offline"] = True
        if id_token is not None:
            payload["idToken"] = id_token
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        if meter:
            payload["meterValue"] = meter
        tx.reported_w = evse.stage.target_w
        tx_id = tx.id
        self._enqueue(
            Outgoing(
                "TransactionEvent",
                payload,
                persistent=True,
                tx_id=tx_id,
                on_result=lambda r: self._tx_event_result(evse, tx_id, r),
            )
        )

    def _tx_event_result(self, evse: Evse, tx_id: str, response: dict[str, Any]) -> None:
        info = response.get("idTokenInfo")
        tx = evse.tx
        if info is None or tx is None or tx.id != tx_id or tx.ended or not tx.authorized:
            return
        if info.get("status") != "Accepted":
            self.log.info("CSMS revoked the idToken", evse=evse.id, status=info.get("status"))
            self._deauthorize(evse, self.now_t())
            self.wake()

    def _send_charging_needs(self, evse: Evse, now_t: float) -> None:
        ev = evse.ev
        if ev is None:
            return
        payload = self.charging_needs(evse, now_t)
        tx = evse.tx
        if payload is None or tx is None:
            return
        tx_id = tx.id

        def lost(exc: Exception) -> None:
            if evse.tx is not None and evse.tx.id == tx_id and isinstance(exc, ConnectionLost):
                evse.tx.needs_sent = False

        tx.needs_sent = self._send_if_online("NotifyEVChargingNeeds", payload, on_error=lost)

    def charging_needs(self, evse: Evse, now_t: float) -> dict[str, Any] | None:
        """The NotifyEVChargingNeedsRequest this car sends (ISO 15118-20 bidirectional DC)."""
        ev = evse.ev
        if ev is None:
            return None
        stage = evse.stage
        eta = stage.efficiency
        m = ev.model
        max_charge = min(stage.charge_rating_w, m.max_charge_kw * 1000.0 / eta)
        max_dis = min(stage.discharge_rating_w, m.max_discharge_kw * 1000.0 * eta) if ev.bidirectional else 0.0
        needs = ev.needs()
        dc: dict[str, Any] = {
            "evMaxCurrent": round(m.max_charge_kw * 1000.0 / m.nominal_voltage, 1),
            "evMaxVoltage": m.max_voltage,
            "evMaxPower": round(max_charge, 1),
            "evEnergyCapacity": round(ev.capacity_wh, 1),
            "energyAmount": round(max(0.0, needs["target"]), 1),
            "stateOfCharge": round(ev.soc),
            "fullSoC": round(ev.max_soc),
        }
        depart = ev.planned_departure or ev.departure
        if self.version == "2.0.1":
            dc = {k: round(v) for k, v in dc.items()}
            cn: dict[str, Any] = {"requestedEnergyTransfer": "DC", "dcChargingParameters": dc}
            if depart is not None:
                cn["departureTime"] = to_rfc3339(depart)
            if ev.bidirectional and self.config.v2x_vendor_convention:
                cn["customData"] = {
                    "vendorId": "org.openv2g.bpt",
                    "evMaxDischargePower": round(max_dis),
                    "evMinDischargePower": round(stage.min_discharge_w),
                    "evMinSoC": round(ev.min_soc),
                    "targetSoC": round(ev.target_soc),
                    "evMinEnergyRequest": round(max(0.0, needs["min"])),
                    "evMaxV2XEnergyRequest": round(max(0.0, -needs["min_v2x"])),
                }
            return {"evseId": evse.id, "chargingNeeds": cn}
        v2x: dict[str, Any] = {
            "minChargePower": 0.0,
            "maxChargePower": round(max_charge, 1),
            "minDischargePower": round(stage.min_discharge_w if ev.bidirectional else 0.0, 1),
            "maxDischargePower": round(max_dis, 1),
            "maxChargeCurrent": dc["evMaxCurrent"],
            "maxDischargeCurrent": round(m.max_discharge_kw * 1000.0 / m.nominal_voltage, 1),
            "maxVoltage": m.max_voltage,
            "minVoltage": round(m.nominal_voltage * 0.8, 1),
            "evTargetEnergyRequest": round(needs["target"], 1),
            "evMinEnergyRequest": round(needs["min"], 1),
            "evMaxEnergyRequest": round(needs["max"], 1),
            "evMinV2XEnergyRequest": round(needs["min_v2x"], 1),
            "evMaxV2XEnergyRequest": round(needs["max_v2x"], 1),
            "targetSoC": round(ev.target_soc),
        }
        cn = {
            "requestedEnergyTransfer": "DC_BPT" if ev.bidirectional else "DC",
            "availableEnergyTransfer": ["DC", "DC_BPT"] if ev.bidirectional else ["DC"],
            "controlMode": "ScheduledControl",
            "mobilityNeedsMode": "EVCC",
            "dcChargingParameters": dc,
            "v2xChargingParameters": v2x,
        }
        if depart is not None:
            cn["departureTime"] = to_rfc3339(depart)
        return {"evseId": evse.id, "timestamp": _ts(now_t), "chargingNeeds": cn}
