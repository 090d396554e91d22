"""K01 SetChargingProfile: the checks a station applies before accepting a profile.

Pure functions shared by the CSMS (to check a profile before sending it) and by the station simulators
(to decide between ``Accepted`` and ``Rejected`` like real firmware). Input is the SetChargingProfileRequest
payload as a wire dict; output is a list of :class:`Violation` (empty = acceptable).

Requirements implemented (OCPP 2.0.1 Part 2 / OCPP 2.1 Part 2, use case K01 unless noted):

* K01.FR.03  a TxProfile carries ``transactionId``; other purposes do not (field description).
* K01.FR.05  a profile with the ``id`` of an installed one replaces it (see :func:`replaced_profiles`),
  except that a ChargingStationExternalConstraints profile is never replaced from the CSMS.
* K01.FR.06  no two profiles with the same purpose and stackLevel on the same EVSE with an overlapping
  validity period (non-TxProfile purposes).
* K01.FR.09 / K01.FR.33  a TxProfile needs an active transaction on that EVSE with that transactionId.
* K01.FR.16  a TxProfile is never set on evseId 0.
* K01.FR.19  ``phaseToUse`` only together with ``numberPhases`` = 1.
* K01.FR.26  ``chargingRateUnit`` must be listed in ``SmartChargingCtrlr.RateUnit``.
* K01.FR.28  the EVSE must exist.
* K01.FR.31 / K01.FR.35  first ``startPeriod`` is 0, then strictly increasing.
* K01.FR.38  ChargingStationMaxProfile is never Relative (and, per its purpose, only on evseId 0).
* K01.FR.39  no two TxProfiles with the same stackLevel for the same transaction.
* K01.FR.40 / K01.FR.41  Absolute/Recurring need ``startSchedule``; Relative must not have it.
* K01.FR.53  a station-wide TxDefaultProfile (evseId 0) and an EVSE-specific one may not share a stackLevel.
* K01.FR.70 / K01.FR.71 (2.1)  PriorityCharging: no schedule duration, only ``ChargingOnly`` periods.
* K01.FR.81 (2.1)  ids up to ``MaxExternalConstraintsId`` are reserved for external constraints.
* K01.FR.95 (2.1)  ``randomizedDelay`` only in TxProfile / TxDefaultProfile.
* K01.FR.120 / K01.FR.121 / K01.FR.122 (2.1)  additional purposes and the Dynamic kind only when the
  station supports them; ``dynUpdateInterval``/``dynUpdateTime`` only for Dynamic profiles.
* 2.1 operation modes (the tables "operationMode for various ChargingProfilePurposes" and "limits and
  setpoints per operation mode", Q08/Q10, and their value rules): :mod:`csms.smartcharging.operation_modes`.
* 2.0.1: a negative ``limit`` is only accepted when the station uses the documented vendor V2X
  convention (``StationLimits.allow_negative_limits``), on a TxProfile/TxDefaultProfile in ``W``.
* SmartChargingCtrlr limits: ``ProfileStackLevel`` (max stackLevel), ``PeriodsPerSchedule`` (max
  periods), ``Entries`` (max installed profiles).
* ``validFrom`` < ``validTo``; a profile whose ``validTo`` is already past is refused.

Reason codes (``Violation.code``, at most 20 characters, usable as ``statusInfo.reasonCode``) are listed
in :data:`REASON_CODES`. ``FormatViolation`` means the payload is not even structurally valid for the
version; a station would answer that with a CALLERROR rather than ``Rejected``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.smartcharging.model import (
    V201_KINDS,
    V201_PURPOSES,
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    InstalledProfile,
    ModelError,
    OcppVersion,
    OperationMode,
    ensure_utc,
    parse_set_charging_profile,
)
from csms.smartcharging.operation_modes import ALLOWED_MODES_BY_PURPOSE, check_period_v21

__all__ = [
    "ALLOWED_MODES_BY_PURPOSE",
    "REASON_CODES",
    "InstalledProfile",
    "StationLimits",
    "Violation",
    "apply_set_charging_profile",
    "check_set_charging_profile",
    "rejection_response",
    "replaced_profiles",
]

P = ChargingProfilePurpose
K = ChargingProfileKind
M = OperationMode

REASON_CODES: dict[str, str] = {
    "FormatViolation": "payload is not structurally valid for this OCPP version",
    "InvalidProfile": "purpose / evseId / transactionId combination not allowed",
    "InvalidProfileId": "profile id reserved for external constraints",
    "InvalidSchedule": "schedule structure wrong (startPeriod, startSchedule, recurrencyKind, duration)",
    "InvalidStackLevel": "stackLevel negative or above SmartChargingCtrlr.ProfileStackLevel",
    "InvalidValue": "a number or time out of range (negative limit, dischargeLimit > 0, validity)",
    "InvalidSetpoint": "limit/setpoint fields do not match the operationMode",
    "TxNotFound": "no active transaction with that transactionId on that EVSE",
    "UnknownEvse": "evseId does not exist on the station",
    "UnsupportedRateUnit": "chargingRateUnit not in SmartChargingCtrlr.RateUnit",
    "UnsupportedPurpose": "purpose not supported by this station / version",
    "UnsupportedKind": "chargingProfileKind not supported by this station / version",
    "UnsupportedMode": "operationMode not supported by the station or not allowed for the purpose",
    "DuplicateProfile": "conflicts with an installed profile (same stackLevel)",
    "TooManyPeriods": "more periods than SmartChargingCtrlr.PeriodsPerSchedule",
    "TooManyProfiles": "more installed profiles than SmartChargingCtrlr.Entries",
}

_V201_PROFILE_KEYS = frozenset(
    {
        "customData",
        "id",
        "stackLevel",
        "chargingProfilePurpose",
        "chargingProfileKind",
        "recurrencyKind",
        "validFrom",
        "validTo",
        "chargingSchedule",
        "transactionId",
    }
)
_V201_SCHEDULE_KEYS = frozenset(
    {
        "customData",
        "id",
        "startSchedule",
        "duration",
        "chargingRateUnit",
        "chargingSchedulePeriod",
        "minChargingRate",
        "salesTariff",
    }
)
_V201_PERIOD_KEYS = frozenset({"customData", "startPeriod", "limit", "numberPhases", "phaseToUse"})

_MAX_CODE = 20
_MAX_MESSAGE = 512


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule. ``code`` fits ``statusInfo.reasonCode`` (<= 20 chars), ``message`` fits
    ``statusInfo.additionalInfo`` (<= 512 chars, the 2.0.1 bound), ``requirement`` names the OCPP
    requirement id where one exists."""

    code: str
    message: str
    requirement: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", self.code[:_MAX_CODE])
        object.__setattr__(self, "message", self.message[:_MAX_MESSAGE])

    def status_info(self) -> dict[str, str]:
        """``StatusInfoType`` for a Rejected response."""
        info = f"{self.requirement}: {self.message}" if self.requirement else self.message
        return {"reasonCode": self.code, "additionalInfo": info[:_MAX_MESSAGE]}


