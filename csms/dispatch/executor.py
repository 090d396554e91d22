"""Turn a dispatch :class:`~csms.dispatch.plan_result.Plan` into SetChargingProfile commands.

* :func:`schedule_from_plan` compiles one car's row of the plan into ``(offset s, W)`` periods
  from a start instant: powers quantised (``quantum_w``, default 100 W), equal neighbours
  merged, cut at ``until`` (the end of the dispatch window: after it the profile lapses and the
  car charges on its own towards its target) and at the station's ``PeriodsPerSchedule``
  (``commanded_until`` tells the controller when to send the next part).
* :class:`Executor` sends commands through ``central.charging.set_power_schedule``, in
  parallel across stations (at most ``concurrency`` at once; the EVSEs of one station go one
  after the other, as the station's connection does anyway), retrying timeouts and a
  station's RpcFrameworkError (still busy with an earlier CALL, e.g. ours that timed out;
  OCPP-J allows one outstanding CALL) with ``retries`` more attempts, ``retry_backoff_s``
  times the attempt number apart. Every command gets a
  :class:`CommandResult` with one outcome:

  ==================  ============================================================
  ``accepted``        the station answered Accepted
  ``rejected``        the station answered Rejected (``reason`` = its reasonCode)
  ``timeout``         no answer after every attempt
  ``offline``         the station is not connected (or unknown)
  ``refused``         the profile builder refused it before sending
                      (``reason`` = the K01 / builder code, e.g. ``CannotDischarge``)
  ``no_transaction``  the car's transaction is gone
  ``error``           a CALLERROR or another failure (``reason`` says which)
  ``validated``       dry run: built and validated, not sent
  ==================  ============================================================

* **Dry run** (``execute(..., dry_run=True)``, used for *test* grid events): every profile is
  built for the station's version and capabilities, K01-checked and validated against the
  official schema exactly as a real command would be, and reported (``request`` holds the
  SetChargingProfileRequest that would have been sent) - but nothing is sent, no profile id is
  allocated and no EVSE is claimed, so no power moves.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import structlog

from csms.central import StationOffline, UnknownStation
from csms.dispatch.plan_result import Plan
from csms.ocpp.errors import CallErrorReceived, CallTimeout, ConnectionLost
from csms.services.charging_control import NoActiveTransaction, ProfileRejected
from csms.smartcharging.builder import BuilderError, PowerIntent, build_set_charging_profile

if TYPE_CHECKING:
    from csms.central import CentralSystem

log = structlog.get_logger("csms.dispatch.executor")

__all__ = [
    "Command",
    "CommandResult",
    "ExecutionResult",
    "Executor",
    "Outcome",
    "schedule_from_plan",
]

Outcome = Literal["accepted", "rejected", "timeout", "offline", "refused", "no_transaction", "error", "validated"]
FAILURES: frozenset[str] = frozenset({"rejected", "timeout", "offline", "refused", "no_transaction", "error"})


@dataclass(frozen=True, slots=True)
class Command:
    """One power schedule for one EVSE: ``periods`` of (offset s from ``start``, W), + = charge."""

    car_id: str
    station_id: str
    evse_id: int
    start: datetime
    periods: tuple[tuple[int, float], ...]
    duration_s: int

    @property
    def until(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s)

    def power_at(self, when: datetime) -> float | None:
        """Commanded W at ``when``; None outside ``[start, until)``."""
        off = (when - self.start).total_seconds()
        if off < 0 or off >= self.duration_s:
            return None
        value = self.periods[0][1]
        for o, p in self.periods:
            if o > off:
                break
            value = p
        return value

    def energy_wh(self, start: datetime, end: datetime) -> tuple[float, float]:
        """(Wh commanded over the part of [start, end) this command covers, seconds covered); + = import."""
        a = max((start - self.start).total_seconds(), 0.0)
        b = min((end - self.start).total_seconds(), float(self.duration_s))
        if b <= a:
            return 0.0, 0.0
        total = 0.0
        bounds = [o for o, _ in self.periods] + [self.duration_s]
        for k, (off, watts) in enumerate(self.periods):
            lo, hi = max(a, off), min(b, bounds[k + 1])
            if hi > lo:
                total += watts * (hi - lo) / 3600.0
        return total, b - a

    def same_schedule(self, other: Command | None, *, from_: datetime, tol_w: float = 1.0, tol_s: float = 1.0) -> bool:
        """True when both commands ask the same power (within ``tol_w``) from ``from_`` to the end
        of the longer one (boundaries less than ``tol_s`` apart count as the same instant, see
        :func:`probe_times`)."""
        if other is None or other.station_id != self.station_id or other.evse_id != self.evse_id:
            return False
        if abs((other.until - self.until).total_seconds()) > tol_s:
            return False
        for t in probe_times((self, other), from_=from_, tol_s=tol_s):
            a, b = self.power_at(t), other.power_at(t)
            if (a is None) != (b is None) or (a is not None and b is not None and abs(a - b) > tol_w):
                return False
        return True


def fleet_power_matches(
    a: list[Command], b: list[Command], *, from_: datetime, tol_w: float, tol_s: float = 1.0
) -> bool:
    """True when the summed power of the commands ``a`` follows that of ``b`` within ``tol_w``
    from ``from_`` on (boundaries less than ``tol_s`` apart count as the same instant)."""
    for t in probe_times((*a, *b), from_=from_, tol_s=tol_s):
        if abs(sum(c.power_at(t) or 0.0 for c in a) - sum(c.power_at(t) or 0.0 for c in b)) > tol_w:
            return False
    return True


def probe_times(cmds: Iterable[Command], *, from_: datetime, tol_s: float) -> list[datetime]:
    """One instant inside each stretch, from ``from_`` on, where none of ``cmds`` changes its
    power: the middles between consecutive period starts and ends. Boundaries less than
    ``tol_s`` apart count as the same instant (the sliver between them is skipped): plans made
    a fraction of a second apart put their period starts on different whole seconds."""
    marks = {from_}
    for cmd in cmds:
        marks.add(cmd.until)
        marks.update(t for off, _ in cmd.periods if (t := cmd.start + timedelta(seconds=off)) > from_)
    ordered = sorted(m for m in marks if m >= from_)
    return [lo + (hi - lo) / 2 for lo, hi in itertools.pairwise(ordered) if (hi - lo).total_seconds() > tol_s]


@dataclass(slots=True)
class CommandResult:
    command: Command
    outcome: Outcome
    reason: str | None = None
    attempts: int = 1
    latency_s: float = 0.0
    """Wall seconds from the start of the batch to the answer."""
    profile_id: int | None = None
    request: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("accepted", "validated")

    def to_json(self) -> dict[str, Any]:
        return {
            "car_id": self.command.car_id,
            "station_id": self.command.station_id,
            "evse_id": self.command.evse_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "attempts": self.attempts,
            "latency_s": round(self.latency_s, 4),
        }


@dataclass(slots=True)
class ExecutionResult:
    results: list[CommandResult] = field(default_factory=list)
    wall_s: float = 0.0
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        return dict(Counter(r.outcome for r in self.results))

    def failures(self) -> list[CommandResult]:
        return [r for r in self.results if r.outcome in FAILURES]

    def latencies(self) -> list[float]:
        return [r.latency_s for r in self.results if r.ok]


def schedule_from_plan(
    plan: Plan,
    car_id: str,
    *,
    start: datetime,
    until: datetime,
    quantum_w: float = 100.0,
    max_periods: int = 24,
) -> tuple[list[tuple[int, float]], int] | None:
    """One car's plan row as (offset s, W) periods from ``start`` up to ``until``.

    Returns ``(periods, duration_s)``, or None when nothing of the plan lies in the window.
    The schedule is cut after ``max_periods`` periods (``duration_s`` then ends there).
    """
    if car_id not in plan.car_ids or until <= start:
        return None
    row = plan.power_kw[plan.index(car_id)]
    periods: list[tuple[int, float]] = []
    end_s = int((min(until, plan.step_ends[-1]) - start).total_seconds()) if plan.n_steps else 0
    if end_s <= 0:
        return None
    for t in range(plan.n_steps):
        s_rel = (plan.step_starts[t] - start).total_seconds()
        e_rel = (plan.step_ends[t] - start).total_seconds()
        if e_rel <= 0.5:
            continue
        if s_rel >= end_s:
            break
        offset = max(0, round(s_rel))
        watts = float(np.round(row[t] * 1000.0 / quantum_w) * quantum_w)
        watts = 0.0 if watts == 0 else watts
        if periods and periods[-1][1] == watts:
            continue
        if periods and periods[-1][0] == offset:
            periods[-1] = (offset, watts)
            if len(periods) > 1 and periods[-2][1] == watts:
                periods.pop()
            continue
        if len(periods) >= max_periods:
            end_s = offset
            break
        periods.append((offset, watts))
    if not periods or end_s <= 0:
        return None
    return periods, end_s


class Executor:
    """Send power schedules to many stations at once (see the module docstring)."""

    def __init__(
        self,
        central: CentralSystem,
        *,
        concurrency: int = 200,
        retries: int = 2,
        retry_backoff_s: float = 0.5,
        call_timeout_s: float | None = None,
        max_offline_duration_s: int | None = None,
    ) -> None:
        self.central = central
        self.concurrency = max(1, concurrency)
        self.retries = max(0, retries)
        self.retry_backoff_s = retry_backoff_s
        self.call_timeout_s = call_timeout_s
        self.max_offline_duration_s = max_offline_duration_s

    def max_periods(self, station_id: str) -> int:
        try:
            return max(1, self.central.charging.capabilities(station_id).max_periods)
        except Exception:
            return 24

    async def execute(self, commands: Sequence[Command], *, dry_run: bool = False) -> ExecutionResult:
        """Send (or, with ``dry_run``, only build and validate) every command; never raises."""
        t0 = time.perf_counter()
        out = ExecutionResult(dry_run=dry_run)
        if not commands:
            return out
        by_station: dict[str, list[Command]] = {}
        for cmd in commands:
            by_station.setdefault(cmd.station_id, []).append(cmd)
        sem = asyncio.Semaphore(self.concurrency)
        allocator = copy.deepcopy(self.central.charging.allocator) if dry_run else None

        async def one_station(cmds: list[Command]) -> list[CommandResult]:
            async with sem:
                results = []
                for cmd in cmds:
                    if dry_run:
                        results.append(self._validate(cmd, allocator, t0))
                    else:
                        results.append(await self._send(cmd, t0))
                return results

        batches = await asyncio.gather(*(one_station(c) for c in by_station.values()))
        out.results = [r for batch in batches for r in batch]
        out.wall_s = time.perf_counter() - t0
        counts = out.counts()
        log.info("dispatch commands", dry_run=dry_run, commands=len(commands), wall_s=round(out.wall_s, 3), **counts)
        return out

    async def _send(self, cmd: Command, t0: float) -> CommandResult:
        charging = self.central.charging
        attempts = 0
        recovered = False
        while True:
            attempts += 1
            try:
                applied = await charging.set_power_schedule(
                    cmd.station_id,
                    cmd.evse_id,
                    list(cmd.periods),
                    start=cmd.start,
                    duration_s=cmd.duration_s,
                    max_offline_duration_s=self.max_offline_duration_s,
                    timeout=self.call_timeout_s,
                )
                return CommandResult(
                    cmd,
                    "accepted",
                    attempts=attempts,
                    latency_s=time.perf_counter() - t0,
                    profile_id=applied.profile_id,
                )
            except CallTimeout as exc:
                if attempts <= self.retries:
                    log.info("SetChargingProfile timed out; retrying", station=cmd.station_id, attempt=attempts)
                    await asyncio.sleep(self.retry_backoff_s * attempts)
                    continue
                return self._fail(cmd, "timeout", str(exc), attempts, t0)
            except ProfileRejected as exc:
                if exc.reason == "DuplicateProfile" and not recovered:
                    # the station holds a dispatch profile the CSMS lost track of (e.g. set while a
                    # reconciliation was in flight): re-read the station's profiles, clear ours, resend
                    recovered = True
                    if await self._recover(cmd):
                        continue
                return self._fail(cmd, "rejected", exc.reason or exc.status, attempts, t0)
            except NoActiveTransaction as exc:
                return self._fail(cmd, "no_transaction", str(exc), attempts, t0)
            except BuilderError as exc:
                return self._fail(cmd, "refused", exc.code, attempts, t0, detail=exc.message)
            except (StationOffline, UnknownStation, ConnectionLost) as exc:
                return self._fail(cmd, "offline", type(exc).__name__, attempts, t0, detail=str(exc))
            except CallErrorReceived as exc:
                if exc.code == "RpcFrameworkError" and attempts <= self.retries:
                    # OCPP-J's one outstanding CALL: the station is still working on an earlier CALL
                    # (typically ours that timed out); it will take the next one once that is done
                    log.info("station busy with an earlier CALL; retrying", station=cmd.station_id, attempt=attempts)
                    await asyncio.sleep(self.retry_backoff_s * attempts)
                    continue
                return self._fail(cmd, "error", f"CallError {exc.code}", attempts, t0, detail=str(exc))
            except Exception as exc:
                log.exception("dispatch command failed", station=cmd.station_id, evse=cmd.evse_id)
                return self._fail(cmd, "error", type(exc).__name__, attempts, t0, detail=str(exc))

    async def _recover(self, cmd: Command) -> bool:
        charging = self.central.charging
        try:
            await charging.reconcile(cmd.station_id)
            await charging.clear(cmd.station_id, evse_id=cmd.evse_id)
        except Exception as exc:
            log.warning("profile recovery failed", station=cmd.station_id, evse=cmd.evse_id, error=str(exc))
            return False
        log.info("stale dispatch profile cleared; resending", station=cmd.station_id, evse=cmd.evse_id)
        return True

    def _fail(
        self, cmd: Command, outcome: Outcome, reason: str | None, attempts: int, t0: float, *, detail: str = ""
    ) -> CommandResult:
        log.warning(
            "dispatch command not applied",
            station=cmd.station_id,
            evse=cmd.evse_id,
            outcome=outcome,
            reason=reason,
            detail=detail or None,
        )
        return CommandResult(cmd, outcome, reason, attempts=attempts, latency_s=time.perf_counter() - t0)

    def _validate(self, cmd: Command, allocator: Any, t0: float) -> CommandResult:
        """Dry run of ``set_power_schedule``: same builder, same checks, nothing sent."""
        central = self.central
        charging = central.charging
        if not central.reachable(cmd.station_id):
            return CommandResult(cmd, "offline", "StationOffline", latency_s=time.perf_counter() - t0)
        evse = central.state(cmd.station_id).evses.get(cmd.evse_id)
        tx = evse.transaction_id if evse is not None else None
        if tx is None:
            return CommandResult(cmd, "no_transaction", None, latency_s=time.perf_counter() - t0)
        try:
            caps = charging.capabilities(cmd.station_id)
            alloc = allocator.allocate(cmd.station_id, cmd.evse_id, caps, "TxProfile")
            intent = PowerIntent(
                evse_id=cmd.evse_id,
                start=cmd.start,
                periods=list(cmd.periods),
                purpose="TxProfile",
                transaction_id=tx,
                duration_s=cmd.duration_s,
                max_offline_duration_s=self.max_offline_duration_s or central.settings.dispatch.max_offline_duration_s,
            )
            request = build_set_charging_profile(
                intent,
                caps,
                profile_id=alloc.profile_id,
                stack_level=alloc.stack_level,
                installed=charging.installed.get(cmd.station_id, []),
                active_transactions={cmd.evse_id: tx},
                now=central.now(),
            )
        except BuilderError as exc:
            return CommandResult(cmd, "refused", exc.code, latency_s=time.perf_counter() - t0)
        return CommandResult(
            cmd, "validated", latency_s=time.perf_counter() - t0, profile_id=alloc.profile_id, request=request
        )

    async def clear(self, evses: Iterable[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """Clear the dispatch profiles of these EVSEs in parallel; returns an outcome per EVSE."""
        sem = asyncio.Semaphore(self.concurrency)
        by_station: dict[str, list[int]] = {}
        for sid, evse_id in evses:
            by_station.setdefault(sid, []).append(evse_id)
        out: dict[tuple[str, int], str] = {}

        async def one(sid: str, evse_ids: list[int]) -> None:
            async with sem:
                for evse_id in evse_ids:
                    try:
                        await self.central.charging.clear(sid, evse_id=evse_id)
                        out[(sid, evse_id)] = "cleared"
                    except (StationOffline, UnknownStation, ConnectionLost):
                        out[(sid, evse_id)] = "offline"
                    except CallTimeout:
                        out[(sid, evse_id)] = "timeout"
                    except Exception as exc:
                        log.warning("clearing dispatch profile failed", station=sid, evse=evse_id, error=str(exc))
                        out[(sid, evse_id)] = "error"

        await asyncio.gather(*(one(s, e) for s, e in by_station.items()))
        return out
