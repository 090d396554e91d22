"""Pure helpers for OCPP MeterValueType lists (no I/O)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.clock import parse_rfc3339

LIVE_MEASURANDS = {
    "Power.Active.Import": "power_import_w",
    "Power.Active.Export": "power_export_w",
    "SoC": "soc",
    "Energy.Active.Import.Register": "energy_import_wh",
    "Energy.Active.Export.Register": "energy_export_wh",
}
_TO_BASE = {"kW": 1000.0, "kWh": 1000.0, "W": 1.0, "Wh": 1.0, "Percent": 1.0}


def sample_value(sv: dict[str, Any]) -> float:
    """Value in base units (W, Wh, %), applying ``unitOfMeasure`` unit and multiplier."""
    unit = sv.get("unitOfMeasure") or {}
    value = float(sv["value"]) * (10.0 ** unit.get("multiplier", 0))
    return value * _TO_BASE.get(unit.get("unit", ""), 1.0)


def latest_readings(meter_values: list[dict[str, Any]]) -> tuple[datetime | None, dict[str, float]]:
    """Latest live reading per field of :data:`LIVE_MEASURANDS` (phase values summed when no total)."""
    best_ts: datetime | None = None
    out: dict[str, float] = {}
    for mv in sorted(meter_values, key=lambda m: m["timestamp"]):
        ts = parse_rfc3339(mv["timestamp"])
        totals: dict[str, float] = {}
        phased: dict[str, float] = {}
        for sv in mv.get("sampledValue", []):
            measurand = sv.get("measurand", "Energy.Active.Import.Register")
            field = LIVE_MEASURANDS.get(measurand)
            if field is None or sv.get("location", "Outlet") not in ("Outlet", "EV"):
                continue
            if sv.get("location") == "EV" and field != "soc":
                continue
            if sv.get("phase"):
                phased[field] = phased.get(field, 0.0) + sample_value(sv)
            else:
                totals[field] = sample_value(sv)
        for field, value in {**phased, **totals}.items():
            out[field] = value
        if totals or phased:
            best_ts = ts
    return best_ts, out
