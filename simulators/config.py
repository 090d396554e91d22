"""Configuration models of the simulated fleet (pydantic) and the TOML loader.

A *fleet file* (``configs/fleet*.toml``) describes the stations; a *scenario file*
(``configs/scenario*.toml``) describes what happens to them: the clock, scripted sessions, a
Caltech replay and scheduled faults. Both may live in one file. See ``simulators/README.md``.

Times in a scenario are either RFC 3339 timestamps with an offset or offsets from the clock
epoch written as durations: ``"+90m"``, ``"+1h30m"``, ``"+45s"``, ``"0"`` or a number of seconds.
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from .cars import CARS

OcppVersion = Literal["2.1", "2.0.1"]

_DURATION = re.compile(r"^\s*\+?\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


def parse_duration(value: Any) -> float:
    """``"1h30m"`` / ``"+90m"`` / ``"45s"`` / ``"12"`` / 12 -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    m = _DURATION.match(value)
    if not m or not any(m.groups()):
        raise ValueError(f"not a duration: {value!r}")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


class TimeSpec(BaseModel):
    """An absolute instant or an offset (seconds) from the clock epoch."""

    model_config = ConfigDict(frozen=True)

    at: datetime | None = None
    offset_s: float = 0.0

    def resolve(self, epoch: datetime) -> datetime:
        if self.at is not None:
            return self.at
        return epoch + timedelta(seconds=self.offset_s)


def _time_spec(value: Any) -> Any:
    if isinstance(value, TimeSpec) or value is None:
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamps need a UTC offset")
        return TimeSpec(at=value.astimezone(UTC))
    if isinstance(value, str) and ("T" in value or value.count("-") >= 2):
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            raise ValueError(f"timestamp {value!r} needs a UTC offset")
        return TimeSpec(at=dt.astimezone(UTC))
    return TimeSpec(offset_s=parse_duration(value))


When = Annotated[TimeSpec, BeforeValidator(_time_spec)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]


class FaultConfig(BaseModel):
    """Standing misbehaviour of one station (all off by default)."""

    model_config = ConfigDict(extra="forbid")

    reject_profiles: bool = False
    """Answer every SetChargingProfile with Rejected (reasonCode "Overridden")."""
    ignore_profiles: bool = False
    """Accept SetChargingProfile but keep charging as if no profile existed."""
    answer_delay_s: float = Field(0.0, ge=0, description="wall seconds added before every CALLRESULT")
    power_drift: float = Field(0.0, ge=-0.5, le=0.5, description="actual = commanded x (1 + drift)")
    meter_noise: float = Field(0.0, ge=0, le=0.5, description="relative sigma on reported power/current/voltage")
    early_departure_s: Seconds = Field(0.0, ge=0, description="every car leaves this long before its departure")


class ScheduledFault(BaseModel):
    """A fault that happens at a given time (scenario ``[[faults]]``)."""

    model_config = ConfigDict(extra="forbid")

    station: str = Field(description="station id, or '*' for every station")
    at: When
    kind: Literal["disconnect", "ev_leaves", "reboot", "reject_profiles", "ignore_profiles", "drift", "noise"]
    duration_s: Seconds = 0.0
    """disconnect: how long the network stays down; profile/drift/noise faults: 0 = until the end."""
    evse: int | None = None
    value: float = 0.0


class SessionConfig(BaseModel):
    """One scripted car visit on one EVSE."""

    model_config = ConfigDict(extra="forbid")

    evse: int = Field(1, ge=1)
    plug_in: When
    departure: When
    planned_departure: When | None = None
    """What the driver told the car; defaults to ``departure``."""
    car: str = "nissan-leaf-62"
    initial_soc: float = Field(50.0, ge=0, le=100)
    target_soc: float = Field(80.0, ge=0, le=100)
    min_soc: float | None = Field(None, ge=0, le=100)
    id_token: str | None = None
    session_id: str | None = None

    @field_validator("car")
    @classmethod
    def _known_car(cls, v: str) -> str:
        if v not in CARS:
            raise ValueError(f"unknown car {v!r}; known: {', '.join(sorted(CARS))}")
        return v


