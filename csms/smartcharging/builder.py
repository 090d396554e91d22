"""CSMS-side builder: turn a power intent into a SetChargingProfileRequest a station will accept.

A :class:`PowerIntent` is a list of ``(offset_s, power_w)`` steps from ``start`` (positive = charge,
negative = discharge). :func:`build_set_charging_profile` maps it onto the station's OCPP version and
capabilities, runs the K01 checks (:func:`csms.smartcharging.k01.check_set_charging_profile`) and the
official JSON schema of the station's version, and raises :class:`BuilderError` instead of returning
something the station would reject.

Normalisation: steps are sorted by offset; if the first offset is not 0, ``startSchedule`` moves to
``start + first offset`` (K01.FR.31 wants the first ``startPeriod`` to be 0) and ``duration`` shrinks
accordingly; steps at or beyond ``duration`` are dropped; powers are rounded to one decimal (the
schema's "at most one digit fraction"); consecutive steps that map onto identical periods are merged. If
more than ``max_periods`` (``SmartChargingCtrlr.PeriodsPerSchedule``) remain: ``BuilderError``
``TooManyPeriods``. The profile is always ``Absolute`` with a single schedule (id 1).

OCPP 2.1 (standard V2X, Q block), in ``W``:

* intent without discharge: ``ChargingOnly`` periods with ``limit`` = power (a charge cap, the classic
  smart-charging meaning);
* intent with discharge: every non-zero period is ``CentralSetpoint`` with ``setpoint`` = power and the
  bounds ``limit = max(power, 0)`` and ``dischargeLimit = min(power, 0)``: the bounds are tight, so a
  station following the setpoint may not overshoot into more import or more export than asked for, and
  a discharge period can never import (and vice versa);
* power 0: ``Idle`` (no limits/setpoints, as the 2.1 table requires) when the station supports it,
  otherwise ``CentralSetpoint`` 0 in a discharging profile or ``ChargingOnly`` with ``limit`` 0;
* a profile containing discharge gets ``maxOfflineDuration`` (the intent's, else
  :data:`DEFAULT_MAX_OFFLINE_DURATION_S`) and ``invalidAfterOfflineDuration = true``, so the station
  stops discharging when the CSMS is gone; a charge-only profile gets ``maxOfflineDuration`` only if the
  intent asks for it.

A ``ChargingStationMaxProfile`` intent (site load balancing, :mod:`csms.sites`) is a charging cap on
evseId 0: ``ChargingOnly`` periods (also at 0 W), no discharge, and never a ``maxOfflineDuration`` --
the station keeps the cap while it is offline.

OCPP 2.0.1 (no standard discharge), in ``W``:

* without a V2X adapter: ``limit`` = power; a negative power raises ``BuilderError("CannotDischarge",
  "station cannot discharge")``;
* adapter ``"negative-limit"`` (vendor convention, selected per station model): ``limit`` = power, a
  negative limit meaning "discharge at up to |limit|", and every negative period carries
  ``customData = {"vendorId": "org.openv2g.negativeLimit", "mode": "discharge"}`` (the schema allows
  extra keys in ``customData``). 2.0.1 has no ``maxOfflineDuration``: bound discharges with
  ``duration_s`` instead.

A station that lists only ``A`` in ``SmartChargingCtrlr.RateUnit`` gets a charge-only intent in amperes
per phase (``W / (voltage * phases)``, with ``numberPhases``); discharging always needs ``W``.

:class:`ProfileAllocator` owns the dispatch profile ids (a reserved range, by default ``>= 1_000_000``)
and the dispatch stack level, so dispatch profiles replace each other by id and can be cleared by id
without touching the operator's profiles.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from csms.smartcharging.k01 import StationLimits, check_set_charging_profile
from csms.smartcharging.model import (
    ChargingProfilePurpose,
    InstalledProfile,
    OcppVersion,
    OperationMode,
    ensure_utc,
    format_datetime,
)
from csms.smartcharging.schema import WireValidationError, validate_wire

__all__ = [
    "DEFAULT_MAX_OFFLINE_DURATION_S",
    "DISCHARGE_VENDOR_ID",
    "DISPATCH_PROFILE_ID_BASE",
    "V2X_ADAPTERS",
    "Allocation",
    "BuilderError",
    "PowerIntent",
    "ProfileAllocator",
    "StationCapabilities",
    "WireValidationError",
    "build_dispatch_profile",
    "build_set_charging_profile",
    "normalize_periods",
    "validate_wire",
]

P = ChargingProfilePurpose
M = OperationMode

DISCHARGE_VENDOR_ID = "org.openv2g.negativeLimit"
V2X_ADAPTERS: frozenset[str] = frozenset({"negative-limit"})
DISPATCH_PROFILE_ID_BASE = 1_000_000
DEFAULT_MAX_OFFLINE_DURATION_S = 300
_INT32_MAX = 2**31 - 1


class BuilderError(Exception):
    """The intent cannot be sent to this station. ``code`` is a K01 reason code (see
    :data:`csms.smartcharging.k01.REASON_CODES`) or one of the builder's own: ``CannotDischarge``
    (2.0.1 station without V2X adapter), ``InvalidIntent`` (malformed intent), ``IdExhausted``
    (allocator range full)."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.message = message or code
        super().__init__(f"{code}: {self.message}" if message else code)


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerIntent:
    """What the dispatcher wants an EVSE to do: ``(offset_s, power_w)`` steps from ``start``."""

    evse_id: int
    start: datetime
    periods: Sequence[tuple[int, float]]
    purpose: ChargingProfilePurpose | str = ChargingProfilePurpose.TX_PROFILE
    transaction_id: str | None = None
    duration_s: int | None = None
    max_offline_duration_s: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StationCapabilities:
    """The station facts the builder needs (device model: SmartChargingCtrlr, V2X variables, model).

    ``supported_operation_modes`` defaults to ``ChargingOnly`` only (what a station that reports nothing
    can be assumed to do); ``None`` means "unknown, do not check". ``v2x_adapter`` names the 2.0.1
    vendor discharge convention (see :data:`V2X_ADAPTERS`).
    """

    version: OcppVersion
    max_stack_level: int
    max_periods: int
    rate_units: frozenset[str] = frozenset({"W", "A"})
    supported_operation_modes: frozenset[str] | None = frozenset({"ChargingOnly"})
    supports_dynamic: bool = False
    v2x_adapter: str | None = None
    num_evses: int | None = None
    max_profiles: int | None = None
    max_external_constraints_id: int | None = None
    voltage: float = 230.0
    phases: int = 3

    def __post_init__(self) -> None:
        if self.version not in ("2.0.1", "2.1"):
            raise ValueError(f"unknown OCPP version {self.version!r}")
        if self.v2x_adapter is not None and self.v2x_adapter not in V2X_ADAPTERS:
            raise ValueError(f"unknown V2X adapter {self.v2x_adapter!r} (known: {sorted(V2X_ADAPTERS)})")
        object.__setattr__(self, "rate_units", frozenset(str(u) for u in self.rate_units))
        if self.supported_operation_modes is not None:
            modes = frozenset(str(m) for m in self.supported_operation_modes)
            object.__setattr__(self, "supported_operation_modes", modes)

    def supports_mode(self, mode: OperationMode) -> bool:
        modes = self.supported_operation_modes
        return mode is M.CHARGING_ONLY or modes is None or mode.value in modes

    def to_limits(self) -> StationLimits:
        return StationLimits(
            max_stack_level=self.max_stack_level,
            max_periods=self.max_periods,
            rate_units=self.rate_units,
            max_profiles=self.max_profiles,
            supported_operation_modes=self.supported_operation_modes,
            supports_dynamic=self.supports_dynamic,
            num_evses=self.num_evses,
            allow_negative_limits=self.version == "2.0.1" and self.v2x_adapter == "negative-limit",
            max_external_constraints_id=self.max_external_constraints_id,
        )


