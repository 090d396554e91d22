"""Pure translation between OpenADR 3 objects and this CSMS (no I/O).

Events in
---------
:func:`csms.grid.openadr.map_openadr` maps the capacity and setpoint payloads
(``EXPORT_CAPACITY_LIMIT``, ``IMPORT_CAPACITY_LIMIT``, ``DISPATCH_SETPOINT``,
``DISPATCH_SETPOINT_RELATIVE``). A VTN may instead signal with ``SIMPLE`` levels or a
``PRICE``; :func:`prepare_event` turns those into an export request first, by the VEN's
configuration:

* ``SIMPLE`` level n (an integer, usually 0-3) -> ``EXPORT_CAPACITY_LIMIT`` of
  ``simple_levels_kw[n]`` kW (level 0, or a level the table maps to 0, asks for nothing);
* ``PRICE`` p (currency per kWh) -> ``EXPORT_CAPACITY_LIMIT`` of ``price_export_kw`` when
  ``p >= price_export_threshold``, else 0 kW.

An interval that already carries a capacity or setpoint payload keeps it (SIMPLE and PRICE
are then informative). A level that is not an integer or not in the table, or a price that is
not a number, refuses the event naming the payload (``intervals[2].payloads[0].values[0]``).

Reports out
-----------
:func:`delivery_report` builds the ``report`` object for an event from the 5-minute delivery
intervals the dispatch controller publishes: per interval ``USAGE`` (kWh drawn from the grid
in the interval, negative when the fleet exported), ``DEMAND`` (mean kW drawn, negative when
exporting) and ``SETPOINT`` (the event's target as the same signed demand, e.g. -400 for
"export 400 kW"); one resource ``AGGREGATED_REPORT`` (the fleet in the event's scope).

:func:`forecast_report` answers a *forecast request*: an event whose ``reportDescriptors``
ask for ``STORAGE_MAX_DISCHARGE_POWER`` (or ``EXPORT_CAPACITY_AVAILABLE``) with
``historical: false`` and whose intervals carry no dispatch payload. The report has one
interval per forecast hour: ``STORAGE_MAX_DISCHARGE_POWER`` (kW the fleet can export for the
whole hour without breaking a driver's promise, median), ``EXPORT_CAPACITY_AVAILABLE_P10`` /
``_P90`` (the band) and ``EXPORT_ENERGY_AVAILABLE`` (kWh the cars present could export at
most, which with the power gives "for how long").
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from csms.grid.model import EventRejected

DISPATCH_TYPES = frozenset(
    {"EXPORT_CAPACITY_LIMIT", "IMPORT_CAPACITY_LIMIT", "DISPATCH_SETPOINT", "DISPATCH_SETPOINT_RELATIVE"}
)
FORECAST_TYPES = frozenset({"STORAGE_MAX_DISCHARGE_POWER", "EXPORT_CAPACITY_AVAILABLE"})
AGGREGATED = "AGGREGATED_REPORT"


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return "PT" + (f"{h}H" if h else "") + (f"{m}M" if m else "") + (f"{sec}S" if sec or not (h or m) else "")


def is_forecast_request(obj: Mapping[str, Any]) -> bool:
    """An event that asks for a forecast report and carries no dispatch payload."""
    descriptors = obj.get("reportDescriptors") or []
    wants = any(
        isinstance(d, Mapping) and d.get("payloadType") in FORECAST_TYPES and d.get("historical") is False
        for d in descriptors
    )
    if not wants:
        return False
    for iv in obj.get("intervals") or []:
        for p in (iv.get("payloads") or []) if isinstance(iv, Mapping) else []:
            if isinstance(p, Mapping) and p.get("type") in DISPATCH_TYPES | {"SIMPLE", "PRICE"}:
                return False
    return True


def prepare_event(
    obj: Mapping[str, Any],
    *,
    simple_levels_kw: Mapping[int, float],
    price_export_threshold: float | None,
    price_export_kw: float,
) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``obj`` with SIMPLE / PRICE intervals rewritten as export capacity (see the
    module docstring) and the notes saying so. Raises :class:`EventRejected`."""
    doc = copy.deepcopy(dict(obj))
    notes: list[str] = []
    intervals = doc.get("intervals")
    if not isinstance(intervals, list):
        return doc, notes
    for i, iv in enumerate(intervals):
        if not isinstance(iv, dict) or not isinstance(iv.get("payloads"), list):
            continue
        payloads = iv["payloads"]
        types = [p.get("type") for p in payloads if isinstance(p, Mapping)]
        if DISPATCH_TYPES & set(types):
            continue
        for j, p in enumerate(payloads):
            if not isinstance(p, Mapping) or p.get("type") not in ("SIMPLE", "PRICE"):
                continue
            path = f"intervals[{i}].payloads[{j}].values"
            values = p.get("values")
            if not isinstance(values, list) or not values:
                raise EventRejected(path, "must be a non-empty list")
            v = values[0]
            if p["type"] == "SIMPLE":
                if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v:
                    raise EventRejected(f"{path}[0]", f"a SIMPLE level must be an integer, got {v!r}")
                level = int(v)
                if level not in simple_levels_kw:
                    known = ", ".join(str(k) for k in sorted(simple_levels_kw)) or "none configured"
                    raise EventRejected(f"{path}[0]", f"SIMPLE level {level} has no kW mapping (known: {known})")
                kw = float(simple_levels_kw[level])
                notes.append(f"intervals[{i}]: SIMPLE level {level} -> export {kw:g} kW")
            else:
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise EventRejected(f"{path}[0]", f"a PRICE must be a number, got {v!r}")
                if price_export_threshold is None:
                    raise EventRejected(f"{path}[0]", "PRICE events need openadr3.price_export_threshold configured")
                kw = price_export_kw if float(v) >= price_export_threshold else 0.0
                notes.append(f"intervals[{i}]: PRICE {v:g} (threshold {price_export_threshold:g}) -> export {kw:g} kW")
            payloads.append({"type": "EXPORT_CAPACITY_LIMIT", "values": [kw]})
            break
    if notes:
        old = doc.get("payloadDescriptors") or []
        descriptors = [d for d in old if d.get("payloadType") != "EXPORT_CAPACITY_LIMIT"]
        doc["payloadDescriptors"] = [*descriptors, {"payloadType": "EXPORT_CAPACITY_LIMIT", "units": "KW"}]
    return doc, notes


