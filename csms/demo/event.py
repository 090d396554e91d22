"""``csms demo``: one evening of V2G export, end to end, in about two minutes.

:func:`run_demo` starts the CSMS (SQLite in ``data_dir`` or a temporary directory, the HTTP
API on a free port) on an accelerated clock, a simulated fleet of Fermata-style bidirectional
stations (about a third on OCPP 2.0.1 with the vendor V2X convention, the rest on 2.1) with a
scripted workplace evening (cars leaving from 16:30, some staying overnight; see
:func:`csms.demo.site.evening_fleet`), then sends a DSGS-style Leap dispatch
notification ("export X kW from 16:00 to 21:00") to the CSMS's ``POST /grid/leap`` webhook
with an operator API token. While the event runs it shows the simulated time, target,
delivered and planned power, cars connected and commands in a live terminal view; at the end it
prints the delivery report and where the plot, CSV and JSON were written.

It also prints the operator web console's URL and a read-scope API token to sign in with, so
the event can be watched in a browser (fleet, stations, the live target-vs-delivered chart,
then the report); with ``keep_serving`` (``csms demo``'s default; ``--exit`` turns it off) the
CSMS, the fleet and the console stay up after the report until Ctrl-C.

The default target (70 % of what a perfect-foresight dispatcher could hold flat with the
default fleet) keeps the event feasible for the whole window; pass ``target_kw`` to ask for
more and see the planner report the shortfall.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from csms.demo.site import evening_fleet, running_site
from csms.dispatch.controller import ControllerOptions

__all__ = ["DEFAULT_DAY", "run_demo", "run_demo_async"]

log = structlog.get_logger("csms.demo.event")

DEFAULT_DAY = date(2026, 8, 18)
"""A Tuesday in the DSGS season (May-October)."""
KW_PER_STATION = 2.5
"""Default target per station: ~70 % of the flat 5-hour export the default evening fleet can hold
(perfect-foresight LP: about 3.5 kW per station)."""


def run_demo(**kwargs: Any) -> dict[str, Any]:
    """Run the demo to completion (blocking); returns the final report. See :func:`run_demo_async`."""
    return asyncio.run(run_demo_async(**kwargs))


async def run_demo_async(
    *,
    stations: int = 60,
    target_kw: float | None = None,
    speed: float = 150.0,
    data_dir: Path | str | None = None,
    day: date = DEFAULT_DAY,
    tz: str = "America/Los_Angeles",
    start: dtime = dtime(16, 0),
    hours: float = 5.0,
    lead_min: float = 30.0,
    seed: int = 7,
    live: bool = True,
    console: Any = None,
    log_level: str = "warning",
    keep_serving: bool = False,
) -> dict[str, Any]:
    """Run one grid export event against a simulated fleet and return its final report.

    Args:
        stations: simulated stations (one car each at most; >= 50 for the demo fleet).
        target_kw: event target; default ``KW_PER_STATION`` x ``stations``.
        speed: clock speed (simulated seconds per wall second). 150 runs 16:00-21:00 plus the
            lead-in in about two minutes on two cores; stations send meter values every 180
            simulated seconds and at every 5-minute boundary, which keeps the CSMS's SQLite
            write path (about 100 TransactionEvents per wall second) ahead of the fleet.
        data_dir: where the SQLite database and ``reports/`` go (default: a temporary directory,
            kept after the run so the plot and CSV can be opened).
        day, tz, start, hours: the event window in local time.
        lead_min: the clock starts this long before the event; the event is sent 10 minutes
            before its start (the fleet has connected and reported its cars' needs by then, and
            the first SetChargingProfile fan-out - about a second of wall time, minutes of
            simulated time at x150 - lands before 16:00).
        live: show the rich Live view (else one line per simulated 15 minutes).
        keep_serving: after the report, keep the CSMS, the fleet and the web console running
            until Ctrl-C (the report is returned then).
    """
    from rich.console import Console

    from csms.logging import configure_logging

    configure_logging(log_level, False)
    out = console or Console()
    zone = ZoneInfo(tz)
    t_start = datetime.combine(day, start, tzinfo=zone)
    t_end = t_start + timedelta(hours=hours)
    epoch = t_start - timedelta(minutes=lead_min)
    send_at = t_start - timedelta(minutes=min(10.0, lead_min / 2))
    target = float(target_kw if target_kw is not None else round(KW_PER_STATION * stations))
    base = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="csms-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    fleet_config = evening_fleet(stations, epoch=epoch, seed=seed, event_start=t_start, tx_interval_s=180)
    n201 = sum(1 for s in fleet_config.all_stations() if s.ocpp == ["2.0.1"])
    out.print(
        f"[bold]csms demo[/]: {stations} Fermata-style V2G stations ({stations - n201} on OCPP 2.1, {n201} on 2.0.1), "
        f"export [bold]{target:.0f} kW[/] {t_start:%H:%M}-{t_end:%H:%M} {tz}, clock x{speed:g}, data in {base}"
    )
    options = ControllerOptions(report_tz=tz)
    dispatch = {"max_offline_duration_s": 180}
    wall0 = time.perf_counter()
    async with running_site(
        fleet_config, base, epoch=epoch, speed=speed, options=options, dispatch=dispatch, api=True
    ) as site:
        out.print(f"CSMS up (OCPP :{site.central.port}, API {site.service.api.url}); fleet online in "
                  f"{time.perf_counter() - wall0:.1f} s")  # fmt: skip
        console_url = await _console_access(site, out)
        if site.clock.now() > send_at:
            out.print(f"[yellow]start-up took longer than the lead-in: the event is sent at "
                      f"{site.clock.now().astimezone(zone):%H:%M} instead of {send_at:%H:%M}[/]")  # fmt: skip
        await site.clock.sleep_until(send_at)
        event_id = f"dsgs-{day.isoformat()}"
        await _send_leap(site, event_id, t_start, t_end, target, out)
        controller = site.controller
        view = _LiveView(site, event_id, t_start, t_end, target, zone)
        if live:
            from rich.live import Live

            with Live(view.render(), console=out, refresh_per_second=4, transient=False) as lv:
                while event_id not in controller.finished:
                    await asyncio.sleep(0.25)
                    lv.update(view.render())
        else:
            next_line = t_start
            while event_id not in controller.finished:
                await asyncio.sleep(0.5)
                if site.clock.now() >= next_line:
                    out.print(view.line())
                    next_line += timedelta(minutes=15)
        report = controller.finished[event_id]
        json_path = base / "reports" / f"{event_id}.json"
        json_path.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        report["json_path"] = str(json_path)
        _print_report(out, report, site, time.perf_counter() - wall0)
        if keep_serving:
            out.print(f"[bold]the console stays up[/] at {console_url} (the report is on the event's page); "
                      "press Ctrl-C to stop")  # fmt: skip
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels this task; shut down cleanly
                out.print("stopping the demo")
    return report


async def _console_access(site: Any, out: Any) -> str:
    """Print the web console's URL and a read-scope token to sign in with; return the URL."""
    from csms.api.apitokens import issue_token

    token, _ = await issue_token(site.central.store, "demo-console", "read")
    url = f"{site.service.api.url}/console/"
    out.print(f"web console: [bold]{url}[/]  sign in with this read token:")
    out.print(token, markup=False, highlight=False, soft_wrap=True)
    return url


