"""The simulated station's data model: fault switches, planned sessions, transactions, EVSEs,
queued messages, and :class:`Firmware`, the interface the firmware's parts are typed against."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import structlog

from csms.clock import Clock, to_rfc3339
from csms.smartcharging.model import InstalledProfile

from .cars import car as car_model
from .certificate_store import CertificateStore
from .config import FaultConfig, StationConfig
from .devicemodel import DeviceModel
from .ev import EV
from .evse import PowerStage

log = structlog.get_logger("simulators.station")

BPT_MODES = frozenset({"DC_BPT", "AC_BPT", "AC_BPT_DER", "DC_ACDP_BPT"})
TX_QUEUE_LIMIT = 5_000
"""At most this many TransactionEvents wait while offline; beyond, the oldest periodic samples are dropped."""
_TAPER_RECHECK_S = 30.0
_REGISTERS = "Energy.Active.Import.Register,Energy.Active.Export.Register"
DEFAULT_MEASURANDS: dict[tuple[str, str], str] = {
    ("SampledDataCtrlr", "TxStartedMeasurands"): f"{_REGISTERS},SoC",
    ("SampledDataCtrlr", "TxUpdatedMeasurands"): f"{_REGISTERS},Power.Active.Import,Power.Active.Export,SoC,Voltage,"
    "Current.Import,Current.Export",
    ("SampledDataCtrlr", "TxEndedMeasurands"): f"{_REGISTERS},SoC",
    ("AlignedDataCtrlr", "Measurands"): f"{_REGISTERS},Power.Active.Import,Power.Active.Export,SoC",
}
_MAX_SLEEP_S = 3600.0


def _ts(t: float) -> str:
    return to_rfc3339(datetime.fromtimestamp(t, UTC))


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def status_info(code: str, text: str | None = None) -> dict[str, Any]:
    """An OCPP StatusInfoType: reasonCode (20 characters at most), optional additionalInfo."""
    out: dict[str, Any] = {"reasonCode": code[:20]}
    if text:
        out["additionalInfo"] = text[:512]
    return out


class Faults:
    """Mutable per-station fault switches (see :class:`~simulators.config.FaultConfig`)."""

    __slots__ = ("answer_delay_s", "early_departure_s", "ignore_profiles", "meter_noise", "power_drift",
                 "reject_profiles")  # fmt: skip

    def __init__(self, cfg: FaultConfig | None = None) -> None:
        cfg = cfg or FaultConfig()
        self.reject_profiles = cfg.reject_profiles
        self.ignore_profiles = cfg.ignore_profiles
        self.answer_delay_s = cfg.answer_delay_s
        self.power_drift = cfg.power_drift
        self.meter_noise = cfg.meter_noise
        self.early_departure_s = cfg.early_departure_s


class SessionPlan:
    """A car that will arrive at an EVSE (scripted or replayed)."""

    __slots__ = ("car", "departure_t", "id_token", "initial_soc", "min_soc", "plan_departure_t", "plug_in_t",
                 "session_id", "target_soc")  # fmt: skip

    def __init__(
        self,
        *,
        plug_in_t: float,
        departure_t: float,
        car: str,
        initial_soc: float,
        target_soc: float,
        plan_departure_t: float | None = None,
        min_soc: float | None = None,
        id_token: str | None = None,
        session_id: str | None = None,
    ) -> None:
        self.plug_in_t = plug_in_t
        self.departure_t = departure_t
        self.plan_departure_t = plan_departure_t if plan_departure_t is not None else departure_t
        self.car = car
        self.initial_soc = initial_soc
        self.target_soc = target_soc
        self.min_soc = min_soc
        self.id_token = id_token
        self.session_id = session_id

    def make_ev(self) -> EV:
        return EV(
            car_model(self.car),
            self.initial_soc,
            target_soc=self.target_soc,
            departure=_dt(self.departure_t),
            planned_departure=_dt(self.plan_departure_t),
            arrival=_dt(self.plug_in_t),
            min_soc=self.min_soc,
            id_token=self.id_token or "",
        )


class Transaction:
    __slots__ = ("allowed", "authorized", "charging_s", "charging_state", "ended", "id", "id_token",
                 "needs_sent", "next_periodic_t", "op_mode", "remote_start_id", "remote_start_reported", "reported_w",
                 "seq", "start_t", "stopped")  # fmt: skip

    def __init__(self, tx_id: str, start_t: float) -> None:
        self.id = tx_id
        self.start_t = start_t
        self.seq = 0
        self.authorized = False
        self.id_token: dict[str, Any] | None = None
        self.allowed: list[str] = []
        self.charging_state = "EVConnected"
        self.op_mode: str | None = None
        self.remote_start_id: int | None = None
        self.remote_start_reported = False
        self.reported_w = 0.0
        self.charging_s = 0.0
        self.next_periodic_t = 0.0
        self.ended = False
        self.stopped = False  # energy transfer stopped for good (remote stop, deauthorized)
        self.needs_sent = False  # NotifyEVChargingNeeds delivered (else re-sent when back online)


class Evse:
    """One EVSE with one connector; public read access for tests and the demo."""

    __slots__ = ("departure_t", "faulted", "history", "id", "operative_flag", "pending_tx_profile", "plans",
                 "remote_auth", "scheduled_inoperative", "stage", "station", "status_reported", "tx",
                 "tx_done")  # fmt: skip

    def __init__(self, station: Firmware, evse_id: int, stage: PowerStage) -> None:
        self.station = station
        self.id = evse_id
        self.stage = stage
        self.operative_flag = True
        self.scheduled_inoperative = False
        self.faulted = False
        self.tx: Transaction | None = None
        self.tx_done = False  # a transaction already ran (and ended) during this car's visit
        self.plans: deque[SessionPlan] = deque()
        self.status_reported: str | None = None
        self.remote_auth: tuple[dict[str, Any], int, float] | None = None
        self.pending_tx_profile: dict[str, Any] | None = None
        self.departure_t: float | None = None
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ read access
    @property
    def ev(self) -> EV | None:
        return self.stage.ev

    @property
    def import_wh(self) -> float:
        return self.stage.import_wh

    @property
    def export_wh(self) -> float:
        return self.stage.export_wh

    @property
    def power_w(self) -> float:
        return self.stage.power_w

    @property
    def soc(self) -> float | None:
        ev = self.stage.ev
        return ev.soc if ev is not None else None

    @property
    def transaction_id(self) -> str | None:
        return self.tx.id if self.tx is not None and not self.tx.ended else None

    @property
    def operative(self) -> bool:
        return self.operative_flag

    def connector_status(self) -> str:
        if self.faulted:
            return "Faulted"
        if not self.operative_flag:
            return "Unavailable"
        if self.stage.ev is not None:
            return "Occupied"
        if self.station.reserved(self.id):
            return "Reserved"
        return "Available"

    def snapshot(self) -> dict[str, Any]:
        ev = self.stage.ev
        return {
            "evse": self.id,
            "status": self.connector_status(),
            "transaction_id": self.transaction_id,
            "power_w": round(self.stage.power_w, 1),
            "target_w": round(self.stage.target_w, 1),
            "import_wh": round(self.stage.import_wh, 3),
            "export_wh": round(self.stage.export_wh, 3),
            "ev": ev.snapshot() if ev is not None else None,
            "charging_state": self.tx.charging_state if self.tx else None,
            "operation_mode": self.tx.op_mode if self.tx else None,
        }


class Outgoing:
    __slots__ = ("action", "attempts", "on_error", "on_result", "payload", "persistent", "tx_id")

    def __init__(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        persistent: bool = False,
        tx_id: str | None = None,
        on_result: Callable[[dict[str, Any]], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.action = action
        self.payload = payload
        self.persistent = persistent
        self.tx_id = tx_id
        self.on_result = on_result
        self.on_error = on_error
        self.attempts = 0


@runtime_checkable
class Firmware(Protocol):
    """What the firmware's parts (CSMS request handlers, the device-model tree, the feature modules)
    use of a station; :class:`simulators.station.Station` is the implementation. Feature modules keep
    their own state in ``st.__dict__``."""

    _boot_now: asyncio.Event
    _fw_installed_request: int | None
    _fw_task: asyncio.Task[None] | None
    _outbox: deque[Outgoing]
    certificates: CertificateStore
    clock: Clock
    config: StationConfig
    dm_version: str
    evses: dict[int, Evse]
    faults: Faults
    firmware_version: str
    heartbeat_interval: int
    id: str
    log: Any
    online: bool
    password: str | None
    pending_reset: bool
    profiles: list[InstalledProfile]
    received: list[tuple[str, dict[str, Any]]]
    record: bool
    registration: str
    serial_number: str
    sign_certificate_status: str | None
    smart_charging_enabled: bool
    station_operative_flag: bool
    version: str

    def _advance(self, evse: Evse, now_t: float) -> None: ...

    def _authorize(self, evse: Evse, id_token: dict[str, Any], *, trigger: str) -> None: ...

    def _authorized(
        self,
        evse: Evse,
        tx_id: str,
        id_token: dict[str, Any],
        trigger: str,
        response: dict[str, Any],
        *,
        local: bool = False,
    ) -> None: ...

    def _dm_bool(self, component: str, name: str, default: bool, **kw: Any) -> bool: ...

    def _dm_int(self, component: str, name: str, default: int, **kw: Any) -> int: ...

    def _dm_list(self, component: str, name: str, default: str) -> list[str]: ...

    def _end_transaction(self, evse: Evse, now_t: float, *, trigger: str, reason: str) -> None: ...

    def _enqueue(self, item: Outgoing, *, front: bool = False) -> None: ...

    def _heartbeat_result(self, response: dict[str, Any]) -> None: ...

    def _measurands(self, name: str, component: str = "SampledDataCtrlr") -> list[str]: ...

    def _meter_value(self, evse: Evse, measurands: list[str], context: str, now_t: float) -> list[dict[str, Any]]: ...

    async def _reboot(self, *, boot_reason: str, trigger: str, stopped: str) -> None: ...

    def _send_if_online(self, action: str, payload: dict[str, Any], **kw: Any) -> bool: ...

    def _send_status(self, evse: Evse, status: str | None = None) -> bool: ...

    async def _sleep_sim(self, sim_s: float, *, min_wall: float = 0.0, event: asyncio.Event | None = None) -> None: ...

    def _spawn(self, coro: Any) -> asyncio.Task[Any]: ...

    def _status_changed(self, evse: Evse) -> None: ...

    def _tx_event(
        self,
        evse: Evse,
        event_type: str,
        trigger: str,
        now_t: float,
        *,
        meter: list[dict[str, Any]] | None = None,
        stopped_reason: str | None = None,
        id_token: dict[str, Any] | None = None,
    ) -> None: ...

    def _usable_profiles(self, now_t: float) -> list[InstalledProfile]: ...

    @property
    def dm(self) -> DeviceModel:
        """The device model, built on first use (keeps idle stations small)."""

    def now_t(self) -> float: ...

    def on_basic_auth_password(self, value: str) -> str | None: ...

    def on_heartbeat_interval(self, value: str) -> str | None: ...

    def on_meter_interval(self, value: str) -> str | None: ...

    def on_smart_charging_enabled(self, value: str) -> str | None: ...

    def station_availability(self) -> str: ...

    @property
    def station_operative(self) -> bool: ...

    def wake(self) -> None: ...

    def reserved(self, evse_id: int) -> bool:
        """Whether a reservation holds the EVSE (H)."""
        ...
