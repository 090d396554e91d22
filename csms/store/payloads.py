"""Turning OCPP payload fragments into store rows, with no I/O.

Payloads are accepted in wire form (camelCase, as in the JSON frames) and also in the snake_case
form the ``ocpp`` library hands to ``@on`` handlers: :func:`pick` looks up ``sampledValue`` and then
``sampled_value``. Station data is untrusted, so malformed entries are skipped (and logged) one at
a time instead of failing the whole message; a value too long for its column is skipped here
rather than poisoning a whole batch insert later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
import structlog

from csms.domain.metering import (
    DEFAULT_MEASURAND,
    KILO_UNITS,
    MeterRead,
    read_meter_values,
    readings_from_rows,
)

from .types import parse_ts

log = structlog.get_logger("csms.store")

_MAX_LEN = {"measurand": 64, "phase": 8, "location": 16, "context": 32, "unit": 20}


@lru_cache(maxsize=256)
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def pick(obj: Mapping[str, Any] | None, key: str, default: Any = None) -> Any:
    """``obj[key]`` for a camelCase key, falling back to its snake_case spelling."""
    if not obj:
        return default
    if key in obj:
        return obj[key]
    return obj.get(_snake(key), default)


def _opt_str(value: Any, field: str) -> str | None:
    if value is None:
        return None
    text = str(value)
    limit = _MAX_LEN.get(field)
    if limit is not None and len(text) > limit:
        raise ValueError(f"{field} longer than {limit} characters")
    return text


def scaled_value(value: Any, multiplier: Any) -> float:
    """``value * 10**multiplier`` with the least floating-point noise (divide for negatives)."""
    if isinstance(value, bool):
        raise ValueError("boolean is not a meter value")
    number = float(value)
    mult = int(multiplier or 0)
    if mult > 0:
        number *= 10**mult
    elif mult < 0:
        number /= 10**-mult
    if not math.isfinite(number):
        raise ValueError("meter value is not finite")
    return number


def read_wire_meter_values(
    station_id: str,
    evse_id: int,
    transaction_id: str | None,
    meter_values: Iterable[Mapping[str, Any]],
) -> MeterRead:
    """The one walk over a schema-validated ``meterValue`` list
    (:func:`csms.domain.metering.read_meter_values`): store rows and live readings. Anything
    unexpected falls back to the general parser (rows) and reads the live values off its rows."""
    try:
        return read_meter_values(station_id, evse_id, transaction_id, meter_values)
    except (KeyError, TypeError, ValueError, AttributeError):
        rows = parse_meter_values(station_id, evse_id, transaction_id, meter_values)
        at, readings = readings_from_rows(rows)
        return MeterRead(rows, at, readings)


def parse_wire_meter_values(
    station_id: str,
    evse_id: int,
    transaction_id: str | None,
    meter_values: Iterable[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Fast path of :func:`parse_meter_values` for schema-validated OCPP wire payloads
    (camelCase keys, lengths and types already checked); same rows, same unit rules."""
    return read_wire_meter_values(station_id, evse_id, transaction_id, meter_values).rows


def parse_meter_values(
    station_id: str,
    evse_id: int,
    transaction_id: str | None,
    meter_values: Iterable[Mapping[str, Any]] | None,
) -> list[dict[str, Any]]:
    """Flatten OCPP ``MeterValueType[]`` into ``meter_samples`` rows.

    The multiplier is applied (``value * 10**multiplier``) and the unit stored. Kilo units are
    normalised to their base unit (``kWh`` -> ``Wh`` x1000, ``kW`` -> ``W``, see
    :data:`KILO_UNITS`) so consumers never mix scales: ``{"value": 2, "unitOfMeasure": {"unit": "Wh",
    "multiplier": 3}}`` and ``{"value": 2, "unitOfMeasure": {"unit": "kWh"}}`` both become 2000 Wh.
    ``unitOfMeasure`` without ``unit`` means the OCPP default ``Wh``; without ``unitOfMeasure`` the
    unit is stored as ``NULL`` (consumers apply the per-measurand default).
    """
    rows: list[dict[str, Any]] = []
    for mv in meter_values or ():
        try:
            ts = parse_ts(pick(mv, "timestamp"))
        except (TypeError, ValueError) as exc:
            log.warning("meter value skipped", station_id=station_id, reason=str(exc))
            continue
        for sv in pick(mv, "sampledValue") or ():
            try:
                uom = pick(sv, "unitOfMeasure")
                unit = None
                multiplier = 0
                if uom is not None:
                    unit = pick(uom, "unit") or "Wh"
                    multiplier = int(pick(uom, "multiplier") or 0)
                    if unit in KILO_UNITS:
                        unit, multiplier = KILO_UNITS[unit], multiplier + 3
                rows.append(
                    {
                        "station_id": station_id,
                        "evse_id": evse_id,
                        "transaction_id": transaction_id,
                        "timestamp": ts,
                        "measurand": _opt_str(pick(sv, "measurand"), "measurand") or DEFAULT_MEASURAND,
                        "phase": _opt_str(pick(sv, "phase"), "phase"),
                        "location": _opt_str(pick(sv, "location"), "location"),
                        "context": _opt_str(pick(sv, "context"), "context"),
                        "unit": _opt_str(unit, "unit"),
                        "value": scaled_value(pick(sv, "value"), multiplier),
                    }
                )
            except (TypeError, ValueError, AttributeError) as exc:
                log.warning("sampled value skipped", station_id=station_id, reason=str(exc))
    return rows