async def _send_leap(site: Any, event_id: str, start: datetime, end: datetime, kw: float, out: Any) -> None:
    """POST a Leap DSGS dispatch notification to the CSMS webhook with an operator token."""
    import httpx

    from csms.api.apitokens import issue_token

    token, _ = await issue_token(site.central.store, "demo-vpp", "operator")
    doc = {
        "integration_test_notification": False,
        "communication_test": False,
        "group_dispatches": [
            {
                "market_group_id": "demo-garage",
                "timeslots": [
                    {
                        "market_group_event_id": event_id,
                        "start_time": start.isoformat(),
                        "end_time": end.isoformat(),
                        "cancelled": False,
                        "priority": 1,
                        "is_voluntary": False,
                        "dispatch_event_types": ["day-of"],
                        "programs": ["DSGS"],
                        "energy_kw": kw,
                        "nomination_kw": kw,
                        "performance_compensation_cap": "grid-exports-allowed",
                    }
                ],
            }
        ],
    }
    url = f"{site.service.api.url}/grid/leap"
    async with httpx.AsyncClient(timeout=30) as client:
        resp = await client.post(url, json=doc, headers={"Authorization": f"Bearer {token}"})
    if resp.status_code >= 300:
        raise RuntimeError(f"the CSMS refused the grid event: HTTP {resp.status_code} {resp.text}")
    out.print(f"grid event [bold]{event_id}[/] sent to POST /grid/leap: HTTP {resp.status_code}")
    if event_id not in site.controller.runs:  # the book hook is synchronous; this is only a guard
        ev = site.book.get(event_id)
        if ev is not None:
            site.controller.on_event_change(ev, "submitted")


