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
    grid: str = "leap",
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
        grid: where the event comes from: ``leap`` (a Leap webhook notification) or
            ``openadr3`` (the bundled OpenADR 3 VTN simulator: the CSMS's VEN registers,
            subscribes, receives the event by callback and reports every 5-minute interval).

    After the event the settlement (baseline, delivered and incremental energy per hour; the
    demo's database has no past days, so the 10-of-10 baseline falls back to the pre-event
    load, as the report says) is printed and written next to the delivery report.
    """
    if grid not in ("leap", "openadr3"):
        raise ValueError(f"grid must be leap or openadr3, not {grid!r}")
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
    vtn = await _start_vtn() if grid == "openadr3" else None
    openadr3 = _ven_settings(vtn) if vtn is not None else None
    try:
        async with running_site(
            fleet_config, base, epoch=epoch, speed=speed, options=options, dispatch=dispatch, api=True,
            openadr3=openadr3,
        ) as site:  # fmt: skip
            report = await _run_event(
                site, vtn, out, zone, day, t_start, t_end, send_at, target, live, wall0, tz, keep_serving
            )
    finally:
        if vtn is not None:
            await vtn.stop()
    return report


async def _run_event(
    site: Any,
    vtn: Any,
    out: Any,
    zone: ZoneInfo,
    day: date,
    t_start: datetime,
    t_end: datetime,
    send_at: datetime,
    target: float,
    live: bool,
    wall0: float,
    tz: str,
    keep_serving: bool = False,
) -> dict[str, Any]:
    base = site.central.settings.data_dir
    out.print(f"CSMS up (OCPP :{site.central.port}, API {site.service.api.url}); fleet online in "
              f"{time.perf_counter() - wall0:.1f} s")  # fmt: skip
    console_url = await _console_access(site, out)
    if site.clock.now() > send_at:
        out.print(f"[yellow]start-up took longer than the lead-in: the event is sent at "
                  f"{site.clock.now().astimezone(zone):%H:%M} instead of {send_at:%H:%M}[/]")  # fmt: skip
    await site.clock.sleep_until(send_at)
    if vtn is None:
        event_id = f"dsgs-{day.isoformat()}"
        await _send_leap(site, event_id, t_start, t_end, target, out)
    else:
        event_id = await _send_openadr3(site, vtn, t_start, t_end, target, out)
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
    await _settlement(site, event_id, base / "reports", tz, out)
    if vtn is not None:
        reports = vtn.state.reports_for(event_id)
        n = len(reports[0]["resources"][0]["intervals"]) if reports else 0
        out.print(f"OpenADR 3: the VTN holds a delivery report of [bold]{n}[/] 5-minute intervals for {event_id}")
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


async def _start_vtn() -> Any:
    """The VTN simulator with the utility's DSGS program already published."""
    from simulators.vtn import VtnServer, VtnState

    state = VtnState()
    state.add_client("demo-ven", "demo-ven-secret", "ven")
    state.add_client("demo-utility", "demo-utility-secret", "bl")
    vtn = VtnServer(state)
    await vtn.start()
    async with _utility(vtn) as (http, headers):
        body = {"programName": "DSGS-option-3", "programLongName": "Demand Side Grid Support, Option 3"}
        resp = await http.post("/programs", json=body, headers=headers)
        resp.raise_for_status()
    return vtn


@contextlib.asynccontextmanager
async def _utility(vtn: Any) -> Any:
    """An HTTP client of the VTN with the utility's (business logic) token."""
    import httpx

    async with httpx.AsyncClient(base_url=vtn.url, timeout=30) as http:
        form = {"grant_type": "client_credentials", "client_id": "demo-utility", "client_secret": "demo-utility-secret"}
        token = (await http.post("/auth/token", data=form)).json()["access_token"]
        yield http, {"Authorization": f"Bearer {token}"}


def _ven_settings(vtn: Any) -> Any:
    from csms.config import OpenAdr3Settings

    return OpenAdr3Settings(
        enabled=True,
        vtn_url=vtn.url,
        client_id="demo-ven",
        client_secret="demo-ven-secret",
        ven_name="demo-garage-ven",
        programs=["DSGS-option-3"],
        callback_url="auto",
        poll_interval_s=300.0,
    )


async def _send_openadr3(site: Any, vtn: Any, start: datetime, end: datetime, kw: float, out: Any) -> str:
    """The utility side: create the event on the VTN simulator; the VEN receives it by its
    subscription's callback (or, failing that, its next poll)."""
    async with _utility(vtn) as (http, headers):
        programs = (await http.get("/programs", headers=headers)).json()
        program = next(p["id"] for p in programs if p["programName"] == "DSGS-option-3")
        hours = int((end - start).total_seconds() // 3600)
        event = {
            "programID": program,
            "eventName": f"DSGS export {start:%Y-%m-%d}",
            "priority": 1,
            "payloadDescriptors": [{"payloadType": "EXPORT_CAPACITY_LIMIT", "units": "KW"}],
            "intervalPeriod": {"start": start.isoformat(), "duration": "PT1H"},
            "intervals": [
                {"id": k, "payloads": [{"type": "EXPORT_CAPACITY_LIMIT", "values": [kw]}]} for k in range(hours)
            ],
            "reportDescriptors": [{"payloadType": "USAGE", "readingType": "DIRECT_READ", "units": "KWH"}],
        }
        resp = await http.post("/events", json=event, headers=headers)
    if resp.status_code != 201:
        raise RuntimeError(f"the VTN refused the event: HTTP {resp.status_code} {resp.text}")
    event_id = str(resp.json()["id"])
    async with asyncio.timeout(30):
        while site.book.get(event_id) is None:  # noqa: ASYNC110 - the VTN calls the VEN back
            await asyncio.sleep(0.05)
    how = "callback" if site.ven.notifications else "polling"
    out.print(f"grid event [bold]{event_id}[/] created on the OpenADR 3 VTN ({vtn.url}); the VEN got it by {how}")
    return event_id


async def _settlement(site: Any, event_id: str, out_dir: Path, tz: str, out: Any) -> dict[str, Any] | None:
    from rich.table import Table

    from csms.grid.meterdata import settle_event

    event = site.book.get(event_id)
    if event is None:
        return None
    report = await settle_event(site.central.store, event, tz=tz, out_dir=out_dir)
    b = report["baseline"]
    t = Table(title=f"settlement {event_id} (baseline {b['method']})")
    for col in ("hour", "target kWh", "baseline kWh", "net import kWh", "exported kWh", "incremental kWh"):
        t.add_column(col, justify="right")
    cols = ("target_kwh", "baseline_kwh", "actual_net_import_kwh", "delivered_export_kwh", "incremental_kwh")
    for r in report["hours"]:
        t.add_row(r["hour_local"][-5:], *(_kwh(r[c]) for c in cols))
    t.add_row("total", *(_kwh(report["summary"][c]) for c in cols), style="bold")
    out.print(t)
    for note in b["notes"]:
        out.print(f"[yellow]{note}[/]")
    out.print(f"settlement CSV: {report['csv_path']}")
    out.print(f"settlement JSON: {report['json_path']}")
    return report


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


def _kwh(x: float) -> str:
    """One decimal, without a "-0.0" for a value that rounds to zero."""
    return f"{round(x, 1) + 0.0:.1f}"