def normalize_periods(
    periods: Sequence[tuple[int, float]], duration_s: int | None
) -> tuple[int, list[tuple[int, float]], int | None]:
    """Sort, shift to start at 0, drop steps beyond the duration and round powers to 0.1.

    Returns ``(shift_s, steps, duration_s)`` where ``shift_s`` is added to the intent's start.
    """
    if not periods:
        raise BuilderError("InvalidIntent", "no periods")
    steps: list[tuple[int, float]] = []
    for offset, power in periods:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise BuilderError("InvalidIntent", f"offset {offset!r} must be a non-negative integer")
        if isinstance(power, bool) or not isinstance(power, int | float) or not math.isfinite(power):
            raise BuilderError("InvalidIntent", f"power {power!r} must be a finite number")
        rounded = round(float(power), 1)
        steps.append((offset, 0.0 if rounded == 0 else rounded))
    steps.sort(key=lambda s: s[0])
    for a, b in itertools.pairwise(steps):
        if a[0] == b[0]:
            raise BuilderError("InvalidIntent", f"two powers for offset {a[0]}")
    shift = steps[0][0]
    steps = [(o - shift, p) for o, p in steps]
    if duration_s is not None:
        duration_s -= shift
        if duration_s <= 0:
            raise BuilderError("InvalidIntent", "duration ends before the first period")
        steps = [s for s in steps if s[0] < duration_s]
    return shift, steps, duration_s


