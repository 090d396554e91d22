"""OCPP 2.1 DER control (R block), pure: which request field carries which control type, the
checks a SetDERControlRequest must pass beyond its schema, the controls a station holds after a
sequence of set/clear requests, and ReportDERControl parts flattened into one list.

A SetDERControlRequest names its ``controlType`` and carries the settings in exactly one field:
``curve`` for the curve-based controls (volt-var, frequency-watt, must-trip curves ...),
``enterService``, ``fixedPFAbsorb``, ``fixedPFInject``, ``fixedVar``, ``freqDroop``, ``gradient``
or ``limitMaxDischarge`` for the others. ReportDERControl lists the controls per field again, each
item with its ``id`` (the controlId) and, for curves, its ``curveType``.

No sockets, no database: used by the CSMS block, the HTTP API and the station simulator alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

CURVE_TYPES = frozenset(
    {
        "FreqWatt",
        "HFMustTrip",
        "HFMayTrip",
        "HVMustTrip",
        "HVMomCess",
        "HVMayTrip",
        "LFMustTrip",
        "LVMustTrip",
        "LVMomCess",
        "LVMayTrip",
        "PowerMonitoringMustTrip",
        "VoltVar",
        "VoltWatt",
        "WattPF",
        "WattVar",
    }
)
_OTHER_FIELDS = {
    "EnterService": "enterService",
    "FixedPFAbsorb": "fixedPFAbsorb",
    "FixedPFInject": "fixedPFInject",
    "FixedVar": "fixedVar",
    "FreqDroop": "freqDroop",
    "Gradients": "gradient",
    "LimitMaxDischarge": "limitMaxDischarge",
}
CONTROL_TYPES = tuple(sorted(CURVE_TYPES | _OTHER_FIELDS.keys()))
DATA_FIELDS = ("curve", *sorted(_OTHER_FIELDS.values()))
# the ReportDERControl item key holding the settings, per report field
_REPORT_ITEM_KEY = {
    "curve": "curve",
    "enterService": "enterService",
    "fixedPFAbsorb": "fixedPF",
    "fixedPFInject": "fixedPF",
    "fixedVar": "fixedVar",
    "freqDroop": "freqDroop",
    "gradient": "gradient",
    "limitMaxDischarge": "limitMaxDischarge",
}
# report fields whose items carry no isDefault / isSuperseded (EnterServiceGetType, GradientGetType)
_NO_FLAGS = frozenset({"enterService", "gradient"})
MAX_REPORT_ITEMS = 24  # maxItems of every list in ReportDERControlRequest


class DerError(ValueError):
    """A DER control request that breaks a rule the schema cannot express; ``field`` names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def data_field(control_type: str) -> str:
    """The SetDERControlRequest field that carries the settings of ``control_type``."""
    if control_type in CURVE_TYPES:
        return "curve"
    try:
        return _OTHER_FIELDS[control_type]
    except KeyError:
        raise DerError(f"unknown DER controlType {control_type!r}", "controlType") from None


def check_set(request: Mapping[str, Any]) -> None:
    """A schema-valid SetDERControlRequest must carry exactly the field of its controlType;
    curves need strictly increasing x; a start time needs a positive duration, if given."""
    control_type = request["controlType"]
    want = data_field(control_type)
    present = [f for f in DATA_FIELDS if f in request]
    if want not in present:
        raise DerError(f"controlType {control_type} needs the field {want!r}", want)
    extra = [f for f in present if f != want]
    if extra:
        raise DerError(f"controlType {control_type} takes only {want!r}, not {', '.join(extra)}", extra[0])
    data = request[want]
    curve = data if want == "curve" else data.get("powerMonitoringMustTrip")
    if curve is not None:
        xs = [p["x"] for p in curve["curveData"]]
        if any(b <= a for a, b in itertools.pairwise(xs)):
            raise DerError("curveData x values must increase strictly", f"{want}.curveData")
    if "duration" in data and data["duration"] <= 0:
        raise DerError("duration must be positive", f"{want}.duration")


def control_of(request: Mapping[str, Any]) -> dict[str, Any]:
    """The control a SetDERControlRequest installs: id, type, default flag and its settings."""
    field = data_field(request["controlType"])
    return {
        "controlId": request["controlId"],
        "controlType": request["controlType"],
        "isDefault": bool(request["isDefault"]),
        "isSuperseded": False,
        "data": dict(request[field]),
    }


