"""The simulated station's variable monitoring (OCPP N02-N07).

- Monitors: one preconfigured (``ChargingStation.Power`` UpperThreshold at 110 % of the rated
  power, severity 4) plus the CSMS's custom ones. SetVariableMonitoring answers per item
  UnknownComponent / UnknownVariable (device model), UnsupportedMonitorType (TargetDelta*),
  Rejected (a threshold or delta on a non-numeric variable, a Periodic interval < 1 s, an ``id``
  the station does not hold, a negative value), Duplicate (same variable, type and severity as
  another monitor), else Accepted with the monitor id. More items than
  ``MonitoringCtrlr.ItemsPerMessage`` is an OccurrenceConstraintViolation CALLERROR.
- GetMonitoringReport: EmptyResultSet when nothing matches the criteria / component-variables,
  else NotifyMonitoringReport (``ItemsPerMessage`` variables per message, ``seqNo``, ``tbc``).
- SetMonitoringBase: All keeps every monitor; FactoryDefault drops the custom ones and restores
  the preconfigured one; HardWiredOnly keeps none of either.
- SetMonitoringLevel: severities 0-9 (events less severe than the level are not reported), else
  Rejected. ClearVariableMonitoring: Accepted (custom), Rejected (preconfigured), NotFound.
- Evaluation (from the first monitoring command on) every simulated second: thresholds raise an
  ``Alerting`` NotifyEvent when crossed and a ``cleared`` one when back; Delta when the value
  moved by ``value``; Periodic every ``value`` seconds. Only while ``MonitoringCtrlr.Enabled``.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from csms.ocpp.errors import CallError, ErrorCode

from .devicemodel import READ_ONLY, READ_WRITE, Variable

if TYPE_CHECKING:
    from .devicemodel import DeviceModel
    from .model import Firmware

CTRLR = "MonitoringCtrlr"
ITEMS_PER_MESSAGE = 10
NUMERIC = ("integer", "decimal")
THRESHOLDS = ("UpperThreshold", "LowerThreshold")
CRITERIA = {
    "ThresholdMonitoring": THRESHOLDS,
    "DeltaMonitoring": ("Delta", "TargetDelta", "TargetDeltaRelative"),
    "PeriodicMonitoring": ("Periodic", "PeriodicClockAligned"),
}


@dataclass
class Monitor:
    id: int
    var: Variable
    type: str
    value: float
    severity: int
    kind: str = "CustomMonitor"  # eventNotificationType
    transaction: bool = False
    active: bool = False
    last: float | None = None
    next_t: float = 0.0


@dataclass
class MonitoringState:
    monitors: dict[int, Monitor] = field(default_factory=dict)
    level: int = 9
    ids: Any = field(default_factory=lambda: itertools.count(100))
    events: Any = field(default_factory=lambda: itertools.count(1))
    seq: Any = field(default_factory=lambda: itertools.count(0))
    task: asyncio.Task[None] | None = None


def state(st: Firmware) -> MonitoringState:
    found = st.__dict__.get("monitoring")
    if found is None:
        found = st.__dict__["monitoring"] = MonitoringState()
        _preconfigure(st, found)
    return found  # type: ignore[no-any-return]


def _preconfigure(st: Firmware, ms: MonitoringState) -> None:
    var = st.dm.find("ChargingStation", "Power")
    if var is not None:
        limit = st.config.charge_kw * 1000 * st.config.evse_count * 1.1
        ms.monitors[1] = Monitor(1, var, "UpperThreshold", limit, 4, kind="PreconfiguredMonitor")


def add_variables(st: Firmware, dm: DeviceModel) -> None:
    dm.add(Variable(CTRLR, "Available", "true", READ_ONLY, "boolean"))
    dm.add(Variable(CTRLR, "Enabled", "true", READ_WRITE, "boolean"))
    dm.add(
        Variable(
            CTRLR, "ItemsPerMessage", str(ITEMS_PER_MESSAGE), READ_ONLY, "integer", instance="SetVariableMonitoring"
        )
    )
    dm.add(
        Variable(
            CTRLR, "ItemsPerMessage", str(ITEMS_PER_MESSAGE), READ_ONLY, "integer", instance="ClearVariableMonitoring"
        )
    )
    dm.add(Variable(CTRLR, "BytesPerMessage", "65000", READ_ONLY, "integer", instance="SetVariableMonitoring"))


def _wire(st: Firmware, m: Monitor) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id,
        "transaction": m.transaction,
        "value": m.value,
        "type": m.type,
        "severity": m.severity,
    }
    if st.version == "2.1":
        out["eventNotificationType"] = m.kind
    return out


def _limit(st: Firmware, instance: str) -> int:
    return st._dm_int(CTRLR, "ItemsPerMessage", ITEMS_PER_MESSAGE, instance=instance)


def _result(item: dict[str, Any], status: str, mid: int | None = None, reason: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": status,
        "type": item["type"],
        "severity": item["severity"],
        "component": item["component"],
        "variable": item["variable"],
    }
    if mid is not None:
        out["id"] = mid
    if reason:
        out["statusInfo"] = {"reasonCode": reason}
    return out


async def set_variable_monitoring(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    items = p["setMonitoringData"]
    if len(items) > _limit(st, "SetVariableMonitoring"):
        raise CallError(ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, "more setMonitoringData than ItemsPerMessage")
    ms = state(st)
    results = []
    for item in items:
        var, status = st.dm._resolve(item["component"], item["variable"])
        if var is None:
            results.append(_result(item, status))
            continue
        kind, value = item["type"], float(item["value"])
        if kind.startswith("TargetDelta"):
            results.append(_result(item, "UnsupportedMonitorType"))
            continue
        numeric = var.data_type in NUMERIC
        if (kind in THRESHOLDS or kind == "Delta") and not numeric:
            results.append(_result(item, "Rejected", reason="NotNumeric"))
            continue
        if value < 0 or (kind.startswith("Periodic") and value < 1):
            results.append(_result(item, "Rejected", reason="InvalidValue"))
            continue
        mid = item.get("id")
        if mid is not None and (mid not in ms.monitors or ms.monitors[mid].kind != "CustomMonitor"):
            results.append(_result(item, "Rejected", reason="UnknownMonitor"))
            continue
        dup = next(
            (
                m
                for m in ms.monitors.values()
                if m.var is var and m.type == kind and m.severity == item["severity"] and m.id != mid
            ),
            None,
        )
        if dup is not None:
            results.append(_result(item, "Duplicate", dup.id))
            continue
        if mid is None:
            mid = next(ms.ids)
        ms.monitors[mid] = Monitor(
            mid, var, kind, value, item["severity"], transaction=bool(item.get("transaction", False))
        )
        results.append(_result(item, "Accepted", mid))
    _ensure_running(st)
    return {"setMonitoringResult": results}


def _matches(m: Monitor, criteria: list[str] | None, cvs: list[dict[str, Any]] | None) -> bool:
    if criteria and not any(m.type in CRITERIA[c] for c in criteria):
        return False
    if not cvs:
        return True
    for cv in cvs:
        comp, var = cv["component"], cv.get("variable")
        if comp["name"] != m.var.component:
            continue
        if "evse" in comp and comp["evse"].get("id") != m.var.evse:
            continue
        if var is not None and var["name"] != m.var.name:
            continue
        return True
    return False


async def get_monitoring_report(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    ms = state(st)
    found = [m for m in ms.monitors.values() if _matches(m, p.get("monitoringCriteria"), p.get("componentVariable"))]
    if not found:
        return {"status": "EmptyResultSet"}
    groups: dict[Any, list[Monitor]] = {}
    for m in sorted(found, key=lambda m: m.id):
        groups.setdefault(m.var.key, []).append(m)
    data = [
        {
            "component": ms_[0].var.component_wire(),
            "variable": ms_[0].var.variable_wire(),
            "variableMonitoring": [_wire(st, m) for m in ms_],
        }
        for ms_ in groups.values()
    ]
    per = ITEMS_PER_MESSAGE
    chunks = [data[i : i + per] for i in range(0, len(data), per)]
    for seq, chunk in enumerate(chunks):
        payload: dict[str, Any] = {
            "requestId": p["requestId"],
            "seqNo": seq,
            "generatedAt": st.clock.timestamp(),
            "monitor": chunk,
        }
        if seq < len(chunks) - 1:
            payload["tbc"] = True
        st._send_if_online("NotifyMonitoringReport", payload)
    return {"status": "Accepted"}


async def set_monitoring_base(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    ms = state(st)
    base = p["monitoringBase"]
    if base in ("FactoryDefault", "HardWiredOnly"):
        ms.monitors = {}
        if base == "FactoryDefault":
            _preconfigure(st, ms)
    _ensure_running(st)
    return {"status": "Accepted"}


async def set_monitoring_level(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    severity = p["severity"]
    if not 0 <= severity <= 9:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "OutOfRange"}}
    state(st).level = severity
    _ensure_running(st)
    return {"status": "Accepted"}


async def clear_variable_monitoring(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    ids = p["id"]
    if len(ids) > _limit(st, "ClearVariableMonitoring"):
        raise CallError(ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, "more ids than ItemsPerMessage")
    ms = state(st)
    out = []
    for mid in ids:
        m = ms.monitors.get(mid)
        if m is None:
            out.append({"id": mid, "status": "NotFound"})
        elif m.kind != "CustomMonitor":
            out.append({"id": mid, "status": "Rejected"})
        else:
            del ms.monitors[mid]
            out.append({"id": mid, "status": "Accepted"})
    return {"clearMonitoringResult": out}


# ------------------------------------------------------------------ evaluation
def _ensure_running(st: Firmware) -> None:
    ms = state(st)
    if ms.task is None or ms.task.done():
        ms.task = st._spawn(_loop(st))


async def _loop(st: Firmware) -> None:
    while True:
        await st._sleep_sim(1.0, min_wall=0.02)
        if st._dm_bool(CTRLR, "Enabled", True) and st.online and st.registration == "Accepted":
            evaluate(st)


def _in_transaction(st: Firmware) -> str | None:
    for e in st.evses.values():
        if e.tx is not None and not e.tx.ended:
            return e.tx.id
    return None


def evaluate(st: Firmware) -> None:
    ms = state(st)
    now_t = st.now_t()
    events = []
    for m in list(ms.monitors.values()):
        tx = _in_transaction(st)
        if m.transaction and tx is None:
            continue
        try:
            value = float(m.var.current())
        except ValueError:
            continue
        if m.type in THRESHOLDS:
            crossed = value > m.value if m.type == "UpperThreshold" else value < m.value
            if crossed != m.active:
                m.active = crossed
                events.append(_event(st, m, value, "Alerting", cleared=not crossed))
        elif m.type == "Delta":
            if m.last is None:
                m.last = value
            elif abs(value - m.last) >= m.value:
                m.last = value
                events.append(_event(st, m, value, "Delta"))
        elif m.type.startswith("Periodic") and now_t >= m.next_t:
            m.next_t = now_t + m.value
            events.append(_event(st, m, value, "Periodic"))
    events = [e for e in events if e[1] <= ms.level]
    if events:
        payload = {"generatedAt": st.clock.timestamp(), "seqNo": next(ms.seq), "eventData": [e[0] for e in events]}
        st._send_if_online("NotifyEvent", payload)


def _event(
    st: Firmware, m: Monitor, value: float, trigger: str, *, cleared: bool = False
) -> tuple[dict[str, Any], int]:
    ms = state(st)
    data: dict[str, Any] = {
        "eventId": next(ms.events),
        "timestamp": st.clock.timestamp(),
        "trigger": trigger,
        "actualValue": f"{value:g}",
        "eventNotificationType": m.kind,
        "component": m.var.component_wire(),
        "variable": m.var.variable_wire(),
        "variableMonitoringId": m.id,
    }
    if cleared:
        data["cleared"] = True
    tx = _in_transaction(st)
    if tx is not None:
        data["transactionId"] = tx
    if st.version == "2.1":
        data["severity"] = m.severity
    return data, m.severity


HANDLERS = {
    "SetVariableMonitoring": set_variable_monitoring,
    "GetMonitoringReport": get_monitoring_report,
    "SetMonitoringBase": set_monitoring_base,
    "SetMonitoringLevel": set_monitoring_level,
    "ClearVariableMonitoring": clear_variable_monitoring,
}
