"""OCPP 2.1 operation modes in a charging profile (K01 with Q08/Q10): which modes a purpose allows and
which limits / setpoints each mode needs or permits; :func:`check_period_v21` applies both tables
to one charging schedule period for :func:`csms.smartcharging.k01.check_set_charging_profile`.

* 2.1 table "operationMode for various ChargingProfilePurposes": ChargingStationMaxProfile and
  PriorityCharging only ``ChargingOnly``; ExternalConstraints ``ChargingOnly``/``ExternalLimits``/
  ``ExternalSetpoint``; LocalGeneration ``ChargingOnly``/``ExternalLimits``; Tx(Default)Profile any mode.
* 2.1 table "limits and setpoints per operation mode": ``ChargingOnly`` needs ``limit`` and no
  setpoint/dischargeLimit; ``CentralSetpoint`` and ``CentralFrequency`` need ``setpoint``; ``Idle``,
  ``ExternalLimits``, ``LocalFrequency``, ``LocalLoadBalancing`` carry no limits/setpoints;
  ``ExternalSetpoint`` may carry ``limit``/``dischargeLimit``.
* value rules: ``dischargeLimit`` <= 0; ``limit`` >= 0 (a negative limit is legacy only);
  ``operationMode`` must be in ``SupportedOperationModes``.
"""

from __future__ import annotations

from typing import Any

from csms.smartcharging.model import ChargingProfilePurpose, OperationMode

P = ChargingProfilePurpose
M = OperationMode

ALLOWED_MODES_BY_PURPOSE: dict[ChargingProfilePurpose, frozenset[OperationMode]] = {
    P.TX_PROFILE: frozenset(M),
    P.TX_DEFAULT_PROFILE: frozenset(M),
    P.CHARGING_STATION_MAX_PROFILE: frozenset({M.CHARGING_ONLY}),
    P.PRIORITY_CHARGING: frozenset({M.CHARGING_ONLY}),
    P.CHARGING_STATION_EXTERNAL_CONSTRAINTS: frozenset(
        {M.CHARGING_ONLY, M.EXTERNAL_LIMITS, M.EXTERNAL_SETPOINT},
    ),
    P.LOCAL_GENERATION: frozenset({M.CHARGING_ONLY, M.EXTERNAL_LIMITS}),
}

# operation mode -> (required, optional) among "limit", "dischargeLimit", "setpoint", "setpointReactive"
_LIMITS_BY_MODE: dict[OperationMode, tuple[frozenset[str], frozenset[str]]] = {
    M.CHARGING_ONLY: (frozenset({"limit"}), frozenset()),
    M.CENTRAL_SETPOINT: (frozenset({"setpoint"}), frozenset({"limit", "dischargeLimit", "setpointReactive"})),
    M.CENTRAL_FREQUENCY: (frozenset({"setpoint"}), frozenset({"limit", "dischargeLimit"})),
    M.LOCAL_FREQUENCY: (frozenset(), frozenset()),
    M.EXTERNAL_SETPOINT: (frozenset(), frozenset({"limit", "dischargeLimit"})),
    M.EXTERNAL_LIMITS: (frozenset(), frozenset()),
    M.LOCAL_LOAD_BALANCING: (frozenset(), frozenset()),
    M.IDLE: (frozenset(), frozenset()),
}


def _any_set(*values: float | None) -> bool:
    return any(v is not None for v in values)


def check_period_v21(
    period: Any,
    allowed_modes: frozenset[OperationMode],
    supported_modes: frozenset[str] | None,
    purpose: ChargingProfilePurpose,
    where: str,
    bad: Any,
) -> None:
    """The checks of one period of a 2.1 profile: ``bad(code, message, requirement)`` is called per broken rule."""
    mode: OperationMode = period.effective_operation_mode
    if mode not in allowed_modes:
        req = "K01.FR.71" if purpose is P.PRIORITY_CHARGING else None
        bad("UnsupportedMode", f"{where}: operationMode {mode} not allowed for {purpose}", req)
    if supported_modes is not None and mode is not M.CHARGING_ONLY and mode.value not in supported_modes:
        bad("UnsupportedMode", f"{where}: operationMode {mode} not in SupportedOperationModes")
    present = {
        "limit": period.limit is not None or period.limit_l2 is not None or period.limit_l3 is not None,
        "dischargeLimit": _any_set(
            period.discharge_limit,
            period.discharge_limit_l2,
            period.discharge_limit_l3,
        ),
        "setpoint": any(v is not None for v in (period.setpoint, period.setpoint_l2, period.setpoint_l3)),
        "setpointReactive": _any_set(
            period.setpoint_reactive,
            period.setpoint_reactive_l2,
            period.setpoint_reactive_l3,
        ),
    }
    required, optional = _LIMITS_BY_MODE[mode]
    if "limit" in required and period.limit is None:
        bad("InvalidSetpoint", f"{where}: operationMode {mode} needs limit")
    if "setpoint" in required and period.setpoint is None:
        bad("InvalidSetpoint", f"{where}: operationMode {mode} needs setpoint")
    for name, is_present in present.items():
        if is_present and name not in required and name not in optional:
            bad("InvalidSetpoint", f"{where}: {name} is not allowed with operationMode {mode}")
    for name in ("limit", "limit_l2", "limit_l3"):
        value = getattr(period, name)
        if value is not None and value < 0:
            bad("InvalidValue", f"{where}: {name} {value} is negative (use setpoint/dischargeLimit in 2.1)")
    for name in ("discharge_limit", "discharge_limit_l2", "discharge_limit_l3"):
        value = getattr(period, name)
        if value is not None and value > 0:
            bad("InvalidValue", f"{where}: {name} {value} must be <= 0")
