"""The grid-event dispatch controller: events in, SetChargingProfile out, meter values back.

:class:`DispatchController` is a :class:`~csms.service.Service` part (``start`` / ``stop``). It

* follows the :class:`~csms.grid.book.EventBook` (its ``on_change`` hook): a new event or a new
  revision re-plans and re-commands (only the chargers whose schedule changed); a cancellation
  re-plans without the event - with nothing left to serve, every dispatch profile is cleared
  (``central.charging.clear``) at once, so discharge stops within one control interval;
* starts dispatching ``lead_s`` before an event starts and stops at its end (the profiles it
  sends end there too: afterwards the cars charge on their own towards their targets);
* runs the closed loop every ``control_interval_s`` of the central clock (ticks aligned to
  whole intervals): measures delivery (metered ``Power.Active.Export - Import`` summed over the
  cars in the event's scope), records a time series per event, publishes status and
  per-5-minute delivery through the publisher (the MQTT bridge) when given, refreshes schedules
  that were cut at the station's ``PeriodsPerSchedule``, and re-plans when
  - a car leaves (TransactionEvent Ended) or a new car reports its charging needs,
  - a station disconnects or comes back, or a station rejects / the builder refuses a profile
    (that car is then planned charge-only),
  - the fleet drifts from the plan: the sum over cars of (commanded power at the car's latest
    meter sample - metered power), counted only for samples taken after the command settled,
    exceeds ``max(drift_threshold_frac x target, drift_threshold_kw)`` for ``drift_intervals``
    consecutive ticks. A fresh plan starts from the metered SoCs; if the drift persists after
    it (a charger that systematically under-delivers), a bounded bias is added to the planned
    target (at most ``bias_limit_frac`` of it), drawing on the reserve margin,
  - every ``replan_every_s`` anyway;
* plans with ``settings.dispatch.reserve_margin`` held back on every car, the site limits and
  the solver budget of ``settings.dispatch``; claims the EVSEs it commands
  (``central.charging.claim``: their charging needs are answered ``Processing``) and releases
  them when the car leaves or the dispatch ends;
* writes a live report every ``report_every_s`` and a final one (with the PNG plot, the CSV and
  the perfect-foresight regret) ``settle_s`` after the event ends or is cancelled
  (``store.put_event_report``; see :mod:`csms.dispatch.report`).

**Test events** (``is_test``) run the whole path - snapshot, plan, profile building with the
station's real capabilities, K01 and schema validation - but nothing is sent and nothing is
claimed (:meth:`~csms.dispatch.executor.Executor.execute` with ``dry_run``): the report's
``test_run`` says what would have been sent to whom, and what the builder refused. A test event
is re-validated when it is submitted, revised and when it becomes active.

Event mapping: ``targets.station_ids`` restricts the fleet; ``group_ids`` are not modelled yet
(whole site); ``basis: delta_from_baseline`` is planned with a zero baseline (the fleet's own
export is the delta); ``ramp`` is not enforced beyond the chargers' own ramps.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from csms.dispatch.closed_loop import ClosedLoop, target_at
from csms.dispatch.commanding import Commanding
from csms.dispatch.executor import Command, Executor
from csms.dispatch.history import with_departure_model
from csms.dispatch.ledger import MeterLedger
from csms.dispatch.plan_result import Plan
from csms.dispatch.publishing import Publishing
from csms.dispatch.records import CarRecord, EventRun
from csms.dispatch.report import build_report
from csms.dispatch.snapshot import FleetView, car_id_for
from csms.dispatch.state import ControllerOptions

if TYPE_CHECKING:
    from csms.central import CentralSystem

log = structlog.get_logger("csms.dispatch")

__all__ = ["ControllerOptions", "DispatchController"]


class DispatchController(Commanding, ClosedLoop, Publishing):
    """Grid-event dispatch (see the module docstring)."""

    def __init__(
        self,
        central: CentralSystem,
        book: Any = None,
        *,
        publisher: Any = None,
        options: ControllerOptions | None = None,
    ) -> None:
        self.central = central
        self.book = book
        self._own_book = book is None
        self.publisher = publisher
        self.options = options or ControllerOptions()
        ds = central.settings.dispatch
        self.interval_s = float(self.options.control_interval_s or ds.control_interval_s)
        self.executor = Executor(
            central,
            concurrency=self.options.concurrency,
            retries=self.options.retries,
            max_offline_duration_s=ds.max_offline_duration_s,
        )
        self.ledger = MeterLedger()
        self.cars: dict[str, CarRecord] = {}
        self.runs: dict[str, EventRun] = {}
        self.finished: dict[str, dict[str, Any]] = {}
        self.plan: Plan | None = None
        self.view: FleetView | None = None
        self.commanded: dict[str, Command] = {}
        self.claimed: set[tuple[str, int]] = set()
        self.blocked: set[str] = set()
        self.failed: Counter[str] = Counter()
        self._unsent: set[str] = set()
        self.gone: set[str] = set()
        self.bias_kw = 0.0
        self._plan_bias = 0.0
        self.commands_sent = 0
        self.last_outcomes: dict[str, int] = {}
        self.last_plan_at: datetime | None = None
        self.last_sample: dict[str, Any] = {}
        self._drift_count = 0
        self._drift_replanned = False
        self._pending: Counter[str] = Counter()
        self._replan_evt = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._unsubscribe: Any = None
        self._prev_on_change: Any = None
        self._last_report_at: dict[str, datetime] = {}
        self._last_report_wall: dict[str, float] = {}
        self._test_plans: dict[str, Plan] = {}
        self._dry_due: set[str] = set()
        self._with_needs: set[str] = set()
        self._urgent = False
        self._running = False

    # ------------------------------------------------------------------ service part
    @property
    def event_book(self) -> Any:
        return self.book

    async def start(self, before_loop: Callable[[dict[str, EventRun]], Awaitable[Any]] | None = None) -> None:
        """Start following the book and controlling. ``before_loop(runs)`` runs once the running
        events' runs exist and before the first control tick (a new cluster leader restores the
        previous leader's samples there: the first tick stores a live report, which would
        otherwise replace the stored one before it is read)."""
        if self._running:
            return
        central = self.central
        if self.book is None:
            from csms.grid.book import EventBook

            assert central.store is not None, "start the CentralSystem first"
            self.book = EventBook(central.store, central.clock)
            await self.book.load()
        self._prev_on_change = getattr(self.book, "on_change", None)
        self.book.on_change = self._on_book_change
        central.extensions["dispatch"] = self
        central.extensions.setdefault("event_book", self.book)
        self._unsubscribe = central.subscribe(self._on_central, cluster=True)  # every node's stations
        self._running = True
        now = central.now()
        self.options.snapshot = await with_departure_model(self.options.snapshot, central, now)
        for ev in self.book.upcoming(now):
            self._ensure_run(ev)
            if ev.is_test:
                self._dry_due.add(ev.id)
        if before_loop is not None:
            await before_loop(self.runs)
        self._tasks = [
            asyncio.create_task(self._loop(), name="dispatch:loop"),
            asyncio.create_task(self._replanner(), name="dispatch:replan"),
        ]
        if self.runs:
            self.request_replan("start")
        log.info("dispatch controller started", interval_s=self.interval_s, events=len(self.runs))

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks = []
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.book is not None and self.book.on_change == self._on_book_change:
            self.book.on_change = self._prev_on_change
        now = self.central.now()
        if self.central.store is not None:
            for run in list(self.runs.values()):
                with contextlib.suppress(Exception):
                    await self._store_report(run, build_report(run, self.ledger, self.cars, now=now, final=False))
        for sid, evse in list(self.claimed):
            self.central.charging.release(sid, evse)
        self.claimed.clear()
        if self.central.extensions.get("dispatch") is self:
            del self.central.extensions["dispatch"]
        log.info("dispatch controller stopped")

    # ------------------------------------------------------------------ inputs
    async def _on_book_change(self, event: Any, kind: str) -> None:
        prev = self._prev_on_change
        if prev is not None:
            try:
                res = prev(event, kind)
                if inspect.isawaitable(res):
                    await res
            except Exception:
                log.exception("chained on_change failed")
        self.on_event_change(event, kind)

    def on_event_change(self, event: Any, kind: str) -> None:
        """React to an EventBook change (``submitted``, ``revised``, ``cancelled``, ``activated``,
        ``completed``); safe to call directly when no book hook is used."""
        now = self.central.now()
        run = self.runs.get(event.id)
        if kind == "cancelled":
            if run is None:
                return
            run.event = event
            run.cancelled_at = now
            log.info("grid event cancelled: stopping its dispatch", event_id=event.id)
            self.request_replan("cancelled", urgent=True)
            return
        if not event.live or event.end <= now:
            return
        if run is None:
            run = self._ensure_run(event)
        elif kind == "revised":
            run.revisions.append(
                {
                    "revision": event.revision,
                    "at": now.isoformat(),
                    "targets_kw": [iv.target_kw for iv in event.intervals],
                }
            )
            run.event = event
            run.scope = self._scope(event)
        else:
            run.event = event
        if event.is_test:
            if kind in ("submitted", "revised", "activated"):
                self._dry_due.add(event.id)
                self.request_replan(f"test {kind}", urgent=True)
            return
        if kind in ("submitted", "revised"):
            self.request_replan("revision" if kind == "revised" else "new event", urgent=True)
        elif kind == "activated":
            self.request_replan("activated")

    def _ensure_run(self, event: Any) -> EventRun:
        run = self.runs.get(event.id)
        if run is None:
            run = EventRun(event=event, received_at=self.central.now(), received_wall=time.perf_counter())
            run.scope = self._scope(event)
            self.runs[event.id] = run
        return run

    @staticmethod
    def _scope(event: Any) -> frozenset[str] | None:
        ids = list(event.targets.station_ids)
        return frozenset(ids) if ids else None

    def _on_central(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        if kind == "meter":
            at = data.get("at")
            if at is not None and data.get("evse_id"):
                self.ledger.add(station_id, int(data["evse_id"]), at, data)
            return
        if not self.runs:
            return
        planned = self.view is not None and any(r.station_id == station_id for r in self.view.cars.values())
        if kind == "transaction" and data.get("event_type") == "Ended":
            self._car_left(station_id, data)
        elif kind == "needs":
            evse = self.central.state(station_id).evses.get(int(data.get("evse_id") or 0))
            tx = evse.transaction_id if evse is not None else None
            cid = car_id_for(station_id, int(data.get("evse_id") or 0), tx) if tx else None
            known = cid is not None and self.view is not None and cid in self.view.cars
            self.request_replan("needs changed" if known else "car arrived")
        elif kind == "disconnected" and planned:
            self.request_replan("station offline", urgent=True)
        elif kind in ("connected", "boot"):
            for cid in [c for c, cmd in self.commanded.items() if cmd.station_id == station_id]:
                self.commanded.pop(cid, None)  # its profiles may be gone: send again
            if kind == "boot" or planned:
                self.request_replan("station online")

    def _car_left(self, station_id: str, data: dict[str, Any]) -> None:
        evse_id, tx = data.get("evse_id"), data.get("transaction_id")
        if evse_id is None or tx is None:
            return
        cid = car_id_for(station_id, int(evse_id), tx)
        rec = self.cars.get(cid)
        evse = self.central.state(station_id).evses.get(int(evse_id))
        if rec is not None and rec.departed_at is None:
            rec.departed_at = self.central.now()
            soc = self.ledger.soc_at(rec.key, rec.departed_at + timedelta(seconds=1))
            rec.final_soc = soc if soc is not None else (evse.soc if evse is not None else None)
        self.commanded.pop(cid, None)
        self._unsent.discard(cid)
        self.gone.discard(cid)
        key = (station_id, int(evse_id))
        if key in self.claimed:
            self.central.charging.release(*key)
            self.claimed.discard(key)
        if self.view is not None and cid in self.view.cars:
            self.request_replan("car left", urgent=True)

    def request_replan(self, reason: str, *, urgent: bool = False) -> None:
        self._pending[reason] += 1
        self._urgent = self._urgent or urgent
        self._replan_evt.set()

    # ------------------------------------------------------------------ loops
    async def _replanner(self) -> None:
        while True:
            await self._replan_evt.wait()
            if not self._urgent:
                await self.central.clock.sleep(self.options.debounce_s)
            else:
                await asyncio.sleep(0)
            self._replan_evt.clear()
            self._urgent = False
            reasons, self._pending = self._pending, Counter()
            try:
                await self._replan(reasons)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch replan failed", reasons=dict(reasons))

    async def _loop(self) -> None:
        clock = self.central.clock
        while True:
            now = clock.now()
            step = self.interval_s
            nxt = datetime.fromtimestamp((now.timestamp() // step + 1) * step, tz=now.tzinfo)
            await clock.sleep_until(nxt)
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch tick failed")

    def _in_window(self, run: EventRun, now: datetime) -> bool:
        ev = run.event
        if not ev.live or run.cancelled_at is not None:
            return False
        return ev.start - timedelta(seconds=self.options.lead_s) <= now < ev.end

    # ------------------------------------------------------------------ queries
    async def finalize_now(self, event_id: str) -> dict[str, Any]:
        """Write the final report of ``event_id`` now (e.g. at the end of a demo)."""
        if event_id in self.finished:
            return self.finished[event_id]
        run = self.runs[event_id]
        return await self._finalize(run, self.central.now())

    def report(self, event_id: str, *, final: bool = False) -> dict[str, Any] | None:
        """The current (live) report of an event, or its final one."""
        if event_id in self.finished:
            return self.finished[event_id]
        run = self.runs.get(event_id)
        if run is None:
            return None
        return build_report(
            run, self.ledger, self.cars, now=self.central.now(), final=final, live_soc=self._live_socs()
        )

    def status(self) -> dict[str, Any]:
        """What the controller is doing now (for a CLI or a live view)."""
        now = self.central.now()
        planned_kw, achievable = self._plan_at(self.plan, now)
        return {
            "now": now.isoformat(),
            "events": {
                eid: {
                    "status": r.event.status,
                    "is_test": r.event.is_test,
                    "in_window": self._in_window(r, now),
                    "target_kw": target_at(r.event, now),
                }
                for eid, r in self.runs.items()
            },
            "cars_planned": len(self.view.cars) if self.view else 0,
            "cars_uncontrolled": len(self.view.uncontrolled) if self.view else 0,
            "commanded": len(self.commanded),
            "claimed": len(self.claimed),
            "commands_sent": self.commands_sent,
            "last_outcomes": dict(self.last_outcomes),
            "planned_kw": planned_kw,
            "achievable_kw": achievable,
            "bias_kw": self.bias_kw,
            "last_sample": dict(self.last_sample),
        }