def matches(control: Mapping[str, Any], flt: Mapping[str, Any]) -> bool:
    """Whether a control matches the filter of a Get/ClearDERControlRequest."""
    if "isDefault" in flt and control["isDefault"] != flt["isDefault"]:
        return False
    if "controlType" in flt and control["controlType"] != flt["controlType"]:
        return False
    return "controlId" not in flt or control["controlId"] == flt["controlId"]


def set_control(controls: dict[str, dict[str, Any]], request: Mapping[str, Any]) -> list[str]:
    """Install the request's control in ``controls`` (controlId -> control), replacing one with the
    same id; every other control of the same type and default flag whose priority is not higher
    (priority number at least the new one's) is marked superseded. Returns the superseded ids."""
    new = control_of(request)
    priority = new["data"].get("priority", 0)
    superseded: list[str] = []
    for cid, old in controls.items():
        if cid == new["controlId"] or old["isSuperseded"]:
            continue
        if old["controlType"] == new["controlType"] and old["isDefault"] == new["isDefault"]:
            if old["data"].get("priority", 0) >= priority:
                old["isSuperseded"] = True
                superseded.append(cid)
    controls[new["controlId"]] = new
    return superseded


def clear_controls(controls: dict[str, dict[str, Any]], flt: Mapping[str, Any]) -> list[str]:
    """Remove the controls matching a ClearDERControlRequest; returns their ids."""
    gone = [cid for cid, c in controls.items() if matches(c, flt)]
    for cid in gone:
        del controls[cid]
    return gone


def replay(steps: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The controls a station holds after accepted ``("set", SetDERControlRequest)`` and
    ``("clear", ClearDERControlRequest)`` steps, oldest first."""
    controls: dict[str, dict[str, Any]] = {}
    for kind, request in steps:
        if kind == "set":
            set_control(controls, request)
        elif kind == "clear":
            clear_controls(controls, request)
        else:
            raise ValueError(f"unknown DER step {kind!r}")
    return controls


def report_items(controls: Iterable[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """ReportDERControl items for ``controls``: (report field, item) pairs in the given order."""
    out: list[tuple[str, dict[str, Any]]] = []
    for c in controls:
        field = data_field(c["controlType"])
        item: dict[str, Any] = {"id": c["controlId"], _REPORT_ITEM_KEY[field]: dict(c["data"])}
        if field == "curve":
            item["curveType"] = c["controlType"]
        if field not in _NO_FLAGS:
            item["isDefault"] = c["isDefault"]
            item["isSuperseded"] = c["isSuperseded"]
        out.append((field, item))
    return out


def report_payloads(request_id: int, controls: list[Mapping[str, Any]], per_message: int) -> list[dict[str, Any]]:
    """The ReportDERControlRequests answering a GetDERControl: ``per_message`` controls per
    message (at most 24 per list), ``tbc`` on all but the last."""
    per_message = max(1, min(per_message, MAX_REPORT_ITEMS))
    chunks = [controls[i : i + per_message] for i in range(0, len(controls), per_message)] or [[]]
    payloads: list[dict[str, Any]] = []
    for n, chunk in enumerate(chunks):
        payload: dict[str, Any] = {"requestId": request_id}
        for field, item in report_items(chunk):
            payload.setdefault(field, []).append(item)
        if n < len(chunks) - 1:
            payload["tbc"] = True
        payloads.append(payload)
    return payloads


def flatten_report(parts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The controls of ReportDERControl parts, one dict each: controlId, controlType, isDefault
    and isSuperseded (None where the report item has none), and the settings as ``data``."""
    out: list[dict[str, Any]] = []
    for part in parts:
        for field in DATA_FIELDS:
            for item in part.get(field, []):
                if field == "curve":
                    control_type = item["curveType"]
                else:
                    control_type = next(t for t, f in _OTHER_FIELDS.items() if f == field)
                out.append(
                    {
                        "controlId": item["id"],
                        "controlType": control_type,
                        "isDefault": item.get("isDefault"),
                        "isSuperseded": item.get("isSuperseded"),
                        "data": item[_REPORT_ITEM_KEY[field]],
                    }
                )
    return out


def alarm_facts(p: Mapping[str, Any]) -> dict[str, Any]:
    """The stored facts of a NotifyDERAlarmRequest."""
    facts: dict[str, Any] = {"controlType": p["controlType"], "alarmEnded": bool(p.get("alarmEnded", False))}
    for key in ("gridEventFault", "extraInfo"):
        if key in p:
            facts[key] = p[key]
    return facts
