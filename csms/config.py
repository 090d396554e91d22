"""Settings: one commented TOML file (``configs/csms.toml``), overridden by environment.

Precedence: environment variables (``CSMS_<SECTION>__<KEY>``, e.g. ``CSMS_SERVER__PORT``)
> the TOML file > built-in defaults. Unknown keys and bad values are refused with the key
path and the file name, never silently ignored.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "csms.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(9000, ge=0, le=65535, description="0 picks a free port")
    ping_interval: float | None = Field(30.0, gt=0, description="WebSocket ping interval, s; none disables")
    ping_timeout: float | None = Field(20.0, gt=0)
    call_timeout: float = Field(30.0, gt=0, description="seconds to wait for a station's answer")
    queue_timeout: float = Field(120.0, gt=0, description="seconds a call may wait behind others")
    compression: bool = True
    max_message_size: int = Field(1 << 20, ge=1024)
    backlog: int = Field(4096, ge=1, description="listen backlog: a reconnect storm arrives all at once")
    reuse_port: bool = Field(
        False, description="SO_REUSEPORT: several processes (cluster nodes on one machine) share the OCPP port"
    )
    validate_messages: bool = True
    max_pipelined_calls: int = Field(
        0,
        ge=0,
        le=100,
        description="CALLs a station may send while its previous one is still being handled, queued and answered "
        "in order; 0 (OCPP-J's one outstanding CALL) refuses them with RpcFrameworkError",
    )
    registry_poll_interval: float = Field(
        0.5,
        ge=0.05,
        le=60,
        description="seconds between reads of the station registry's change feed: how soon stations added, "
        "changed, blocked or removed by another process (CLI, other nodes) take effect here",
    )


class SecuritySettings(_Section):
    profile: Literal[1, 2, 3] = Field(1, description="1 ws+Basic, 2 wss+Basic, 3 wss+client certificate")
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = Field(None, description="profile 3: CA bundle (PEM) that signs station certs")
    station_ca_cert_file: Path | None = Field(
        None, description="CA certificate (PEM) that signs stations' SignCertificate CSRs; none: they are Rejected"
    )
    station_ca_key_file: Path | None = Field(None, description="its private key (PEM, unencrypted)")
    station_cert_days: int = Field(365, ge=1, le=3650, description="validity of the station certificates it signs")
    station_cert_renew_days: int = Field(
        30, ge=0, description="profile 3: renew a certificate presented with fewer days left than this (0: never)"
    )
    auto_register: bool = False
    pbkdf2_iterations: int = Field(1_000, ge=1)


class PncSettings(_Section):
    """ISO 15118 Plug & Charge: where EV contract certificates come from and what the CSMS trusts."""

    contract_provider_url: str | None = Field(
        None,
        description="HTTP endpoint of the contract-certificate provider that answers Get15118EVCertificate "
        "(JSON, see csms/pnc/provider.py); none: those requests are answered Failed (NoProvider)",
    )
    contract_provider_token: str | None = Field(None, description="bearer token sent to the provider, if any")
    contract_provider_timeout: float = Field(10.0, gt=0, le=120, description="seconds to wait for the provider")
    contract_roots_file: Path | None = Field(
        None,
        description="PEM bundle of the trusted contract roots (V2G / MO roots) that Authorize checks an EV's "
        "contract certificate chain against; none: central validation answers CertChainError",
    )
    ocsp_timeout: float = Field(5.0, gt=0, le=60, description="seconds to wait for an OCSP responder")
    ocsp_cache_entries: int = Field(10_000, ge=0, description="OCSP answers kept until their nextUpdate")


class BootSettings(_Section):
    heartbeat_interval: int = Field(300, ge=1)
    pending_retry_interval: int = Field(60, ge=1)
    default_policy: Literal["accept", "pending", "reject"] = "accept"


class StorageSettings(_Section):
    url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file in the data directory")
    frame_log_limit: int = Field(500, ge=0)


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_output: bool = Field(False, alias="json")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ClockSettings(_Section):
    speed: float = Field(1.0, gt=0)
    epoch: datetime | None = None
    anchor: datetime | None = Field(None, description="wall-clock instant at which simulated time = epoch")

    @field_validator("epoch", "anchor")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("epoch needs a UTC offset, e.g. 2026-06-01T16:00:00Z")
        return v


class ApiSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    console: bool = Field(True, description="serve the operator web console under /console/")


class V2XSettings(_Section):
    allowed_energy_transfer: list[str] = Field(default_factory=lambda: ["DC_BPT"])
    allow_unknown_tokens: bool = False
    adapters: dict[str, str] = Field(
        default_factory=lambda: {"FE-15": "negative-limit", "FE-20": "negative-limit"},
        description="OCPP 2.0.1 station model -> V2X vendor adapter ('*' matches any model)",
    )


class DispatchSettings(_Section):
    control_interval_s: float = Field(60.0, gt=0)
    reserve_margin: float = Field(0.05, ge=0, lt=1)
    stack_level: int = Field(5, ge=0)
    max_offline_duration_s: int = Field(900, ge=1)
    site_export_limit_kw: float | None = Field(None, ge=0)
    site_import_limit_kw: float | None = Field(None, ge=0)
    solver_time_budget_s: float = Field(2.0, gt=0)
    departure_model: bool = Field(
        False,
        description="plan departures with a model learned from the site's stored sessions instead of "
        "the drivers' estimates (csms.dispatch.history; none while fewer than 50 are on record). Off by "
        "default: keeping every promise at every moment costs most of the export (README, Known gaps)",
    )
    departure_history_days: float = Field(90.0, gt=0, description="sessions of this many days train it")
    site_timezone: str = Field("UTC", description="local time of the site (the model's weekday and hour)")

    @field_validator("site_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. America/Los_Angeles)") from exc
        return value


class MqttSettings(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    client_id: str | None = Field(None, description="stable MQTT client id (persistent session); default from host")
    event_topic: str = "csms/grid/events"
    status_topic: str = "csms/grid/status"


class OpenAdr3Settings(_Section):
    """The OpenADR 3 VEN (:mod:`csms.grid.openadr3`): off unless ``enabled``."""

    enabled: bool = False
    vtn_url: str = Field("http://127.0.0.1:8081", description="VTN base URL including its base path")
    token_url: str | None = Field(None, description="OAuth2 token endpoint; default <vtn_url>/auth/token")
    client_id: str = "csms-ven"
    client_secret: str = ""
    ven_name: str = Field("csms-ven", min_length=1, max_length=128)
    programs: list[str] = Field(
        default_factory=list, description="programName values to follow; empty: every program the VTN lists"
    )
    resources: Literal["stations", "site"] = Field(
        "stations", description="register each station as a resource, or the site as one resource"
    )
    subscribe: bool = Field(True, description="subscribe with a webhook callback (needs callback_url)")
    callback_url: str | None = Field(
        None,
        description="public URL of POST /grid/openadr3/notify on this CSMS's API; none: poll only; "
        "'auto': this CSMS's own API URL (a VTN on the same host, as in the demo and tests)",
    )
    poll_interval_s: float = Field(60.0, gt=0, description="seconds (of the CSMS clock) between GET /events")
    report: bool = Field(True, description="post delivery reports (USAGE, DEMAND per 5 min) for VTN events")
    request_timeout_s: float = Field(10.0, gt=0)
    backoff_initial_s: float = Field(5.0, gt=0, description="first retry after the VTN stopped answering, s")
    backoff_max_s: float = Field(300.0, gt=0, description="longest wait between retries, s")
    simple_levels_kw: dict[int, float] = Field(
        default_factory=lambda: {0: 0.0, 1: 100.0, 2: 200.0, 3: 400.0},
        description="SIMPLE level -> export kW",
    )
    price_export_threshold: float | None = Field(None, description="PRICE at or above which to export")
    price_export_kw: float = Field(0.0, ge=0, description="export kW when the PRICE threshold is reached")


class ClusterSettings(_Section):
    """Several ``csms serve`` nodes on one PostgreSQL and one NATS (JetStream) server; off: one
    process, as before. See "Scaling out" in the README."""

    enabled: bool = False
    node_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="this node's name, unique in the cluster; default: host name and process id",
    )
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS server(s), comma-separated")
    prefix: str = Field(
        "csms", pattern=r"^[A-Za-z0-9_-]{1,32}$", description="subject and bucket prefix: one per cluster"
    )
    lease_ttl_s: float = Field(
        10.0,
        ge=1,
        le=300,
        description="a node's lease: renewed every third of it; when it lapses (node dead or cut off) its "
        "stations count as offline and the node closes its connections",
    )
    forward_margin_s: float = Field(
        5.0, gt=0, description="extra wait for a command forwarded to another node, on top of the station's timeouts"
    )
    leader_poll_s: float = Field(
        1.0, gt=0, le=60, description="how often a standby node tries to take the dispatch leadership"
    )
    report_every_s: float = Field(
        60.0,
        gt=0,
        description="the dispatch leader stores each running event's live report this often (simulated s), "
        "so that a new leader restores its planned and feasible power up to then",
    )


class SiteMeterSettings(_Section):
    """Where a site's live meter reading comes from: an MQTT topic or a station's EVSE 0 meter values."""

    mqtt_topic: str | None = Field(
        None,
        min_length=1,
        description='MQTT topic carrying the reading: a number in W or JSON {"power_w": ...} / {"power_kw": ...}',
    )
    station: str | None = Field(None, min_length=1, description="station whose EVSE 0 MeterValues meter the site")
    measures: Literal["total", "building"] = Field(
        "total", description="total: the grid connection (chargers included); building: the load without chargers"
    )
    stale_after_s: float = Field(300.0, gt=0, description="an older reading is not used (building_kw is assumed)")

    @model_validator(mode="after")
    def _one_source(self) -> SiteMeterSettings:
        if (self.mqtt_topic is None) == (self.station is None):
            raise ValueError("set exactly one of mqtt_topic and station")
        return self


class SiteSettings(_Section):
    """A grid connection shared by chargers (``[[sites]]``): the CSMS keeps the chargers plus the
    building under ``import_limit_kw`` with ChargingStationMaxProfile caps (csms/sites)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str | None = None
    import_limit_kw: float = Field(gt=0, description="the connection's import limit (kW)")
    export_limit_kw: float | None = Field(None, ge=0, description="export limit (kW), used by grid-event dispatch")
    stations: list[str] = Field(min_length=1, description="station ids on this connection")
    strategy: Literal["fair", "priority"] = "fair"
    priorities: dict[str, int] = Field(default_factory=dict, description="station id -> priority (higher first)")
    meter: SiteMeterSettings | None = None
    building_kw: float = Field(0.0, ge=0, description="building load assumed without a (fresh) meter reading")
    margin_kw: float = Field(1.0, ge=0, description="kept free under the limit (meter noise, ramps)")
    arrival_kw: float = Field(
        1.4, ge=0, description="cap on an idle charger: what a car that plugs in draws before the CSMS re-balances"
    )
    station_max_kw: float = Field(22.0, gt=0, description="a station's rating when it is not in station_ratings_kw")
    station_ratings_kw: dict[str, float] = Field(default_factory=dict, description="station id -> rating (kW)")
    control_interval_s: float = Field(15.0, gt=0, description="re-balance at least this often (CSMS clock seconds)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CSMS_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path("data")
    server: ServerSettings = ServerSettings()
    security: SecuritySettings = SecuritySettings()
    boot: BootSettings = BootSettings()
    storage: StorageSettings = StorageSettings()
    log: LogSettings = LogSettings()
    clock: ClockSettings = ClockSettings()
    api: ApiSettings = ApiSettings()
    v2x: V2XSettings = V2XSettings()
    dispatch: DispatchSettings = DispatchSettings()
    mqtt: MqttSettings = MqttSettings()
    openadr3: OpenAdr3Settings = OpenAdr3Settings()
    cluster: ClusterSettings = ClusterSettings()
    sites: list[SiteSettings] = Field(default_factory=list)
    pnc: PncSettings = PncSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment overrides the file (passed as init kwargs), which overrides defaults
        return env_settings, init_settings

    @property
    def database_url(self) -> str:
        return self.storage.url or f"sqlite+aiosqlite:///{(self.data_dir / 'csms.db').resolve()}"


class ConfigError(Exception):
    """A configuration problem, phrased for the operator: file, key, what is wrong."""


def tls_problems(security: SecuritySettings) -> list[str]:
    """What stops ``security.profile`` from starting: missing TLS keys or files (key path first).

    Profiles 2 and 3 need the server certificate and key; profile 3 also needs the CA bundle
    that signs the stations' client certificates.
    """
    needed: list[tuple[str, Path | None]] = []
    if security.profile >= 2:
        needed += [("tls_cert_file", security.tls_cert_file), ("tls_key_file", security.tls_key_file)]
    if security.profile == 3:
        needed.append(("tls_client_ca_file", security.tls_client_ca_file))
    if (security.station_ca_cert_file is None) != (security.station_ca_key_file is None):
        missing = "station_ca_key_file" if security.station_ca_key_file is None else "station_ca_cert_file"
        needed.append((missing, None))
    elif security.station_ca_cert_file is not None:
        needed += [
            ("station_ca_cert_file", security.station_ca_cert_file),
            ("station_ca_key_file", security.station_ca_key_file),
        ]
    problems = []
    for key, path in needed:
        if path is None and key.startswith("station_ca"):
            problems.append(f"security.{key}: required with the other station_ca_* file (both or neither)")
        elif path is None:
            problems.append(f"security.{key}: required when security.profile = {security.profile}")
        elif not path.is_file():
            problems.append(f"security.{key}: file not found: {path}")
    return problems


def site_problems(sites: list[SiteSettings]) -> list[str]:
    """Cross-site checks: unique ids, a station on one site only, priorities/ratings of its stations."""
    problems: list[str] = []
    ids: set[str] = set()
    owner: dict[str, str] = {}
    for i, site in enumerate(sites):
        if site.id in ids:
            problems.append(f"sites.{i}.id: site id {site.id!r} is used twice")
        ids.add(site.id)
        for station in site.stations:
            if station in owner:
                problems.append(f"sites.{i}.stations: station {station!r} is already on site {owner[station]!r}")
            owner.setdefault(station, site.id)
        for key in ("priorities", "station_ratings_kw"):
            for station in getattr(site, key):
                if station not in site.stations:
                    problems.append(f"sites.{i}.{key}: {station!r} is not in this site's stations")
        if site.meter is not None and site.meter.station is not None and site.meter.station not in site.stations:
            problems.append(f"sites.{i}.meter.station: {site.meter.station!r} is not in this site's stations")
    return problems


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (default ``configs/csms.toml`` if it exists)."""
    file = Path(path) if path is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{file}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            data.setdefault(section, {})[name] = value
        else:
            data[key] = value
    where = str(file) if file is not None else "settings"
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(f"{where}: unknown key '{loc}'")
            else:
                problems.append(f"{where}: {loc}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("\n".join(problems)) from None
    if settings.cluster.enabled and not settings.database_url.startswith("postgresql"):
        raise ConfigError(
            f"{where}: cluster.enabled needs a shared PostgreSQL database (storage.url = postgresql+asyncpg://...)"
        )
    problems = tls_problems(settings.security) + site_problems(settings.sites)
    if problems:
        raise ConfigError("\n".join(f"{where}: {p}" for p in problems))
    return settings
