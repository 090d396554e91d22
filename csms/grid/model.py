"""The canonical grid event every intake channel maps onto.

A :class:`GridEvent` is "do X kW over window W": an id and a revision, where it came from
(``source``: the channel), which program, whether it is a test, its priority (0 is the
highest, as in OpenADR), what it asks for (``direction`` and ``basis``), for whom
(``targets``) and when (``intervals``). Canonical JSON (what ``POST /grid/events``, MQTT,
files and the CLI accept; ``model_dump(mode="json")`` produces it)::

    {
      "id": "dsgs-2026-07-14",
      "revision": 0,
      "program": "DSGS-3",
      "priority": 1,
      "is_test": false,
      "direction": "export",
      "basis": "delta_from_baseline",
      "targets": {"group_ids": ["garage-a"]},
      "intervals": [
        {"start": "2026-07-14T23:00:00Z", "end": "2026-07-15T01:00:00Z", "target_kw": 400},
        {"start": "2026-07-15T01:00:00Z", "duration": "PT2H", "target_kw": 300, "max_kw": 320}
      ],
      "committed_kw": 350,
      "notice_s": 86400,
      "ramp": {"up_kw_per_min": 100}
    }

Rules: unknown fields are refused (a typo such as ``target_kW`` must not be silently
dropped); every timestamp needs a UTC offset and is stored in UTC; intervals are non-empty,
sorted, non-overlapping, each ``end > start`` (an interval may give ``duration`` - seconds or
ISO 8601 such as ``PT2H`` - instead of ``end``); ``min_kw <= target_kw <= max_kw``. ``status``,
``source`` and ``received_at`` are set by the :class:`~csms.grid.book.EventBook`, not trusted
from the sender.

Validation failures are :class:`EventRejected` with a dotted ``field`` path and a reason,
e.g. ``intervals[1].end: must be after start``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

EventSource = Literal["mqtt", "webhook", "cli", "file", "api", "openadr", "leap", "internal"]
EventStatus = Literal["pending", "active", "completed", "cancelled", "superseded"]
Direction = Literal["export", "import_limit", "load_reduction"]
Basis = Literal["absolute", "delta_from_baseline"]

SOURCES: tuple[str, ...] = EventSource.__args__  # type: ignore[attr-defined]
STATUSES: tuple[str, ...] = EventStatus.__args__  # type: ignore[attr-defined]
TERMINAL_STATUSES = frozenset({"cancelled", "superseded"})
DEFAULT_PRIORITY = 100
"""Priority of an event that does not give one: below anything a program normally sends
(OpenADR: a missing priority is the lowest)."""

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@~=-]{0,127}$"
_ID_RE = re.compile(ID_PATTERN)
MAX_INTERVALS = 10_000


class EventRejected(Exception):
    """An event (or a change to one) was refused; ``field`` is a dotted path into the
    submitted document (``intervals[1].end``), ``reason`` says what is wrong with it."""

    def __init__(self, field: str, reason: str, *, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason
        self.errors = errors or [(field, reason)]

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason

    @property
    def message(self) -> str:
        return str(self)

    def to_dict(self) -> dict[str, Any]:
        return {"code": "invalid_event", "message": self.message, "field": self.field, "reason": self.reason}


class UnknownEvent(LookupError):
    def __init__(self, event_id: str) -> None:
        super().__init__(f"no grid event with id {event_id!r}")
        self.event_id = event_id


# ---------------------------------------------------------------------------------------- helpers
def _field_error(path: str, reason: str) -> PydanticCustomError:
    """A validation error for a sub-path of the location pydantic reports (e.g. ``end`` of an
    interval, or ``[2].start`` of the interval list); :func:`rejection_from` joins them."""
    return PydanticCustomError("event_field", "{path}: {reason}", {"path": path, "reason": reason})


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError("naive_datetime", "needs a UTC offset, e.g. 2026-07-14T23:00:00Z")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]

_ISO_DURATION = re.compile(
    r"^(?P<sign>[-+])?P(?!$)(?:(?P<years>\d+(?:[.,]\d+)?)Y)?(?:(?P<months>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$",
    re.IGNORECASE,
)
_UNIT_S = {
    "years": 365 * 86400.0,
    "months": 30 * 86400.0,
    "weeks": 7 * 86400.0,
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
}
OPEN_ENDED_YEARS = 9999


def parse_iso_duration(text: str) -> tuple[timedelta, bool]:
    """Parse an ISO 8601 duration (``PT2H30M``, ``P1D``, ``P9999Y``).

    Returns ``(duration, open_ended)``; ``open_ended`` is true for ``P9999Y`` (OpenADR's
    "no end"). Years and months are approximated as 365 and 30 days. Raises ``ValueError``.
    """
    m = _ISO_DURATION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not an ISO 8601 duration (e.g. PT2H)")
    if m.group("sign") == "-":
        raise ValueError(f"{text!r}: negative durations are not allowed")
    parts = {k: float(v.replace(",", ".")) for k, v in m.groupdict().items() if v and k != "sign"}
    if parts.get("years", 0) >= OPEN_ENDED_YEARS:
        return timedelta(days=365 * OPEN_ENDED_YEARS), True
    return timedelta(seconds=sum(_UNIT_S[k] * v for k, v in parts.items())), False


def parse_duration(value: Any) -> timedelta:
    """Seconds (number), ``timedelta``, ISO 8601 (``PT2H``) or shorthand (``90m``, ``2h``, ``1h30m``)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("must be seconds or an ISO 8601 duration, not a boolean")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("P", "p", "-", "+") and not text.lstrip("+-").replace(".", "", 1).isdigit():
            return parse_iso_duration(text)[0]
        short = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?", text, re.I)
        if short and any(short.groups()):
            h, mi, s = (float(g) if g else 0.0 for g in short.groups())
            return timedelta(hours=h, minutes=mi, seconds=s)
        try:
            return timedelta(seconds=float(text))
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a duration (seconds, '90m', '2h' or ISO 8601 such as 'PT2H')")


