"""A car's charging needs, normalised from NotifyEVChargingNeeds of either version (pure).

- OCPP 2.1 (Q block): ``v2xChargingParameters`` (powers in W, energies in Wh, ``targetSoC``
  in %), ``dcChargingParameters`` (``stateOfCharge``, ``evEnergyCapacity``), ``departureTime``,
  ``requestedEnergyTransfer`` (``DC_BPT`` = bidirectional), ``controlMode``.
- OCPP 2.0.1: ``dcChargingParameters`` plus the ``org.openv2g.bpt`` customData on
  ``chargingNeeds`` (``docs/v2x-ocpp201-extension.md``).

The result is what dispatch plans with: limits, SoC, floor, departure and energy needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from csms.clock import parse_rfc3339

BPT_MODES = frozenset({"AC_BPT", "AC_BPT_DER", "DC_BPT", "DC_ACDP_BPT"})
VENDOR_BPT = "org.openv2g.bpt"


@dataclass(frozen=True, slots=True)
class ChargingNeeds:
    evse_id: int
    requested_energy_transfer: str
    bidirectional: bool
    departure_time: datetime | None = None
    soc: float | None = None  # %
    capacity_wh: float | None = None
    target_soc: float | None = None  # %
    min_soc: float | None = None  # % floor (discharge never below)
    max_charge_w: float | None = None
    min_charge_w: float | None = None
    max_discharge_w: float | None = None  # >= 0
    min_discharge_w: float | None = None  # >= 0
    energy_target_wh: float | None = None  # evTargetEnergyRequest
    energy_min_wh: float | None = None  # evMinEnergyRequest
    energy_max_wh: float | None = None
    v2x_min_wh: float | None = None
    v2x_max_wh: float | None = None
    control_mode: str | None = None
    mobility_needs_mode: str | None = None
    available_energy_transfer: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.departure_time is not None:
            out["departure_time"] = self.departure_time.isoformat()
        out["available_energy_transfer"] = list(self.available_energy_transfer)
        return {k: v for k, v in out.items() if v is not None}


def _num(d: dict[str, Any] | None, key: str) -> float | None:
    if not d or key not in d:
        return None
    return float(d[key])


def parse_needs(payload: dict[str, Any], version: str) -> ChargingNeeds:
    """Normalise a NotifyEVChargingNeedsRequest payload (already schema-valid)."""
    needs = payload["chargingNeeds"]
    mode = needs["requestedEnergyTransfer"]
    dc = needs.get("dcChargingParameters") or {}
    ac = needs.get("acChargingParameters") or {}
    departure = parse_rfc3339(needs["departureTime"]) if "departureTime" in needs else None
    common: dict[str, Any] = {
        "evse_id": payload["evseId"],
        "requested_energy_transfer": mode,
        "departure_time": departure,
        "soc": _num(dc, "stateOfCharge"),
        "capacity_wh": _num(dc, "evEnergyCapacity"),
        "max_charge_w": _num(dc, "evMaxPower"),
        "energy_target_wh": _num(dc, "energyAmount") or _num(ac, "energyAmount"),
    }
    if version == "2.1":
        v2x = needs.get("v2xChargingParameters") or {}
        bidirectional = mode in BPT_MODES
        v2x_min = _num(v2x, "evMinV2XEnergyRequest")
        min_soc = None
        if v2x_min is not None and common["soc"] is not None and common["capacity_wh"]:
            # ISO 15118-20: energy to reach the minimum SoC for V2X (negative when above it)
            min_soc = common["soc"] + 100.0 * v2x_min / common["capacity_wh"]
        return ChargingNeeds(
            **{
                **common,
                "bidirectional": bidirectional,
                "target_soc": _num(v2x, "targetSoC"),
                "max_charge_w": _num(v2x, "maxChargePower") or common["max_charge_w"],
                "min_charge_w": _num(v2x, "minChargePower"),
                "max_discharge_w": abs(_num(v2x, "maxDischargePower") or 0.0) if bidirectional else 0.0,
                "min_discharge_w": abs(_num(v2x, "minDischargePower") or 0.0) if bidirectional else None,
                "energy_target_wh": _num(v2x, "evTargetEnergyRequest") or common["energy_target_wh"],
                "energy_min_wh": _num(v2x, "evMinEnergyRequest"),
                "energy_max_wh": _num(v2x, "evMaxEnergyRequest"),
                "v2x_min_wh": v2x_min,
                "min_soc": min_soc,
                "v2x_max_wh": _num(v2x, "evMaxV2XEnergyRequest"),
                "control_mode": needs.get("controlMode"),
                "mobility_needs_mode": needs.get("mobilityNeedsMode"),
                "available_energy_transfer": tuple(needs.get("availableEnergyTransfer", ())),
            }
        )
    ext = needs.get("customData") or {}
    if ext.get("vendorId") != VENDOR_BPT:
        return ChargingNeeds(**{**common, "bidirectional": False, "max_discharge_w": 0.0})
    return ChargingNeeds(
        **{
            **common,
            "bidirectional": float(ext.get("evMaxDischargePower", 0)) > 0,
            "max_discharge_w": float(ext.get("evMaxDischargePower", 0)),
            "min_discharge_w": float(ext.get("evMinDischargePower", 0)),
            "min_soc": _num(ext, "evMinSoC"),
            "target_soc": _num(ext, "targetSoC"),
            "energy_min_wh": _num(ext, "evMinEnergyRequest"),
            "v2x_max_wh": _num(ext, "evMaxV2XEnergyRequest"),
        }
    )
