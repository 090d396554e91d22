"""A simulated Fermata-style bidirectional DC charging station (OCPP 2.0.1 / 2.1 firmware).

One :class:`Station` runs three long-lived asyncio tasks and no threads:

* the *firmware loop* integrates the power stages exactly (:mod:`simulators.evse`), runs the
  sessions (plug-in, authorization, charging needs, departure), applies the composite charging
  schedule (:mod:`csms.smartcharging.composite`), samples meter values and schedules heartbeats. It
  sleeps until the next event it can predict (meter interval, schedule boundary, ramp end, SoC
  limit, departure...) or until something wakes it; a late wake-up is recorded as clock lag;
* the *link task* connects (subprotocols in preference order, HTTP Basic, optional TLS), boots,
  reconnects with back-off and drains the outbox one CALL at a time (at most one outstanding);
* a *reader task* per connection feeds frames to the :class:`~csms.ocpp.rpc.RpcEndpoint`, which runs
  CSMS requests in short-lived tasks through :data:`simulators.handlers.HANDLERS`.

Everything the station sends goes through one FIFO outbox, so order is preserved. TransactionEvents
are persistent: generated while offline they carry ``offline: true`` and wait in the outbox; on
reconnection they go out in order (seqNo order per transaction). Other messages are not queued
while offline (StatusNotifications of connectors whose state changed are re-sent on reconnection).

Conventions a CSMS can rely on (see ``simulators/README.md``): transactions start when the cable is
plugged (``TxStartPoint`` EVConnected) and end when it is unplugged (``EVDeparted`` /
``EVDisconnected``); discharging is reported as ``chargingState`` ``Charging`` (neither schema has a
Discharging state) with, on 2.1, ``operationMode`` ``CentralSetpoint``; meter registers are the
EVSE's grid-side counters, integrated exactly and reported in Wh with two decimals.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import ssl
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from csms.clock import Clock, parse_rfc3339, to_rfc3339
from csms.ocpp.errors import CallError, CallErrorReceived, CallTimeout, ConnectionLost, ErrorCode, InvalidPayload
from csms.ocpp.rpc import RpcEndpoint
from csms.smartcharging.composite import Setpoint, effective_power_at, next_change_after
from csms.smartcharging.model import ChargingProfilePurpose, InstalledProfile, OperationMode

from . import der, local_auth, reservations, tariff
from .cars import car as car_model
from .certificates import CertificateStore
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

    def __init__(self, station: Station, evse_id: int, stage: PowerStage) -> None:
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
        if reservations.held_on(self.station, self.id) is not None:
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


class Station:
    """One simulated charging station. Create, ``await start()``, ``await stop()``."""

    def __init__(
        self,
        config: StationConfig,
        clock: Clock,
        url: str,
        *,
        record: bool = False,
        lag_warning_s: float = 5.0,
    ) -> None:
        self.config = config
        self.id = config.id
        self.clock = clock
        self.base_url = url
        self.faults = Faults(config.faults)
        self.log = log.bind(station=config.id)
        self.serial_number = config.serial_number or f"SN-{config.id}"[:25]
        self.firmware_version = config.firmware_version
        self.dm_version = "2.1" if "2.1" in config.ocpp else "2.0.1"
        self.version: str = config.ocpp[0]
        t0 = self.now_t()
        self.evses: dict[int, Evse] = {}
        for i in range(1, config.evse_count + 1):
            stage = PowerStage(
                charge_rating_w=config.charge_kw * 1000.0,
                discharge_rating_w=config.discharge_kw * 1000.0,
                efficiency=config.efficiency,
                min_discharge_w=config.min_discharge_kw * 1000.0,
                ramp_w_per_s=config.ramp_kw_per_s * 1000.0,
                import_wh=config.import_wh,
                export_wh=config.export_wh,
                t=t0,
            )
            self.evses[i] = Evse(self, i, stage)
        # firmware settings mirrored from the device model (kept in sync by its hooks)
        self.heartbeat_interval = config.heartbeat_interval_s
        self.password = config.basic_auth_password
        self.certificates = CertificateStore(config.id, config.vendor, config.client_cert_file, config.client_key_file)
        self.sign_certificate_status: str | None = None
        self.smart_charging_enabled = True
        self.station_operative_flag = True
        self._dm: DeviceModel | None = None
        # smart charging
        self.profiles: list[InstalledProfile] = []
        # link state
        self.registration = ""  # "", "Pending", "Accepted", "Rejected"
        self.boot_reason = "PowerUp"
        self.online = False
        self.offline_since_t: float | None = t0
        self.rebooting = False
        self.pending_reset = False
        self.connected_at: float | None = None
        self.connections = 0
        self.boots = 0
        self._net_down_until: float | None = None
        self._ws: ClientConnection | None = None
        self._rpc: RpcEndpoint | None = None
        self._outbox: deque[Outgoing] = deque()
        self._kick = asyncio.Event()
        self._wake = asyncio.Event()
        self._boot_now = asyncio.Event()
        self._link_alive = False
        self._tasks: list[asyncio.Task[None]] = []
        self._aux: set[asyncio.Task[Any]] = set()
        self._next_heartbeat_t: float | None = None
        self._next_aligned_t = 0.0
        self._fw_installed_request: int | None = None
        self._fw_task: asyncio.Task[None] | None = None
        self._rng: random.Random | None = None
        self._stopping = False
        # observability
        self.lag_warning_s = lag_warning_s
        self.lag_max_s = 0.0
        self.lag_last_s = 0.0
        self._lag_warned_t = -1e18
        self.sent_count = 0
        self.received_count = 0
        self.error_count = 0
        self.dropped_tx_events = 0
        self.record = record
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.received: list[tuple[str, dict[str, Any]]] = []
        for s in config.sessions:
            epoch = clock.epoch
            plug = s.plug_in.resolve(epoch).timestamp()
            dep = s.departure.resolve(epoch).timestamp()
            plan = s.planned_departure.resolve(epoch).timestamp() if s.planned_departure else None
            self.add_session(
                s.evse,
                SessionPlan(
                    plug_in_t=plug,
                    departure_t=dep,
                    plan_departure_t=plan,
                    car=s.car,
                    initial_soc=s.initial_soc,
                    target_soc=s.target_soc,
                    min_soc=s.min_soc,
                    id_token=s.id_token,
                    session_id=s.session_id,
                ),
            )

    # ================================================================== public API
    def now_t(self) -> float:
        return self.clock.now().timestamp()

    @property
    def dm(self) -> DeviceModel:
        """The device model, built on first use (keeps idle stations small)."""
        if self._dm is None:
            from .tree import build_device_model

            self._dm = build_device_model(self)
        return self._dm

    async def start(self) -> None:
        if self._tasks:
            return
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._firmware_loop(), name=f"fw:{self.id}"),
            asyncio.create_task(self._link_loop(), name=f"link:{self.id}"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for t in [*self._tasks, *self._aux]:
            t.cancel()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await ws.close()
        for t in [*self._tasks, *self._aux]:
            with contextlib.suppress(BaseException):
                await t
        self._tasks = []
        self._aux.clear()

    def add_session(self, evse_id: int, plan: SessionPlan) -> None:
        """Schedule a car visit (kept sorted by plug-in time)."""
        if evse_id not in self.evses:
            raise ValueError(f"{self.id} has no EVSE {evse_id}")
        plans = self.evses[evse_id].plans
        plans.append(plan)
        if len(plans) > 1 and plans[-2].plug_in_t > plan.plug_in_t:
            self.evses[evse_id].plans = deque(sorted(plans, key=lambda p: p.plug_in_t))
        self.wake()

    def plug_in(
        self,
        evse_id: int = 1,
        *,
        car: str = "nissan-leaf-62",
        soc: float = 50.0,
        target_soc: float = 80.0,
        departure_s: float = 4 * 3600.0,
        min_soc: float | None = None,
        id_token: str | None = None,
    ) -> None:
        """Plug a car in now; it leaves after ``departure_s`` simulated seconds."""
        now = self.now_t()
        self.add_session(
            evse_id,
            SessionPlan(
                plug_in_t=now,
                departure_t=now + departure_s,
                car=car,
                initial_soc=soc,
                target_soc=target_soc,
                min_soc=min_soc,
                id_token=id_token,
            ),
        )

    def ev_leaves(self, evse_id: int = 1) -> None:
        """Fault/driver action: the car on ``evse_id`` leaves now (before its departure time)."""
        evse = self.evses[evse_id]
        if evse.ev is not None:
            evse.departure_t = self.now_t()
            self.wake()

    def disconnect(self, duration_s: float | None = None) -> None:
        """Drop the network link (abort, no close handshake); stay offline ``duration_s`` simulated
        seconds (None: until :meth:`reconnect`), then reconnect with back-off."""
        now = self.now_t()
        self._net_down_until = float("inf") if duration_s is None else now + duration_s
        self._mark_offline()
        ws = self._ws
        if ws is not None:
            ws.transport.abort()
        self._kick.set()

    def _mark_offline(self) -> None:
        if self.online:
            self.online = False
            self.offline_since_t = self.now_t()
            self.log.info("disconnected")
            self.wake()

    def reconnect(self) -> None:
        """End a simulated network outage now."""
        self._net_down_until = None
        self._boot_now.set()
        self._kick.set()

    def reboot(self, reason: str = "LocalReset") -> None:
        """Power-cycle the station (like Reset Immediate, but local)."""
        self._spawn(self._reboot(boot_reason=reason, trigger="ResetCommand", stopped="Reboot"))

    def set_faults(self, **changes: Any) -> None:
        """Change fault switches: reject_profiles, ignore_profiles, answer_delay_s, power_drift,
        meter_noise, early_departure_s."""
        for k, v in changes.items():
            if k not in Faults.__slots__:
                raise ValueError(f"unknown fault {k!r}")
            setattr(self.faults, k, v)
        self.wake()

    def counters(self) -> dict[int, dict[str, float]]:
        """Grid-side energy registers (Wh) per EVSE, exactly what the meter values report."""
        return {i: {"import_wh": e.import_wh, "export_wh": e.export_wh} for i, e in self.evses.items()}

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "online": self.online,
            "registration": self.registration,
            "evses": [e.snapshot() for e in self.evses.values()],
            "profiles": len(self.profiles),
            "outbox": len(self._outbox),
            "lag_max_s": round(self.lag_max_s, 3),
        }

    def wake(self) -> None:
        self._wake.set()

    async def wait_online(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not (self.online and self.registration == "Accepted"):  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    async def wait_idle_outbox(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while self._outbox or (self._rpc is not None and self._rpc.busy):  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    @property
    def outbox_size(self) -> int:
        return len(self._outbox)

    def queued(self, action: str | None = None) -> list[dict[str, Any]]:
        return [o.payload for o in self._outbox if action is None or o.action == action]

    @property
    def station_operative(self) -> bool:
        return self.station_operative_flag

    def station_availability(self) -> str:
        if not self.station_operative_flag:
            return "Unavailable"
        states = [e.connector_status() for e in self.evses.values()]
        if all(s == "Occupied" for s in states):
            return "Occupied"
        return "Available"

    # ================================================================== device-model hooks
    def on_heartbeat_interval(self, value: str) -> str | None:
        self.heartbeat_interval = int(value)
        self._next_heartbeat_t = self.now_t() + self.heartbeat_interval
        self.wake()
        return None

    def on_meter_interval(self, value: str) -> str | None:
        self._next_aligned_t = 0.0
        for e in self.evses.values():
            if e.tx is not None:
                e.tx.next_periodic_t = 0.0
        self.wake()
        return None

    def on_basic_auth_password(self, value: str) -> str | None:
        self.password = value
        if self.config.security_profile in (1, 2):
            # reconnect with the new credentials once the SetVariablesResponse is out
            asyncio.get_running_loop().call_later(0.05, self._graceful_reconnect)
        return None

    def on_smart_charging_enabled(self, value: str) -> str | None:
        self.smart_charging_enabled = value.strip().lower() == "true"
        self.wake()
        return None

    def _graceful_reconnect(self) -> None:
        ws = self._ws
        if ws is not None:
            self._spawn(ws.close(code=1000, reason="credentials changed"))

    # settings read by the firmware (device model when built, else defaults from the config)
    def _dm_int(self, component: str, name: str, default: int, **kw: Any) -> int:
        if self._dm is None:
            return default
        try:
            return self._dm.int(component, name, **kw)
        except (KeyError, ValueError):
            return default

    def _dm_list(self, component: str, name: str, default: str) -> list[str]:
        if self._dm is None:
            text = default
        else:
            try:
                text = self._dm.value(component, name)
            except KeyError:
                text = default
        return [t for t in (x.strip() for x in text.split(",")) if t]

    def _dm_bool(self, component: str, name: str, default: bool, **kw: Any) -> bool:
        if self._dm is None:
            return default
        try:
            return self._dm.bool(component, name, **kw)
        except KeyError:
            return default

    @property
    def tx_updated_interval(self) -> int:
        return self._dm_int("SampledDataCtrlr", "TxUpdatedInterval", self.config.tx_updated_interval_s)

    @property
    def aligned_interval(self) -> int:
        if not self._dm_bool("AlignedDataCtrlr", "Enabled", True):
            return 0
        return self._dm_int("AlignedDataCtrlr", "Interval", self.config.aligned_interval_s)

    # ================================================================== small helpers
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._aux.add(task)
        task.add_done_callback(self._aux.discard)
        return task

    def _enqueue(self, item: Outgoing, *, front: bool = False) -> None:
        if item.persistent:
            n = sum(1 for o in self._outbox if o.persistent)
            if n >= TX_QUEUE_LIMIT:
                for o in self._outbox:
                    if o.persistent and o.payload.get("triggerReason") in ("MeterValuePeriodic", "MeterValueClock"):
                        self._outbox.remove(o)
                        self.dropped_tx_events += 1
                        break
        if front:
            self._outbox.appendleft(item)
        else:
            self._outbox.append(item)
        self._kick.set()

    def _send_if_online(self, action: str, payload: dict[str, Any], **kw: Any) -> bool:
        if not (self.online and self.registration == "Accepted"):
            return False
        self._enqueue(Outgoing(action, payload, **kw))
        return True

    def _note_lag(self, lag: float, now_t: float) -> None:
        self.lag_last_s = lag
        if lag > self.lag_max_s:
            self.lag_max_s = lag
        if lag > self.lag_warning_s and now_t - self._lag_warned_t > 60.0 * max(1.0, self.clock.speed):
            self._lag_warned_t = now_t
            self.log.debug("clock lag: firmware loop behind the simulated clock", lag_s=round(lag, 2))

    def _noise(self, value: float) -> float:
        sigma = self.faults.meter_noise
        if not sigma or value == 0:
            return value
        if self._rng is None:
            self._rng = random.Random(f"noise:{self.id}")
        return value * (1.0 + self._rng.gauss(0.0, sigma))

    # ================================================================== firmware loop
    async def _firmware_loop(self) -> None:
        loop = asyncio.get_running_loop()
        planned = self.now_t()
        offset = getattr(self.clock, "offset", None)
        while True:
            now_t = self.now_t()
            stepped = getattr(self.clock, "offset", None) != offset  # a clock correction is not lag
            offset = getattr(self.clock, "offset", None)
            if now_t > planned and not stepped:
                self._note_lag(now_t - planned, now_t)
            try:
                self._tick(now_t)
                nxt = self._next_wake(now_t)
            except Exception:
                self.log.exception("firmware tick failed")
                nxt = now_t + 1.0
            planned = nxt
            delay = max(0.0, (nxt - self.now_t()) / self.clock.speed)
            handle = loop.call_later(delay, self._wake.set)
            await self._wake.wait()
            self._wake.clear()
            handle.cancel()

    def _tick(self, now_t: float) -> None:
        for evse in self.evses.values():
            self._advance(evse, now_t)
        for evse in self.evses.values():
            if evse.ev is not None and evse.departure_t is not None and evse.departure_t <= now_t:
                self._ev_departs(evse, now_t)
            if evse.ev is None:
                while evse.plans and evse.plans[0].departure_t <= now_t:
                    stale = evse.plans.popleft()
                    self.log.info("session skipped: it ended before it could start", evse=evse.id,
                                  session=stale.session_id)  # fmt: skip
                if evse.plans and evse.plans[0].plug_in_t <= now_t and not self.rebooting:
                    self._ev_arrives(evse, evse.plans.popleft(), now_t)
            if evse.remote_auth is not None and evse.remote_auth[2] <= now_t:
                self.log.info("remote start expired: no EV connected in time", evse=evse.id)
                evse.remote_auth = None
            if evse.ev is not None and evse.tx is None and not evse.tx_done and not self.rebooting and evse.operative:
                self._start_transaction(evse, now_t)
        share = self._station_share(now_t)
        for evse in self.evses.values():
            if evse.tx is not None and not evse.tx.ended:
                self._control(evse, now_t, share)
            elif evse.stage.target_w != 0 or evse.stage.power_w != 0:
                evse.stage.set_target(0.0)
        self._meter_timers(now_t)
        if (
            self.online
            and self.registration == "Accepted"
            and self._next_heartbeat_t is not None
            and now_t >= self._next_heartbeat_t
        ):
            self._next_heartbeat_t = now_t + self.heartbeat_interval
            if not any(o.action == "Heartbeat" for o in self._outbox):
                self._enqueue(Outgoing("Heartbeat", {}, on_result=self._heartbeat_result))
        if (
            self.pending_reset
            and not self.rebooting
            and not any(e.tx is not None and not e.tx.ended for e in self.evses.values())
        ):
            self.pending_reset = False
            self._spawn(self._reboot(boot_reason="RemoteReset", trigger="ResetCommand", stopped="Reboot"))

    def _advance(self, evse: Evse, now_t: float) -> None:
        stage = evse.stage
        tx = evse.tx
        before = stage.t
        if tx is not None and not tx.ended and stage.power_w != 0:
            tx.charging_s += max(0.0, now_t - before)
        stage.advance(now_t)

    def _next_wake(self, now_t: float) -> float:
        cands = [now_t + _MAX_SLEEP_S]
        if self._next_heartbeat_t is not None and self.online:
            cands.append(self._next_heartbeat_t)
        if self.aligned_interval > 0:
            cands.append(self._next_aligned_t)
        offline_for = None if self.offline_since_t is None else now_t - self.offline_since_t
        for evse in self.evses.values():
            if evse.plans and evse.ev is None and not self.rebooting:
                cands.append(evse.plans[0].plug_in_t)
            if evse.departure_t is not None and evse.ev is not None:
                cands.append(evse.departure_t)
            if evse.remote_auth is not None:
                cands.append(evse.remote_auth[2])
            tx = evse.tx
            if tx is None or tx.ended:
                continue
            if self.tx_updated_interval > 0:
                cands.append(tx.next_periodic_t)
            stage = evse.stage
            ramp = stage.ramp_remaining_s()
            if ramp > 0:
                cands.append(now_t + ramp)
            to_limit = stage.seconds_to_limit()
            if to_limit is not None:
                cands.append(now_t + max(to_limit, 0.05))
            ev = evse.ev
            if ev is not None and stage.target_w > 0 and ev.soc >= ev.model.taper_start_soc:
                cands.append(now_t + _TAPER_RECHECK_S)
            if self.profiles:
                nxt = next_change_after(
                    self.profiles,
                    evse_id=evse.id,
                    at=_dt(now_t),
                    horizon_s=int(_MAX_SLEEP_S) + 1,
                    transaction_start=_dt(tx.start_t),
                    transaction_id=tx.id,
                )
                if nxt is not None:
                    cands.append(nxt.timestamp())
                if offline_for is not None:
                    for inst in self.profiles:
                        mod = inst.profile.max_offline_duration
                        if mod is not None and offline_for < mod:
                            cands.append(self.offline_since_t + mod)  # type: ignore[operator]
            if offline_for is not None and self.version == "2.0.1":
                limit = self.config.offline_discharge_timeout_s
                if offline_for < limit:
                    cands.append(self.offline_since_t + limit)  # type: ignore[operator]
        return max(min(cands), now_t)

    # ------------------------------------------------------------------ sessions
    def _ev_arrives(self, evse: Evse, plan: SessionPlan, now_t: float) -> None:
        if not evse.operative:
            self.log.info("car turned away: EVSE unavailable", evse=evse.id, session=plan.session_id)
            return
        ev = plan.make_ev()
        if not ev.id_token:
            seed = f"{self.id}:{evse.id}:{plan.session_id or plan.plug_in_t}"
            ev.id_token = "US-FEV-" + uuid.uuid5(uuid.NAMESPACE_OID, seed).hex[:12].upper()
        evse.stage.ev = ev
        evse.stage.ceiling_wh = ev.target_wh
        depart = plan.departure_t - (self.faults.early_departure_s or 0.0)
        evse.departure_t = max(depart, now_t)
        evse.tx_done = False
        evse.history.append({"event": "plug_in", "t": now_t, "session": plan.session_id, "car": plan.car,
                             "soc": ev.soc})  # fmt: skip
        self.log.debug("car plugged in", evse=evse.id, car=plan.car, soc=round(ev.soc, 1))
        self._status_changed(evse)

    def _ev_departs(self, evse: Evse, now_t: float) -> None:
        ev = evse.ev
        evse.stage.stop()
        tx = evse.tx
        if tx is not None and not tx.ended:
            if tx.charging_state != "EVConnected" and tx.authorized:
                tx.charging_state = "EVConnected"
                self._tx_event(evse, "Updated", "ChargingStateChanged", now_t)
            self._end_transaction(evse, now_t, trigger="EVDeparted", reason="EVDisconnected")
        evse.history.append({"event": "departure", "t": now_t, "soc": ev.soc if ev else None})
        evse.stage.ev = None
        evse.stage.ceiling_wh = None
        evse.departure_t = None
        evse.tx = None
        evse.tx_done = False
        evse.pending_tx_profile = None
        self._status_changed(evse)

    # ------------------------------------------------------------------ transactions
    def _start_transaction(self, evse: Evse, now_t: float) -> None:
        tx = Transaction(str(uuid.uuid4()), now_t)
        tx.next_periodic_t = now_t + self.tx_updated_interval
        evse.tx = tx
        remote = evse.remote_auth
        if remote is not None:
            tx.remote_start_id = remote[1]
        meter = self._meter_value(evse, self._measurands("TxStartedMeasurands"), "Transaction.Begin", now_t)
        self._tx_event(evse, "Started", "CablePluggedIn", now_t, meter=meter)
        tx.charging_state = "EVConnected"
        self._tx_event(evse, "Updated", "EVDetected", now_t)
        if evse.pending_tx_profile is not None:
            self._install_pending_tx_profile(evse, now_t)
        if remote is not None:
            evse.remote_auth = None
            self._authorize(evse, remote[0], trigger="RemoteStart")
        else:
            ev = evse.ev
            assert ev is not None
            self._authorize(evse, {"idToken": ev.id_token, "type": "eMAID"}, trigger="Authorized")

    def _authorize(self, evse: Evse, id_token: dict[str, Any], *, trigger: str) -> None:
        tx = evse.tx
        assert tx is not None
        tx_id = tx.id
        if not self._dm_bool("AuthCtrlr", "Enabled", True):
            self._authorized(evse, tx_id, id_token, trigger, {"idTokenInfo": {"status": "Accepted"}})
            return
        if self.online and self.registration == "Accepted":
            self._enqueue(
                Outgoing(
                    "Authorize",
                    {"idToken": id_token},
                    on_result=lambda r: self._authorized(evse, tx_id, id_token, trigger, r),
                    on_error=lambda exc: self._authorize_failed(evse, tx_id, id_token, trigger, exc),
                )
            )
        else:
            self._authorize_offline(evse, tx_id, id_token, trigger)

    def _authorize_offline(self, evse: Evse, tx_id: str, id_token: dict[str, Any], trigger: str) -> None:
        known = local_auth.lookup(self, id_token)  # D/C: the local list, then the cache
        if known is not None and self._dm_bool("AuthCtrlr", "LocalAuthorizeOffline", True):
            self._authorized(evse, tx_id, id_token, trigger, {"idTokenInfo": known}, local=True)
        elif self._dm_bool("AuthCtrlr", "LocalAuthorizeOffline", True) and self._dm_bool(
            "AuthCtrlr", "OfflineTxForUnknownIdEnabled", True
        ):
            # authorized locally; no allowedEnergyTransfer known -> charge only until the CSMS says otherwise
            self._authorized(evse, tx_id, id_token, trigger, {"idTokenInfo": {"status": "Accepted"}}, local=True)
        else:
            self._authorized(evse, tx_id, id_token, trigger, {"idTokenInfo": {"status": "Unknown"}})

    def _authorize_failed(self, evse: Evse, tx_id: str, id_token: dict[str, Any], trigger: str, exc: Exception) -> None:
        self.log.warning("Authorize failed", evse=evse.id, error=str(exc))
        if isinstance(exc, ConnectionLost):
            self._authorize_offline(evse, tx_id, id_token, trigger)
        else:
            self._authorized(evse, tx_id, id_token, trigger, {"idTokenInfo": {"status": "Invalid"}})

    def _authorized(
        self,
        evse: Evse,
        tx_id: str,
        id_token: dict[str, Any],
        trigger: str,
        response: dict[str, Any],
        *,
        local: bool = False,
    ) -> None:
        tx = evse.tx
        if tx is None or tx.id != tx_id or tx.ended:
            return
        now_t = self.now_t()
        self._advance(evse, now_t)
        status = response.get("idTokenInfo", {}).get("status")
        if not local and status is not None:
            local_auth.remember(self, id_token, response["idTokenInfo"])  # C10: every answer
        if status != "Accepted":
            self.log.info("authorization refused", evse=evse.id, status=status)
            tx.id_token = id_token
            self._deauthorize(evse, now_t)
            return
        if not reservations.admit(self, evse, id_token, response["idTokenInfo"]):
            self.log.info("EVSE reserved for another idToken", evse=evse.id)
            tx.id_token = id_token
            self._deauthorize(evse, now_t)
            return
        tx.authorized = True
        tx.id_token = id_token
        tariff.on_authorized(self, tx.id, response)
        if not local:
            tx.allowed = list(response.get("allowedEnergyTransfer", []))
        self._tx_event(evse, "Updated", trigger, now_t, id_token=id_token)
        self._send_charging_needs(evse, now_t)
        self.wake()

    def _deauthorize(self, evse: Evse, now_t: float) -> None:
        tx = evse.tx
        if tx is None or tx.ended:
            return
        tx.authorized = False
        tx.stopped = True
        evse.stage.set_target(0.0)
        if tx.charging_state != "EVConnected":
            tx.charging_state = "EVConnected"
        self._tx_event(evse, "Updated", "Deauthorized", now_t)
        if self._dm_bool("TxCtrlr", "StopTxOnInvalidId", True):
            self._end_transaction(evse, now_t, trigger="Deauthorized", reason="DeAuthorized")

    def _end_transaction(self, evse: Evse, now_t: float, *, trigger: str, reason: str) -> None:
        tx = evse.tx
        if tx is None or tx.ended:
            return
        self._advance(evse, now_t)
        evse.stage.stop()
        meter = self._meter_value(evse, self._measurands("TxEndedMeasurands"), "Transaction.End", now_t)
        tx.charging_state = "EVConnected" if evse.ev is not None else "Idle"
        self._tx_event(evse, "Ended", trigger, now_t, meter=meter, stopped_reason=reason)
        tx.ended = True
        evse.tx_done = True
        # TxProfiles die with their transaction (K01.FR.?: TxProfile only for the duration of the tx)
        self.profiles = [
            p
            for p in self.profiles
            if not (p.profile.purpose is ChargingProfilePurpose.TX_PROFILE and p.profile.transaction_id == tx.id)
        ]
        if evse.scheduled_inoperative:
            evse.scheduled_inoperative = False
            evse.operative_flag = False
        self._status_changed(evse)

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
    ) -> None:
        tx = evse.tx
        assert tx is not None
        info: dict[str, Any] = {"transactionId": tx.id, "chargingState": tx.charging_state}
        if tx.remote_start_id is not None and not tx.remote_start_reported:
            info["remoteStartId"] = tx.remote_start_id
            tx.remote_start_reported = True
        if self.version == "2.1" and tx.op_mode is not None:
            info["operationMode"] = tx.op_mode
        reservation_id = reservations.report(self, tx.id)
        if event_type == "Ended":
            info["stoppedReason"] = stopped_reason or "Local"
        if event_type != "Started":
            info["timeSpentCharging"] = int(tx.charging_s)
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": _ts(now_t),
            "triggerReason": trigger,
            "seqNo": tx.seq,
            "transactionInfo": info,
            "evse": {"id": evse.id, "connectorId": 1},
        }
        tx.seq += 1
        if not self.online:
            payload["offline"] = True
        if id_token is not None:
            payload["idToken"] = id_token
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        if meter:
            payload["meterValue"] = meter
        tx.reported_w = evse.stage.target_w
        tx_id = tx.id
        self._enqueue(
            Outgoing(
                "TransactionEvent",
                payload,
                persistent=True,
                tx_id=tx_id,
                on_result=lambda r: self._tx_event_result(evse, tx_id, r),
            )
        )

    def _tx_event_result(self, evse: Evse, tx_id: str, response: dict[str, Any]) -> None:
        info = response.get("idTokenInfo")
        tx = evse.tx
        if info is None or tx is None or tx.id != tx_id or tx.ended or not tx.authorized:
            return
        if info.get("status") != "Accepted":
            self.log.info("CSMS revoked the idToken", evse=evse.id, status=info.get("status"))
            self._deauthorize(evse, self.now_t())
            self.wake()

    def _send_charging_needs(self, evse: Evse, now_t: float) -> None:
        ev = evse.ev
        if ev is None:
            return
        payload = self.charging_needs(evse, now_t)
        tx = evse.tx
        if payload is None or tx is None:
            return
        tx_id = tx.id

        def lost(exc: Exception) -> None:
            if evse.tx is not None and evse.tx.id == tx_id and isinstance(exc, ConnectionLost):
                evse.tx.needs_sent = False

        tx.needs_sent = self._send_if_online("NotifyEVChargingNeeds", payload, on_error=lost)

    def charging_needs(self, evse: Evse, now_t: float) -> dict[str, Any] | None:
        """The NotifyEVChargingNeedsRequest this car sends (ISO 15118-20 bidirectional DC)."""
        ev = evse.ev
        if ev is None:
            return None
        stage = evse.stage
        eta = stage.efficiency
        m = ev.model
        max_charge = min(stage.charge_rating_w, m.max_charge_kw * 1000.0 / eta)
        max_dis = min(stage.discharge_rating_w, m.max_discharge_kw * 1000.0 * eta) if ev.bidirectional else 0.0
        needs = ev.needs()
        dc: dict[str, Any] = {
            "evMaxCurrent": round(m.max_charge_kw * 1000.0 / m.nominal_voltage, 1),
            "evMaxVoltage": m.max_voltage,
            "evMaxPower": round(max_charge, 1),
            "evEnergyCapacity": round(ev.capacity_wh, 1),
            "energyAmount": round(max(0.0, needs["target"]), 1),
            "stateOfCharge": round(ev.soc),
            "fullSoC": round(ev.max_soc),
        }
        depart = ev.planned_departure or ev.departure
        if self.version == "2.0.1":
            dc = {k: round(v) for k, v in dc.items()}
            cn: dict[str, Any] = {"requestedEnergyTransfer": "DC", "dcChargingParameters": dc}
            if depart is not None:
                cn["departureTime"] = to_rfc3339(depart)
            if ev.bidirectional and self.config.v2x_vendor_convention:
                cn["customData"] = {
                    "vendorId": "org.openv2g.bpt",
                    "evMaxDischargePower": round(max_dis),
                    "evMinDischargePower": round(stage.min_discharge_w),
                    "evMinSoC": round(ev.min_soc),
                    "targetSoC": round(ev.target_soc),
                    "evMinEnergyRequest": round(max(0.0, needs["min"])),
                    "evMaxV2XEnergyRequest": round(max(0.0, -needs["min_v2x"])),
                }
            return {"evseId": evse.id, "chargingNeeds": cn}
        v2x: dict[str, Any] = {
            "minChargePower": 0.0,
            "maxChargePower": round(max_charge, 1),
            "minDischargePower": round(stage.min_discharge_w if ev.bidirectional else 0.0, 1),
            "maxDischargePower": round(max_dis, 1),
            "maxChargeCurrent": dc["evMaxCurrent"],
            "maxDischargeCurrent": round(m.max_discharge_kw * 1000.0 / m.nominal_voltage, 1),
            "maxVoltage": m.max_voltage,
            "minVoltage": round(m.nominal_voltage * 0.8, 1),
            "evTargetEnergyRequest": round(needs["target"], 1),
            "evMinEnergyRequest": round(needs["min"], 1),
            "evMaxEnergyRequest": round(needs["max"], 1),
            "evMinV2XEnergyRequest": round(needs["min_v2x"], 1),
            "evMaxV2XEnergyRequest": round(needs["max_v2x"], 1),
            "targetSoC": round(ev.target_soc),
        }
        cn = {
            "requestedEnergyTransfer": "DC_BPT" if ev.bidirectional else "DC",
            "availableEnergyTransfer": ["DC", "DC_BPT"] if ev.bidirectional else ["DC"],
            "controlMode": "ScheduledControl",
            "mobilityNeedsMode": "EVCC",
            "dcChargingParameters": dc,
            "v2xChargingParameters": v2x,
        }
        if depart is not None:
            cn["departureTime"] = to_rfc3339(depart)
        return {"evseId": evse.id, "timestamp": _ts(now_t), "chargingNeeds": cn}

    # ------------------------------------------------------------------ smart charging: what power to run
    def envelope(self, evse: Evse, now_t: float) -> Setpoint:
        """The profile envelope on ``evse`` now (faults and offline rules applied)."""
        tx = evse.tx
        if self.faults.ignore_profiles or not self.smart_charging_enabled or not self.profiles:
            return Setpoint(None, 0.0, None, OperationMode.CHARGING_ONLY)
        profiles = self._usable_profiles(now_t)
        return effective_power_at(
            profiles,
            evse_id=evse.id,
            at=_dt(now_t),
            transaction_start=_dt(tx.start_t) if tx else None,
            transaction_id=tx.id if tx else None,
            voltage=self.config.ac_voltage,
            phases=self.config.ac_phases,
        )

    def _usable_profiles(self, now_t: float) -> list[InstalledProfile]:
        if self.offline_since_t is None:
            return self.profiles
        offline_for = now_t - self.offline_since_t
        keep: list[InstalledProfile] = []
        invalid: list[InstalledProfile] = []
        for inst in self.profiles:
            mod = inst.profile.max_offline_duration
            if mod is not None and offline_for >= mod:
                if inst.profile.invalid_after_offline_duration:
                    invalid.append(inst)
                continue
            keep.append(inst)
        if invalid:
            self.log.info("profiles invalid after maxOfflineDuration", ids=[p.profile.id for p in invalid])
            self.profiles = [p for p in self.profiles if p not in invalid]
        return keep

    def discharge_allowed(self, evse: Evse, now_t: float) -> bool:
        ev, tx = evse.ev, evse.tx
        if ev is None or tx is None or not ev.bidirectional or not tx.authorized:
            return False
        if self.version == "2.1":
            if not self._dm_bool("V2XChargingCtrlr", "Enabled", True, evse=evse.id):
                return False
            return bool(BPT_MODES.intersection(tx.allowed))
        if not self.config.v2x_vendor_convention:
            return False
        if self.offline_since_t is not None and now_t - self.offline_since_t >= self.config.offline_discharge_timeout_s:
            return False
        return True

    def _station_share(self, now_t: float) -> tuple[float | None, float | None]:
        """Local load balancing on a multi-EVSE unit: the station-wide caps (ChargingStationMaxProfile,
        ExternalConstraints on evseId 0) are split equally over the EVSEs with an authorized session.
        Returns (charge cap W, discharge cap W as a positive number) per EVSE, None = unconstrained."""
        if len(self.evses) < 2 or not self.profiles or self.faults.ignore_profiles or not self.smart_charging_enabled:
            return None, None
        active = sum(1 for e in self.evses.values() if e.tx is not None and not e.tx.ended and e.tx.authorized)
        if active < 2:
            return None, None
        station = effective_power_at(
            self._usable_profiles(now_t), evse_id=0, at=_dt(now_t), voltage=self.config.ac_voltage,
            phases=self.config.ac_phases,
        )  # fmt: skip
        charge = None if station.charge_limit_w is None else station.charge_limit_w / active
        dis = None if station.discharge_limit_w is None else -station.discharge_limit_w / active
        return charge, dis

    def _control(self, evse: Evse, now_t: float, share: tuple[float | None, float | None] = (None, None)) -> None:
        tx = evse.tx
        ev = evse.ev
        stage = evse.stage
        assert tx is not None
        if ev is None:
            return
        mode: str | None = None
        if not tx.authorized or tx.stopped or not evse.operative or self.rebooting:
            desired = 0.0
            state = "EVConnected" if not tx.authorized else "SuspendedEVSE"
        else:
            env = self.envelope(evse, now_t)
            mode = env.operation_mode.value
            if env.setpoint_w is not None and env.setpoint_w > 0:
                stage.ceiling_wh = ev.full_wh
            else:
                stage.ceiling_wh = ev.target_wh
            may_discharge = self.discharge_allowed(evse, now_t)
            max_c = stage.max_import_w()
            max_d = stage.max_export_w() if may_discharge else 0.0
            if share[0] is not None:
                max_c = min(max_c, share[0])
            if share[1] is not None:
                max_d = min(max_d, share[1])
            der_cap = der.discharge_cap_w(self, stage.discharge_rating_w, now_t)  # R: LimitMaxDischarge
            if der_cap is not None:
                max_d = min(max_d, der_cap)
            desired = stage.clamp(env.target_power_w(max_charge_w=max_c, max_discharge_w=max_d))
            drift = self.faults.power_drift
            if drift and desired:
                desired = desired * (1.0 + drift)
                if desired > 0:
                    desired = min(desired, stage.charge_rating_w)
                else:
                    desired = max(desired, -stage.discharge_rating_w)
            if desired != 0:
                state = "Charging"
            else:
                hw_d = stage.discharge_rating_w if may_discharge else 0.0
                wanted = env.target_power_w(max_charge_w=stage.charge_rating_w, max_discharge_w=hw_d)
                if env.operation_mode is OperationMode.IDLE or wanted == 0:
                    state = "SuspendedEVSE"
                else:
                    state = "SuspendedEV"
        if abs(desired - stage.target_w) > 1e-6:
            stage.set_target(desired)
        state_changed = state != tx.charging_state
        mode_changed = self.version == "2.1" and mode is not None and mode != tx.op_mode
        tx.charging_state = state
        if mode is not None:
            tx.op_mode = mode
        if state_changed or mode_changed:
            self._tx_event(evse, "Updated", "ChargingStateChanged" if state_changed else "OperationModeChanged", now_t)
            return
        if state == "Charging":
            rating = max(stage.charge_rating_w, stage.discharge_rating_w)
            significance = self._limit_significance() * rating
            if abs(desired - tx.reported_w) > significance:
                self._tx_event(evse, "Updated", "ChargingRateChanged", now_t)

    def _limit_significance(self) -> float:
        if self._dm is None:
            return 0.10
        try:
            return self._dm.float("SmartChargingCtrlr", "LimitChangeSignificance") / 100.0
        except (KeyError, ValueError):
            return 0.10

    # ------------------------------------------------------------------ meter values
    def _measurands(self, name: str, component: str = "SampledDataCtrlr") -> list[str]:
        return self._dm_list(component, name, DEFAULT_MEASURANDS.get((component, name), ""))

    def sampled_values(self, evse: Evse, measurands: list[str], context: str) -> list[dict[str, Any]]:
        stage = evse.stage
        p = stage.power_w
        volts = self.config.ac_voltage
        out: list[dict[str, Any]] = []
        for m in measurands:
            if m == "Energy.Active.Import.Register":
                value, unit = round(stage.import_wh, 2), "Wh"
            elif m == "Energy.Active.Export.Register":
                value, unit = round(stage.export_wh, 2), "Wh"
            elif m == "Power.Active.Import":
                value, unit = round(self._noise(max(p, 0.0)), 1), "W"
            elif m == "Power.Active.Export":
                value, unit = round(self._noise(max(-p, 0.0)), 1), "W"
            elif m == "SoC":
                if evse.ev is None:
                    continue
                out.append({"value": round(evse.ev.soc, 1), "measurand": "SoC", "context": context,
                            "location": "EV", "unitOfMeasure": {"unit": "Percent"}})  # fmt: skip
                continue
            elif m == "Voltage":
                value, unit = round(self._noise(volts) if self.faults.meter_noise else volts, 1), "V"
            elif m == "Current.Import":
                value, unit = round(self._noise(max(p, 0.0)) / volts, 2), "A"
            elif m == "Current.Export":
                value, unit = round(self._noise(max(-p, 0.0)) / volts, 2), "A"
            elif m == "Power.Active.Setpoint":
                if evse.tx is None or evse.tx.op_mode != "CentralSetpoint":
                    continue
                value, unit = round(stage.target_w, 1), "W"
            else:
                continue
            out.append({"value": value, "measurand": m, "context": context, "unitOfMeasure": {"unit": unit}})
        return out

    def _meter_value(self, evse: Evse, measurands: list[str], context: str, now_t: float) -> list[dict[str, Any]]:
        sv = self.sampled_values(evse, measurands, context)
        return [{"timestamp": _ts(now_t), "sampledValue": sv}] if sv else []

    def _meter_timers(self, now_t: float) -> None:
        aligned = self.aligned_interval
        if aligned > 0:
            if self._next_aligned_t == 0.0:
                self._next_aligned_t = (now_t // aligned + 1) * aligned
            elif now_t >= self._next_aligned_t:
                at = self._next_aligned_t
                self._next_aligned_t = (now_t // aligned + 1) * aligned
                measurands = self._measurands("Measurands", "AlignedDataCtrlr")
                idle_too = self._dm_bool("AlignedDataCtrlr", "SendDuringIdle", True)
                for evse in self.evses.values():
                    tx = evse.tx
                    if tx is not None and not tx.ended:
                        meter = self._meter_value(evse, measurands, "Sample.Clock", at)
                        if meter:
                            self._tx_event(evse, "Updated", "MeterValueClock", now_t, meter=meter)
                    elif idle_too:
                        meter = self._meter_value(evse, measurands, "Sample.Clock", at)
                        if meter:
                            self._send_if_online("MeterValues", {"evseId": evse.id, "meterValue": meter})
        interval = self.tx_updated_interval
        if interval <= 0:
            return
        for evse in self.evses.values():
            tx = evse.tx
            if tx is None or tx.ended:
                continue
            if tx.next_periodic_t == 0.0:
                tx.next_periodic_t = now_t + interval
            elif now_t >= tx.next_periodic_t:
                # keep the phase of the transaction start
                missed = int((now_t - tx.next_periodic_t) // interval) + 1
                tx.next_periodic_t += missed * interval
                meter = self._meter_value(evse, self._measurands("TxUpdatedMeasurands"), "Sample.Periodic", now_t)
                if meter:
                    self._tx_event(evse, "Updated", "MeterValuePeriodic", now_t, meter=meter)

    # ------------------------------------------------------------------ status
    def _status_changed(self, evse: Evse) -> None:
        status = evse.connector_status()
        if status == evse.status_reported:
            return
        if self._send_status(evse, status):
            evse.status_reported = status

    def _send_status(self, evse: Evse, status: str | None = None) -> bool:
        status = status or evse.connector_status()
        payload = {"timestamp": self.clock.timestamp(), "connectorStatus": status, "evseId": evse.id, "connectorId": 1}

        def lost(exc: Exception, evse: Evse = evse) -> None:
            evse.status_reported = None

        return self._send_if_online("StatusNotification", payload, on_error=lost)

    def _heartbeat_result(self, response: dict[str, Any]) -> None:
        self._observe_time(response)

    def _observe_time(self, response: dict[str, Any]) -> None:
        """ClockCtrlr.TimeSource Heartbeat: follow the CSMS clock when it is a SyncedClock."""
        observe = getattr(self.clock, "observe", None)
        if observe is None:
            return
        try:
            observe(parse_rfc3339(response["currentTime"]))
        except (KeyError, ValueError):
            return

    # ================================================================== link
    def _url(self) -> str:
        base = self.base_url.rstrip("/")
        if self.config.security_profile >= 2 and base.startswith("ws://"):
            base = "wss://" + base[len("ws://") :]
        return f"{base}/{quote(self.id, safe='')}"

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.config.ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.config.security_profile == 3:
            self.certificates.configure(ctx)
        return ctx

    async def _open(self) -> ClientConnection:
        token = base64.b64encode(f"{self.id}:{self.password}".encode()).decode()
        url = self._url()
        ping = self._dm_int("OCPPCommCtrlr", "WebSocketPingInterval", 0)
        return await connect(
            url,
            subprotocols=[f"ocpp{v}" for v in self.config.ocpp],  # type: ignore[misc]
            additional_headers={} if self.config.security_profile == 3 else {"Authorization": f"Basic {token}"},
            ssl=self._ssl_context() if url.startswith("wss://") else None,
            open_timeout=10,
            ping_interval=ping if ping > 0 else None,
            compression="deflate" if self.config.compression else None,
            max_queue=64,
        )

    async def _backoff(self, attempt: int) -> None:
        wait_min = self._dm_int("OCPPCommCtrlr", "RetryBackOffWaitMinimum", 3)
        repeats = self._dm_int("OCPPCommCtrlr", "RetryBackOffRepeatTimes", 5)
        spread = self._dm_int("OCPPCommCtrlr", "RetryBackOffRandomRange", 2)
        delay = wait_min * (2 ** min(max(attempt - 1, 0), repeats)) + random.uniform(0, spread)
        await self._sleep_sim(delay, min_wall=0.05)

    async def _sleep_sim(self, sim_s: float, *, min_wall: float = 0.0, event: asyncio.Event | None = None) -> None:
        wall = max(min_wall, sim_s / self.clock.speed)
        if event is None:
            await asyncio.sleep(wall)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wall):
                await event.wait()

    async def _link_loop(self) -> None:
        attempt = 0
        while not self._stopping:
            if self.rebooting:
                await asyncio.sleep(0.02)
                continue
            down = self._net_down_until
            if down is not None:
                now = self.now_t()
                if down > now:
                    self._boot_now.clear()
                    await self._sleep_sim(min(down - now, 3600.0), min_wall=0.01, event=self._boot_now)
                    continue
                self._net_down_until = None
            try:
                ws = await self._open()
            except asyncio.CancelledError:
                raise
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
                attempt += 1
                self.log.info("connection failed", attempt=attempt, error=str(exc)[:200])
                await self._backoff(attempt)
                continue
            if ws.subprotocol is None:
                self.log.warning("CSMS accepted none of the offered subprotocols", offered=self.config.ocpp)
                with contextlib.suppress(Exception):
                    await ws.close()
                attempt += 1
                await self._backoff(attempt)
                continue
            attempt = 0
            try:
                await self._run_connection(ws)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("connection handler failed")
            finally:
                await self._connection_closed(ws)
            if not self._stopping and not self.rebooting:
                await self._backoff(1)

    async def _run_connection(self, ws: ClientConnection) -> None:
        version = str(ws.subprotocol).removeprefix("ocpp")
        self.version = version
        self.connections += 1
        self._ws = ws

        async def send(text: str) -> None:
            await ws.send(text)

        from .handlers import handlers_for

        rpc = RpcEndpoint(
            version=version,
            send=send,
            handlers=handlers_for(version),
            context=self,
            identity=self.id,
            call_timeout=self.config.call_timeout_s,
            validate=self.config.validate_messages,
        )
        rpc.inbound_guard = self._inbound_guard
        self._rpc = rpc
        self._link_alive = True
        reader = asyncio.create_task(self._reader(ws, rpc), name=f"rx:{self.id}")
        self._aux.add(reader)
        reader.add_done_callback(self._aux.discard)
        self.log.info("connected", version=version)
        try:
            if self.registration != "Accepted":
                await self._boot(rpc)
            if not self._link_alive:
                return
            self._went_online()
            await self._sender(rpc)
        except ConnectionLost:
            pass
        finally:
            reader.cancel()

    async def _reader(self, ws: ClientConnection, rpc: RpcEndpoint) -> None:
        try:
            async for msg in ws:
                self.received_count += 1
                await rpc.feed(msg)
        except ConnectionClosed:
            pass
        finally:
            self._link_alive = False
            self._mark_offline()
            rpc.close(ConnectionLost(f"{self.id}: connection closed"))
            self._kick.set()
            self._boot_now.set()

    async def _connection_closed(self, ws: ClientConnection) -> None:
        self._mark_offline()
        self._link_alive = False
        self._ws = None
        if self._rpc is not None:
            self._rpc.close()
        self._rpc = None
        if self.offline_since_t is None:
            self.offline_since_t = self.now_t()
        # non-persistent messages are dropped; persistent (TransactionEvents) wait for the next connection
        kept: deque[Outgoing] = deque()
        dropped: list[Outgoing] = []
        for item in self._outbox:
            (kept if item.persistent else dropped).append(item)
        self._outbox = kept
        for item in dropped:
            if item.on_error is not None:
                try:
                    item.on_error(ConnectionLost("offline"))
                except Exception:
                    self.log.exception("on_error callback failed", action=item.action)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await ws.close()
        self.wake()

    def _inbound_guard(self, action: str) -> None:
        if self.registration == "Rejected":
            raise CallError(ErrorCode.SECURITY_ERROR, "station not accepted by the CSMS")

    def _boot_payload(self) -> dict[str, Any]:
        cs: dict[str, Any] = {
            "model": self.config.model[:20],
            "vendorName": self.config.vendor[:50],
            "serialNumber": self.serial_number,
            "firmwareVersion": self.firmware_version[:50],
        }
        return {"chargingStation": cs, "reason": self.boot_reason}

    async def _boot(self, rpc: RpcEndpoint) -> None:
        while self._link_alive:
            self._boot_now.clear()
            try:
                resp = await rpc.call("BootNotification", self._boot_payload())
            except (CallTimeout, CallErrorReceived, InvalidPayload) as exc:
                self.log.warning("BootNotification failed", error=str(exc))
                await self._sleep_sim(30.0, min_wall=0.05, event=self._boot_now)
                continue
            self.sent_count += 1
            self._record_sent("BootNotification", self._boot_payload())
            status = resp["status"]
            interval = int(resp.get("interval", 0))
            self.registration = status
            self._observe_time(resp)
            if status == "Accepted":
                self.boots += 1
                if interval > 0:
                    self.heartbeat_interval = interval
                    if self._dm is not None:
                        self._dm.set_internal("OCPPCommCtrlr", "HeartbeatInterval", str(interval))
                self._next_heartbeat_t = self.now_t() + self.heartbeat_interval
                self.boot_reason = "PowerUp"
                self.log.info("boot accepted", interval=interval)
                return
            wait = interval if interval > 0 else 30
            self.log.info("boot not accepted, retrying", status=status, retry_s=wait)
            await self._sleep_sim(float(wait), min_wall=0.01, event=self._boot_now)

    def _went_online(self) -> None:
        self.online = True
        self.connected_at = self.now_t()
        self.offline_since_t = None
        # StatusNotification for every connector whose state the CSMS does not know
        for evse in self.evses.values():
            status = evse.connector_status()
            if status != evse.status_reported and self._send_status(evse, status):
                evse.status_reported = status
        # the charging needs of cars that arrived while offline (cached from the ISO 15118 session)
        now_t = self.now_t()
        for evse in self.evses.values():
            tx = evse.tx
            if tx is not None and not tx.ended and tx.authorized and not tx.needs_sent:
                self._send_charging_needs(evse, now_t)
        if self._fw_installed_request is not None:
            req = self._fw_installed_request
            self._fw_installed_request = None
            self._send_if_online("FirmwareStatusNotification", {"status": "Installed", "requestId": req})
        self._kick.set()
        self.wake()

    def _record_sent(self, action: str, payload: dict[str, Any]) -> None:
        if self.record:
            self.sent.append((action, payload))

    async def _sender(self, rpc: RpcEndpoint) -> None:
        while self._link_alive and not self._stopping:
            if not self._outbox:
                self._kick.clear()
                if self._outbox or not self._link_alive:
                    continue
                await self._kick.wait()
                continue
            item = self._outbox[0]
            if item.action == "TransactionEvent" and rpc.version == "2.0.1":
                item.payload.get("transactionInfo", {}).pop("operationMode", None)
            try:
                resp = await rpc.call(item.action, item.payload)
            except ConnectionLost:
                return  # the item stays at the head of the outbox
            except InvalidPayload as exc:
                self._pop(item)
                self.error_count += 1
                self.log.error("dropping invalid outbound message", action=item.action, error=str(exc))
                self._fail(item, exc)
                continue
            except (CallTimeout, CallErrorReceived) as exc:
                self.error_count += 1
                if item.persistent:
                    item.attempts += 1
                    attempts = self._dm_int("OCPPCommCtrlr", "MessageAttempts", 3, instance="TransactionEvent")
                    if item.attempts < attempts:
                        gap = self._dm_int("OCPPCommCtrlr", "MessageAttemptInterval", 10, instance="TransactionEvent")
                        self.log.warning("TransactionEvent not acknowledged, retrying", error=str(exc),
                                         attempt=item.attempts)  # fmt: skip
                        await self._sleep_sim(gap * item.attempts, min_wall=0.01)
                        continue
                self._pop(item)
                self.log.warning("message failed", action=item.action, error=str(exc))
                self._fail(item, exc)
                continue
            self._pop(item)
            self.sent_count += 1
            self._record_sent(item.action, item.payload)
            if item.on_result is not None:
                try:
                    item.on_result(resp)
                except Exception:
                    self.log.exception("on_result callback failed", action=item.action)

    def _pop(self, item: Outgoing) -> None:
        if self._outbox and self._outbox[0] is item:
            self._outbox.popleft()
        else:
            with contextlib.suppress(ValueError):
                self._outbox.remove(item)

    def _fail(self, item: Outgoing, exc: Exception) -> None:
        if item.on_error is not None:
            try:
                item.on_error(exc)
            except Exception:
                self.log.exception("on_error callback failed", action=item.action)

    # ================================================================== reboot / reset
    async def _reboot(self, *, boot_reason: str, trigger: str, stopped: str) -> None:
        if self.rebooting:
            return
        now_t = self.now_t()
        for evse in self.evses.values():
            self._advance(evse, now_t)
            if evse.tx is not None and not evse.tx.ended:
                self._end_transaction(evse, now_t, trigger=trigger, reason=stopped)
        # give the CSMS the Ended events while the link is up
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while self.online and any(o.persistent for o in self._outbox):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        self.rebooting = True
        self.registration = ""
        self.boot_reason = boot_reason
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await ws.close(code=1012, reason="reboot")
        # volatile state is lost, persistent profiles survive (TxProfiles died with their transactions)
        self.profiles = [p for p in self.profiles if p.profile.purpose is not ChargingProfilePurpose.TX_PROFILE]
        self._outbox = deque(o for o in self._outbox if o.persistent)
        for evse in self.evses.values():
            evse.stage.stop()
            evse.tx = None
            evse.tx_done = False  # a car still plugged in starts a new transaction after the boot
            evse.remote_auth = None
            evse.pending_tx_profile = None
            evse.status_reported = None
        await self._sleep_sim(self.config.reboot_s, min_wall=0.01)
        self.rebooting = False
        self._next_aligned_t = 0.0
        self.log.info("rebooted", reason=boot_reason)
        self.wake()

    def _install_pending_tx_profile(self, evse: Evse, now_t: float) -> None:
        from .handlers import install_tx_profile_from_remote_start

        pending = evse.pending_tx_profile
        evse.pending_tx_profile = None
        if pending is not None:
            install_tx_profile_from_remote_start(self, evse, pending, now_t)
