"""The simulated station's DER control (OCPP 2.1 R block) for a V2X charger.

- SetDERControl: Rejected (``Disabled``) when ``DERCtrlr.Enabled`` is false; NotSupported for a
  control type outside ``DERCtrlr.SupportedControlTypes`` (every type but PowerMonitoringMustTrip
  by default); Rejected (``InvalidValue``, the reason in ``additionalInfo``) when the settings do
  not fit the control type (:func:`csms.domain.der.check_set`); Rejected (``NoCapacity``) past
  24 controls of one type. Otherwise Accepted: the same controlId replaces its control, and older
  controls of the same type and default flag with a priority number not lower are superseded
  (``supersededIds``). Controls are kept per control type.
- GetDERControl: NotFound when no control matches the filters (isDefault, controlType,
  controlId); else Accepted and ReportDERControl messages, ``ITEMS_PER_MESSAGE`` controls each,
  ``tbc`` on all but the last.
- ClearDERControl: NotFound when nothing matches, else Accepted and the matching controls go.
- LimitMaxDischarge: while one is in force (a default one always, a scheduled one from its
  ``startTime`` for its ``duration``; a scheduled one beats the default, then the lowest priority
  number), the station discharges at most ``pctMaxDischargePower`` % of its discharge rating
  (:func:`discharge_cap_w`, applied by the control loop).
- Grid: :func:`set_grid` moves the simulated grid voltage / frequency (the hook tests use). When
  it leaves the band a NotifyDERAlarm goes out (OverVoltage / UnderVoltage with HVMustTrip /
  LVMustTrip, OverFrequency / UnderFrequency with HFMustTrip / LFMustTrip), and another with
  ``alarmEnded`` when it is back. The band is the installed default EnterService control's
  lowVoltage / highVoltage (percent of the nominal voltage) and lowFreq / highFreq (Hz), else
  90..110 % of 230 V and 49.5..50.5 Hz.

On OCPP 2.0.1 the handlers are not offered (the endpoint answers NotImplemented) and no alarm is
sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from csms.clock import parse_rfc3339, to_rfc3339
from csms.domain import der

from .devicemodel import READ_ONLY, READ_WRITE, Variable

if TYPE_CHECKING:
    from .devicemodel import DeviceModel
    from .model import Firmware

CTRLR = "DERCtrlr"
ITEMS_PER_MESSAGE = 4
NOMINAL_V = 230.0
NOMINAL_HZ = 50.0
DEFAULT_SUPPORTED = ",".join(t for t in der.CONTROL_TYPES if t != "PowerMonitoringMustTrip")


class _Der:
    """The station's DER state: controls per control type, the grid and the alarms raised."""

    def __init__(self) -> None:
        self.by_type: dict[str, dict[str, dict[str, Any]]] = {}
        self.voltage = NOMINAL_V
        self.frequency = NOMINAL_HZ
        self.active_alarms: set[str] = set()

    def flat(self) -> dict[str, dict[str, Any]]:
        return {cid: c for controls in self.by_type.values() for cid, c in controls.items()}


def state(st: Firmware) -> _Der:
    found = st.__dict__.get("der_state")
    if found is None:
        found = st.__dict__["der_state"] = _Der()
    return found  # type: ignore[no-any-return]


def controls(st: Firmware) -> list[dict[str, Any]]:
    """Every control the station holds, by type then id."""
    return [c for t in sorted(state(st).by_type) for _cid, c in sorted(state(st).by_type[t].items())]


def add_variables(st: Firmware, dm: DeviceModel) -> None:
    if st.dm_version != "2.1":
        return
    dm.add(Variable(CTRLR, "Available", "true", READ_ONLY, "boolean"))
    dm.add(Variable(CTRLR, "Enabled", "true", READ_WRITE, "boolean"))
    dm.add(Variable(CTRLR, "SupportedControlTypes", DEFAULT_SUPPORTED, READ_WRITE, "MemberList"))


async def set_der_control(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    if not st._dm_bool(CTRLR, "Enabled", True):
        return {"status": "Rejected", "statusInfo": {"reasonCode": "Disabled"}}
    control_type = p["controlType"]
    if control_type not in st._dm_list(CTRLR, "SupportedControlTypes", DEFAULT_SUPPORTED):
        return {"status": "NotSupported"}
    try:
        der.check_set(p)
    except der.DerError as exc:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue", "additionalInfo": exc.message}}
    s = state(st)
    # a controlId names one control, whatever its type: a new type moves it
    for other in s.by_type.values():
        if p["controlId"] in other and other is not s.by_type.get(control_type):
            del other[p["controlId"]]
    same_type = s.by_type.setdefault(control_type, {})
    if p["controlId"] not in same_type and len(same_type) >= der.MAX_REPORT_ITEMS:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "NoCapacity"}}
    superseded = der.set_control(same_type, p)
    response: dict[str, Any] = {"status": "Accepted"}
    if superseded:
        response["supersededIds"] = superseded[: der.MAX_REPORT_ITEMS]
    return response


