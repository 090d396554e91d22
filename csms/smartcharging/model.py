"""Light typed models for OCPP 2.0.1 / 2.1 charging profiles (K block, Q block).

The models are frozen dataclasses that mirror ``ChargingProfileType``, ``ChargingScheduleType`` and
``ChargingSchedulePeriodType`` of the official OCA JSON schemas
(``ocpp/v201/schemas/SetChargingProfileRequest.json`` and ``ocpp/v21/schemas/...``).

Conventions:

* ``from_wire(dict)`` accepts a payload exactly as it appears on the wire (camelCase, 2.1 per-phase names
  such as ``setpoint_L2`` kept verbatim). Fields this module does not model (``salesTariff``,
  ``absolutePriceSchedule``, ``v2xFreqWattCurve``, ...) are kept untouched in ``extra`` so that
  ``to_wire(from_wire(d)) == d`` for every schema-valid ``d``.
* ``to_wire()`` omits absent optional fields; it never emits ``null``.
* Datetimes are timezone-aware UTC ``datetime`` objects; on the wire they are RFC 3339 strings with a
  ``Z`` suffix. Naive timestamps are refused (OCPP-J requires an offset).
* Nothing here imports the ``ocpp`` package's dataclasses: its snake_case conversion mangles several
  2.1 field names (``setpoint_L2`` and friends).

``from_wire`` raises :class:`ModelError` (a ``ValueError``) when the payload is structurally wrong (a
required field missing, a value of the wrong type, an unknown enum value). It is not a full schema
validator; use :func:`csms.smartcharging.schema.validate_wire` for that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "ChargingProfile",
    "ChargingProfileKind",
    "ChargingProfilePurpose",
    "ChargingRateUnit",
    "ChargingSchedule",
    "ChargingSchedulePeriod",
    "InstalledProfile",
    "ModelError",
    "OcppVersion",
    "OperationMode",
    "RecurrencyKind",
    "format_datetime",
    "parse_datetime",
    "parse_set_charging_profile",
]

OcppVersion = Literal["2.0.1", "2.1"]


class ModelError(ValueError):
    """A wire payload could not be mapped onto the models (missing field, wrong type, unknown enum)."""


# --------------------------------------------------------------------------------------------- enums


class ChargingProfilePurpose(StrEnum):
    """``ChargingProfilePurposeEnumType``; the last two exist in OCPP 2.1 only."""

    CHARGING_STATION_MAX_PROFILE = "ChargingStationMaxProfile"
    TX_DEFAULT_PROFILE = "TxDefaultProfile"
    TX_PROFILE = "TxProfile"
    CHARGING_STATION_EXTERNAL_CONSTRAINTS = "ChargingStationExternalConstraints"
    PRIORITY_CHARGING = "PriorityCharging"
    LOCAL_GENERATION = "LocalGeneration"


class ChargingProfileKind(StrEnum):
    """``ChargingProfileKindEnumType``; ``Dynamic`` exists in OCPP 2.1 only."""

    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"
    DYNAMIC = "Dynamic"


class RecurrencyKind(StrEnum):
    """``RecurrencyKindEnumType``."""

    DAILY = "Daily"
    WEEKLY = "Weekly"


class ChargingRateUnit(StrEnum):
    """``ChargingRateUnitEnumType``: ``W`` is the total over all phases, ``A`` is per phase."""

    W = "W"
    A = "A"


class OperationMode(StrEnum):
    """``OperationModeEnumType`` (OCPP 2.1). An absent ``operationMode`` means ``ChargingOnly``."""

    IDLE = "Idle"
    CHARGING_ONLY = "ChargingOnly"
    CENTRAL_SETPOINT = "CentralSetpoint"
    EXTERNAL_SETPOINT = "ExternalSetpoint"
    EXTERNAL_LIMITS = "ExternalLimits"
    CENTRAL_FREQUENCY = "CentralFrequency"
    LOCAL_FREQUENCY = "LocalFrequency"
    LOCAL_LOAD_BALANCING = "LocalLoadBalancing"


V201_PURPOSES: frozenset[ChargingProfilePurpose] = frozenset(
    {
        ChargingProfilePurpose.CHARGING_STATION_MAX_PROFILE,
        ChargingProfilePurpose.TX_DEFAULT_PROFILE,
        ChargingProfilePurpose.TX_PROFILE,
        ChargingProfilePurpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS,
    }
)
V201_KINDS: frozenset[ChargingProfileKind] = frozenset(
    {ChargingProfileKind.ABSOLUTE, ChargingProfileKind.RECURRING, ChargingProfileKind.RELATIVE}
)

# ------------------------------------------------------------------------------------------ datetimes


def parse_datetime(value: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime. Naive timestamps are refused."""
    if not isinstance(value, str):
        raise ModelError(f"expected an RFC 3339 string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ModelError(f"invalid RFC 3339 timestamp {value!r}") from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ModelError(f"timestamp {value!r} has no UTC offset")
    return parsed.astimezone(UTC)


def format_datetime(value: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC with a ``Z`` suffix (milliseconds only if non-zero)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetimes are not allowed on the wire")
    utc = value.astimezone(UTC)
    if utc.microsecond:
        text = utc.isoformat(timespec="milliseconds")
    else:
        text = utc.isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` converted to UTC; naive datetimes are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetimes are not allowed")
    return value.astimezone(UTC)


# ---------------------------------------------------------------------------------- field converters


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(f"{path}: expected an integer, got {value!r}")
    return value


def _num(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(f"{path}: expected a number, got {value!r}")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ModelError(f"{path}: expected a boolean, got {value!r}")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ModelError(f"{path}: expected a string, got {value!r}")
    return value


def _dt(value: Any, path: str) -> datetime:
    try:
        return parse_datetime(value)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ModelError(f"{path}: expected an object, got {value!r}")
    return dict(value)


def _enum(enum_type: type[StrEnum]) -> Callable[[Any, str], Any]:
    def convert(value: Any, path: str) -> Any:
        try:
            return enum_type(value)
        except ValueError:
            raise ModelError(f"{path}: {value!r} is not a valid {enum_type.__name__}") from None

    return convert


def _identity(value: Any, path: str) -> Any:
    return value


def _wire_value(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, datetime):
        return format_datetime(value)
    return value


# A field table row: (wire name, attribute name, converter, required)
_Row = tuple[str, str, Callable[[Any, str], Any], bool]


def _read(data: Any, rows: tuple[_Row, ...], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(data, Mapping):
        raise ModelError(f"{path}: expected an object, got {type(data).__name__}")
    known = {row[0] for row in rows}
    values: dict[str, Any] = {}
    for wire, attr, convert, required in rows:
        if wire in data and data[wire] is not None:
            values[attr] = convert(data[wire], f"{path}.{wire}")
        elif required:
            raise ModelError(f"{path}: required field {wire!r} is missing")
    extra = {k: v for k, v in data.items() if k not in known and v is not None}
    return values, extra


def _write(obj: Any, rows: tuple[_Row, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for wire, attr, _convert, _required in rows:
        value = getattr(obj, attr)
        if value is not None:
            out[wire] = _wire_value(value)
    for key, value in obj.extra.items():
        if key not in out and value is not None:
            out[key] = value
    return out


# ------------------------------------------------------------------------------------------- models


_PERIOD_ROWS: tuple[_Row, ...] = (
    ("startPeriod", "start_period", _int, True),
    ("limit", "limit", _num, False),
    ("limit_L2", "limit_l2", _num, False),
    ("limit_L3", "limit_l3", _num, False),
    ("numberPhases", "number_phases", _int, False),
    ("phaseToUse", "phase_to_use", _int, False),
    ("dischargeLimit", "discharge_limit", _num, False),
    ("dischargeLimit_L2", "discharge_limit_l2", _num, False),
    ("dischargeLimit_L3", "discharge_limit_l3", _num, False),
    ("setpoint", "setpoint", _num, False),
    ("setpoint_L2", "setpoint_l2", _num, False),
    ("setpoint_L3", "setpoint_l3", _num, False),
    ("setpointReactive", "setpoint_reactive", _num, False),
    ("setpointReactive_L2", "setpoint_reactive_l2", _num, False),
    ("setpointReactive_L3", "setpoint_reactive_l3", _num, False),
    ("preconditioningRequest", "preconditioning_request", _bool, False),
    ("evseSleep", "evse_sleep", _bool, False),
    ("v2xBaseline", "v2x_baseline", _num, False),
    ("operationMode", "operation_mode", _enum(OperationMode), False),
    ("customData", "custom_data", _obj, False),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingSchedulePeriod:
    """``ChargingSchedulePeriodType``. ``limit`` is required in 2.0.1 and optional in 2.1.

    ``discharge_limit`` (<= 0), ``setpoint`` (negative = discharge) and ``operation_mode`` are 2.1 fields;
    ``effective_operation_mode`` applies the 2.1 default (absent = ``ChargingOnly``).
    """

    start_period: int
    limit: float | None = None
    limit_l2: float | None = None
    limit_l3: float | None = None
    number_phases: int | None = None
    phase_to_use: int | None = None
    discharge_limit: float | None = None
    discharge_limit_l2: float | None = None
    discharge_limit_l3: float | None = None
    setpoint: float | None = None
    setpoint_l2: float | None = None
    setpoint_l3: float | None = None
    setpoint_reactive: float | None = None
    setpoint_reactive_l2: float | None = None
    setpoint_reactive_l3: float | None = None
    preconditioning_request: bool | None = None
    evse_sleep: bool | None = None
    v2x_baseline: float | None = None
    operation_mode: OperationMode | None = None
    custom_data: dict[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def effective_operation_mode(self) -> OperationMode:
        return self.operation_mode or OperationMode.CHARGING_ONLY

    def numeric_values(self) -> list[float]:
        """All numeric (float-valued) fields that are present, for finiteness checks."""
        names = (
            "limit",
            "limit_l2",
            "limit_l3",
            "discharge_limit",
            "discharge_limit_l2",
            "discharge_limit_l3",
            "setpoint",
            "setpoint_l2",
            "setpoint_l3",
            "setpoint_reactive",
            "setpoint_reactive_l2",
            "setpoint_reactive_l3",
            "v2x_baseline",
        )
        return [v for v in (getattr(self, n) for n in names) if v is not None]

    @classmethod
    def from_wire(
        cls,
        data: Mapping[str, Any],
        path: str = "chargingSchedulePeriod",
    ) -> ChargingSchedulePeriod:
        values, extra = _read(data, _PERIOD_ROWS, path)
        return cls(**values, extra=extra)

    def to_wire(self) -> dict[str, Any]:
        return _write(self, _PERIOD_ROWS)


def _periods(value: Any, path: str) -> tuple[ChargingSchedulePeriod, ...]:
    if not isinstance(value, list | tuple):
        raise ModelError(f"{path}: expected an array")
    return tuple(ChargingSchedulePeriod.from_wire(p, f"{path}[{i}]") for i, p in enumerate(value))


_SCHEDULE_ROWS: tuple[_Row, ...] = (
    ("id", "id", _int, True),
    ("limitAtSoC", "limit_at_soc", _obj, False),
    ("startSchedule", "start_schedule", _dt, False),
    ("duration", "duration", _int, False),
    ("chargingRateUnit", "charging_rate_unit", _enum(ChargingRateUnit), True),
    ("minChargingRate", "min_charging_rate", _num, False),
    ("powerTolerance", "power_tolerance", _num, False),
    ("signatureId", "signature_id", _int, False),
    ("digestValue", "digest_value", _str, False),
    ("useLocalTime", "use_local_time", _bool, False),
    ("chargingSchedulePeriod", "periods", _periods, True),
    ("randomizedDelay", "randomized_delay", _int, False),
    ("customData", "custom_data", _obj, False),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingSchedule:
    """``ChargingScheduleType``. ``periods`` is the wire ``chargingSchedulePeriod`` array.

    ``salesTariff``, ``absolutePriceSchedule`` and ``priceLevelSchedule`` are carried in ``extra``.
    """

    id: int
    charging_rate_unit: ChargingRateUnit
    periods: tuple[ChargingSchedulePeriod, ...]
    start_schedule: datetime | None = None
    duration: int | None = None
    min_charging_rate: float | None = None
    limit_at_soc: dict[str, Any] | None = None
    power_tolerance: float | None = None
    signature_id: int | None = None
    digest_value: str | None = None
    use_local_time: bool | None = None
    randomized_delay: int | None = None
    custom_data: dict[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], path: str = "chargingSchedule") -> ChargingSchedule:
        values, extra = _read(data, _SCHEDULE_ROWS, path)
        return cls(**values, extra=extra)

    def to_wire(self) -> dict[str, Any]:
        out = _write(self, _SCHEDULE_ROWS)
        out["chargingSchedulePeriod"] = [p.to_wire() for p in self.periods]
        return out


def _schedules(value: Any, path: str) -> tuple[ChargingSchedule, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ModelError(f"{path}: expected a non-empty array")
    return tuple(ChargingSchedule.from_wire(s, f"{path}[{i}]") for i, s in enumerate(value))


_PROFILE_ROWS: tuple[_Row, ...] = (
    ("id", "id", _int, True),
    ("stackLevel", "stack_level", _int, True),
    ("chargingProfilePurpose", "purpose", _enum(ChargingProfilePurpose), True),
    ("chargingProfileKind", "kind", _enum(ChargingProfileKind), True),
    ("recurrencyKind", "recurrency_kind", _enum(RecurrencyKind), False),
    ("validFrom", "valid_from", _dt, False),
    ("validTo", "valid_to", _dt, False),
    ("transactionId", "transaction_id", _str, False),
    ("maxOfflineDuration", "max_offline_duration", _int, False),
    ("chargingSchedule", "schedules", _schedules, True),
    ("invalidAfterOfflineDuration", "invalid_after_offline_duration", _bool, False),
    ("dynUpdateInterval", "dyn_update_interval", _int, False),
    ("dynUpdateTime", "dyn_update_time", _dt, False),
    ("priceScheduleSignature", "price_schedule_signature", _str, False),
    ("customData", "custom_data", _obj, False),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingProfile:
    """``ChargingProfileType``. ``schedules`` is the wire ``chargingSchedule`` array (1..3 entries).

    Only the first schedule drives power (:attr:`schedule`); the others are alternatives offered to an
    ISO 15118 EV.
    """

    id: int
    stack_level: int
    purpose: ChargingProfilePurpose
    kind: ChargingProfileKind
    schedules: tuple[ChargingSchedule, ...]
    recurrency_kind: RecurrencyKind | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None
    max_offline_duration: int | None = None
    invalid_after_offline_duration: bool | None = None
    dyn_update_interval: int | None = None
    dyn_update_time: datetime | None = None
    price_schedule_signature: str | None = None
    custom_data: dict[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def schedule(self) -> ChargingSchedule:
        return self.schedules[0]

    def is_valid_at(self, at: datetime) -> bool:
        """``validFrom <= at < validTo`` (absent bounds are open)."""
        if self.valid_from is not None and at < self.valid_from:
            return False
        return not (self.valid_to is not None and at >= self.valid_to)

    def has_discharge(self) -> bool:
        """True when a period asks for or allows discharging (negative setpoint/limit, dischargeLimit < 0)."""
        for sched in self.schedules:
            for p in sched.periods:
                for v in (p.setpoint, p.limit, p.discharge_limit):
                    if v is not None and v < 0:
                        return True
        return False

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], path: str = "chargingProfile") -> ChargingProfile:
        values, extra = _read(data, _PROFILE_ROWS, path)
        return cls(**values, extra=extra)

    def to_wire(self) -> dict[str, Any]:
        out = _write(self, _PROFILE_ROWS)
        out["chargingSchedule"] = [s.to_wire() for s in self.schedules]
        return out


@dataclass(frozen=True, slots=True)
class InstalledProfile:
    """A profile as stored on a station: the request's ``evseId`` plus the profile itself."""

    evse_id: int
    profile: ChargingProfile

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> InstalledProfile:
        evse_id, profile = parse_set_charging_profile(request)
        return cls(evse_id, profile)

    def to_request(self) -> dict[str, Any]:
        """The SetChargingProfileRequest payload that installs this profile."""
        return {"evseId": self.evse_id, "chargingProfile": self.profile.to_wire()}


def parse_set_charging_profile(request: Mapping[str, Any]) -> tuple[int, ChargingProfile]:
    """Split a SetChargingProfileRequest payload into ``(evseId, ChargingProfile)``."""
    if not isinstance(request, Mapping):
        raise ModelError("SetChargingProfileRequest: expected an object")
    if "evseId" not in request:
        raise ModelError("SetChargingProfileRequest: required field 'evseId' is missing")
    evse_id = _int(request["evseId"], "evseId")
    if "chargingProfile" not in request:
        raise ModelError("SetChargingProfileRequest: required field 'chargingProfile' is missing")
    return evse_id, ChargingProfile.from_wire(request["chargingProfile"])