_VARIABLE_KEYS = (
    "component",
    "component_instance",
    "evse_id",
    "connector_id",
    "variable",
    "variable_instance",
    "attribute_type",
)


def parse_report_data(station_id: str, entries: Iterable[Mapping[str, Any]], at: datetime) -> list[dict[str, Any]]:
    """Flatten NotifyReport ``reportData[]`` into ``device_model`` rows (one per attribute).

    Entries may also be flat dicts (``component``/``variable`` given as strings, snake_case keys as
    in :class:`~csms.store.rows.VariableRow`), e.g. built from GetVariables results. The stored
    ``characteristics`` are ``variableCharacteristics`` plus the attribute's ``mutability``,
    ``persistent`` and ``constant`` flags. Rows with the same key are de-duplicated (last wins),
    because one upsert statement may not touch a row twice on PostgreSQL.
    """
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in entries:
        try:
            for row in _report_rows(station_id, entry, at):
                out[tuple(row[k] for k in _VARIABLE_KEYS)] = row
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            log.warning("report entry skipped", station_id=station_id, reason=repr(exc))
    return list(out.values())


def _report_rows(station_id: str, entry: Mapping[str, Any], at: datetime) -> list[dict[str, Any]]:
    component = entry["component"]
    if isinstance(component, str):
        value = entry.get("value")
        return [
            {
                "station_id": station_id,
                "component": component,
                "component_instance": entry.get("component_instance") or "",
                "evse_id": _int_or(entry.get("evse_id"), -1),
                "connector_id": _int_or(entry.get("connector_id"), -1),
                "variable": str(entry["variable"]),
                "variable_instance": entry.get("variable_instance") or "",
                "attribute_type": entry.get("attribute_type") or "Actual",
                "value": None if value is None else str(value),
                "characteristics": entry.get("characteristics"),
                "updated_at": at,
            }
        ]
    variable = entry["variable"]
    evse = pick(component, "evse")
    base = {
        "station_id": station_id,
        "component": str(component["name"]),
        "component_instance": pick(component, "instance") or "",
        "evse_id": _int_or(pick(evse, "id"), -1),
        "connector_id": _int_or(pick(evse, "connectorId"), -1),
        "variable": str(variable["name"]),
        "variable_instance": pick(variable, "instance") or "",
    }
    characteristics = pick(entry, "variableCharacteristics")
    rows = []
    for attr in pick(entry, "variableAttribute") or [{}]:
        chars = dict(characteristics) if characteristics else {}
        for flag in ("mutability", "persistent", "constant"):
            if flag in attr:
                chars[flag] = attr[flag]
        value = pick(attr, "value")
        rows.append(
            {
                **base,
                "attribute_type": pick(attr, "type") or "Actual",
                "value": None if value is None else str(value),
                "characteristics": chars or None,
                "updated_at": at,
            }
        )
    return rows


def _int_or(value: Any, default: int) -> int:
    return default if value is None else int(value)


def profile_fields(profile: Mapping[str, Any]) -> dict[str, Any]:
    """Key fields of an OCPP ``ChargingProfileType`` (id, purpose, stack level, transaction)."""
    profile_id = pick(profile, "id")
    purpose = pick(profile, "chargingProfilePurpose")
    stack_level = pick(profile, "stackLevel")
    if profile_id is None or purpose is None or stack_level is None:
        raise ValueError("charging profile needs id, chargingProfilePurpose and stackLevel")
    tx = pick(profile, "transactionId")
    return {
        "profile_id": int(profile_id),
        "purpose": str(purpose),
        "stack_level": int(stack_level),
        "transaction_id": None if tx is None else str(tx),
    }


SEGMENT_MAX = 4096
"""Most frames in one segment (far below the id stride of 65,536 per segment)."""


def frame_segments(frames: Iterable[tuple[str, str, datetime, str | bytes]]) -> list[dict[str, Any]]:
    """``frame_segments`` rows for buffered frames ``(station id, direction, timestamp, frame)``:
    one per station, its frames in arrival order as a JSON array of ``[direction, timestamp,
    frame]`` (orjson writes the timestamps, RFC 3339 with ``Z``, and escapes the text, in C)."""
    by_station: dict[str, list[list[Any]]] = {}
    for station_id, direction, ts, frame in frames:
        if type(frame) is bytes:
            frame = frame.decode(errors="replace")
        items = by_station.get(station_id)
        if items is None:
            items = by_station[station_id] = []
        items.append([direction, ts, frame])
    rows = []
    for station_id, items in by_station.items():
        for start in range(0, len(items), SEGMENT_MAX):
            part = items[start : start + SEGMENT_MAX]
            rows.append({"station_id": station_id, "timestamp": part[0][1], "count": len(part),
                         "frames": orjson.dumps(part, option=orjson.OPT_UTC_Z).decode()})  # fmt: skip
    return rows
