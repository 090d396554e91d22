"""I - Tariff and cost with central cost calculation (I01/I02), and OCPP 2.1's tariff messages
(SetDefaultTariff, GetTariffs, ClearTariffs, ChangeTransactionTariff: commands, see the API).

A station's tariff is operator data kept in its settings (station meta ``tariff``):
``{"currency": "EUR", "price_kwh": 0.30, "fixed_fee": 0.0, "cost_update_interval_s": 60}``.
For a station with a tariff the CSMS computes each transaction's running cost from the energy
import register in its TransactionEvents (energy since the first reading of the transaction):

- every TransactionEventResponse carries ``totalCost`` (I01.FR.xx running cost; the Ended one is
  the final cost, I02);
- on OCPP 2.1 an Accepted AuthorizeResponse carries the tariff as the driver's ``tariff``;
- while the transaction runs, CostUpdated is sent at most every ``cost_update_interval_s``
  (simulated) seconds, after an Updated event with meter values (I01).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from csms.blocks.context import Central, Session
from csms.domain.metering import latest_readings
from csms.ocpp.errors import OcppError

log = structlog.get_logger("csms.tariff")

EXTENSION = "tariffs"


class Tariffs:
    def __init__(self, central: Central) -> None:
        self.central = central
        self._energy: dict[tuple[str, str], list[float]] = {}  # (station, tx) -> [first Wh, last Wh]
        self._pushed: dict[tuple[str, str], datetime] = {}

    @classmethod
    def of(cls, central: Central) -> Tariffs:
        found = central.extensions.get(EXTENSION)
        if found is None:
            found = central.extensions[EXTENSION] = cls(central)
        return found  # type: ignore[no-any-return]

    def tariff(self, station_id: str) -> dict[str, Any] | None:
        return (self.central.station_meta(station_id) or {}).get("tariff")

    def driver_tariff(self, station_id: str) -> dict[str, Any] | None:
        """The station's tariff as an OCPP 2.1 TariffType, for AuthorizeResponse.tariff (I: the
        driver's tariff, shown by the station and used for local cost calculation)."""
        tariff = self.tariff(station_id)
        if tariff is None:
            return None
        out: dict[str, Any] = {
            "tariffId": f"CSMS-{station_id}"[:60],
            "currency": tariff["currency"],
            "energy": {"prices": [{"priceKwh": float(tariff["price_kwh"])}]},
        }
        if float(tariff.get("fixed_fee", 0.0)) > 0:
            out["fixedFee"] = {"prices": [{"priceFixed": float(tariff["fixed_fee"])}]}
        return out

    def cost(self, tariff: dict[str, Any], energy_wh: float) -> float:
        cost = float(tariff.get("fixed_fee", 0.0)) + max(0.0, energy_wh) / 1000.0 * float(tariff["price_kwh"])
        return round(cost, 2)

    def on_transaction_event(
        self, s: Session, p: dict[str, Any], response: dict[str, Any], readings: dict[str, float] | None = None
    ) -> None:
        """``readings``: the event's live meter readings, when the caller has read its meterValue."""
        tariff = self.tariff(s.station_id)
        if tariff is None:
            return
        key = (s.station_id, p["transactionInfo"]["transactionId"])
        if readings is None:
            _, readings = latest_readings(p.get("meterValue", []))
        wh = readings.get("energy_import_wh")
        span = self._energy.get(key)
        if wh is not None:
            if span is None:
                span = self._energy[key] = [wh, wh]
            span[1] = max(span[1], wh)
        total = self.cost(tariff, (span[1] - span[0]) if span else 0.0)
        response["totalCost"] = total
        if p["eventType"] == "Ended":
            self._energy.pop(key, None)
            self._pushed.pop(key, None)
            return
        if p["eventType"] == "Updated" and wh is not None:
            now = self.central.now()
            last = self._pushed.get(key)
            interval = float(tariff.get("cost_update_interval_s", 60))
            if last is None or (now - last).total_seconds() >= interval:
                self._pushed[key] = now
                self.central.background(self.cost_updated(s.station_id, key[1], total))

    async def cost_updated(self, station_id: str, transaction_id: str, total: float) -> None:
        try:
            await self.central.call(station_id, "CostUpdated", {"totalCost": total, "transactionId": transaction_id})
        except OcppError as exc:
            log.warning("CostUpdated not delivered", station=station_id, transaction=transaction_id, error=str(exc))


HANDLERS: dict[str, Any] = {}
