"""Hourly metered energy of the fleet from the stored meter values, and the settlement of a
stored event (the I/O around the pure :mod:`csms.grid.settlement`).

Energy comes from the cumulative registers ``Energy.Active.Import.Register`` and
``Energy.Active.Export.Register`` of every EVSE: one time series per EVSE and register, with
and without a transaction (stations repeat the last session's register in clock-aligned
MeterValues after it ended; a per-transaction split would count that session twice), a
register going down (a new session starting at 0) starting afresh; increments are spread
linearly over clock hours between consecutive samples
(:func:`csms.grid.settlement.bin_register`); net import = import - export.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from csms.store.models import MeterSample

from .model import GridEvent, parse_time
from .settlement import BaselineOptions, baseline, bin_register, event_hours, settle, settlement_csv

IMPORT = "Energy.Active.Import.Register"
EXPORT = "Energy.Active.Export.Register"


async def register_series(
    store: Any, start: datetime, end: datetime, station_ids: Iterable[str] | None = None
) -> dict[tuple[str, int, str], list[tuple[datetime, float]]]:
    """Register samples in ``[start, end)`` per (station, EVSE, measurand), oldest first."""
    stmt = (
        select(
            MeterSample.station_id,
            MeterSample.evse_id,
            MeterSample.measurand,
            MeterSample.timestamp,
            MeterSample.value,
            MeterSample.unit,
        )
        .where(MeterSample.timestamp >= start, MeterSample.timestamp < end)
        .where(MeterSample.measurand.in_((IMPORT, EXPORT)))
        .where(MeterSample.phase.is_(None))
        .order_by(MeterSample.timestamp, MeterSample.id)
    )
    ids = list(station_ids) if station_ids is not None else None
    if ids:
        stmt = stmt.where(MeterSample.station_id.in_(ids))
    out: dict[tuple[str, int, str], list[tuple[datetime, float]]] = defaultdict(list)
    async with store._read() as session:  # the store's read session (honours its SQLite locking)
        for sid, evse, measurand, ts, value, unit in (await session.execute(stmt)).all():
            wh = float(value) * (1000.0 if unit == "kWh" else 1.0)
            out[(sid, evse, measurand)].append((ts, wh))
    return dict(out)


async def hourly_net_import(
    store: Any, start: datetime, end: datetime, station_ids: Iterable[str] | None = None
) -> dict[datetime, float]:
    """Net import kWh per UTC clock hour in ``[start, end)`` (hours with no data are absent)."""
    edges = [start]
    while edges[-1] < end:
        edges.append(edges[-1] + timedelta(hours=1))
    series = await register_series(store, start - timedelta(hours=1), end + timedelta(hours=1), station_ids)
    totals = [0.0] * (len(edges) - 1)
    seen = [False] * (len(edges) - 1)
    for (_, _, measurand), samples in series.items():
        sign = 1.0 if measurand == IMPORT else -1.0
        for k, kwh in enumerate(bin_register(samples, edges)):
            totals[k] += sign * kwh
        first, last = samples[0][0], samples[-1][0]
        for k in range(len(seen)):
            if first < edges[k + 1] and last > edges[k]:
                seen[k] = True
    return {edges[k]: totals[k] for k in range(len(totals)) if seen[k]}


def _target_kwh(event: GridEvent, hours: list[datetime]) -> dict[datetime, float]:
    out = {}
    for h in hours:
        e = h + timedelta(hours=1)
        kwh = 0.0
        for iv in event.intervals:
            a, b = max(h, iv.start), min(e, iv.end)
            if b > a:
                kwh += iv.target_kw * (b - a).total_seconds() / 3600.0
        out[h] = kwh
    return out


async def settle_event(
    store: Any,
    event: GridEvent,
    *,
    options: BaselineOptions | None = None,
    tz: str = "UTC",
    event_days: set[date] | None = None,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """The settlement report of ``event`` from the stored meter values (and CSV / JSON files in
    ``out_dir`` when given: ``<event id>.settlement.csv`` / ``.json``)."""
    opts = options or BaselineOptions()
    zone = ZoneInfo(tz)
    hours = event_hours(event.start, event.end)
    scope = event.targets.station_ids or None
    day_start = hours[0] - timedelta(hours=max(opts.pre_hours, opts.adjust_hours + 1))
    day_of = await hourly_net_import(store, day_start, hours[-1] + timedelta(hours=1), scope)
    history: dict[datetime, float] = {}
    if opts.method == "10of10":
        history = await hourly_net_import(store, hours[0] - timedelta(days=opts.lookback_days), day_start, scope)
    if event_days is None:
        event_days = set()
        for row in await store.list_grid_events(limit=1000):
            payload = row.payload or {}
            ivs = payload.get("intervals") or []
            if ivs and row.status != "cancelled" and not payload.get("is_test"):
                event_days.add(parse_time(ivs[0]["start"]).astimezone(zone).date())
    base = baseline(hours, history=history, day_of=day_of, tz=zone, event_days=event_days, options=opts)
    report = settle(
        event=event.to_json(),
        day_of=day_of,
        base=base,
        target_kwh=_target_kwh(event, hours),
        tz=zone,
        resources=len(scope) if scope else None,
    )
    if out_dir is not None:
        await asyncio.to_thread(write_settlement, report, out_dir, event.id)
    return report


def write_settlement(report: dict[str, Any], out_dir: Path, event_id: str) -> None:
    """``<event id>.settlement.csv`` and ``.json`` in ``out_dir`` (paths added to the report)."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{event_id}.settlement.csv"
    json_path = out_dir / f"{event_id}.settlement.json"
    csv_path.write_text(settlement_csv(report), encoding="utf-8")
    report["csv_path"], report["json_path"] = str(csv_path), str(json_path)
    json_path.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