def parse_time(value: str | datetime) -> datetime:
    """An RFC 3339 timestamp with an offset (``Z`` allowed) -> aware UTC datetime."""
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{value!s} has no UTC offset (add Z or +00:00)")
    return dt.astimezone(UTC)


def format_loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _join(base: str, sub: str) -> str:
    if not base:
        return sub.lstrip(".")
    if not sub:
        return base
    return base + sub if sub.startswith("[") else f"{base}.{sub}"


_REASONS: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "list_too_short": "must not be empty",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "string_type": "must be a string",
    "datetime_type": "must be an RFC 3339 timestamp with offset, e.g. 2026-07-14T23:00:00Z",
    "datetime_parsing": "must be an RFC 3339 timestamp with offset, e.g. 2026-07-14T23:00:00Z",
    "datetime_from_date_parsing": "must be an RFC 3339 timestamp with offset, e.g. 2026-07-14T23:00:00Z",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "finite_number": "must be a finite number",
}


def _reason(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _REASONS:
        return _REASONS[kind]
    bounds = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le")}
    bounds["less_than"] = ("<", "lt")
    if kind in bounds:
        op, key = bounds[kind]
        bound = ctx.get(key)
        return f"must be {op} {bound:g}" if isinstance(bound, int | float) else f"must be {op} {bound}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "string_pattern_mismatch":
        return "may only contain letters, digits and . _ : @ ~ = - (1-128 characters, no spaces or slashes)"
    if kind == "too_long":
        return f"has too many items (at most {ctx.get('max_length')})"
    if kind in ("string_too_short", "too_short"):
        return "must not be empty"
    msg = str(err.get("msg", "is invalid"))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg[:1].lower() + msg[1:] if msg else "is invalid"


def rejection_from(exc: ValidationError, prefix: str = "") -> EventRejected:
    """Turn a pydantic ``ValidationError`` into :class:`EventRejected` (first error first)."""
    errors: list[tuple[str, str]] = []
    for err in exc.errors():
        field = format_loc(err["loc"])
        if err["type"] == "event_field":
            ctx = err.get("ctx") or {}
            field = _join(field, str(ctx.get("path", "")))
            reason = str(ctx.get("reason", err["msg"]))
        else:
            reason = _reason(err)
        errors.append((_join(prefix, field) if prefix else field, reason))
    field, reason = errors[0] if errors else (prefix, "is invalid")
    return EventRejected(field, reason, errors=errors)


# ------------------------------------------------------------------------------------------ models
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EventTargets(_Strict):
    """Whom the event is for; all empty = the whole site."""

    site_id: str | None = Field(None, min_length=1, max_length=128)
    group_ids: list[str] = Field(default_factory=list)
    station_ids: list[str] = Field(default_factory=list)

    @property
    def whole_site(self) -> bool:
        return not self.group_ids and not self.station_ids

    @field_validator("group_ids", "station_ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for i, v in enumerate(value):
            if not v.strip():
                raise _field_error(f"[{i}]", "must not be empty")
        return list(dict.fromkeys(value))


class Ramp(_Strict):
    """How fast the fleet may move towards (and away from) the target."""

    up_kw_per_min: float | None = Field(None, gt=0)
    down_kw_per_min: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _some(self) -> Self:
        if self.up_kw_per_min is None and self.down_kw_per_min is None:
            raise _field_error("up_kw_per_min", "give up_kw_per_min and/or down_kw_per_min")
        return self


class Interval(_Strict):
    """``[start, end)`` with a target in kW (>= 0; ``direction`` says what it means) and an
    optional acceptance band ``min_kw <= target_kw <= max_kw`` (``max_kw`` is a hard cap)."""

    start: UtcDatetime
    end: UtcDatetime
    target_kw: float = Field(ge=0)
    min_kw: float | None = Field(None, ge=0)
    max_kw: float | None = Field(None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _duration(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "duration" not in data:
            return data
        data = dict(data)
        duration = data.pop("duration")
        if data.get("end") is not None:
            raise _field_error("duration", "give end or duration, not both")
        try:
            span = parse_duration(duration)
        except ValueError as exc:
            raise _field_error("duration", str(exc)) from None
        if span <= timedelta(0):
            raise _field_error("duration", "must be positive")
        start = data.get("start")
        try:
            data["end"] = parse_time(start) + span if isinstance(start, str | datetime) else None
        except ValueError:
            data["end"] = None  # the start error is reported on its own
        if data["end"] is None:
            data.pop("end")
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.end <= self.start:
            raise _field_error("end", "must be after start")
        if self.min_kw is not None and self.min_kw > self.target_kw:
            raise _field_error("min_kw", f"must not exceed target_kw ({self.target_kw:g})")
        if self.max_kw is not None and self.max_kw < self.target_kw:
            raise _field_error("max_kw", f"must not be below target_kw ({self.target_kw:g})")
        return self

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end


class GridEvent(_Strict):
    """One revision of a grid event (see the module docstring for the JSON form)."""

    id: str = Field(pattern=ID_PATTERN, description="issuer's event id; a new revision keeps it")
    revision: int = Field(0, ge=0, description="higher replaces lower for the same id")
    source: EventSource = Field("api", description="intake channel (set by the EventBook)")
    program: str = Field("unspecified", min_length=1, max_length=128)
    is_test: bool = Field(False, description="exercise the whole path without moving power")
    priority: int = Field(DEFAULT_PRIORITY, ge=0, description="0 is the highest (OpenADR)")
    status: EventStatus = "pending"
    targets: EventTargets = Field(default_factory=EventTargets)
    direction: Direction = "export"
    basis: Basis = "absolute"
    intervals: list[Interval] = Field(min_length=1, max_length=MAX_INTERVALS)
    committed_kw: float | None = Field(None, ge=0, description="what was promised to the market (nomination)")
    max_effort: bool = Field(False, description="deliver as much as possible (Leap energy_kw null)")
    notice_s: float | None = Field(None, ge=0, description="advance notice the issuer gave, s")
    ramp: Ramp | None = None
    issued_at: UtcDatetime | None = Field(None, description="when the issuer created this revision")
    received_at: UtcDatetime | None = Field(None, description="when the CSMS accepted it (set by the EventBook)")
    cancel_reason: str | None = Field(None, max_length=500)
    notes: list[str] = Field(default_factory=list, description="what the mapping from the source format assumed")
    meta: dict[str, Any] = Field(default_factory=dict, description="source-specific fields kept for reports")

    @field_validator("intervals")
    @classmethod
    def _ordered(cls, value: list[Interval]) -> list[Interval]:
        for i in range(1, len(value)):
            prev, cur = value[i - 1], value[i]
            if cur.start < prev.start:
                raise _field_error(f"[{i}].start", f"intervals must be in time order (intervals[{i - 1}] starts later)")
            if cur.start < prev.end:
                raise _field_error(
                    f"[{i}].start",
                    f"overlaps intervals[{i - 1}], which ends at {prev.end.isoformat().replace('+00:00', 'Z')}",
                )
        return value

    # ------------------------------------------------------------------ derived
    @property
    def start(self) -> datetime:
        return self.intervals[0].start

    @property
    def end(self) -> datetime:
        return self.intervals[-1].end

    @property
    def live(self) -> bool:
        """Not cancelled and not superseded."""
        return self.status not in TERMINAL_STATUSES

    def interval_at(self, t: datetime) -> tuple[int, Interval] | None:
        for i, iv in enumerate(self.intervals):
            if iv.contains(t):
                return i, iv
            if iv.start > t:
                break
        return None

    def status_at(self, now: datetime) -> EventStatus:
        """The time-driven status at ``now`` (terminal statuses stay)."""
        if not self.live:
            return self.status
        if now >= self.end:
            return "completed"
        if now >= self.start:
            return "active"
        return "pending"

    def content(self) -> dict[str, Any]:
        """What the issuer asked for: everything except bookkeeping (revision, source, status,
        received_at, cancel_reason, notes, meta). Equal content = an idempotent resubmission."""
        return self.model_dump(
            mode="json",
            exclude={"revision", "source", "status", "received_at", "cancel_reason", "notes", "meta"},
        )

    def same_as(self, other: GridEvent, *, ignore_revision: bool = False) -> bool:
        if not ignore_revision and self.revision != other.revision:
            return False
        return self.content() == other.content()

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def validate_event(data: GridEvent | Mapping[str, Any], *, prefix: str = "") -> GridEvent:
    """Validate a canonical event (dict or model); raise :class:`EventRejected` on failure."""
    if isinstance(data, GridEvent):
        return data
    if not isinstance(data, Mapping):
        raise EventRejected(prefix or "event", f"must be a JSON object, not {type(data).__name__}")
    try:
        return GridEvent.model_validate(dict(data))
    except ValidationError as exc:
        raise rejection_from(exc, prefix) from None


def check_id(event_id: Any, field: str = "id") -> str:
    """A topic- and URL-safe event id, or :class:`EventRejected`."""
    if not isinstance(event_id, str) or not _ID_RE.match(event_id):
        raise EventRejected(field, _reason({"type": "string_pattern_mismatch"}) + f" (got {event_id!r})")
    return event_id


def is_valid_id(event_id: Any) -> bool:
    return isinstance(event_id, str) and bool(_ID_RE.match(event_id))