def build_set_charging_profile(
    intent: PowerIntent,
    caps: StationCapabilities,
    *,
    profile_id: int,
    stack_level: int,
    installed: Sequence[InstalledProfile] = (),
    active_transactions: Mapping[int, str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build the SetChargingProfileRequest payload for ``intent`` (see module docstring).

    ``installed`` / ``active_transactions`` are what the CSMS knows of the station; by default the
    intent's transaction is assumed to be the one running on its EVSE. Raises :class:`BuilderError`
    with the first K01 violation if the station would reject the result, or ``FormatViolation`` if the
    payload does not match the official schema of the station's version (checked before returning).
    """
    version = caps.version
    try:
        purpose = P(intent.purpose)
    except ValueError:
        raise BuilderError("InvalidIntent", f"unknown purpose {intent.purpose!r}") from None
    if purpose not in (P.TX_PROFILE, P.TX_DEFAULT_PROFILE, P.CHARGING_STATION_MAX_PROFILE):
        raise BuilderError(
            "InvalidProfile", f"the builder makes TxProfile/TxDefaultProfile/ChargingStationMaxProfile, not {purpose}"
        )
    station_cap = purpose is P.CHARGING_STATION_MAX_PROFILE
    if station_cap and (intent.evse_id != 0 or any(p < 0 for _, p in intent.periods)):
        raise BuilderError("InvalidProfile", "a ChargingStationMaxProfile is a charging cap on evseId 0 (no discharge)")
    if purpose is P.TX_PROFILE and not intent.transaction_id:
        raise BuilderError("InvalidProfile", "a TxProfile needs the intent's transaction_id")
    try:
        start = ensure_utc(intent.start)
    except ValueError:
        raise BuilderError("InvalidIntent", "intent start must be timezone-aware") from None
    shift, steps, duration = normalize_periods(intent.periods, intent.duration_s)
    discharge = any(p < 0 for _, p in steps)

    if discharge and version == "2.0.1" and caps.v2x_adapter is None:
        raise BuilderError("CannotDischarge", "station cannot discharge (OCPP 2.0.1 without a V2X adapter)")
    if "W" in caps.rate_units:
        unit, watts_per_unit = "W", 1.0
    elif "A" in caps.rate_units and not discharge:
        unit, watts_per_unit = "A", caps.voltage * caps.phases
    else:
        raise BuilderError(
            "UnsupportedRateUnit",
            f"station rate units {sorted(caps.rate_units)} cannot express this intent (discharging needs W)",
        )

    periods: list[dict[str, Any]] = []
    previous: dict[str, Any] | None = None
    for offset, power in steps:
        value = power if unit == "W" else round(power / watts_per_unit, 1)
        value = 0.0 if value == 0 else value
        body = _period_body(value, version, caps, discharge, unit)
        if station_cap and version == "2.1" and "operationMode" in body:  # caps are ChargingOnly (2.1 table)
            body = {**body, "operationMode": M.CHARGING_ONLY.value, "limit": value}
        if body == previous:
            continue
        previous = body
        periods.append({"startPeriod": offset, **body})
    if len(periods) > caps.max_periods:
        raise BuilderError(
            "TooManyPeriods",
            f"{len(periods)} periods after merging, station allows {caps.max_periods} (PeriodsPerSchedule)",
        )

    schedule: dict[str, Any] = {
        "id": 1,
        "startSchedule": format_datetime(start + timedelta(seconds=shift)),
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": periods,
    }
    if duration is not None:
        schedule["duration"] = duration
    profile: dict[str, Any] = {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose.value,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [schedule],
    }
    if purpose is P.TX_PROFILE:
        profile["transactionId"] = intent.transaction_id
    if station_cap:
        pass  # a site cap must hold while the station is offline: no maxOfflineDuration
    elif version == "2.1":
        if discharge:
            offline = intent.max_offline_duration_s
            profile["maxOfflineDuration"] = DEFAULT_MAX_OFFLINE_DURATION_S if offline is None else offline
            profile["invalidAfterOfflineDuration"] = True
        elif intent.max_offline_duration_s is not None:
            profile["maxOfflineDuration"] = intent.max_offline_duration_s
    request = {"evseId": intent.evse_id, "chargingProfile": profile}

    if active_transactions is None:
        active_transactions = {intent.evse_id: intent.transaction_id} if intent.transaction_id else {}
    violations = check_set_charging_profile(
        request,
        version=version,
        limits=caps.to_limits(),
        installed=installed,
        active_transactions=active_transactions,
        now=now if now is not None else start,
    )
    if violations:
        first = violations[0]
        raise BuilderError(first.code, first.message)
    try:
        validate_wire("SetChargingProfile", request, version)
    except WireValidationError as exc:
        raise BuilderError("FormatViolation", str(exc)) from None
    return request


def _period_body(
    value: float, version: OcppVersion, caps: StationCapabilities, discharge: bool, unit: str
) -> dict[str, Any]:
    body: dict[str, Any]
    if version == "2.0.1":
        body = {"limit": value}
        if value < 0:
            body["customData"] = {"vendorId": DISCHARGE_VENDOR_ID, "mode": "discharge"}
    elif value == 0:
        if caps.supports_mode(M.IDLE):
            body = {"operationMode": M.IDLE.value}
        elif discharge and caps.supports_mode(M.CENTRAL_SETPOINT):
            body = {
                "operationMode": M.CENTRAL_SETPOINT.value,
                "setpoint": 0.0,
                "limit": 0.0,
                "dischargeLimit": 0.0,
            }
        else:
            body = {"operationMode": M.CHARGING_ONLY.value, "limit": 0.0}
    elif discharge:
        body = {
            "operationMode": M.CENTRAL_SETPOINT.value,
            "setpoint": value,
            "limit": max(value, 0.0),
            "dischargeLimit": min(value, 0.0),
        }
    else:
        body = {"operationMode": M.CHARGING_ONLY.value, "limit": value}
    if unit == "A" and "limit" in body:
        body["numberPhases"] = caps.phases
    return body


# ------------------------------------------------------------------------------------------ allocator


@dataclass(frozen=True, slots=True)
class Allocation:
    """A profile id and stack level for one dispatch profile."""

    profile_id: int
    stack_level: int


@dataclass(slots=True)
class _StationState:
    slots: dict[tuple[int, str], int] = field(default_factory=dict)
    next_id: int = 0


class ProfileAllocator:
    """Allocates dispatch-owned profile ids and stack levels per station. Pure in-memory state.

    * Ids come from ``[id_base, id_limit)``; every id below ``id_base`` belongs to the operator and is
      never touched. Ids are unique per station.
    * :meth:`allocate` gives a stable id per ``(station, evseId, purpose)`` slot, so each new dispatch
      profile *replaces* the previous one (K01.FR.05) instead of conflicting with it on the same stack
      level (K01.FR.06 / K01.FR.39).
    * The dispatch stack level is ``dispatch_stack_level`` (default: the station's maximum
      ``ProfileStackLevel``) clamped to the station maximum; operator defaults use the levels below
      (:meth:`operator_stack_levels`).
    * :meth:`clear_requests` returns ClearChargingProfileRequest payloads by id only.
    """

    def __init__(
        self,
        *,
        id_base: int = DISPATCH_PROFILE_ID_BASE,
        id_limit: int = _INT32_MAX,
        dispatch_stack_level: int | None = None,
    ) -> None:
        if not 0 < id_base < id_limit <= _INT32_MAX:
            raise ValueError("need 0 < id_base < id_limit <= 2**31 - 1")
        if dispatch_stack_level is not None and dispatch_stack_level < 0:
            raise ValueError("dispatch_stack_level must be >= 0")
        self.id_base = id_base
        self.id_limit = id_limit
        self.dispatch_stack_level = dispatch_stack_level
        self._stations: dict[str, _StationState] = {}

    def is_dispatch_owned(self, profile_id: int) -> bool:
        return self.id_base <= profile_id < self.id_limit

    def stack_level(self, caps: StationCapabilities) -> int:
        level = caps.max_stack_level
        if self.dispatch_stack_level is not None:
            level = min(level, self.dispatch_stack_level)
        return max(level, 0)

    def operator_stack_levels(self, caps: StationCapabilities) -> range:
        """Stack levels left to operator-set profiles (all below the dispatch level)."""
        return range(0, self.stack_level(caps))

    def _state(self, station_id: str) -> _StationState:
        state = self._stations.get(station_id)
        if state is None:
            state = self._stations[station_id] = _StationState(next_id=self.id_base)
        return state

    def new_profile_id(self, station_id: str) -> int:
        """A fresh dispatch id for ``station_id`` not currently allocated (wraps around the range)."""
        state = self._state(station_id)
        used = set(state.slots.values())
        span = self.id_limit - self.id_base
        if len(used) >= span:
            raise BuilderError("IdExhausted", f"no free dispatch profile id for station {station_id}")
        candidate = state.next_id
        while candidate in used:
            candidate = self.id_base + (candidate + 1 - self.id_base) % span
        state.next_id = self.id_base + (candidate + 1 - self.id_base) % span
        return candidate

    def allocate(
        self,
        station_id: str,
        evse_id: int,
        caps: StationCapabilities,
        purpose: ChargingProfilePurpose | str = ChargingProfilePurpose.TX_PROFILE,
    ) -> Allocation:
        """The id (stable per slot) and stack level for the next dispatch profile of this slot."""
        key = (evse_id, P(purpose).value)
        state = self._state(station_id)
        profile_id = state.slots.get(key)
        if profile_id is None:
            profile_id = self.new_profile_id(station_id)
            state.slots[key] = profile_id
        return Allocation(profile_id, self.stack_level(caps))

    def release(self, station_id: str, profile_id: int) -> None:
        """Forget ``profile_id`` (after the station confirmed it was cleared)."""
        state = self._stations.get(station_id)
        if state is not None:
            state.slots = {k: v for k, v in state.slots.items() if v != profile_id}

    def owned_ids(self, station_id: str, evse_id: int | None = None) -> list[int]:
        state = self._stations.get(station_id)
        if state is None:
            return []
        return sorted(v for (evse, _), v in state.slots.items() if evse_id is None or evse == evse_id)

    def clear_requests(self, station_id: str, evse_id: int | None = None) -> list[dict[str, Any]]:
        """ClearChargingProfileRequest payloads removing the dispatch profiles, by id only."""
        return [{"chargingProfileId": pid} for pid in self.owned_ids(station_id, evse_id)]

    def foreign_profiles(self, installed: Iterable[InstalledProfile]) -> list[InstalledProfile]:
        """The installed profiles that are not dispatch-owned (operator / external)."""
        return [p for p in installed if not self.is_dispatch_owned(p.profile.id)]

    def export_state(self) -> dict[str, Any]:
        """JSON-friendly state, for persistence."""
        return {
            station: {
                "next_id": st.next_id,
                "slots": [[evse, purpose, pid] for (evse, purpose), pid in sorted(st.slots.items())],
            }
            for station, st in self._stations.items()
        }

    def import_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`export_state` returned."""
        self._stations = {
            station: _StationState(
                slots={(int(e), str(p)): int(pid) for e, p, pid in data["slots"]},
                next_id=int(data["next_id"]),
            )
            for station, data in state.items()
        }


def build_dispatch_profile(
    intent: PowerIntent,
    caps: StationCapabilities,
    allocator: ProfileAllocator,
    station_id: str,
    *,
    installed: Sequence[InstalledProfile] = (),
    active_transactions: Mapping[int, str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Allocate id/stack level for ``intent`` and build its SetChargingProfileRequest."""
    allocation = allocator.allocate(station_id, intent.evse_id, caps, intent.purpose)
    return build_set_charging_profile(
        intent,
        caps,
        profile_id=allocation.profile_id,
        stack_level=allocation.stack_level,
        installed=installed,
        active_transactions=active_transactions,
        now=now,
    )