def report_interval(k: int, start: datetime, end: datetime, target_kw: float, delivered_kw: float) -> dict[str, Any]:
    """One report interval (consumption convention: negative = export)."""
    hours = (end - start).total_seconds() / 3600.0
    return {
        "id": k,
        "intervalPeriod": {"start": _iso(start), "duration": _duration((end - start).total_seconds())},
        "payloads": [
            {"type": "USAGE", "values": [round(-delivered_kw * hours, 4)]},
            {"type": "DEMAND", "values": [round(-delivered_kw, 3)]},
            {"type": "SETPOINT", "values": [round(-target_kw, 3)]},
        ],
    }


def delivery_report(
    *, program_id: str, event_id: str, client_name: str, intervals: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The ``report`` object for an event: what was delivered in each interval so far."""
    return {
        "programID": program_id,
        "eventID": event_id,
        "clientName": client_name,
        "reportName": f"delivery {event_id}",
        "payloadDescriptors": [
            {"payloadType": "USAGE", "readingType": "DIRECT_READ", "units": "KWH"},
            {"payloadType": "DEMAND", "readingType": "DIRECT_READ", "units": "KW"},
            {"payloadType": "SETPOINT", "readingType": "DIRECT_READ", "units": "KW"},
        ],
        "resources": [{"resourceName": AGGREGATED, "intervals": [dict(iv) for iv in intervals]}],
    }


def forecast_report(
    *, program_id: str, event_id: str, client_name: str, hours: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The ``report`` answering a forecast request; ``hours`` are
    :meth:`csms.grid.forecast.Forecast.rows` (start, kw_p10, kw_p50, kw_p90, energy_kwh)."""
    intervals = []
    for k, h in enumerate(hours):
        start = h["start"] if isinstance(h["start"], str) else _iso(h["start"])
        intervals.append(
            {
                "id": k,
                "intervalPeriod": {"start": start, "duration": "PT1H"},
                "payloads": [
                    {"type": "STORAGE_MAX_DISCHARGE_POWER", "values": [round(h["kw_p50"], 2)]},
                    {"type": "EXPORT_CAPACITY_AVAILABLE_P10", "values": [round(h["kw_p10"], 2)]},
                    {"type": "EXPORT_CAPACITY_AVAILABLE_P90", "values": [round(h["kw_p90"], 2)]},
                    {"type": "EXPORT_ENERGY_AVAILABLE", "values": [round(h["energy_kwh"], 2)]},
                ],
            }
        )
    return {
        "programID": program_id,
        "eventID": event_id,
        "clientName": client_name,
        "reportName": f"flexibility forecast {event_id}",
        "payloadDescriptors": [
            _forecast_descriptor("STORAGE_MAX_DISCHARGE_POWER", "KW", 50),
            _forecast_descriptor("EXPORT_CAPACITY_AVAILABLE_P10", "KW", 90),
            _forecast_descriptor("EXPORT_CAPACITY_AVAILABLE_P90", "KW", 10),
            _forecast_descriptor("EXPORT_ENERGY_AVAILABLE", "KWH", None),
        ],
        "resources": [{"resourceName": AGGREGATED, "intervals": intervals}],
    }


def _forecast_descriptor(payload_type: str, units: str, confidence: int | None) -> dict[str, Any]:
    d: dict[str, Any] = {"payloadType": payload_type, "readingType": "FORECAST", "units": units}
    if confidence is not None:
        d["confidence"] = confidence
    return d
