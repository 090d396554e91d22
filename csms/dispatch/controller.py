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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from csms import metrics
from csms.dispatch.executor import Command, ExecutionResult, Executor, schedule_from_plan
from csms.dispatch.fleet import EventTarget, TargetInterval
from csms.dispatch.planner import diff_plans
from csms.dispatch.planner import plan as make_plan
from csms.dispatch.planner_core import Plan
from csms.dispatch.report import (
    COMPLETE_AFTER_S,
    INTERVAL_S,
    CarRecord,
    EventRun,
    MeterLedger,
    TickSample,
    build_report,
    interval_grid,
    perfect_foresight,
    report_csv,
    write_plot,
)
from csms.dispatch.snapshot import CarRef, FleetView, SnapshotOptions, build_snapshot, car_id_for
from csms.sites.limits import site_limits_for_dispatch

if TYPE_CHECKING:
    from csms.central import CentralSystem

log = structlog.get_logger("csms.dispatch")

__all__ = ["ControllerOptions", "DispatchController"]

DISCHARGE_REFUSALS = frozenset({"NoBPTAllowed", "CannotDischarge", "UnsupportedRateUnit", "UnsupportedOperationMode"})


@dataclass
class ControllerOptions:
    """Tuning of the closed loop (settings.dispatch gives the interval, margin, limits, budget)."""

    control_interval_s: float | None = None
    """Simulated seconds between ticks; default ``settings.dispatch.control_interval_s`` (60)."""
    plan_step_s: float = 300.0
    """Planner step inside events (aligned to the event start, as the 5-minute metric)."""
    drift_threshold_frac: float = 0.05
    drift_threshold_kw: float = 2.0
    drift_intervals: int = 2
    settle_after_command_s: float = 15.0
    bias_gain: float = 0.7
    bias_limit_frac: float = 0.2
    replan_every_s: float = 900.0
    lead_s: float = 900.0
    settle_s: float = 150.0
    report_every_s: float = 900.0
    """Live report (stored) every this many simulated seconds..."""
    report_min_wall_s: float = 10.0
    """...and at least this many wall seconds apart (an accelerated clock would otherwise write constantly)."""
    debounce_s: float = 3.0
    diff_tol_kw: float = 0.5
    quantum_w: float = 100.0
    refresh_before_s: float | None = None
    """Re-send a schedule cut at PeriodsPerSchedule this long before it ends (default 2 intervals)."""
    concurrency: int = 1000
    """Stations commanded at once. ``set_power_schedule`` holds its slot until the profile record is
    written to the store (~10 ms each on SQLite, one at a time), so a bound of 200 throttles the
    sending itself: 1,000 stations take ~9 s to accept at 200, ~2.5 s at 1,000 (bench.fanout)."""
    retries: int = 2
    max_failures: int = 3
    """After this many refused commands in a row a car is left uncontrolled (its load is the baseline)."""
    lp_max_cars: int = 400
    """Above this many cars the greedy heuristic plans (the LP would not fit a control interval)."""
    report_tz: str = "UTC"
    write_files: bool = True
    perfect_foresight: bool = True
    snapshot: SnapshotOptions = field(default_factory=SnapshotOptions)


