"""Settlement of a grid event against a baseline, in the shape of a DSGS Option 3 claim (pure).

Input is hourly metered energy of the fleet in the event's scope: **net import** per hour
(kWh drawn from the grid minus kWh fed into it; negative when the fleet exported), for the
event day and for past days (:mod:`csms.grid.meterdata` reads it from the stored meter values).

Baselines (what the fleet would have drawn without the event), per event hour:

* ``10of10`` (default): the mean of the same clock hour over the 10 most recent *eligible*
  days before the event day - same kind of day (weekday / weekend), not an event day, with
  meter data - within ``lookback_days`` (45). Optional *day-of adjustment*
  (``adjust=True``): the baseline is scaled by actual / baseline over the ``adjust_hours``
  hours ending one hour before the event start, the factor capped to 1 +- ``adjust_cap`` (0.2).
  With fewer than ``min_days`` (5) eligible days the baseline is not credible: the settlement
  falls back to the ``fallback`` method and says so.
* ``pre_event``: the mean net import over the ``pre_hours`` (2) hours before the event start,
  flat over the event (for a fleet with no history).
* ``zero``: no baseline: every kWh exported counts (storage "export only" measurement).

Per hour: ``incremental_kwh = baseline_kwh - actual_kwh`` (less drawn or more fed in than the
baseline = delivered flexibility), against ``target_kwh`` (the event's target in that hour).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

Method = Literal["10of10", "pre_event", "zero"]
METHODS: tuple[str, ...] = ("10of10", "pre_event", "zero")


class SettlementError(ValueError):
    """Bad settlement input; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class BaselineOptions:
    method: Method = "10of10"
    days: int = 10
    lookback_days: int = 45
    min_days: int = 5
    same_day_type: bool = True
    adjust: bool = False
    adjust_hours: int = 3
    adjust_cap: float = 0.2
    pre_hours: int = 2
    fallback: Method = "pre_event"

    def __post_init__(self) -> None:
        for name in ("method", "fallback"):
            if getattr(self, name) not in METHODS:
                raise SettlementError(name, f"must be one of {', '.join(METHODS)}, not {getattr(self, name)!r}")
        if self.fallback == "10of10":
            raise SettlementError("fallback", "must be pre_event or zero")
        if not 1 <= self.days <= 60:
            raise SettlementError("days", "must be 1..60")
        if self.min_days < 1 or self.min_days > self.days:
            raise SettlementError("min_days", f"must be 1..days ({self.days})")
        if not 0 <= self.adjust_cap <= 1:
            raise SettlementError("adjust_cap", "must be between 0 and 1")


@dataclass
class Baseline:
    method: Method
    kwh: dict[datetime, float]
    """Event hour start (UTC) -> baseline net import, kWh."""
    days_used: list[date] = field(default_factory=list)
    adjustment: float | None = None
    notes: list[str] = field(default_factory=list)


def _eligible(d: date, event_day: date, event_days: set[date], same_type: bool) -> bool:
    if d >= event_day or d in event_days:
        return False
    return not same_type or (d.weekday() >= 5) == (event_day.weekday() >= 5)


def ten_of_ten(
    hours: Sequence[datetime],
    history: Mapping[datetime, float],
    *,
    tz: ZoneInfo,
    event_days: set[date],
    options: BaselineOptions,
    day_of: Mapping[datetime, float] | None = None,
) -> Baseline:
    """The 10-of-10 baseline of ``hours`` (UTC hour starts of the event) from hourly ``history``
    (UTC hour start -> net import kWh; several days). Raises :class:`SettlementError` when
    fewer than ``min_days`` days qualify."""
    event_day = hours[0].astimezone(tz).date()
    days_with_data = sorted({t.astimezone(tz).date() for t in history}, reverse=True)
    lookback = event_day - timedelta(days=options.lookback_days)
    chosen = [
        d for d in days_with_data if d >= lookback and _eligible(d, event_day, event_days, options.same_day_type)
    ][: options.days]
    if len(chosen) < options.min_days:
        raise SettlementError(
            "baseline",
            f"10of10 needs {options.min_days} eligible days of meter data in the {options.lookback_days} days "
            f"before {event_day}, found {len(chosen)}",
        )
    local = {(t.astimezone(tz).date(), t.astimezone(tz).hour): v for t, v in history.items()}
    kwh: dict[datetime, float] = {}
    for h in hours:
        hour = h.astimezone(tz).hour
        vals = [local[(d, hour)] for d in chosen if (d, hour) in local]
        kwh[h] = sum(vals) / len(vals) if vals else 0.0
    base = Baseline("10of10", kwh, days_used=sorted(chosen))
    if options.adjust and day_of is not None:
        start = hours[0]
        window = [start - timedelta(hours=k) for k in range(options.adjust_hours + 1, 1, -1)]
        actual = sum(day_of.get(t, 0.0) for t in window)
        ref = 0.0
        for t in window:
            hour = t.astimezone(tz).hour
            vals = [local[(d, hour)] for d in chosen if (d, hour) in local]
            ref += sum(vals) / len(vals) if vals else 0.0
        if abs(ref) > 1e-9:
            factor = max(1 - options.adjust_cap, min(1 + options.adjust_cap, actual / ref))
            base.kwh = {k: v * factor for k, v in base.kwh.items()}
            base.adjustment = factor
            base.notes.append(f"day-of adjustment x{factor:.3f} from the {options.adjust_hours} h before the event")
    return base


