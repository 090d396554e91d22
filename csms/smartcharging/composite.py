"""Composite schedules (K08 GetCompositeSchedule) and the instantaneous power envelope.

Used by the CSMS to predict what a station will do and by the station simulators to decide what power to
run at. Times are handled in whole seconds (everything is floored to the second, as stations do).

Resolution (OCPP 2.0.1 / 2.1 Part 2, K08 and section "Charging profile stacking"):

1. Applicable profiles. Items may be :class:`~csms.smartcharging.model.InstalledProfile` (then filtered:
   for ``evse_id`` > 0 the profiles installed on that EVSE and on evseId 0; for ``evse_id`` 0 those
   installed on evseId 0) or bare ``ChargingProfile`` objects (assumed to apply, the caller filtered).
   ``evse_id`` 0 means the grid connection: only the station-wide caps (ChargingStationMaxProfile,
   ChargingStationExternalConstraints) are applied; no summing over EVSEs is done. TxProfiles for another
   ``transaction_id`` (when one is given) are ignored. PriorityCharging profiles apply only when
   ``priority_charging=True`` (the EV driver / CSMS activated priority charging); LocalGeneration
   profiles are not used here.
2. A profile is active at instant ``t`` when ``validFrom <= t < validTo`` and ``t`` falls inside its
   first charging schedule (the others are ISO 15118 alternatives):

   * Absolute: periods are offsets from ``startSchedule``.
   * Relative: offsets from ``transaction_start``, or from the requested ``start`` when there is none.
   * Recurring Daily/Weekly: offsets from the latest recurrence ``startSchedule + k * 24 h`` (or 7 d),
     ``k`` any integer, in UTC (``useLocalTime`` is not applied); an occurrence ends at the next one.
   * Dynamic (2.1): like Absolute when ``startSchedule`` is present, otherwise like Relative.
   * A period lasts until the next ``startPeriod``; the schedule ends at ``duration`` when present
     (after that the profile is inactive and lower stack levels show through).

3. Within each purpose the active profile with the highest stackLevel wins (ties: EVSE-specific before
   station-wide, then the higher id). The *demand* is the TxProfile winner, else the TxDefaultProfile
   winner (TxProfile overrides TxDefaultProfile); an active PriorityCharging profile (when enabled)
   replaces both. The *caps* are the ChargingStationMaxProfile and ChargingStationExternalConstraints
   winners.

Power semantics, in the requested unit (positive = import/charge, negative = export/discharge). Each
instant yields an envelope ``(mode, limit C >= 0 | None, dischargeLimit D <= 0 | None, setpoint S | None)``
where ``None`` means "not constrained":

* ``ChargingOnly`` (or no operationMode, i.e. every 2.0.1 period) with ``limit`` L >= 0:
  ``C = L``, ``D = 0`` (no discharging), no setpoint.
* A negative ``limit`` L (the 2.0.1 vendor V2X convention, or the 2.1 "backwards compatibility" case) is
  read as "discharge at up to |L|": mode ``CentralSetpoint`` with ``S = L``, ``D = L``, ``C = 0``.
* ``Idle``: ``C = 0``, ``D = 0``, no setpoint (no energy transfer).
* ``CentralSetpoint`` / other 2.1 modes: ``S = setpoint``, ``C = limit``, ``D = dischargeLimit`` as given
  (absent bounds are unconstrained).
* No demand profile: ``ChargingOnly`` with ``C`` unconstrained and ``D = 0``.
* Caps bound the envelope: ``C = min(C, cap limit)`` -- a charging cap applies to the import side only;
  ``D = max(D, cap dischargeLimit)`` when a cap carries a ``dischargeLimit`` (the discharge magnitude is
  capped); a negative cap ``limit`` L is read as "import 0, discharge at most |L|". Caps never contribute
  a setpoint or an operation mode.
* Finally the setpoint is clamped into the envelope: ``S = min(S, C)`` if ``S > 0``, ``S = max(S, D)``
  if ``S < 0``.

Units: ``W`` is the total over phases, ``A`` is per phase; values are converted with
``W = A * voltage * phases`` where ``phases`` is the period's ``numberPhases`` if present, else the
``phases`` argument. 2.1 per-phase values (``_L2``/``_L3``) are folded into the total (W) or into the
average per-phase current (A). Adjacent periods with identical values are merged.

On the wire (:meth:`CompositeSchedule.to_wire`): 2.1 periods carry ``operationMode``, ``limit`` (C),
``setpoint`` (S) and, for modes other than ChargingOnly/Idle, ``dischargeLimit`` (D). 2.0.1 periods only
have ``limit``: the setpoint when there is one (a negative value being the vendor discharge convention),
0 for Idle, else C.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from csms.smartcharging.model import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedulePeriod,
    InstalledProfile,
    OcppVersion,
    OperationMode,
    RecurrencyKind,
    ensure_utc,
    format_datetime,
)

__all__ = [
    "CompositePeriod",
    "CompositeSchedule",
    "Setpoint",
    "composite_schedule",
    "effective_power_at",
    "next_change_after",
]

P = ChargingProfilePurpose
M = OperationMode

_DAY = 86_400
_WEEK = 7 * _DAY
_CAP_PURPOSES = (P.CHARGING_STATION_MAX_PROFILE, P.CHARGING_STATION_EXTERNAL_CONSTRAINTS)


@dataclass(frozen=True, slots=True)
class CompositePeriod:
    """One period of a composite schedule, values in the schedule's rate unit.

    ``limit``: import cap (>= 0) or ``None`` when unconstrained. ``discharge_limit``: export bound (<= 0),
    0 = no discharging, ``None`` = unconstrained. ``setpoint``: target (negative = discharge) or ``None``.
    """

    start_period: int
    operation_mode: OperationMode
    limit: float | None
    discharge_limit: float | None
    setpoint: float | None

    def to_wire(self, version: OcppVersion, *, default_limit: float | None = None) -> dict[str, Any]:
        """``ChargingSchedulePeriodType`` of a CompositeSchedule for ``version`` (see module docstring)."""
        out: dict[str, Any] = {"startPeriod": self.start_period}
        if version == "2.0.1":
            if self.setpoint is not None:
                value = self.setpoint
            elif self.operation_mode is M.IDLE:
                value = 0.0
            elif self.limit is not None:
                value = self.limit
            elif default_limit is not None:
                value = default_limit
            else:
                raise ValueError("an unconstrained period needs default_limit in OCPP 2.0.1")
            out["limit"] = _wire_num(value)
            return out
        out["operationMode"] = self.operation_mode.value
        limit = self.limit if self.limit is not None else default_limit
        if limit is not None:
            out["limit"] = _wire_num(limit)
        if self.discharge_limit is not None and self.operation_mode not in (M.CHARGING_ONLY, M.IDLE):
            out["dischargeLimit"] = _wire_num(min(self.discharge_limit, 0.0))
        if self.setpoint is not None:
            out["setpoint"] = _wire_num(self.setpoint)
        return out


@dataclass(frozen=True, slots=True)
class CompositeSchedule:
    """Result of :func:`composite_schedule`; ``periods`` start at offset 0 and never repeat values."""

    evse_id: int
    schedule_start: datetime
    duration: int
    charging_rate_unit: ChargingRateUnit
    periods: tuple[CompositePeriod, ...]

    def period_at(self, offset_s: int) -> CompositePeriod:
        """The period in force ``offset_s`` seconds after ``schedule_start``."""
        starts = [p.start_period for p in self.periods]
        return self.periods[max(bisect.bisect_right(starts, offset_s) - 1, 0)]

    def to_wire(self, version: OcppVersion, *, default_limit: float | None = None) -> dict[str, Any]:
        """``CompositeScheduleType`` (the ``schedule`` of a GetCompositeScheduleResponse)."""
        return {
            "evseId": self.evse_id,
            "duration": self.duration,
            "scheduleStart": format_datetime(self.schedule_start),
            "chargingRateUnit": self.charging_rate_unit.value,
            "chargingSchedulePeriod": [p.to_wire(version, default_limit=default_limit) for p in self.periods],
        }


@dataclass(frozen=True, slots=True)
class Setpoint:
    """What a station should do at one instant, in watts (see module docstring for the semantics).

    ``charge_limit_w``: import cap, ``None`` = no profile limit (run at hardware maximum).
    ``discharge_limit_w``: <= 0; 0 = must not discharge; ``None`` = no profile bound on discharging.
    ``setpoint_w``: power to follow (negative = discharge), ``None`` when the mode has no setpoint.
    """

    charge_limit_w: float | None
    discharge_limit_w: float | None
    setpoint_w: float | None
    operation_mode: OperationMode

    def target_power_w(self, *, max_charge_w: float, max_discharge_w: float) -> float:
        """The power to run at given the EV/EVSE capabilities (``max_discharge_w`` as a positive number).

        Idle -> 0; a setpoint is followed within the envelope and capabilities; otherwise the station
        charges at ``min(charge_limit_w, max_charge_w)``.
        """
        if self.operation_mode is M.IDLE:
            return 0.0
        upper = max_charge_w if self.charge_limit_w is None else min(max_charge_w, self.charge_limit_w)
        lower = -abs(max_discharge_w)
        if self.discharge_limit_w is not None:
            lower = max(lower, self.discharge_limit_w)
        upper = max(upper, 0.0)
        lower = min(lower, 0.0)
        if self.setpoint_w is not None:
            return min(max(self.setpoint_w, lower), upper)
        return upper


# ------------------------------------------------------------------------------------------ internals


@dataclass(frozen=True, slots=True)
class _Envelope:
    mode: OperationMode
    charge: float | None
    discharge: float | None
    setpoint: float | None


@dataclass(slots=True)
class _Prepared:
    profile: ChargingProfile
    evse_specific: bool
    valid_from: int | None
    valid_to: int | None
    starts: list[int]
    anchor: int | None
    recurrence: int | None
    duration: int | None

    def anchor_at(self, t: int) -> int | None:
        if self.recurrence is not None and self.anchor is not None:
            return self.anchor + ((t - self.anchor) // self.recurrence) * self.recurrence
        return self.anchor

    def active_index(self, t: int) -> int | None:
        if self.valid_from is not None and t < self.valid_from:
            return None
        if self.valid_to is not None and t >= self.valid_to:
            return None
        anchor = self.anchor_at(t)
        if anchor is None or t < anchor:
            return None
        offset = t - anchor
        if self.duration is not None and offset >= self.duration:
            return None
        index = bisect.bisect_right(self.starts, offset) - 1
        return index if index >= 0 else None

    def breakpoints(self, t0: int, t1: int) -> list[int]:
        points = [p for p in (self.valid_from, self.valid_to) if p is not None]
        first = self.anchor_at(t0)
        if first is None:
            return points
        anchors = [first]
        if self.recurrence is not None:
            a = first + self.recurrence
            while a < t1:
                anchors.append(a)
                a += self.recurrence
        for a in anchors:
            points.append(a)
            points.extend(a + s for s in self.starts)
            if self.duration is not None:
                points.append(a + self.duration)
        return points


def _epoch(value: datetime) -> int:
    return math.floor(ensure_utc(value).timestamp())


def _wire_num(value: float) -> float:
    rounded = round(value, 1)
    return 0.0 if rounded == 0 else rounded


def _prepare(
    item: ChargingProfile | InstalledProfile,
    evse_id: int,
    relative_anchor: int,
    transaction_id: str | None,
    priority_charging: bool,
) -> _Prepared | None:
    if isinstance(item, InstalledProfile):
        profile = item.profile
        if evse_id == 0 and item.evse_id != 0:
            return None
        if evse_id != 0 and item.evse_id not in (0, evse_id):
            return None
        evse_specific = item.evse_id != 0
    else:
        profile, evse_specific = item, False
    purpose = profile.purpose
    if purpose is P.LOCAL_GENERATION:
        return None
    if purpose is P.PRIORITY_CHARGING and not priority_charging:
        return None
    if evse_id == 0 and purpose not in _CAP_PURPOSES:
        return None
    if purpose is P.TX_PROFILE and transaction_id is not None and profile.transaction_id != transaction_id:
        return None
    if not profile.schedules or not profile.schedule.periods:
        return None
    schedule = profile.schedule
    kind = profile.kind
    recurrence = None
    if kind is ChargingProfileKind.RELATIVE:
        anchor: int | None = relative_anchor
    elif kind is ChargingProfileKind.DYNAMIC and schedule.start_schedule is None:
        anchor = relative_anchor
    else:
        anchor = _epoch(schedule.start_schedule) if schedule.start_schedule is not None else None
        if kind is ChargingProfileKind.RECURRING:
            recurrence = _WEEK if profile.recurrency_kind is RecurrencyKind.WEEKLY else _DAY
    duration = schedule.duration
    if recurrence is not None:
        duration = recurrence if duration is None else min(duration, recurrence)
    return _Prepared(
        profile=profile,
        evse_specific=evse_specific,
        valid_from=_epoch(profile.valid_from) if profile.valid_from is not None else None,
        valid_to=_epoch(profile.valid_to) if profile.valid_to is not None else None,
        starts=[p.start_period for p in schedule.periods],
        anchor=anchor,
        recurrence=recurrence,
        duration=duration,
    )


class _Converter:
    def __init__(self, target: ChargingRateUnit, voltage: float, phases: int) -> None:
        self.target = target
        self.voltage = voltage
        self.phases = phases

    def value(
        self,
        unit: ChargingRateUnit,
        period: ChargingSchedulePeriod,
        v: float | None,
        l2: float | None,
        l3: float | None,
    ) -> float | None:
        if v is None:
            return None
        if l2 is not None or l3 is not None:
            if unit is ChargingRateUnit.W:
                v = v + (l2 or 0.0) + (l3 or 0.0)
            else:
                values = [x for x in (v, l2, l3) if x is not None]
                v = sum(values) / len(values)
        if unit is not self.target:
            phases = period.number_phases if period.number_phases else self.phases
            factor = self.voltage * phases
            v = v * factor if unit is ChargingRateUnit.A else v / factor
        return round(v, 6)

    def period(self, unit: ChargingRateUnit, p: ChargingSchedulePeriod) -> tuple[float | None, ...]:
        return (
            self.value(unit, p, p.limit, p.limit_l2, p.limit_l3),
            self.value(unit, p, p.discharge_limit, p.discharge_limit_l2, p.discharge_limit_l3),
            self.value(unit, p, p.setpoint, p.setpoint_l2, p.setpoint_l3),
        )


def _demand(prep: _Prepared, index: int, conv: _Converter) -> _Envelope:
    period = prep.profile.schedule.periods[index]
    limit, discharge, setpoint = conv.period(prep.profile.schedule.charging_rate_unit, period)
    mode = period.effective_operation_mode
    if discharge is not None:
        discharge = min(discharge, 0.0)
    if mode is M.IDLE:
        return _Envelope(M.IDLE, 0.0, 0.0, None)
    if mode is M.CHARGING_ONLY:
        if limit is not None and limit < 0:
            return _Envelope(M.CENTRAL_SETPOINT, 0.0, limit, limit)
        return _Envelope(M.CHARGING_ONLY, limit, 0.0, None)
    if limit is not None and limit < 0:
        discharge = limit if discharge is None else max(discharge, limit)
        limit = 0.0
    return _Envelope(mode, limit, discharge, setpoint)


def _cap(prep: _Prepared, index: int, conv: _Converter) -> tuple[float | None, float | None]:
    period = prep.profile.schedule.periods[index]
    limit, discharge, _setpoint = conv.period(prep.profile.schedule.charging_rate_unit, period)
    if discharge is not None:
        discharge = min(discharge, 0.0)
    if limit is not None and limit < 0:
        return 0.0, limit if discharge is None else max(discharge, limit)
    return limit, discharge


def _envelope_at(t: int, prepared: Sequence[_Prepared], conv: _Converter, priority: bool) -> _Envelope:
    winners: dict[ChargingProfilePurpose, tuple[_Prepared, int]] = {}
    for prep in prepared:
        purpose = prep.profile.purpose
        if purpose in winners:
            continue
        index = prep.active_index(t)
        if index is not None:
            winners[purpose] = (prep, index)
    demand_src = None
    for purpose in ((P.PRIORITY_CHARGING,) if priority else ()) + (P.TX_PROFILE, P.TX_DEFAULT_PROFILE):
        if purpose in winners:
            demand_src = winners[purpose]
            break
    env = _demand(*demand_src, conv) if demand_src else _Envelope(M.CHARGING_ONLY, None, 0.0, None)
    charge, discharge, setpoint = env.charge, env.discharge, env.setpoint
    for purpose in _CAP_PURPOSES:
        if purpose not in winners:
            continue
        cap_charge, cap_discharge = _cap(*winners[purpose], conv)
        if cap_charge is not None:
            charge = cap_charge if charge is None else min(charge, cap_charge)
        if cap_discharge is not None:
            discharge = cap_discharge if discharge is None else max(discharge, cap_discharge)
    if setpoint is not None:
        if setpoint > 0 and charge is not None:
            setpoint = min(setpoint, charge)
        elif setpoint < 0 and discharge is not None:
            setpoint = max(setpoint, discharge)
    return _Envelope(env.mode, charge, discharge, setpoint)


def _prepare_all(
    profiles: Sequence[ChargingProfile | InstalledProfile],
    evse_id: int,
    relative_anchor: int,
    transaction_id: str | None,
    priority_charging: bool,
) -> list[_Prepared]:
    prepared = [
        p
        for p in (_prepare(i, evse_id, relative_anchor, transaction_id, priority_charging) for i in profiles)
        if p is not None
    ]
    prepared.sort(key=lambda p: (p.profile.stack_level, p.evse_specific, p.profile.id), reverse=True)
    return prepared


def composite_schedule(
    profiles: Sequence[ChargingProfile | InstalledProfile],
    *,
    evse_id: int,
    start: datetime,
    duration_s: int,
    rate_unit: ChargingRateUnit | str,
    transaction_start: datetime | None,
    now: datetime,
    voltage: float = 230.0,
    phases: int = 3,
    transaction_id: str | None = None,
    priority_charging: bool = False,
) -> CompositeSchedule:
    """The composite schedule for ``evse_id`` over ``[start, start + duration_s)`` (K08).

    ``now`` is the station clock (a start in the past is evaluated as given; callers answering
    GetCompositeSchedule pass ``start=now``). See the module docstring for the semantics.
    """
    ensure_utc(now)
    if duration_s <= 0:
        raise ValueError("duration_s must be positive")
    unit = ChargingRateUnit(rate_unit)
    t0 = _epoch(start)
    t1 = t0 + duration_s
    anchor = _epoch(transaction_start) if transaction_start is not None else t0
    prepared = _prepare_all(profiles, evse_id, anchor, transaction_id, priority_charging)
    conv = _Converter(unit, voltage, phases)
    points = {t0}
    for prep in prepared:
        points.update(p for p in prep.breakpoints(t0, t1) if t0 < p < t1)
    periods: list[CompositePeriod] = []
    for t in sorted(points):
        env = _envelope_at(t, prepared, conv, priority_charging)
        period = CompositePeriod(t - t0, env.mode, env.charge, env.discharge, env.setpoint)
        if periods and _same(periods[-1], period):
            continue
        periods.append(period)
    return CompositeSchedule(
        evse_id=evse_id,
        schedule_start=datetime.fromtimestamp(t0, UTC),
        duration=duration_s,
        charging_rate_unit=unit,
        periods=tuple(periods),
    )


def _same(a: CompositePeriod, b: CompositePeriod) -> bool:
    return (a.operation_mode, a.limit, a.discharge_limit, a.setpoint) == (
        b.operation_mode,
        b.limit,
        b.discharge_limit,
        b.setpoint,
    )


def effective_power_at(
    profiles: Sequence[ChargingProfile | InstalledProfile],
    *,
    evse_id: int,
    at: datetime,
    transaction_start: datetime | None = None,
    transaction_id: str | None = None,
    voltage: float = 230.0,
    phases: int = 3,
    priority_charging: bool = False,
) -> Setpoint:
    """The power envelope in watts at instant ``at`` (what a simulated station runs at).

    Relative profiles are anchored at ``transaction_start`` (or ``at`` when there is none).
    """
    t = _epoch(at)
    anchor = _epoch(transaction_start) if transaction_start is not None else t
    prepared = _prepare_all(profiles, evse_id, anchor, transaction_id, priority_charging)
    env = _envelope_at(t, prepared, _Converter(ChargingRateUnit.W, voltage, phases), priority_charging)
    return Setpoint(
        charge_limit_w=env.charge,
        discharge_limit_w=env.discharge,
        setpoint_w=env.setpoint,
        operation_mode=env.mode,
    )


def next_change_after(
    profiles: Sequence[ChargingProfile | InstalledProfile],
    *,
    evse_id: int,
    at: datetime,
    horizon_s: int = 7 * _DAY,
    transaction_start: datetime | None = None,
    transaction_id: str | None = None,
) -> datetime | None:
    """The first instant after ``at`` (within ``horizon_s``) where a profile boundary lies, or ``None``.

    Lets a simulator sleep until the envelope may change instead of polling.
    """
    t0 = _epoch(at)
    t1 = t0 + horizon_s
    anchor = _epoch(transaction_start) if transaction_start is not None else t0
    prepared = _prepare_all(profiles, evse_id, anchor, transaction_id, True)
    candidates = [p for prep in prepared for p in prep.breakpoints(t0, t1) if t0 < p < t1]
    return datetime.fromtimestamp(min(candidates), UTC) if candidates else None
