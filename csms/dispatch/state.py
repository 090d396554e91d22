"""What a :class:`~csms.dispatch.controller.DispatchController` is tuned with and the state it
keeps, declared once for the controller and its parts (commanding, closed loop, publishing)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from csms.dispatch.executor import Command, Executor
from csms.dispatch.ledger import MeterLedger
from csms.dispatch.plan_result import Plan
from csms.dispatch.records import CarRecord, EventRun
from csms.dispatch.snapshot import FleetView, SnapshotOptions

if TYPE_CHECKING:
    from csms.central import CentralSystem


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


class ControllerState:
    """The controller's state; :meth:`DispatchController.__init__` sets every attribute."""

    central: CentralSystem
    book: Any
    _own_book: bool
    publisher: Any
    options: ControllerOptions
    interval_s: float
    executor: Executor
    ledger: MeterLedger
    cars: dict[str, CarRecord]
    runs: dict[str, EventRun]
    finished: dict[str, dict[str, Any]]
    plan: Plan | None
    view: FleetView | None
    commanded: dict[str, Command]
    claimed: set[tuple[str, int]]
    blocked: set[str]
    failed: Counter[str]
    _unsent: set[str]
    gone: set[str]
    bias_kw: float
    _plan_bias: float
    commands_sent: int
    last_outcomes: dict[str, int]
    last_plan_at: datetime | None
    last_sample: dict[str, Any]
    _drift_count: int
    _drift_replanned: bool
    _pending: Counter[str]
    _replan_evt: asyncio.Event
    _lock: asyncio.Lock
    _tasks: list[asyncio.Task[Any]]
    _unsubscribe: Any
    _prev_on_change: Any
    _last_report_at: dict[str, datetime]
    _last_report_wall: dict[str, float]
    _test_plans: dict[str, Plan]
    _dry_due: set[str]
    _with_needs: set[str]
    _urgent: bool
    _running: bool