def pre_event(hours: Sequence[datetime], day_of: Mapping[datetime, float], pre_hours: int) -> Baseline:
    start = hours[0]
    window = [start - timedelta(hours=k) for k in range(pre_hours, 0, -1)]
    vals = [day_of[t] for t in window if t in day_of]
    level = sum(vals) / len(vals) if vals else 0.0
    notes = [] if vals else [f"no meter data in the {pre_hours} h before the event: baseline 0"]
    return Baseline("pre_event", dict.fromkeys(hours, level), notes=notes)


def baseline(
    hours: Sequence[datetime],
    *,
    history: Mapping[datetime, float],
    day_of: Mapping[datetime, float],
    tz: ZoneInfo,
    event_days: set[date],
    options: BaselineOptions,
) -> Baseline:
    """The configured baseline, falling back (with a note) when 10of10 lacks data."""
    method = options.method
    if method == "10of10":
        try:
            return ten_of_ten(hours, history, tz=tz, event_days=event_days, options=options, day_of=day_of)
        except SettlementError as exc:
            method = options.fallback
            note = f"{exc.reason}; fell back to the {method} baseline"
            b = pre_event(hours, day_of, options.pre_hours) if method == "pre_event" else _zero(hours)
            b.notes.insert(0, note)
            return b
    if method == "pre_event":
        return pre_event(hours, day_of, options.pre_hours)
    return _zero(hours)


def _zero(hours: Sequence[datetime]) -> Baseline:
    return Baseline("zero", dict.fromkeys(hours, 0.0))


def event_hours(start: datetime, end: datetime) -> list[datetime]:
    """Clock hours (UTC starts) overlapping ``[start, end)``."""
    t = start.replace(minute=0, second=0, microsecond=0)
    out = []
    while t < end:
        out.append(t)
        t += timedelta(hours=1)
    return out


def settle(
    *,
    event: Mapping[str, Any],
    day_of: Mapping[datetime, float],
    base: Baseline,
    target_kwh: Mapping[datetime, float],
    tz: ZoneInfo,
    site: str = "site",
    aggregator: str | None = None,
    resources: int | None = None,
) -> dict[str, Any]:
    """The settlement report (JSON-ready) of one event: per-hour rows and the claim summary."""
    rows = []
    for h in sorted(base.kwh):
        b = round(base.kwh[h], 3)
        actual = round(day_of.get(h, 0.0), 3)
        inc = round(b - actual, 3)  # from the rounded figures: the rows add up as printed
        tgt = target_kwh.get(h, 0.0)
        rows.append(
            {
                "hour_start": h.isoformat().replace("+00:00", "Z"),
                "hour_local": h.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                "target_kwh": round(tgt, 3),
                "baseline_kwh": round(b, 3),
                "actual_net_import_kwh": round(actual, 3),
                "delivered_export_kwh": round(max(0.0, -actual), 3),
                "incremental_kwh": round(inc, 3),
                "performance": round(inc / tgt, 4) if tgt > 0 else None,
            }
        )
    total_inc = sum(r["incremental_kwh"] for r in rows)
    total_tgt = sum(r["target_kwh"] for r in rows)
    hours = len(rows)
    committed = event.get("committed_kw")
    avg_inc_kw = total_inc / hours if hours else 0.0
    return {
        "format": "dsgs-option3-claim",
        "event_id": event.get("id"),
        "program": event.get("program"),
        "event_date": sorted(base.kwh)[0].astimezone(tz).date().isoformat() if base.kwh else None,
        "site": site,
        "aggregator": aggregator,
        "resources": resources,
        "timezone": str(tz),
        "baseline": {
            "method": base.method,
            "days_used": [d.isoformat() for d in base.days_used],
            "adjustment": base.adjustment,
            "notes": base.notes,
        },
        "summary": {
            "hours": hours,
            "target_kwh": round(total_tgt, 3),
            "baseline_kwh": round(sum(r["baseline_kwh"] for r in rows), 3),
            "actual_net_import_kwh": round(sum(r["actual_net_import_kwh"] for r in rows), 3),
            "delivered_export_kwh": round(sum(r["delivered_export_kwh"] for r in rows), 3),
            "incremental_kwh": round(total_inc, 3),
            "average_incremental_kw": round(avg_inc_kw, 3),
            "committed_kw": committed,
            "performance": round(total_inc / total_tgt, 4) if total_tgt > 0 else None,
            "performance_vs_committed": round(avg_inc_kw / committed, 4) if committed else None,
        },
        "hours": rows,
    }


CSV_COLUMNS = (
    "event_id",
    "hour_start",
    "hour_local",
    "target_kwh",
    "baseline_kwh",
    "actual_net_import_kwh",
    "delivered_export_kwh",
    "incremental_kwh",
    "performance",
    "baseline_method",
)


def settlement_csv(report: Mapping[str, Any]) -> str:
    """One row per event hour (the claim's interval data)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in report["hours"]:
        w.writerow({**r, "event_id": report["event_id"], "baseline_method": report["baseline"]["method"]})
    return buf.getvalue()


def bin_register(series: Sequence[tuple[datetime, float]], edges: Sequence[datetime]) -> list[float]:
    """Spread the increments of one cumulative register (Wh) over the bins ``edges[k]..edges[k+1]``
    linearly in time; returns kWh per bin. A register that goes down (a new session, a meter
    reset) starts a new series at that sample."""
    out = [0.0] * (len(edges) - 1)
    for (t0, v0), (t1, v1) in itertools.pairwise(series):
        inc = v1 - v0
        if inc <= 0 or t1 <= t0:
            continue
        span = (t1 - t0).total_seconds()
        for k in range(len(out)):
            a, b = max(t0, edges[k]), min(t1, edges[k + 1])
            if b > a:
                out[k] += inc * (b - a).total_seconds() / span / 1000.0
    return out