async def get_der_control(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    found = [c for c in controls(st) if der.matches(c, p)]
    if not found:
        return {"status": "NotFound"}
    for payload in der.report_payloads(p["requestId"], found, ITEMS_PER_MESSAGE):
        st._send_if_online("ReportDERControl", payload)
    return {"status": "Accepted"}


async def clear_der_control(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    gone = 0
    for same_type in state(st).by_type.values():
        gone += len(der.clear_controls(same_type, p))
    return {"status": "Accepted" if gone else "NotFound"}


def _in_force(data: dict[str, Any], is_default: bool, now_t: float) -> bool:
    if is_default or "startTime" not in data:
        return True
    start = parse_rfc3339(data["startTime"])
    now = datetime.fromtimestamp(now_t, UTC)
    if now < start:
        return False
    return "duration" not in data or now < start + timedelta(seconds=float(data["duration"]))


def discharge_cap_w(st: Firmware, rating_w: float, now_t: float) -> float | None:
    """The discharge power (W, positive) the LimitMaxDischarge in force allows, None without one."""
    held = st.__dict__.get("der_state")
    if held is None or not held.by_type.get("LimitMaxDischarge"):
        return None
    best: tuple[tuple[bool, int], float] | None = None
    for c in held.by_type["LimitMaxDischarge"].values():
        d = c["data"]
        if c["isSuperseded"] or "pctMaxDischargePower" not in d or not _in_force(d, c["isDefault"], now_t):
            continue
        rank = (c["isDefault"], int(d.get("priority", 0)))
        if best is None or rank < best[0]:
            best = (rank, float(d["pctMaxDischargePower"]))
    if best is None:
        return None
    return rating_w * max(0.0, min(100.0, best[1])) / 100.0


def _band(st: Firmware) -> tuple[float, float, float, float]:
    """(low V, high V, low Hz, high Hz) from the default EnterService control, if any."""
    for c in state(st).by_type.get("EnterService", {}).values():
        if c["isDefault"] and not c["isSuperseded"]:
            d = c["data"]
            return (
                NOMINAL_V * d["lowVoltage"] / 100.0,
                NOMINAL_V * d["highVoltage"] / 100.0,
                float(d["lowFreq"]),
                float(d["highFreq"]),
            )
    return NOMINAL_V * 0.9, NOMINAL_V * 1.1, NOMINAL_HZ - 0.5, NOMINAL_HZ + 0.5


def _faults(st: Firmware) -> dict[str, tuple[str, str]]:
    """The grid faults now: alarm key -> (controlType, gridEventFault)."""
    s = state(st)
    low_v, high_v, low_hz, high_hz = _band(st)
    out: dict[str, tuple[str, str]] = {}
    if s.voltage > high_v:
        out["OverVoltage"] = ("HVMustTrip", "OverVoltage")
    elif s.voltage < low_v:
        out["UnderVoltage"] = ("LVMustTrip", "UnderVoltage")
    if s.frequency > high_hz:
        out["OverFrequency"] = ("HFMustTrip", "OverFrequency")
    elif s.frequency < low_hz:
        out["UnderFrequency"] = ("LFMustTrip", "UnderFrequency")
    return out


def set_grid(st: Firmware, *, voltage: float | None = None, frequency: float | None = None) -> list[dict[str, Any]]:
    """Move the simulated grid; returns the NotifyDERAlarm payloads this raised or ended (sent
    when the station speaks OCPP 2.1 and is online)."""
    s = state(st)
    if voltage is not None:
        s.voltage = float(voltage)
    if frequency is not None:
        s.frequency = float(frequency)
    now = faults = _faults(st)
    sent: list[dict[str, Any]] = []
    stamp = to_rfc3339(st.clock.now())
    info = f"grid {s.voltage:.1f} V {s.frequency:.2f} Hz"
    for key, (control_type, fault) in faults.items():
        if key not in s.active_alarms:
            sent.append({"controlType": control_type, "gridEventFault": fault, "timestamp": stamp, "extraInfo": info})
    for key in sorted(s.active_alarms - now.keys()):
        control_type = {
            "OverVoltage": "HVMustTrip",
            "UnderVoltage": "LVMustTrip",
            "OverFrequency": "HFMustTrip",
            "UnderFrequency": "LFMustTrip",
        }[key]
        sent.append(
            {
                "controlType": control_type,
                "gridEventFault": key,
                "alarmEnded": True,
                "timestamp": stamp,
                "extraInfo": info,
            }
        )
    s.active_alarms = set(now)
    if st.version != "2.1":
        return []
    for payload in sent:
        st._send_if_online("NotifyDERAlarm", payload)
    return sent


HANDLERS_21 = {
    "SetDERControl": set_der_control,
    "GetDERControl": get_der_control,
    "ClearDERControl": clear_der_control,
}