class StationConfig(BaseModel):
    """One simulated Fermata-style bidirectional DC charging station."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=48)
    ocpp: list[OcppVersion] = Field(default_factory=lambda: ["2.1", "2.0.1"], min_length=1)
    """Subprotocols offered, in order of preference."""
    security_profile: Literal[1, 2, 3] = 1
    password: str | None = Field(None, min_length=16, max_length=40)
    """HTTP Basic password (SecurityCtrlr.BasicAuthPassword); default derived from the id."""
    ca_file: str | None = None
    client_cert_file: str | None = Field(None, description="profile 3: the station's certificate chain (PEM)")
    client_key_file: str | None = Field(None, description="profile 3: its private key (PEM)")
    vendor: str = "Fermata Energy"
    model: str = "FE-20"
    serial_number: str | None = None
    firmware_version: str = "2.4.1"
    evse_count: int = Field(1, ge=1, le=8)
    charge_kw: float = Field(20.0, gt=0)
    discharge_kw: float = Field(15.0, ge=0)
    efficiency: float = Field(0.95, gt=0, le=1)
    min_discharge_kw: float = Field(1.5, ge=0)
    ramp_kw_per_s: float = Field(2.0, ge=0, description="0 = instantaneous")
    ac_voltage: float = Field(240.0, gt=0, description="grid-side voltage reported as Voltage")
    ac_phases: int = Field(1, ge=1, le=3, description="grid-side phases (for A <-> W in profiles)")
    compression: bool = Field(False, description="offer permessage-deflate (RFC 7692)")
    reboot_s: Seconds = Field(20.0, ge=0, description="simulated seconds a reboot keeps the station down")
    v2x_vendor_convention: bool = True
    """2.0.1 only: follow docs/v2x-ocpp201-extension.md (negative limit = discharge)."""
    supports_dynamic_profiles: bool = True
    offline_discharge_timeout_s: Seconds = 300.0
    """2.0.1 convention: stop discharging after this long without the CSMS."""
    heartbeat_interval_s: int = Field(300, ge=1, description="until the CSMS sets one")
    tx_updated_interval_s: int = Field(60, ge=0)
    aligned_interval_s: int = Field(900, ge=0)
    profile_stack_levels: int = Field(10, ge=0)
    periods_per_schedule: int = Field(96, ge=1)
    max_profiles: int = Field(24, ge=1)
    import_wh: float = Field(0.0, ge=0, description="initial import register (per EVSE)")
    export_wh: float = Field(0.0, ge=0, description="initial export register (per EVSE)")
    call_timeout_s: float = Field(30.0, gt=0, description="wall seconds")
    validate_messages: bool = Field(True, description="check every payload in and out against the OCA schemas")
    sessions: list[SessionConfig] = Field(default_factory=list)
    faults: FaultConfig = Field(default_factory=FaultConfig)

    @field_validator("id")
    @classmethod
    def _id_chars(cls, v: str) -> str:
        if ":" in v or "/" in v:
            raise ValueError("station id must not contain ':' or '/'")
        return v

    @field_validator("ocpp")
    @classmethod
    def _unique_versions(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("duplicate OCPP version")
        return v

    @model_validator(mode="after")
    def _client_certificate(self) -> StationConfig:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("client_cert_file and client_key_file go together")
        return self

    @model_validator(mode="after")
    def _sessions_on_evses(self) -> StationConfig:
        for s in self.sessions:
            if s.evse > self.evse_count:
                raise ValueError(f"session on EVSE {s.evse} but the station has {self.evse_count}")
        return self

    @property
    def basic_auth_password(self) -> str:
        if self.password:
            return self.password
        return default_password(self.id)


def default_password(station_id: str) -> str:
    """Deterministic default BasicAuthPassword (24 chars) so a CSMS can be provisioned from the fleet file."""
    import hashlib

    return "sim-" + hashlib.sha256(f"csms-sim:{station_id}".encode()).hexdigest()[:20]


class GroupConfig(StationConfig):
    """``count`` stations built from one template; ``id`` is a format string with ``{n}`` (1-based)."""

    id: str = Field("SIM-{n:04d}", min_length=1)
    count: int = Field(1, ge=1)
    stagger_s: Seconds = 0.0
    """Shift every scripted session of the n-th station by (n-1) x stagger_s."""

    @field_validator("id")
    @classmethod
    def _id_chars(cls, v: str) -> str:  # overrides the station rule: the id is a template here
        try:
            sample = v.format(n=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad id template {v!r}: {exc}") from None
        if ":" in sample or "/" in sample or not 0 < len(sample) <= 48:
            raise ValueError("station ids must be 1-48 characters without ':' or '/'")
        return v

    def expand(self) -> list[StationConfig]:
        out: list[StationConfig] = []
        base = self.model_dump(exclude={"count", "stagger_s", "id", "sessions"})
        for n in range(1, self.count + 1):
            sessions = [_shift_session(s, (n - 1) * self.stagger_s) for s in self.sessions]
            out.append(StationConfig(id=self.id.format(n=n), sessions=sessions, **base))
        return out


def _shift_session(s: SessionConfig, by: float) -> SessionConfig:
    if not by:
        return s

    def shift(t: TimeSpec | None) -> TimeSpec | None:
        if t is None:
            return None
        if t.at is not None:
            return TimeSpec(at=t.at + timedelta(seconds=by))
        return TimeSpec(offset_s=t.offset_s + by)

    return s.model_copy(
        update={
            "plug_in": shift(s.plug_in),
            "departure": shift(s.departure),
            "planned_departure": shift(s.planned_departure),
        }
    )


class ReplayConfig(BaseModel):
    """Replay one day of the Caltech ACN sessions (see :mod:`simulators.sessions`)."""

    model_config = ConfigDict(extra="forbid")

    file: str = "2019-05-01_2019-08-31.csv.gz"
    """A path, or a file name looked up in the ACN data folder (``$CSMS_ACN_DATA``, default
    ``simulators/data/acn-caltech``, shipped with the package)."""
    date: str = Field(description="local (America/Los_Angeles) date of the data mapped onto the epoch's date")
    target_soc: float = Field(80.0, ge=0, le=100)
    min_initial_soc: float = Field(10.0, ge=0, le=100)
    window_s: Seconds | None = None
    """Only sessions connected during [epoch, epoch + window]; default: the whole local day."""
    seed: str = "acn"


class ClockConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epoch: datetime | None = None
    speed: float = Field(1.0, gt=0)

    @field_validator("epoch")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("epoch needs a UTC offset")
        return v


class ScenarioConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clock: ClockConfig = Field(default_factory=ClockConfig)
    duration_s: Seconds | None = None
    """How long ``csms-sim run`` runs (simulated seconds); default: until interrupted."""
    sessions: dict[str, list[SessionConfig]] = Field(default_factory=dict)
    """Scripted sessions by station id (added to those in the fleet file)."""
    replay: ReplayConfig | None = None
    faults: list[ScheduledFault] = Field(default_factory=list)


class FleetConfig(BaseModel):
    """The whole fleet: where the CSMS is and which stations to run."""

    model_config = ConfigDict(extra="forbid")

    url: str = "ws://127.0.0.1:9000"
    """CSMS endpoint; the station id is appended as the last path segment."""
    stations: list[StationConfig] = Field(default_factory=list)
    groups: list[GroupConfig] = Field(default_factory=list)
    scenario: ScenarioConfig = Field(default_factory=ScenarioConfig)
    lag_warning_s: float = Field(5.0, gt=0, description="simulated seconds of lag before a clock-lag warning")

    def all_stations(self) -> list[StationConfig]:
        out = list(self.stations)
        for g in self.groups:
            out.extend(g.expand())
        ids = [s.id for s in out]
        dup = {i for i in ids if ids.count(i) > 1} if len(set(ids)) != len(ids) else set()
        if dup:
            raise ValueError(f"duplicate station ids: {sorted(dup)}")
        extra = self.scenario.sessions
        if extra:
            known = set(ids)
            unknown = set(extra) - known
            if unknown:
                raise ValueError(f"scenario sessions for unknown stations: {sorted(unknown)}")
            out = [s.model_copy(update={"sessions": s.sessions + extra.get(s.id, [])}) for s in out]
        return out


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = _merge(out[k], v)
        elif k in out and isinstance(out[k], list) and isinstance(v, list):
            out[k] = out[k] + v
        else:
            out[k] = v
    return out


def _normalise(raw: dict[str, Any]) -> dict[str, Any]:
    """Accept the file layout: ``[fleet]`` + ``[defaults]`` + ``[[stations]]`` / ``[[groups]]`` + scenario tables."""
    raw = dict(raw)
    fleet = raw.pop("fleet", {})
    defaults = raw.pop("defaults", {})
    scenario_keys = {"clock", "duration_s", "sessions", "replay", "faults"}
    scenario = dict(raw.pop("scenario", {}))
    for k in scenario_keys & set(raw):
        scenario[k] = raw.pop(k)
    out: dict[str, Any] = {**fleet, **raw}
    if defaults:
        out["stations"] = [_merge(defaults, s) for s in out.get("stations", [])]
        out["groups"] = [_merge(defaults, g) for g in out.get("groups", [])]
    if scenario:
        out["scenario"] = scenario
    return out


def load_fleet(*paths: str | Path, overrides: dict[str, Any] | None = None) -> FleetConfig:
    """Load and merge one or more TOML files (fleet, then scenario) into a :class:`FleetConfig`."""
    merged: dict[str, Any] = {}
    for p in paths:
        with open(p, "rb") as fh:
            merged = _merge(merged, _normalise(tomllib.load(fh)))
    if overrides:
        merged = _merge(merged, overrides)
    return FleetConfig.model_validate(merged)