class DispatchController:
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

    async def start(self) -> None:
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
        for ev in self.book.upcoming(now):
            self._ensure_run(ev)
            if ev.is_test:
                self._dry_due.add(ev.id)
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

    # ------------------------------------------------------------------ planning and commands
    def _target(self, run: EventRun, now: datetime, *, bias: float = 0.0) -> EventTarget:
        ev = run.event
        ivs = []
        for iv in ev.intervals:
            if iv.end <= now:
                continue
            b = bias if ev.direction != "import_limit" else 0.0
            tgt = max(0.0, iv.target_kw + b)
            cap = (iv.max_kw if iv.max_kw is not None else iv.target_kw) + max(b, 0.0)
            ivs.append(
                TargetInterval(start=iv.start, end=iv.end, target_kw=tgt, min_kw=iv.min_kw, max_kw=max(cap, tgt))
            )
        return EventTarget(
            event_id=ev.id,
            intervals=ivs,
            direction=ev.direction,
            reserve_margin=self.central.settings.dispatch.reserve_margin,
            priority=ev.priority,
        )

    async def _plan(self, view: FleetView, targets: list[EventTarget]) -> Plan:
        ds = self.central.settings.dispatch
        method = "heuristic" if len(view.snapshot.cars) > self.options.lp_max_cars else "auto"
        return await asyncio.to_thread(
            make_plan,
            view.snapshot,
            targets,
            step_s=self.options.plan_step_s,
            time_budget_s=ds.solver_time_budget_s,
            method=method,
            # not in the closed loop yet: with it the V2G-programme replay ran short after 18:00
            # (README, Known gaps; cars stop at their own target under a ChargingOnly limit)
            precharge_headroom=False,
        )

    def _snapshot(self, runs: list[EventRun], now: datetime) -> FleetView:
        scopes = [r.scope for r in runs]
        stations = None if any(s is None for s in scopes) else set().union(*scopes)  # type: ignore[arg-type]
        limits = site_limits_for_dispatch(self.central, stations)  # [dispatch] limits, else [[sites]]
        return build_snapshot(
            self.central,
            now=now,
            options=self.options.snapshot,
            stations=stations,
            charge_only=self.blocked,
            uncontrolled={c for c, n in self.failed.items() if n >= self.options.max_failures},
            gone=self.gone,
            commanded_energy=self._commanded_energy,
            site_export_limit_kw=limits[0],
            site_import_limit_kw=limits[1],
        )

    def _commanded_energy(self, car_id: str, start: datetime, end: datetime) -> tuple[float, float] | None:
        cmd = self.commanded.get(car_id)
        return None if cmd is None else cmd.energy_wh(start, end)

    async def _replan(self, reasons: Counter[str]) -> None:
        async with self._lock:
            now = self.central.now()
            real = [r for r in self.runs.values() if not r.event.is_test and self._in_window(r, now)]
            if real:
                await self._dispatch(real, now, reasons)
            elif self.commanded or self.claimed or self.plan is not None:
                await self._stop_dispatch(now, reasons)
            for run in list(self.runs.values()):
                if run.event.is_test and run.event_id in self._dry_due and run.event.live:
                    if run.cancelled_at is None and run.event.end > now:
                        self._dry_due.discard(run.event_id)
                        await self._dry_run(run, now)

    async def _dispatch(self, runs: list[EventRun], now: datetime, reasons: Counter[str]) -> None:
        t_wall = time.perf_counter()
        view = self._snapshot(runs, now)
        targets = [self._target(r, now, bias=self.bias_kw) for r in runs]
        new_plan = await self._plan(view, targets)
        until = max(r.event.end for r in runs)
        for ref in list(view.cars.values()) + list(view.uncontrolled.values()):
            self._note_car(ref, now, runs)
        changed = (
            set(view.cars) if self.plan is None else diff_plans(self.plan, new_plan, self.options.diff_tol_kw, now=now)
        )
        refresh = self.options.refresh_before_s or 2 * self.interval_s
        to_send: list[Command] = []
        for cid, ref in view.cars.items():
            prev = self.commanded.get(cid)
            stale = (
                prev is not None
                and prev.until < until - timedelta(seconds=1)
                and (prev.until - now).total_seconds() <= refresh
            )
            if not (cid in changed or prev is None or stale):
                continue
            compiled = schedule_from_plan(
                new_plan,
                cid,
                start=now,
                until=until,
                quantum_w=self.options.quantum_w,
                max_periods=self.executor.max_periods(ref.station_id),
            )
            if compiled is None:
                continue
            cmd = Command(cid, ref.station_id, ref.evse_id, now, tuple(compiled[0]), compiled[1])
            if cmd.same_schedule(prev, from_=now):
                continue
            to_send.append(cmd)
        # claims follow the planned cars; cars dropped from the plan but still there get their profile cleared
        planned_evses = view.evses()
        for key in planned_evses - self.claimed:
            self.central.charging.claim(*key)
        for key in self.claimed - planned_evses:
            self.central.charging.release(*key)
        self.claimed = set(planned_evses)
        orphans = [c for c in self.commanded if c not in view.cars]
        to_clear = []
        for cid in orphans:
            cmd = self.commanded.pop(cid)
            evse = self.central.state(cmd.station_id).evses.get(cmd.evse_id)
            if (
                evse is not None
                and evse.transaction_id
                and car_id_for(cmd.station_id, cmd.evse_id, evse.transaction_id) == cid
            ):
                to_clear.append((cmd.station_id, cmd.evse_id))
        result = await self.executor.execute(to_send)
        cleared = await self.executor.clear(to_clear) if to_clear else {}
        self._absorb(result, runs, now, t_wall, view)
        self.plan, self.view = new_plan, view
        self._plan_bias = self.bias_kw
        self.last_plan_at = now
        info = self._plan_info(new_plan, now, view, reasons, len(to_send))
        for run in runs:
            run.plans += 1
            for reason, n in reasons.items():
                run.replan_reasons[reason] = run.replan_reasons.get(reason, 0) + n
            run.last_plan = info
            run.plan_log.append(info)
            run.infeasible_need = dict(new_plan.infeasible_need)
            if new_plan.shortfall.shortfall_kwh > run.shortfall_kwh or run.plans == 1:
                run.shortfall_kwh = new_plan.shortfall.shortfall_kwh
            for k, v in Counter(cleared.values()).items():
                run.clears[k] = run.clears.get(k, 0) + v
        log.info(
            "dispatch planned",
            reasons=dict(reasons),
            cars=len(view.cars),
            uncontrolled=len(view.uncontrolled),
            method=new_plan.method,
            solve_s=round(new_plan.solve_time_s, 3),
            shortfall_kwh=round(new_plan.shortfall.shortfall_kwh, 1),
            sent=len(to_send),
            bias_kw=round(self.bias_kw, 2),
            **result.counts(),
        )

    def _absorb(
        self, result: ExecutionResult, runs: list[EventRun], now: datetime, t_wall: float, view: FleetView
    ) -> None:
        refused_discharge = False
        for r in result.results:
            cid = r.command.car_id
            if r.outcome == "accepted":
                self.commanded[cid] = r.command
                self.failed.pop(cid, None)
                self._unsent.discard(cid)
                continue
            self._unsent.add(cid)
            if r.outcome == "no_transaction" or (r.outcome == "rejected" and r.reason == "TxNotFound"):
                # the car has left; its TransactionEvent Ended is still on its way
                self.gone.add(cid)
                self._unsent.discard(cid)
                refused_discharge = True
                continue
            if r.outcome in ("rejected", "refused", "error"):
                self.failed[cid] += 1
                if self.failed[cid] == self.options.max_failures:
                    log.warning("car left uncontrolled: its station keeps refusing profiles", car=cid)
                    refused_discharge = True
            discharging = any(p < 0 for _, p in r.command.periods)
            if discharging and r.outcome in ("rejected", "refused") and r.reason in DISCHARGE_REFUSALS:
                if cid not in self.blocked:
                    self.blocked.add(cid)
                    refused_discharge = True
        self.commands_sent += len(result.results)
        self.last_outcomes = result.counts()
        for run in runs:
            run.note_commands(result.results, now)
            offset = t_wall - run.received_wall
            oks = [r.latency_s for r in result.results if r.ok]
            if oks and run.first_command_s is None:
                run.first_command_s = offset + min(oks)
                run.first_command_latencies = [offset + x for x in oks]
            if run.all_commanded_s is None and view.cars and all(c in self.commanded for c in view.cars):
                run.all_commanded_s = offset + (max(oks) if oks else result.wall_s)
        if refused_discharge:
            self.request_replan("rejected")
        elif any(r.outcome == "timeout" for r in result.results):
            self.request_replan("retry timeouts")

    def _plan_info(self, p: Plan, now: datetime, view: FleetView, reasons: Counter[str], sent: int) -> dict[str, Any]:
        sf = p.shortfall
        return {
            "at": now.isoformat(),
            "method": p.method,
            "solve_time_s": round(p.solve_time_s, 4),
            "cars": len(view.cars),
            "cars_without_needs": sum(1 for r in view.cars.values() if not r.has_needs),
            "uncontrolled": len(view.uncontrolled),
            "baseline_kw": round(view.snapshot.baseline_kw or 0.0, 2),
            "target_kwh": round(float(sf.target_kwh), 2),
            "achievable_kwh": round(float(sf.achievable_kwh), 2),
            "shortfall_kwh": round(float(sf.shortfall_kwh), 2),
            "short_steps": len(sf.steps),
            "infeasible_need": len(p.infeasible_need),
            "bias_kw": round(self.bias_kw, 2),
            "commands_sent": sent,
            "reasons": dict(reasons),
            "notes": list(p.notes),
        }

    def _note_car(self, ref: CarRef, now: datetime, runs: list[EventRun]) -> None:
        rec = self.cars.get(ref.car_id)
        c = ref.car
        if rec is None or (ref.has_needs and ref.car_id not in self._with_needs):
            first = rec.first_seen if rec is not None else now
            soc_first = rec.soc_first if rec is not None else 100.0 * c.soc
            dep = ref.announced_departure
            hours = ((dep - first).total_seconds() / 3600.0) if dep is not None else 24.0
            rec = CarRecord(
                car_id=ref.car_id,
                station_id=ref.station_id,
                evse_id=ref.evse_id,
                transaction_id=ref.transaction_id,
                first_seen=first,
                soc_first=soc_first,
                capacity_kwh=c.capacity_kwh,
                max_charge_kw=c.max_charge_kw,
                max_discharge_kw=c.max_discharge_kw,
                eta_charge=c.eta_charge,
                eta_discharge=c.eta_discharge,
                floor_pct=100.0 * c.soc_floor,
                target_pct=100.0 * ref.target_soc,
                announced_departure=dep,
                bidirectional=ref.bidirectional,
                feasible_at_plugin=CarRecord.feasible(
                    soc_first, 100.0 * ref.target_soc, c.capacity_kwh, c.max_charge_kw, c.eta_charge, hours
                ),
            )
            self.cars[ref.car_id] = rec
            if ref.has_needs:
                self._with_needs.add(ref.car_id)
        for run in runs:
            if run.scope is None or ref.station_id in run.scope:
                run.car_ids.add(ref.car_id)

    async def _stop_dispatch(self, now: datetime, reasons: Counter[str]) -> None:
        evses = {(c.station_id, c.evse_id) for c in self.commanded.values()} | set(self.claimed)
        cleared = await self.executor.clear(sorted(evses)) if evses else {}
        for key in self.claimed:
            self.central.charging.release(*key)
        for run in self.runs.values():
            if run.event.is_test or run.stopped_at is not None:
                continue
            if run.cancelled_at is not None or run.event.end <= now:
                run.stopped_at = now
                for k, v in Counter(cleared.values()).items():
                    run.clears[k] = run.clears.get(k, 0) + v
        self.claimed.clear()
        self.commanded.clear()
        self.plan, self.view = None, None
        self.bias_kw = 0.0
        self._drift_count = 0
        log.info(
            "dispatch stopped: profiles cleared", reasons=dict(reasons), evses=len(evses), **Counter(cleared.values())
        )

    async def _dry_run(self, run: EventRun, now: datetime) -> None:
        view = self._snapshot([run], now)
        test_plan = await self._plan(view, [self._target(run, now)])
        self._test_plans[run.event_id] = test_plan
        until = run.event.end
        cmds = []
        for cid, ref in view.cars.items():
            compiled = schedule_from_plan(
                test_plan,
                cid,
                start=now,
                until=until,
                quantum_w=self.options.quantum_w,
                max_periods=self.executor.max_periods(ref.station_id),
            )
            if compiled is not None:
                cmds.append(Command(cid, ref.station_id, ref.evse_id, now, tuple(compiled[0]), compiled[1]))
        result = await self.executor.execute(cmds, dry_run=True)
        for ref in view.cars.values():
            self._note_car(ref, now, [run])
        sf = test_plan.shortfall
        run.dry_run = {
            "at": now.isoformat(),
            "note": "test event: every profile was built and validated (K01 + schema) but none was sent",
            "cars": len(view.cars),
            "would_send": sum(1 for r in result.results if r.outcome == "validated"),
            "by_outcome": result.counts(),
            "refused": [r.to_json() for r in result.failures()][:100],
            "planned_target_kwh": round(sf.target_kwh, 2),
            "planned_achievable_kwh": round(sf.achievable_kwh, 2),
            "commands": [
                {
                    "station_id": r.command.station_id,
                    "evse_id": r.command.evse_id,
                    "periods": len(r.command.periods),
                    "min_w": min(p for _, p in r.command.periods),
                    "max_w": max(p for _, p in r.command.periods),
                }
                for r in result.results
                if r.outcome == "validated"
            ][:200],
            "validation_wall_s": round(result.wall_s, 4),
        }
        run.plans += 1
        run.note_commands(result.results, now)
        log.info("test event validated (nothing sent)", event_id=run.event_id, **result.counts())

    # ------------------------------------------------------------------ the closed loop
    def _measure(self, scope: frozenset[str] | None) -> tuple[float, int]:
        """(metered net export kW, cars connected) over the scope (cars with a transaction)."""
        total_w, cars = 0.0, 0
        for sid, st in self.central.states.items():
            if scope is not None and sid not in scope:
                continue
            if not st.connected:
                continue
            for evse_id, evse in st.evses.items():
                if evse_id > 0 and evse.transaction_id is not None:
                    cars += 1
                    total_w += evse.power_export_w - evse.power_import_w
        return total_w / 1000.0, cars

    def _plan_at(self, p: Plan | None, now: datetime) -> tuple[float | None, float | None]:
        """(planned net export kW, achievable kW in event terms) of ``p`` at ``now``."""
        if p is None:
            return None, None
        t = p.step_at(now)
        if t is None:
            return None, None
        ach = p.delivered_kw[t]
        return float(p.export_kw[t]), (None if ach != ach else float(ach))

    def _drift(self, now: datetime) -> tuple[float, float] | None:
        """(planned - metered kW over cars with a settled, fresh sample, coverage 0..1)."""
        if self.plan is None or self.view is None:
            return None
        settle = timedelta(seconds=self.options.settle_after_command_s)
        fresh = timedelta(seconds=2 * self.interval_s)
        drift = total = covered = 0.0
        for cid, ref in self.view.cars.items():
            st = self.central.states.get(ref.station_id)
            evse = st.evses.get(ref.evse_id) if st is not None else None
            if evse is None or evse.transaction_id != ref.transaction_id or not st.connected:  # type: ignore[union-attr]
                continue
            cmd = self.commanded.get(cid)
            exp_now = cmd.power_at(now) if cmd is not None else None
            if exp_now is None:
                exp_now = 1000.0 * self.plan.power_at(cid, now)
            total += abs(exp_now)
            at = evse.metered_at
            if at is None or at < now - fresh or (cmd is not None and at < cmd.start + settle):
                continue
            expected = cmd.power_at(at) if cmd is not None else None
            if expected is None:
                expected = 1000.0 * self.plan.power_at(cid, at)
            metered = evse.power_import_w - evse.power_export_w
            drift += (metered - expected) / 1000.0  # + = less export than planned
            covered += abs(exp_now)
        for ref in self.view.uncontrolled.values():
            st = self.central.states.get(ref.station_id)
            evse = st.evses.get(ref.evse_id) if st is not None else None
            if evse is None or evse.transaction_id != ref.transaction_id or evse.metered_at is None:
                continue
            if evse.metered_at >= now - fresh:
                drift += (evse.power_import_w - evse.power_export_w) / 1000.0 - ref.baseline_kw
        coverage = covered / total if total > 0 else 1.0
        return drift, coverage

    async def _tick(self) -> None:
        now = self.central.now()
        if self.book is not None:
            await self.book.tick(now)
            for ev in self.book.upcoming(now):
                if ev.id not in self.runs and ev.live:
                    self._ensure_run(ev)
                    if ev.is_test:
                        self._dry_due.add(ev.id)
                    self.request_replan("new event")
        real = [r for r in self.runs.values() if not r.event.is_test and self._in_window(r, now)]
        if real and self.plan is None and not self._pending:
            self.request_replan("start")
        if not real and (self.commanded or self.claimed):
            self.request_replan("window ended", urgent=True)
        planned_kw, achievable = self._plan_at(self.plan, now)
        for run in list(self.runs.values()):
            start, end = run.window()
            if run.final is not None:
                continue
            if start <= now < end and run.cancelled_at is None:
                delivered, n_cars = self._measure(run.scope)
                target = _target_at(run.event, now)
                if run.event.is_test:
                    p_kw, ach = self._plan_at(self._test_plans.get(run.event_id), now)
                    dispatched = 0
                else:
                    p_kw, ach = planned_kw, achievable
                    if ach is not None:
                        ach -= self._plan_bias  # achievable for the real target, not the biased one
                    if p_kw is not None and self.view is not None:
                        p_kw -= self.view.snapshot.baseline_kw or 0.0
                    dispatched = len(self.commanded)
                sample = TickSample(
                    at=now,
                    target_kw=target,
                    planned_kw=p_kw,
                    feasible_kw=None if ach is None else min(ach, target) if target > 0 else ach,
                    delivered_kw=delivered,
                    cars_connected=n_cars,
                    cars_dispatched=dispatched,
                    commands_total=self.commands_sent,
                )
                run.samples.append(sample)
                self.last_sample = {"event_id": run.event_id, **sample.to_json()}
                metrics.DISPATCH_TARGET_KW.labels(run.event_id).set(target)
                metrics.DISPATCH_DELIVERED_KW.labels(run.event_id).set(delivered)
                await self._publish_status(run, sample)
            await self._publish_deliveries(run, now)
            if (
                self.options.report_every_s
                and now - self._last_report_at.get(run.event_id, run.received_at)
                >= timedelta(seconds=self.options.report_every_s)
                and time.perf_counter() - self._last_report_wall.get(run.event_id, 0.0)
                >= self.options.report_min_wall_s
                and start <= now
            ):
                self._last_report_at[run.event_id] = now
                self._last_report_wall[run.event_id] = time.perf_counter()
                await self._store_report(run, build_report(run, self.ledger, self.cars, now=now, final=False))
            if now >= end + timedelta(seconds=self.options.settle_s) or (
                run.cancelled_at is not None and now >= run.cancelled_at + timedelta(seconds=self.options.settle_s)
            ):
                await self._finalize(run, now)
        if real and self.plan is not None:
            self._check_drift(now, real)
            refresh = self.options.refresh_before_s or 2 * self.interval_s
            until = max(r.event.end for r in real)
            for cmd in self.commanded.values():
                if cmd.until < until - timedelta(seconds=1) and (cmd.until - now).total_seconds() <= refresh:
                    self.request_replan("refresh")
                    break
            if self.view is not None and any(c in self.view.cars and c not in self.commanded for c in self._unsent):
                self.request_replan("retry")
            if (
                self.last_plan_at is not None
                and (now - self.last_plan_at).total_seconds() >= self.options.replan_every_s
            ):
                self.request_replan("periodic")
        self.ledger.prune(now - timedelta(hours=12))

    def _check_drift(self, now: datetime, runs: list[EventRun]) -> None:
        got = self._drift(now)
        if got is None:
            return
        drift, coverage = got
        target = max((_target_at(r.event, now) for r in runs), default=0.0)
        threshold = max(self.options.drift_threshold_frac * target, self.options.drift_threshold_kw)
        if coverage < 0.6 or abs(drift) <= threshold:
            self._drift_count = 0
            self._drift_replanned = False
            return
        self._drift_count += 1
        if self._drift_count < self.options.drift_intervals:
            return
        self._drift_count = 0
        if self._drift_replanned:
            limit = self.options.bias_limit_frac * target
            self.bias_kw = max(-limit, min(limit, self.bias_kw + self.options.bias_gain * drift))
        self._drift_replanned = True
        log.info(
            "dispatch drift", drift_kw=round(drift, 2), coverage=round(coverage, 2), bias_kw=round(self.bias_kw, 2)
        )
        self.request_replan("drift")

    # ------------------------------------------------------------------ outputs
    async def _publish(self, method: str, event_id: str, payload: dict[str, Any]) -> None:
        pub = self.publisher
        fn = getattr(pub, method, None) if pub is not None else None
        if fn is None:
            return
        try:
            res = fn(event_id, payload)
            if inspect.isawaitable(res):
                await res
        except Exception as exc:
            log.warning("publishing dispatch status failed", method=method, event_id=event_id, error=str(exc))

    async def _publish_status(self, run: EventRun, sample: TickSample) -> None:
        await self._publish(
            "publish_status",
            run.event_id,
            {
                "event_id": run.event_id,
                "revision": run.event.revision,
                "is_test": run.event.is_test,
                "state": "dispatching" if not run.event.is_test else "test (nothing sent)",
                **sample.to_json(),
            },
        )

    async def _publish_deliveries(self, run: EventRun, now: datetime) -> None:
        if self.publisher is None:
            return
        start, end = run.window()
        grid = interval_grid(start, end, INTERVAL_S)
        while run.delivered_published < len(grid):
            a, b = grid[run.delivered_published]
            if now < b + timedelta(seconds=COMPLETE_AFTER_S):
                break
            run.delivered_published += 1
            keys = [k for k in self.ledger.evses() if run.scope is None or k[0] in run.scope]
            net_wh, _ = self.ledger.net_export_wh(keys, a, b)
            hours = (b - a).total_seconds() / 3600.0
            delivered = net_wh / 1000.0 / hours
            target = _target_at(run.event, a)
            await self._publish(
                "publish_delivery",
                run.event_id,
                {
                    "event_id": run.event_id,
                    "start": a.isoformat(),
                    "end": b.isoformat(),
                    "target_kw": round(target, 3),
                    "delivered_kw": round(delivered, 3),
                    "within_10pct": abs(delivered - target) <= 0.1 * target if target > 0 else None,
                },
            )

    def reports_dir(self) -> Path:
        return self.central.settings.data_dir / "reports"

    async def _store_report(self, run: EventRun, report: dict[str, Any]) -> None:
        store = self.central.store
        if store is None:
            return
        try:
            await store.put_event_report(run.event_id, report)
        except Exception as exc:
            log.warning("storing the event report failed", event_id=run.event_id, error=str(exc))

    async def _finalize(self, run: EventRun, now: datetime) -> dict[str, Any]:
        pf = None
        if self.options.perfect_foresight and not run.event.is_test:
            try:
                pf = await asyncio.to_thread(perfect_foresight, run, dict(self.cars), self.ledger)
            except Exception as exc:
                log.warning("perfect-foresight benchmark failed", event_id=run.event_id, error=str(exc))
        live = self._live_socs()
        report = build_report(run, self.ledger, self.cars, now=now, final=True, pf=pf, live_soc=live)
        if self.options.write_files:
            base = self.reports_dir()
            png, csv_path = base / f"{run.event_id}.png", base / f"{run.event_id}.csv"
            try:
                await asyncio.to_thread(write_plot, report, png, tz=self.options.report_tz)
                report["plot_path"] = str(png)
            except Exception as exc:
                log.warning("report plot failed", event_id=run.event_id, error=str(exc))
            try:
                base.mkdir(parents=True, exist_ok=True)
                csv_path.write_text(report_csv(report), encoding="utf-8")
                report["csv_path"] = str(csv_path)
            except OSError as exc:
                log.warning("report CSV failed", event_id=run.event_id, error=str(exc))
        run.final = report
        await self._store_report(run, report)
        self.finished[run.event_id] = report
        self.runs.pop(run.event_id, None)
        self._test_plans.pop(run.event_id, None)
        with contextlib.suppress(KeyError):
            metrics.DISPATCH_TARGET_KW.remove(run.event_id)
            metrics.DISPATCH_DELIVERED_KW.remove(run.event_id)
        s = report["summary"]
        log.info(
            "grid event report",
            event_id=run.event_id,
            delivery_ratio=s.get("delivery_ratio"),
            delivery_ratio_feasible=s.get("delivery_ratio_feasible"),
            within_10pct=s.get("intervals_within_10pct"),
            nae=s.get("nae"),
            violations=len(report["driver_guarantees"]["violations"]),
        )
        await self._publish("publish_status", run.event_id, {"event_id": run.event_id, "state": "final", "summary": s})
        return report

    def _live_socs(self) -> dict[str, tuple[float | None, datetime | None]]:
        out: dict[str, tuple[float | None, datetime | None]] = {}
        for cid, rec in self.cars.items():
            if rec.departed_at is None:
                st = self.central.states.get(rec.station_id)
                evse = st.evses.get(rec.evse_id) if st is not None else None
                if evse is not None and evse.transaction_id == rec.transaction_id:
                    out[cid] = (evse.soc, evse.metered_at)
        return out

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
                    "target_kw": _target_at(r.event, now),
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


def _target_at(event: Any, t: datetime) -> float:
    hit = event.interval_at(t)
    return float(hit[1].target_kw) if hit is not None else 0.0
