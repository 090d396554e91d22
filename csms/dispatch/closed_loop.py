"""The closed loop of :class:`~csms.dispatch.controller.DispatchController`: every control interval,
measure the fleet's delivery, record it, publish it, and re-plan when the fleet drifts from the plan."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import structlog

from csms import metrics
from csms.dispatch.plan_result import Plan
from csms.dispatch.records import EventRun, TickSample
from csms.dispatch.report import build_report
from csms.dispatch.state import ControllerState

log = structlog.get_logger("csms.dispatch")


def target_at(event: Any, t: datetime) -> float:
    """The event's target (kW) at ``t``; 0 outside its intervals."""
    hit = event.interval_at(t)
    return float(hit[1].target_kw) if hit is not None else 0.0


class ClosedLoop(ControllerState):
    """The controller's tick: measure, record, compare with the plan (mixed into the controller)."""

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
                target = target_at(run.event, now)
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
        target = max((target_at(r.event, now) for r in runs), default=0.0)
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