@dataclass(frozen=True, slots=True, kw_only=True)
class StationLimits:
    """What a station supports, as read from its device model (SmartChargingCtrlr and friends).

    ``None`` for an optional capability means "not reported": the corresponding check is skipped.
    ``allow_negative_limits`` enables the documented 2.0.1 vendor V2X convention (negative ``limit`` =
    discharge at up to ``|limit|``).
    """

    max_stack_level: int
    max_periods: int
    rate_units: frozenset[str] = frozenset({"A", "W"})
    max_profiles: int | None = None
    supported_operation_modes: frozenset[str] | None = None
    supports_dynamic: bool = False
    num_evses: int | None = None
    allow_negative_limits: bool = False
    supported_additional_purposes: frozenset[str] | None = None
    max_external_constraints_id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate_units", frozenset(str(u) for u in self.rate_units))
        for name in ("supported_operation_modes", "supported_additional_purposes"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, frozenset(str(v) for v in value))


def _num_ok(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _overlap(a: ChargingProfile, b: ChargingProfile) -> bool:
    a_from, a_to = a.valid_from, a.valid_to
    b_from, b_to = b.valid_from, b.valid_to
    if a_to is not None and b_from is not None and a_to <= b_from:
        return False
    return not (b_to is not None and a_from is not None and b_to <= a_from)


def replaced_profiles(
    request: Mapping[str, Any] | ChargingProfile, installed: Iterable[InstalledProfile]
) -> list[InstalledProfile]:
    """The installed profiles a new one replaces (K01.FR.05): those with the same ``id``.

    Profile ids are unique within a station, so the match ignores evseId and purpose. An installed
    ChargingStationExternalConstraints profile is never replaced this way (the CSMS cannot overwrite an
    external actor's constraint; :func:`check_set_charging_profile` refuses such a request).
    """
    profile = request if isinstance(request, ChargingProfile) else parse_set_charging_profile(request)[1]
    external = P.CHARGING_STATION_EXTERNAL_CONSTRAINTS
    same_id = (inst for inst in installed if inst.profile.id == profile.id)
    return [inst for inst in same_id if inst.profile.purpose is not external]


def apply_set_charging_profile(
    request: Mapping[str, Any],
    installed: Sequence[InstalledProfile],
    *,
    parsed: tuple[int, ChargingProfile] | None = None,
) -> list[InstalledProfile]:
    """The station's profile list after accepting ``request``: replaced ones removed, new one appended.
    ``parsed``: ``parse_set_charging_profile(request)`` when the caller has it already."""
    new = InstalledProfile(*parsed) if parsed is not None else InstalledProfile.from_request(request)
    gone = {id(p) for p in replaced_profiles(new.profile, installed)}
    return [p for p in installed if id(p) not in gone] + [new]


def rejection_response(violations: Sequence[Violation], version: OcppVersion = "2.0.1") -> dict[str, Any]:
    """A SetChargingProfileResponse payload: ``Accepted`` if there is no violation, else ``Rejected``
    with the first violation as ``statusInfo``."""
    if not violations:
        return {"status": "Accepted"}
    info = violations[0].status_info()
    if len(violations) > 1:
        extra = "; ".join(v.code for v in violations[1:])
        limit = 512 if version == "2.0.1" else 1024
        info["additionalInfo"] = f"{info['additionalInfo']} (also: {extra})"[:limit]
    return {"status": "Rejected", "statusInfo": info}


def check_set_charging_profile(
    request: Mapping[str, Any],
    *,
    version: OcppVersion,
    limits: StationLimits,
    installed: Sequence[InstalledProfile] = (),
    active_transactions: Mapping[int, str] | None = None,
    now: datetime,
    from_csms: bool = True,
    parsed: tuple[int, ChargingProfile] | None = None,
) -> list[Violation]:
    """Check a SetChargingProfileRequest payload against the K01 rules; return every violation found.

    ``active_transactions`` maps evseId to the transactionId running on it. ``from_csms=False`` lets a
    station install a ChargingStationExternalConstraints profile for an external actor (EMS) with the
    same checks. The checks assume nothing about schema validity; structural problems are reported as
    ``FormatViolation``. ``parsed``: ``parse_set_charging_profile(request)`` when the caller has it.
    """
    if version not in ("2.0.1", "2.1"):
        raise ValueError(f"unknown OCPP version {version!r}")
    if parsed is not None:
        evse_id, profile = parsed
    else:
        try:
            evse_id, profile = parse_set_charging_profile(request)
        except ModelError as exc:
            return [Violation("FormatViolation", str(exc))]
    now = ensure_utc(now)
    active = dict(active_transactions or {})
    out: list[Violation] = []

    def bad(code: str, message: str, requirement: str | None = None) -> None:
        out.append(Violation(code, message, requirement))

    if version == "2.0.1":
        _check_v201_shape(request, profile, bad)
    _check_evse_and_id(evse_id, profile, version, limits, installed, bad)
    _check_purpose(evse_id, profile, version, limits, active, from_csms, bad)
    _check_kind_and_validity(profile, version, limits, now, bad)
    _check_schedules(profile, version, limits, bad)
    _check_conflicts(evse_id, profile, limits, installed, bad)
    return out


# ------------------------------------------------------------------------------------------- checks


def _check_v201_shape(request: Mapping[str, Any], profile: ChargingProfile, bad: Any) -> None:
    raw = request.get("chargingProfile", {})
    for key in sorted(set(raw) - _V201_PROFILE_KEYS):
        bad("FormatViolation", f"chargingProfile.{key} does not exist in OCPP 2.0.1")
    for i, sched in enumerate(raw.get("chargingSchedule", [])):
        for key in sorted(set(sched) - _V201_SCHEDULE_KEYS):
            bad("FormatViolation", f"chargingSchedule[{i}].{key} does not exist in OCPP 2.0.1")
        for j, period in enumerate(sched.get("chargingSchedulePeriod", [])):
            for key in sorted(set(period) - _V201_PERIOD_KEYS):
                bad(
                    "FormatViolation",
                    f"chargingSchedule[{i}].chargingSchedulePeriod[{j}].{key} does not exist in OCPP 2.0.1",
                )
            if "limit" not in period:
                bad(
                    "FormatViolation",
                    f"chargingSchedule[{i}].chargingSchedulePeriod[{j}].limit is required in OCPP 2.0.1",
                )
    if profile.purpose not in V201_PURPOSES:
        bad("UnsupportedPurpose", f"purpose {profile.purpose} does not exist in OCPP 2.0.1")
    if profile.kind not in V201_KINDS:
        bad("UnsupportedKind", f"kind {profile.kind} does not exist in OCPP 2.0.1")


def _check_evse_and_id(
    evse_id: int,
    profile: ChargingProfile,
    version: OcppVersion,
    limits: StationLimits,
    installed: Sequence[InstalledProfile],
    bad: Any,
) -> None:
    if evse_id < 0:
        bad("UnknownEvse", f"evseId {evse_id} is negative", "K01.FR.28")
    elif limits.num_evses is not None and evse_id > limits.num_evses:
        bad("UnknownEvse", f"evseId {evse_id} does not exist (station has {limits.num_evses})", "K01.FR.28")
    if (
        version == "2.1"
        and limits.max_external_constraints_id is not None
        and profile.id <= limits.max_external_constraints_id
        and profile.purpose is not P.CHARGING_STATION_EXTERNAL_CONSTRAINTS
    ):
        bad(
            "InvalidProfileId",
            f"profile id {profile.id} <= MaxExternalConstraintsId {limits.max_external_constraints_id}",
            "K01.FR.81",
        )
    for inst in installed:
        if (
            inst.profile.id == profile.id
            and inst.profile.purpose is P.CHARGING_STATION_EXTERNAL_CONSTRAINTS
            and profile.purpose is not P.CHARGING_STATION_EXTERNAL_CONSTRAINTS
        ):
            bad("DuplicateProfile", f"profile id {profile.id} belongs to an external constraint", "K01.FR.05")
    if profile.stack_level < 0:
        bad("InvalidStackLevel", f"stackLevel {profile.stack_level} is negative")
    elif profile.stack_level > limits.max_stack_level:
        bad(
            "InvalidStackLevel",
            f"stackLevel {profile.stack_level} exceeds ProfileStackLevel {limits.max_stack_level}",
        )


def _check_purpose(
    evse_id: int,
    profile: ChargingProfile,
    version: OcppVersion,
    limits: StationLimits,
    active: Mapping[int, str],
    from_csms: bool,
    bad: Any,
) -> None:
    purpose = profile.purpose
    if purpose is P.CHARGING_STATION_EXTERNAL_CONSTRAINTS and from_csms:
        bad("InvalidProfile", "ChargingStationExternalConstraints is set by an external actor, not the CSMS")
    if purpose is P.CHARGING_STATION_MAX_PROFILE:
        if evse_id != 0:
            bad("InvalidProfile", f"ChargingStationMaxProfile only on evseId 0 (got {evse_id})")
        if profile.kind is K.RELATIVE:
            bad("InvalidProfile", "ChargingStationMaxProfile cannot be Relative", "K01.FR.38")
    if purpose is P.TX_PROFILE:
        if evse_id == 0:
            bad("InvalidProfile", "TxProfile requires evseId > 0", "K01.FR.16")
        if profile.transaction_id is None:
            bad("InvalidProfile", "TxProfile without transactionId", "K01.FR.03")
        elif evse_id > 0:
            running = active.get(evse_id)
            if running is None:
                bad("TxNotFound", f"no active transaction on EVSE {evse_id}", "K01.FR.09")
            elif running != profile.transaction_id:
                bad(
                    "TxNotFound",
                    f"transaction {profile.transaction_id!r} is not active on EVSE {evse_id}",
                    "K01.FR.33",
                )
    elif profile.transaction_id is not None:
        bad("InvalidProfile", f"transactionId is only allowed in a TxProfile, not {purpose}", "K01.FR.03")
    if profile.transaction_id is not None and len(profile.transaction_id) > 36:
        bad("FormatViolation", "transactionId is longer than 36 characters")
    if version == "2.1" and purpose in (P.PRIORITY_CHARGING, P.LOCAL_GENERATION):
        supported = limits.supported_additional_purposes
        if supported is not None and purpose.value not in supported:
            bad("UnsupportedPurpose", f"{purpose} not in SupportedAdditionalPurposes", "K01.FR.120")
        if purpose is P.PRIORITY_CHARGING and any(s.duration is not None for s in profile.schedules):
            bad("InvalidSchedule", "a PriorityCharging schedule has no duration", "K01.FR.70")


def _check_kind_and_validity(
    profile: ChargingProfile, version: OcppVersion, limits: StationLimits, now: datetime, bad: Any
) -> None:
    kind = profile.kind
    if version == "2.1":
        if kind is K.DYNAMIC and not limits.supports_dynamic:
            bad("UnsupportedKind", "Dynamic profiles not supported (SupportsDynamicProfiles)", "K01.FR.121")
        if kind is not K.DYNAMIC and (profile.dyn_update_interval is not None or profile.dyn_update_time):
            bad("InvalidProfile", "dynUpdateInterval/dynUpdateTime only for Dynamic profiles", "K01.FR.122")
    if kind is K.RECURRING and profile.recurrency_kind is None:
        bad("InvalidSchedule", "Recurring profile without recurrencyKind")
    for i, sched in enumerate(profile.schedules):
        if kind in (K.ABSOLUTE, K.RECURRING) and sched.start_schedule is None:
            bad("InvalidSchedule", f"{kind} profile needs startSchedule (chargingSchedule[{i}])", "K01.FR.40")
        if kind is K.RELATIVE and sched.start_schedule is not None:
            bad(
                "InvalidSchedule",
                f"Relative profile must not have startSchedule (chargingSchedule[{i}])",
                "K01.FR.41",
            )
    valid_from, valid_to = profile.valid_from, profile.valid_to
    if valid_from is not None and valid_to is not None and valid_from >= valid_to:
        bad("InvalidValue", "validFrom must be before validTo")
    elif valid_to is not None and valid_to <= now:
        bad("InvalidValue", "validTo is in the past: the profile would never apply")
    if profile.max_offline_duration is not None and profile.max_offline_duration < 0:
        bad("InvalidValue", "maxOfflineDuration must not be negative")
    if profile.dyn_update_interval is not None and profile.dyn_update_interval < 0:
        bad("InvalidValue", "dynUpdateInterval must not be negative")


def _check_schedules(profile: ChargingProfile, version: OcppVersion, limits: StationLimits, bad: Any) -> None:
    purpose = profile.purpose
    allowed_modes = ALLOWED_MODES_BY_PURPOSE[purpose]
    supported_modes = limits.supported_operation_modes
    for i, sched in enumerate(profile.schedules):
        where = f"chargingSchedule[{i}]"
        unit = sched.charging_rate_unit
        if unit.value not in limits.rate_units:
            bad(
                "UnsupportedRateUnit",
                f"{where}: rate unit {unit} not in RateUnit {sorted(limits.rate_units)}",
                "K01.FR.26",
            )
        n = len(sched.periods)
        if n == 0:
            bad("InvalidSchedule", f"{where} has no periods")
            continue
        if n > limits.max_periods:
            bad("TooManyPeriods", f"{where} has {n} periods, PeriodsPerSchedule is {limits.max_periods}")
        if sched.duration is not None and sched.duration <= 0:
            bad("InvalidSchedule", f"{where}.duration must be positive")
        if (
            sched.randomized_delay is not None
            and sched.randomized_delay > 0
            and purpose not in (P.TX_PROFILE, P.TX_DEFAULT_PROFILE)
        ):
            bad("InvalidSchedule", f"{where}: randomizedDelay only in Tx/TxDefault profiles", "K01.FR.95")
        if sched.min_charging_rate is not None and not _num_ok(sched.min_charging_rate):
            bad("InvalidValue", f"{where}.minChargingRate is not a finite number")
        if sched.periods[0].start_period != 0:
            bad("InvalidSchedule", f"{where}: first startPeriod must be 0", "K01.FR.31")
        for j in range(1, n):
            if sched.periods[j].start_period <= sched.periods[j - 1].start_period:
                bad(
                    "InvalidSchedule",
                    f"{where}: startPeriod must increase strictly (period {j})",
                    "K01.FR.35",
                )
                break
        for j, period in enumerate(sched.periods):
            pw = f"{where}.chargingSchedulePeriod[{j}]"
            if not all(_num_ok(v) for v in period.numeric_values()):
                bad("InvalidValue", f"{pw}: non-finite number")
                continue
            if period.number_phases is not None and not 0 <= period.number_phases <= 3:
                bad("InvalidValue", f"{pw}.numberPhases must be 1..3")
            if period.phase_to_use is not None and period.number_phases != 1:
                bad("InvalidValue", f"{pw}.phaseToUse needs numberPhases = 1", "K01.FR.19")
            if version == "2.0.1":
                _check_period_v201(period.limit, unit, purpose, limits, pw, bad)
            else:
                check_period_v21(period, allowed_modes, supported_modes, purpose, pw, bad)


def _check_period_v201(
    limit: float | None,
    unit: ChargingRateUnit,
    purpose: ChargingProfilePurpose,
    limits: StationLimits,
    where: str,
    bad: Any,
) -> None:
    if limit is None or limit >= 0:
        return
    if not limits.allow_negative_limits:
        bad("InvalidValue", f"{where}: negative limit {limit} (station has no V2X discharge convention)")
    elif purpose not in (P.TX_PROFILE, P.TX_DEFAULT_PROFILE) or unit is not ChargingRateUnit.W:
        bad("InvalidValue", f"{where}: negative limit (discharge) only in a TxProfile/TxDefaultProfile in W")


def _check_conflicts(
    evse_id: int,
    profile: ChargingProfile,
    limits: StationLimits,
    installed: Sequence[InstalledProfile],
    bad: Any,
) -> None:
    replaced = {id(p) for p in replaced_profiles(profile, installed)}
    others = [inst for inst in installed if id(inst) not in replaced]
    for inst in others:
        other = inst.profile
        if other.id == profile.id or other.stack_level != profile.stack_level:
            continue
        if other.purpose is not profile.purpose:
            continue
        if profile.purpose is P.TX_PROFILE:
            if other.transaction_id == profile.transaction_id:
                bad(
                    "DuplicateProfile",
                    f"TxProfile {other.id} already uses stackLevel {profile.stack_level} "
                    f"for transaction {profile.transaction_id!r}",
                    "K01.FR.39",
                )
        elif inst.evse_id == evse_id:
            if _overlap(other, profile):
                bad(
                    "DuplicateProfile",
                    f"{profile.purpose} {other.id} uses stackLevel {profile.stack_level} on EVSE {evse_id}",
                    "K01.FR.06",
                )
        elif profile.purpose is P.TX_DEFAULT_PROFILE and (inst.evse_id == 0) != (evse_id == 0):
            bad(
                "DuplicateProfile",
                f"TxDefaultProfile {other.id} on EVSE {inst.evse_id} uses stackLevel {profile.stack_level}",
                "K01.FR.53",
            )
    if limits.max_profiles is not None and len(others) + 1 > limits.max_profiles:
        bad("TooManyProfiles", f"station holds at most {limits.max_profiles} profiles (Entries)")
