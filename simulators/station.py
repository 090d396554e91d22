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
import contextlib
import random
from collections import deque
from typing import Any

import structlog
from websockets.asyncio.client import ClientConnection

from csms.clock import Clock
from csms.ocpp.rpc import RpcEndpoint
from csms.smartcharging.model import InstalledProfile

from . import reservations
from .certificate_store import CertificateStore
from .charging import Charging
from .config import StationConfig
from .devicemodel import DeviceModel
from .evse import PowerStage
from .firmware import FirmwareLoop
from .link import Link
from .model import (
    TX_QUEUE_LIMIT,
    Evse,
    Faults,
    Outgoing,
    SessionPlan,
)
from .transactions import Transactions

log = structlog.get_logger("simulators.station")

__all__ = ["Station"]


class Station(FirmwareLoop, Transactions, Charging, Link):
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

    def reserved(self, evse_id: int) -> bool:
        """Whether a reservation holds the EVSE (H)."""
        return reservations.held_on(self, evse_id) is not None
