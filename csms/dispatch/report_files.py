"""A report as files: the interval table as CSV, the JSON form, and the PNG plot of target,
feasible and delivered power with the connected-car count (matplotlib, Agg backend)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

# ------------------------------------------------------------------------------------------ outputs
CSV_COLUMNS = (
    "start",
    "end",
    "target_kw",
    "feasible_kw",
    "planned_kw",
    "pf_achievable_kw",
    "delivered_kw",
    "error_kw",
    "within_10pct",
    "within_10pct_feasible",
    "cars_connected",
    "complete",
)


def report_csv(report: Mapping[str, Any]) -> str:
    """The interval table of a report as CSV (one row per 5-minute interval)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report.get("intervals", []):
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    return out.getvalue()


def report_json(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report as a JSON-ready dict (it already is one; kept for symmetry with :func:`report_csv`)."""
    return dict(report)


def write_plot(report: Mapping[str, Any], path: Path, *, tz: str = "UTC") -> Path:
    """Draw target / feasible / delivered per interval and the connected cars into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    zone = ZoneInfo(tz)

    def when(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(zone)

    rows = report.get("intervals", [])
    ticks = report.get("timeline", [])
    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    try:
        if rows:
            edges = [when(r["start"]) for r in rows] + [when(rows[-1]["end"])]
            tgt = [r["target_kw"] or 0.0 for r in rows]
            dlv = [r["delivered_kw"] or 0.0 for r in rows]
            fea = [r["feasible_kw"] if r["feasible_kw"] is not None else np.nan for r in rows]
            ax.stairs(tgt, edges, color="black", linewidth=2.0, label="target")
            ax.stairs(fea, edges, color="tab:orange", linestyle="--", linewidth=1.4, label="feasible (planner)")
            pf = [r.get("pf_achievable_kw") for r in rows]
            if any(v is not None for v in pf):
                ax.stairs(
                    [np.nan if v is None else v for v in pf],
                    edges,
                    color="tab:purple",
                    linestyle=":",
                    linewidth=1.2,
                    label="perfect foresight",
                )
            ax.stairs(dlv, edges, color="tab:blue", fill=True, alpha=0.35, label="delivered (5-min, metered)")
        if ticks:
            tt = [when(s["at"]) for s in ticks]
            ax.plot(tt, [s["delivered_kw"] for s in ticks], color="tab:blue", linewidth=0.6, alpha=0.8)
        ax.set_ylabel("net export, kW")
        ax.set_xlabel(f"time ({tz})")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))
        ax.grid(True, alpha=0.3)
        if ticks:
            ax2 = ax.twinx()
            ax2.step(
                [when(s["at"]) for s in ticks],
                [s["cars_connected"] for s in ticks],
                where="post",
                color="tab:green",
                linewidth=1.0,
                label="cars connected",
            )
            ax2.set_ylabel("cars connected", color="tab:green")
            ax2.set_ylim(bottom=0)
            lines, labels = ax.get_legend_handles_labels()
            l2, lab2 = ax2.get_legend_handles_labels()
            ax.legend(lines + l2, labels + lab2, loc="upper right", fontsize=8)
        else:
            ax.legend(loc="upper right", fontsize=8)
        s = report.get("summary", {})
        title = f"{report.get('event_id')}: delivery {_pct(s.get('delivery_ratio'))}"
        title += f", feasible part {_pct(s.get('delivery_ratio_feasible'))}"
        title += f", within ±10% {_pct(s.get('intervals_within_10pct'))}, NAE {_pct(s.get('nae'))}"
        if report.get("is_test"):
            title += " (TEST: no power moved)"
        ax.set_title(title, fontsize=10)
        fig.autofmt_xdate()
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.1f}%"
