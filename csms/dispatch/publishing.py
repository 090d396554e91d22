"""Outputs of :class:`~csms.dispatch.controller.DispatchController`: status and per-5-minute
delivery through the publisher, live and final event reports (store and files)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from csms import metrics
from csms.dispatch.closed_loop import target_at
from csms.dispatch.ledger import COMPLETE_AFTER_S, INTERVAL_S
from csms.dispatch.records import EventRun, TickSample
from csms.dispatch.report import build_report, interval_grid, perfect_foresight
from csms.dispatch.report_files import report_csv, write_plot
from csms.dispatch.state import ControllerState

log = structlog.get_logger("csms.dispatch")


class Publishing(ControllerState):
    """Publish status and deliveries, write the event reports (mixed into the controller)."""

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
            target = target_at(run.event, a)
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
                await asyncio.to_thread(_write_text, csv_path, report_csv(report))
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


def _write_text(path: Path, text: str) -> None:
    """Off the event loop, like the plot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
