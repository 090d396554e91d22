"""Pure helpers for OCPP MeterValueType lists (no I/O).

:func:`read_meter_values` is the one walk over a (schema-validated) ``meterValue`` list: in a
single pass it converts every sampled value to its base unit once and yields both the
``meter_samples`` rows the store writes and the latest live reading per field that the live EVSE
state (and so dispatch) reads. Unit rule: the ``unitOfMeasure.multiplier`` is applied and kilo
units are stored in their base unit (``kWh`` -> ``Wh`` x1000, ``kW`` -> ``W``, see
:data:`KILO_UNITS`), so energy is always Wh and power W.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LIVE_MEASURANDS = {
    "Power.Active.Import": "power_import_w",
    "Power.Active.Export": "power_export_w",
    "SoC": "soc",
    "Energy.Active.Import.Register": "energy_import_wh",
    "Energy.Active.Export.Register": "energy_export_wh",
}
DEFAULT_MEASURAND = "Energy.Active.Import.Register"
#: Kilo-prefixed OCPP units are stored in their base unit, so energy is always Wh, power W.
KILO_UNITS = {"kWh": "Wh", "kW": "W", "kvarh": "varh", "kvar": "var", "kVA": "VA", "kVAh": "VAh"}

Row = dict[str, Any]


@dataclass(slots=True)
class MeterRead:
    """What one walk over a ``meterValue`` list gives: store rows and the latest live reading."""

    rows: list[Row]
    at: datetime | None  # timestamp of the newest MeterValue with a live reading
    readings: dict[str, float]  # field of LIVE_MEASURANDS -> value in base units


def live_field(measurand: str, location: str | None) -> str | None:
    """The live-state field a sampled value feeds (None: not a live reading). Outlet values feed
    every field; the EV's only its SoC; phase values are summed when no total is given."""
    field = LIVE_MEASURANDS.get(measurand)
    if field is None or location is None or location == "Outlet":
        return field
    return field if location == "EV" and field == "soc" else None


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        dt = datetime.fromisoformat(value.strip())
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def read_meter_values(
    station_id: str, evse_id: int, transaction_id: str | None, meter_values: Iterable[Mapping[str, Any]]
) -> MeterRead:
    """One pass over schema-shaped ``MeterValueType[]`` (camelCase keys): rows plus live readings.

    Raises KeyError / TypeError / ValueError / AttributeError on anything not schema-shaped
    (:func:`csms.store.payloads.read_wire_meter_values` then falls back to the lenient parser)."""
    rows: list[Row] = []
    live: list[tuple[datetime, dict[str, float]]] = []
    for mv in meter_values:
        ts = _timestamp(mv["timestamp"])
        totals: dict[str, float] | None = None
        phased: dict[str, float] | None = None
        for sv in mv["sampledValue"]:
            uom = sv.get("unitOfMeasure")
            unit = None
            mult = 0
            if uom is not None:
                unit = uom.get("unit") or "Wh"
                mult = uom.get("multiplier", 0)
                base = KILO_UNITS.get(unit)
                if base is not None:
                    unit, mult = base, mult + 3
            value = sv["value"]
            if type(value) is bool:
                raise ValueError("boolean meter value")
            value = float(value)
            if mult > 0:
                value *= 10**mult
            elif mult < 0:
                value /= 10**-mult
            if not math.isfinite(value):
                raise ValueError("meter value is not finite")
            measurand = sv.get("measurand") or DEFAULT_MEASURAND
            location = sv.get("location")
            phase = sv.get("phase")
            rows.append(
                {
                    "station_id": station_id,
                    "evse_id": evse_id,
                    "transaction_id": transaction_id,
                    "timestamp": ts,
                    "measurand": measurand,
                    "phase": phase,
                    "location": location,
                    "context": sv.get("context"),
                    "unit": unit,
                    "value": value,
                }
            )
            field = live_field(measurand, location)
            if field is None:
                continue
            if phase:
                if phased is None:
                    phased = {}
                phased[field] = phased.get(field, 0.0) + value
            else:
                if totals is None:
                    totals = {}
                totals[field] = value
        if totals or phased:
            live.append((ts, {**(phased or {}), **(totals or {})}))
    at, readings = _latest(live)
    return MeterRead(rows, at, readings)


def readings_from_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[datetime | None, dict[str, float]]:
    """The live readings of ``meter_samples`` rows (values already in base units), by the same
    rules as :func:`read_meter_values`; rows of one MeterValue share their ``timestamp``."""
    per_ts: dict[datetime, tuple[dict[str, float], dict[str, float]]] = {}
    for row in rows:
        field = live_field(row["measurand"], row.get("location"))
        if field is None:
            continue
        totals, phased = per_ts.setdefault(row["timestamp"], ({}, {}))
        if row.get("phase"):
            phased[field] = phased.get(field, 0.0) + row["value"]
        else:
            totals[field] = row["value"]
    return _latest([(ts, {**phased, **totals}) for ts, (totals, phased) in per_ts.items()])


def _latest(live: list[tuple[datetime, dict[str, float]]]) -> tuple[datetime | None, dict[str, float]]:
    """Merge per-MeterValue readings oldest first, so the newest value of each field wins."""
    if not live:
        return None, {}
    if len(live) > 1:
        live.sort(key=lambda item: item[0])
    out: dict[str, float] = {}
    for _, readings in live:
        out.update(readings)
    return live[-1][0], out


def latest_readings(meter_values: list[dict[str, Any]]) -> tuple[datetime | None, dict[str, float]]:
    """Latest live reading per field of :data:`LIVE_MEASURANDS` (phase values summed when no total)."""
    read = read_meter_values("", 0, None, meter_values)
    return read.at, read.readings