class _LiveView:
    def __init__(self, site: Any, event_id: str, start: datetime, end: datetime, target: float, zone: ZoneInfo):
        self.site, self.event_id, self.start, self.end = site, event_id, start, end
        self.target, self.zone = target, zone

    def _numbers(self) -> dict[str, Any]:
        c = self.site.controller
        now = self.site.clock.now()
        st = c.status()
        run = c.runs.get(self.event_id)
        samples = run.samples if run is not None else []
        last = samples[-1] if samples else None
        mean_d = sum(s.delivered_kw for s in samples) / len(samples) if samples else None
        mean_t = sum(s.target_kw for s in samples) / len(samples) if samples else None
        cars = sum(
            1
            for s in self.site.central.states.values()
            if s.connected
            for e in s.evses.values()
            if e.evse_id > 0 and e.transaction_id
        )
        return {
            "now": now.astimezone(self.zone),
            "target": last.target_kw if last else 0.0,
            "delivered": last.delivered_kw if last else None,
            "planned": last.planned_kw if last else None,
            "feasible": last.feasible_kw if last else None,
            "cars": cars,
            "planned_cars": st["cars_planned"],
            "commands": c.commands_sent,
            "outcomes": st["last_outcomes"],
            "ratio": (mean_d / mean_t) if mean_d is not None and mean_t else None,
            "progress": max(0.0, min(1.0, (now - self.start) / (self.end - self.start))),
            "fleet_lag": self.site.fleet.lag()["last_max_s"],
        }

    def render(self) -> Any:
        from rich.table import Table

        n = self._numbers()
        t = Table(title=f"grid event {self.event_id}: export {self.target:.0f} kW "
                  f"{self.start:%H:%M}-{self.end:%H:%M}", show_header=False, expand=False)  # fmt: skip
        t.add_column(style="bold")
        t.add_column(justify="right")
        bar = int(30 * n["progress"])
        t.add_row("time", f"{n['now']:%H:%M:%S}  [{'#' * bar}{'.' * (30 - bar)}]")
        t.add_row("target", f"{n['target']:.1f} kW")
        t.add_row("delivered (metered)", _kw(n["delivered"]))
        t.add_row("planned / feasible", f"{_kw(n['planned'])} / {_kw(n['feasible'])}")
        t.add_row("delivered / target so far", "n/a" if n["ratio"] is None else f"{100 * n['ratio']:.1f} %")
        t.add_row("cars connected / planned", f"{n['cars']} / {n['planned_cars']}")
        t.add_row("SetChargingProfile sent", f"{n['commands']}  last batch {n['outcomes'] or '-'}")
        t.add_row("simulator lag", f"{n['fleet_lag']:.1f} s")
        return t

    def line(self) -> str:
        n = self._numbers()
        return (
            f"{n['now']:%H:%M} target {n['target']:.0f} kW, delivered {_kw(n['delivered'])}, "
            f"cars {n['cars']}, commands {n['commands']}"
        )


def _kw(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} kW"


def _print_report(out: Any, report: dict[str, Any], site: Any, wall_s: float) -> None:
    from rich.table import Table

    s = report["summary"]
    g = report["driver_guarantees"]
    c = report["commands"]

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f} %"

    t = Table(title=f"delivery report: {report['event_id']} ({report['window']['start']} - {report['window']['end']})")
    t.add_column("metric", style="bold")
    t.add_column("value", justify="right")
    rows = [
        ("target energy", f"{s.get('target_kwh', 0):.1f} kWh"),
        ("delivered (net export, metered)", f"{s.get('delivered_kwh', 0):.1f} kWh"),
        ("energy exported (gross)", f"{s.get('energy_exported_kwh', 0):.1f} kWh"),
        ("delivery ratio", pct(s.get("delivery_ratio"))),
        ("delivery on the feasible part", pct(s.get("delivery_ratio_feasible"))),
        ("5-min intervals within ±10 %", pct(s.get("intervals_within_10pct"))),
        (
            "NAE / perfect foresight / regret",
            f"{pct(s.get('nae'))} / {pct(s.get('perfect_foresight_nae'))} / {pct(s.get('regret'))}",
        ),
        ("overshoot", f"{s.get('overshoot_kwh', 0):.2f} kWh (max {s.get('max_overshoot_kw', 0):.1f} kW)"),
        ("battery throughput per kWh delivered", f"{s.get('throughput_per_kwh') or 0:.2f}"),
        ("cars seen / max connected", f"{s.get('cars_seen')} / {s.get('max_cars_connected')}"),
        ("departures / below promise (violations)", f"{g['departures']} / {len(g['violations'])}"),
        ("early departures below promise", str(len(g["early_departures_below_target"]))),
        ("discharges below the SoC floor", str(len(g["floor_violations"]))),
        ("commands by outcome", ", ".join(f"{k} {v}" for k, v in c["by_outcome"].items()) or "-"),
        ("re-plans", f"{c['replans']} ({', '.join(f'{k} {v}' for k, v in c['replan_reasons'].items())})"),
        ("event -> all chargers commanded", f"{c['latency']['all_commanded_s'] or 0:.2f} s wall"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)
    out.print(f"plot: [bold]{report.get('plot_path')}[/]")
    out.print(f"CSV:  {report.get('csv_path')}")
    out.print(f"JSON: {report.get('json_path')}")
    with contextlib.suppress(Exception):
        out.print(f"simulator clock lag (worst, simulated s): {site.fleet.lag()['max_s']:.1f}")
    out.print(f"demo finished in {wall_s:.0f} s wall")
