"""What the controller records while an event runs: one :class:`TickSample` per control interval,
one :class:`CarRecord` per car visit, and the :class:`EventRun` that holds them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .ledger import SOC_TOL_PCT, iso_utc, rounded


# ------------------------------------------------------------------------------------------ records
@dataclass(slots=True)
class TickSample:
    """One control tick of an event (simulated time ``at``)."""

    at: datetime
    target_kw: float
    planned_kw: float | None
    feasible_kw: float | None
    delivered_kw: float
    cars_connected: int
    cars_dispatched: int
    commands_total: int

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso_utc(self.at),
            "target_kw": rounded(self.target_kw),
            "planned_kw": rounded(self.planned_kw),
            "feasible_kw": rounded(self.feasible_kw),
            "delivered_kw": rounded(self.delivered_kw),
            "cars_connected": self.cars_connected,
            "cars_dispatched": self.cars_dispatched,
            "commands_total": self.commands_total,
        }


@dataclass(slots=True)
class CarRecord:
    """One car visit (transaction) as dispatch saw it; SoC and targets in percent."""

    car_id: str
    station_id: str
    evse_id: int
    transaction_id: str
    first_seen: datetime
    soc_first: float
    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    eta_charge: float
    eta_discharge: float
    floor_pct: float
    target_pct: float
    announced_departure: datetime | None
    bidirectional: bool
    feasible_at_plugin: bool
    departed_at: datetime | None = None
    final_soc: float | None = None
    last_soc: float | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.station_id, self.evse_id)

    @staticmethod
    def feasible(
        soc_pct: float, target_pct: float, capacity_kwh: float, max_charge_kw: float, eta: float, hours: float
    ) -> bool:
        reachable = soc_pct + 100.0 * eta * max_charge_kw * max(hours, 0.0) / capacity_kwh
        return reachable + SOC_TOL_PCT >= target_pct


@dataclass(slots=True)
class EventRun:
    """Everything the controller records about one grid event (see :func:`build_report`)."""

    event: Any  # csms.grid.model.GridEvent
    received_at: datetime  # simulated
    received_wall: float  # time.perf_counter()
    scope: frozenset[str] | None = None  # station ids, None = whole site
    samples: list[TickSample] = field(default_factory=list)
    car_ids: set[str] = field(default_factory=set)
    plans: int = 0
    replan_reasons: dict[str, int] = field(default_factory=dict)
    last_plan: dict[str, Any] | None = None
    plan_log: list[dict[str, Any]] = field(default_factory=list)
    infeasible_need: dict[str, float] = field(default_factory=dict)
    shortfall_kwh: float = 0.0
    commands: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    first_command_s: float | None = None
    all_commanded_s: float | None = None
    first_command_latencies: list[float] = field(default_factory=list)
    clears: dict[str, int] = field(default_factory=dict)
    cancelled_at: datetime | None = None
    stopped_at: datetime | None = None
    revisions: list[dict[str, Any]] = field(default_factory=list)
    dry_run: dict[str, Any] | None = None
    delivered_published: int = 0
    final: dict[str, Any] | None = None

    @property
    def event_id(self) -> str:
        return str(self.event.id)

    def window(self) -> tuple[datetime, datetime]:
        end = self.event.end
        if self.cancelled_at is not None:
            end = min(end, max(self.cancelled_at, self.event.start))
        return self.event.start, end

    def note_commands(self, results: Iterable[Any], at: datetime, keep: int = 200) -> None:
        for r in results:
            self.commands[r.outcome] = self.commands.get(r.outcome, 0) + 1
            if not r.ok and len(self.failures) < keep:
                self.failures.append({**r.to_json(), "at": iso_utc(at)})
