"""Benchmark of the V2G dispatch planner (``python -m bench.planner``).

Prints two tables:

* solve times: LP for 1,000 cars x 60 five-minute intervals (16:00-21:00 export
  event, median of 3), for a feasible and an infeasible (capacity-limited) target;
  10,000 cars planned by the heuristic (and by ``method="auto"``);
* the dispatch-quality sweep on real ACN-Data Caltech sessions
  (``simulators/data/acn-caltech``): cars plugged in during a 16:00-21:00 export
  event whose target is ``kW/car`` (0.5, 1, 2, 3, 6) x the cars connected at
  16:00, the CSMS in control from 2 h before (the event is known day-ahead, so
  every planner may pre-charge). Each online planner (LP, heuristic) replans
  every 5 minutes knowing only the cars present; it is scored against the
  perfect-foresight LP that knows every arrival and departure (regret = NAE -
  NAE of perfect foresight), with the delivery ratio, the share of 5-minute
  intervals within +-10 % and the drivers left below a target they could have
  reached (stranded). The perfect-foresight LP is always solved in its full
  formulation (the compact one is not exact once cars arrive mid-event).

Reference rows (``--no-bound`` drops the second):

* ``PF-LP`` -- the perfect-foresight LP, the zero of regret;
* ``PF-every-moment`` -- the same LP that must also keep every car at or above
  ``min(target, what charging at full power since plug-in reaches, one 5-minute
  step late)`` at every step edge while it is plugged in (:mod:`bench.planner_bound`).
  A planner that is not told departures and may strand no one must hold that line
  (a driver may leave the moment the target becomes reachable), so this row's
  regret is a lower bound on the regret of any such planner -- the ``estimate``
  and ``model`` settings included -- and what is left between them is the price
  of not knowing arrivals and departures. It is a restriction of ``PF-LP``: the
  sweep checks its NAE is never lower (within ``BOUND_TOL``) on any day.

Departures the online planner is told (cars always leave at their real time):

* ``real`` -- the real departure;
* ``estimate`` -- the driver's own ``estimated_departure`` as the expected
  departure inside the departure model's range, then the model alone once the
  estimate has passed;
* ``model`` -- only :class:`csms.dispatch.departure.DepartureModel`, learned
  per weekday and hour of arrival from the dev months (minus the day replayed).
  In both the promise holds at every moment (``q_earliest`` 0);
* ``estimate-promise`` (only with ``--departures``) -- as ``estimate``, but the
  promise is due 10 minutes before the driver's estimate, as the controller's
  snapshot plans today: the price of trusting drivers, in stranded drivers.

Splits: ``dev`` = 2019 (May-December), the months the planner and the model
were tuned on; ``held-out`` = 2020 (February-May) and 2021 (May-August), never
looked at while tuning. ``--days`` weekdays per split are spread evenly over its
weekdays with at least 5 cars at 16:00.

EV model assigned to the Caltech sessions (they carry no battery data): a
Nissan Leaf of 40 or 62 kWh (alternating by session), 15 kW bidirectional DC
charger (charge and discharge), 2 kW minimum stable discharge, 0.9 efficiency
each way, SoC floor 0.2. SoC at arrival is drawn in 0.2-0.6; the driver's
target SoC is ``min(0.95, SoC at arrival + delivered kWh / capacity)``. Cars
already plugged in at 14:00 are given the SoC they would have after charging
at 6.6 kW (a typical level-2 rate) since arrival, capped at their target.

Options: ``--days N`` (per split, default 8), ``--kw-per-car 1`` (one or more
targets), ``--splits``, ``--methods``, ``--departures``, ``--jobs`` (worker
processes, default 2), ``--no-timing``, ``--no-bound``, ``--quick``, ``--data DIR``. The full
sweep took about 7 CPU-minutes (4 minutes on 2 free cores) before the exact perfect foresight
and the bound row; with them, 12.5 minutes on 2 cores shared with other runs.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from bench.planner_bound import pf_every_moment_plan
from csms.dispatch.departure import DepartureModel, SessionRecord
from csms.dispatch.fleet import CarState, EventTarget, FleetSnapshot
from csms.dispatch.planner import Method, Plan, nae, perfect_foresight_plan, plan
from simulators.sessions import ACN_DATA_DIR

PACIFIC = ZoneInfo("America/Los_Angeles")
DEFAULT_DATA = ACN_DATA_DIR
STEP_S = 300.0
L2_KW = 6.6


def synthetic_fleet(
    n: int, t0: datetime, *, seed: int = 0, departures_h: tuple[float, float] = (1.0, 8.0)
) -> list[CarState]:
    """``n`` random cars plugged in at ``t0`` (mixed Leafs, 10-20 kW chargers, departures after ``t0``)."""
    rng = np.random.default_rng(seed)
    cap = rng.choice([40.0, 62.0], n)
    soc = rng.uniform(0.35, 0.95, n)
    target = rng.uniform(0.3, 0.85, n)
    cmax = rng.choice([11.0, 15.0, 20.0], n)
    dmax = rng.choice([10.0, 15.0, 20.0], n)
    dmin = rng.choice([0.0, 1.5, 3.0], n)
    dep = rng.uniform(departures_h[0], departures_h[1], n)
    return [
        CarState(
            car_id=f"car{i:05d}",
            station_id=f"st{i // 2:05d}",
            evse_id=1 + i % 2,
            soc=float(soc[i]),
            capacity_kwh=float(cap[i]),
            max_charge_kw=float(cmax[i]),
            max_discharge_kw=float(dmax[i]),
            min_discharge_kw=float(dmin[i]),
            soc_floor=0.2,
            target_soc=float(target[i]),
            departure=t0 + timedelta(hours=float(dep[i])),
            plugged_in_at=t0 - timedelta(hours=2),
        )
        for i in range(n)
    ]


@dataclass
class Timed:
    """Median wall and CPU time of repeated planner runs, and the last plan."""

    wall: float
    cpu: float
    plan: Plan


def _timed(fn: Callable[[], Plan], reps: int) -> Timed:
    walls: list[float] = []
    cpus: list[float] = []
    out: Plan | None = None
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    assert out is not None
    return Timed(statistics.median(walls), statistics.median(cpus), out)


# --------------------------------------------------------------------------- synthetic scale runs

T_EVENT = datetime(2025, 8, 1, 23, 0, tzinfo=UTC)  # 16:00 PDT


def bench_lp_1000(reps: int, per_car_kw: float) -> Timed:
    """1,000 cars, 60 five-minute intervals (16:00-21:00), LP; departures 1-8 h after 16:00."""
    cars = synthetic_fleet(1000, T_EVENT, seed=1)
    snap = FleetSnapshot(time=T_EVENT, cars=cars)
    ev = EventTarget.flat(T_EVENT, T_EVENT + timedelta(hours=5), per_car_kw * len(cars))
    return _timed(lambda: plan(snap, ev, step_s=STEP_S, method="lp", time_budget_s=60.0), reps)


def bench_10k(method: Method, reps: int) -> Timed:
    """10,000 cars, same event (2 kW per car), planned with ``method``."""
    cars = synthetic_fleet(10_000, T_EVENT, seed=2)
    snap = FleetSnapshot(time=T_EVENT, cars=cars)
    ev = EventTarget.flat(T_EVENT, T_EVENT + timedelta(hours=5), 2.0 * len(cars))
    return _timed(lambda: plan(snap, ev, step_s=STEP_S, method=method, time_budget_s=600.0), reps)


# --------------------------------------------------------------------------- Caltech regret


@dataclass(frozen=True)
class Session:
    """One ACN-Data session, times in UTC."""

    session_id: str
    station_id: str
    arrival: datetime
    departure: datetime
    requested_kwh: float
    delivered_kwh: float
    estimated_departure: datetime | None = None


def load_sessions(data_dir: Path) -> list[Session]:
    """All sessions of the gzip CSVs in ``data_dir``."""
    out: list[Session] = []
    for path in sorted(data_dir.glob("*.csv.gz")):
        with gzip.open(path, "rt", newline="") as fh:
            for row in csv.DictReader(fh):
                arr = datetime.fromisoformat(row["arrival"]).astimezone(UTC)
                dep = datetime.fromisoformat(row["departure"]).astimezone(UTC)
                if dep <= arr:
                    continue
                est_text = row.get("estimated_departure") or ""
                est = datetime.fromisoformat(est_text).astimezone(UTC) if est_text else None
                out.append(
                    Session(
                        row["session_id"],
                        row["station_id"],
                        arr,
                        dep,
                        float(row["requested_energy (kWh)"]),
                        float(row["delivered_energy (kWh)"]),
                        est,
                    )
                )
    return out


#: Development months (the planner and the departure model were tuned on these) and held-out
#: months (never looked at while tuning; 2020 spans the COVID drop, 2021 the return, when drivers'
#: estimates ran hours late).
SPLITS: dict[str, Callable[[date], bool]] = {
    "dev": lambda d: d.year == 2019,
    "held-out": lambda d: d.year >= 2020,
}


def records(sessions: list[Session]) -> list[SessionRecord]:
    """The sessions as the departure model sees them."""
    return [
        SessionRecord(
            arrival=s.arrival,
            departure=s.departure,
            estimated_departure=s.estimated_departure,
            energy_kwh=s.delivered_kwh,
        )
        for s in sessions
    ]


def _event_window(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, 16, 0, tzinfo=PACIFIC).astimezone(UTC)
    return start, start + timedelta(hours=5)


def weekdays_with_fleet(sessions: list[Session], n_days: int, min_cars: int = 5) -> list[date]:
    """Up to ``n_days`` weekdays, spread over the data set, with ``min_cars`` or more EVs at 16:00."""
    counts: dict[date, int] = {}
    for s in sessions:
        day = s.arrival.astimezone(PACIFIC).date()
        if day.weekday() >= 5:
            continue
        start, _ = _event_window(day)
        if s.arrival <= start < s.departure:
            counts[day] = counts.get(day, 0) + 1
    days = sorted(d for d, c in counts.items() if c >= min_cars)
    if len(days) <= n_days:
        return days
    idx = np.linspace(0, len(days) - 1, n_days).round().astype(int)
    return [days[i] for i in idx]


def caltech_cars(
    sessions: list[Session], day: date, control_start: datetime
) -> tuple[list[CarState], datetime, datetime]:
    """Cars of ``day`` connected at some point between ``control_start`` and 21:00 (EV model: module doc)."""
    start, end = _event_window(day)
    cars: list[CarState] = []
    for k, s in enumerate(sorted(sessions, key=lambda x: x.arrival)):
        if not (s.arrival < end and s.departure > max(start, control_start)):
            continue
        if s.arrival.astimezone(PACIFIC).date() != day:
            continue
        rng = np.random.default_rng(zlib.crc32(s.session_id.encode()))
        cap = 40.0 if k % 2 == 0 else 62.0
        soc_arr = float(rng.uniform(0.2, 0.6))
        target = min(0.95, soc_arr + s.delivered_kwh / cap)
        soc = soc_arr
        if s.arrival < control_start:  # uncontrolled level-2 charging until the CSMS takes over
            hours = (control_start - s.arrival).total_seconds() / 3600
            soc = min(max(target, soc_arr), soc_arr + 0.9 * L2_KW * hours / cap)
        cars.append(
            CarState(
                car_id=s.session_id,
                station_id=s.station_id,
                soc=min(1.0, soc),
                capacity_kwh=cap,
                max_charge_kw=15.0,
                max_discharge_kw=15.0,
                min_discharge_kw=2.0,
                eta_charge=0.9,
                eta_discharge=0.9,
                soc_floor=0.2,
                target_soc=target,
                departure=s.departure,
                plugged_in_at=max(s.arrival, control_start),
            )
        )
    return cars, start, end


def _advance(car: CarState, power_kw: float, hours: float) -> float:
    """SoC of ``car`` after ``hours`` at ``power_kw`` (grid side, + = charge)."""
    e = car.soc * car.capacity_kwh
    e += (power_kw * car.eta_charge if power_kw > 0 else power_kw / car.eta_discharge) * hours
    return min(1.0, max(0.0, e / car.capacity_kwh))


@dataclass
class Run:
    """Delivered export per 5-minute event interval, SoC per car when it leaves, replan times."""

    delivered: np.ndarray
    final_soc: dict[str, float]
    solve_s: list[float]


def _soc_when_leaving(p: Plan, car: CarState, real_departure: datetime) -> float:
    """SoC at ``real_departure`` from a plan; after its horizon the car charges at full power until it leaves."""
    if not p.n_steps:
        return car.soc
    ends = np.array([e.timestamp() for e in p.step_ends])
    k = int(np.searchsorted(ends, real_departure.timestamp() + 1e-6, side="right"))  # edges passed
    soc = float(p.soc[p.index(car.car_id), k])
    left_h = max(0.0, (real_departure - p.step_ends[-1]).total_seconds() / 3600)
    return min(1.0, soc + car.eta_charge * car.max_charge_kw * left_h / car.capacity_kwh)


#: What the planner is told about a car at a replan: the car (with its real departure) and the time.
Told = Callable[[CarState, datetime], CarState]


def online_run(
    cars: list[CarState],
    t0: datetime,
    start: datetime,
    end: datetime,
    target_kw: float,
    method: Method,
    told: Told | None = None,
) -> Run:
    """From ``t0``, replan every 5 minutes with only the cars present, execute the first step, and score.

    ``told`` maps each present car to what the planner is told (default: the
    truth); cars leave at their real departure whatever the planner was told.
    """
    ev = EventTarget.flat(start, end, target_kw)
    soc = {c.car_id: c.soc for c in cars}
    delivered: list[float] = []
    solve: list[float] = []
    t = t0
    while t < end:
        present = [
            c.model_copy(update={"soc": soc[c.car_id]}) for c in cars if (c.plugged_in_at or t0) <= t < c.departure
        ]
        shown = [told(c, t) if told else c for c in present]
        p = plan(FleetSnapshot(time=t, cars=shown), ev, step_s=STEP_S, method=method)
        solve.append(p.solve_time_s)
        step_end = min(t + timedelta(seconds=STEP_S), p.step_ends[0])
        step_h = (step_end - t).total_seconds() / 3600
        # a car leaving inside the step stops at its departure (the export is what really flowed)
        exported = 0.0
        for c in present:
            hours = (min(step_end, c.departure) - t).total_seconds() / 3600
            kw = float(p.power_kw[p.index(c.car_id), 0])
            soc[c.car_id] = _advance(c, kw, hours)
            exported -= kw * hours / step_h
        if t >= start:
            delivered.append(exported)
        t = step_end
    # after the event: charge everyone still plugged in toward their target and check departures
    staying = [c.model_copy(update={"soc": soc[c.car_id]}) for c in cars if c.departure > end]
    shown = [told(c, end) if told else c for c in staying]
    after = plan(FleetSnapshot(time=end, cars=shown), None, step_s=STEP_S, method=method)
    final = {c.car_id: soc[c.car_id] for c in cars if c.departure <= end}
    for c in staying:
        final[c.car_id] = _soc_when_leaving(after, c, c.departure)
    return Run(np.array(delivered), final, solve)


def pf_run(
    cars: list[CarState], t0: datetime, start: datetime, end: datetime, target_kw: float, *, planner=None
) -> Run:
    """Perfect-foresight LP over the same scenario (knows every arrival and departure from ``t0``);
    ``planner=pf_every_moment_plan`` keeps the promise at every moment too (the bound)."""
    ev = EventTarget.flat(start, end, target_kw)
    t = time.perf_counter()
    p = (planner or perfect_foresight_plan)(FleetSnapshot(time=t0, cars=cars), ev, step_s=STEP_S, tail_step_s=STEP_S)
    m = np.array([d is not None for d in p.directions])
    final = {c.car_id: _soc_when_leaving(p, c, c.departure) for c in cars}
    return Run(p.export_kw[m], final, [time.perf_counter() - t])


def pf_every_moment_run(cars: list[CarState], t0: datetime, start: datetime, end: datetime, target_kw: float) -> Run:
    """Perfect foresight with the promise kept at every moment (:mod:`bench.planner_bound`): the bound."""
    return pf_run(cars, t0, start, end, target_kw, planner=pf_every_moment_plan)


#: The every-moment bound is a restriction of perfect foresight: its LP optimum never tracks better.
#: The plans scored are those LP optima after the minimum-discharge repair (2 kW), which can move
#: either plan off its optimum: on 2020-03-06 at 0.5 kW/car the PF-LP's optimum tracks exactly and
#: its repaired plan scores NAE 0.006, the bound's 0.000. Hence the tolerance.
BOUND_TOL = 0.01


def _stranded(cars: list[CarState], final: dict[str, float], start: datetime) -> int:
    """Drivers who leave below a target they could have reached by charging at full power from plug-in."""
    bad = 0
    for c in cars:
        t_from = c.plugged_in_at or start
        hours = max(0.0, (c.departure - t_from).total_seconds() / 3600 - 5 / 60)  # one step of discretisation
        reachable = min(1.0, c.soc + c.eta_charge * c.max_charge_kw * hours / c.capacity_kwh)
        if c.target_soc <= reachable - 1e-9 and final[c.car_id] < c.target_soc - 1e-6:
            bad += 1
    return bad


Setting = str  # "real" | "estimate" | "model" | "estimate-promise"
SETTINGS: tuple[Setting, ...] = ("real", "estimate", "model")
#: Not in the default sweep: the promise due at the driver's own estimate (minus 10 minutes), as
#: the controller's snapshot plans today -- what trusting drivers' estimates costs in stranded drivers.
EXTRA_SETTINGS: tuple[Setting, ...] = ("estimate-promise",)


#: ``estimate-promise``: how long before the driver's estimate the promise is due.
PROMISE_MARGIN = timedelta(minutes=10)


def teller(setting: Setting, model: DepartureModel, sessions: dict[str, Session]) -> Told | None:
    """What the planner is told about departures in ``setting``.

    * ``real``: the real departure (an oracle, the upper bound of what a departure model can give);
    * ``estimate``: the driver's own estimate, while it is in the future, is the expected
      departure inside the model's range (conditioned on the car still being here); then the
      model alone; the promise is kept from the model's early quantile (now);
    * ``model``: only the departure model learned from history (weekday, hour of arrival).
    """
    if setting == "real":
        return None

    def told(car: CarState, now: datetime) -> CarState:
        s = sessions[car.car_id]
        est = s.estimated_departure if setting.startswith("estimate") else None
        shown = model.apply(car, now, arrival=s.arrival, estimate=est)
        if setting == "estimate-promise" and est is not None and est > now:
            # trust the driver: the promise is due PROMISE_MARGIN before the time they gave
            early = max(now, est - PROMISE_MARGIN)
            shown = shown.model_copy(update={"earliest_departure": early, "expected_departure": None})
        return shown

    return told


@dataclass
class Scenario:
    """One replayed weekday: its cars, control start, event window and departure model."""

    day: date
    cars: list[CarState]
    t0: datetime
    start: datetime
    end: datetime
    at_start: int
    model: DepartureModel
    by_id: dict[str, Session]


def scenarios(sessions: list[Session], split: str, n_days: int, lead_h: float) -> list[Scenario]:
    """``n_days`` weekdays of ``split``; the departure model is fitted on the dev months (minus the day)."""
    in_split = [s for s in sessions if SPLITS[split](s.arrival.astimezone(PACIFIC).date())]
    dev = [s for s in sessions if SPLITS["dev"](s.arrival.astimezone(PACIFIC).date())]
    by_id = {s.session_id: s for s in sessions}
    dev_records = records(dev)
    dev_days = [s.arrival.astimezone(PACIFIC).date() for s in dev]
    out: list[Scenario] = []
    for day in weekdays_with_fleet(in_split, n_days):
        start, end = _event_window(day)
        t0 = start - timedelta(hours=lead_h)
        cars, start, end = caltech_cars(in_split, day, t0)
        at_start = sum(1 for c in cars if (c.plugged_in_at or t0) <= start < c.departure)
        history = [r for r, d in zip(dev_records, dev_days, strict=True) if d != day]
        model = DepartureModel.fit(history, PACIFIC, **MODEL_OPTIONS)
        out.append(Scenario(day, cars, t0, start, end, at_start, model, by_id))
    return out


#: Departure-model quantiles (chosen on the dev months): the promise is kept at every moment
#: (``q_earliest`` 0), the car planned until the 95 % quantile of the stay of cars like it
#: still here, weighed by the chance it is still there.
MODEL_OPTIONS: dict[str, float] = {"q_earliest": 0.0, "q_expected": 0.5, "q_latest": 0.95}


def score(run: Run, target: float, cars: list[CarState], start: datetime) -> dict[str, float]:
    """NAE, delivery ratio, share within +-10 %, stranded drivers and median solve time of one run."""
    tgt = np.full(run.delivered.size, target)
    d = run.delivered
    return {
        "nae": nae(tgt, d),
        "ratio": float(np.mean(d) / target),
        "within": float(np.mean(np.abs(d - tgt) <= 0.1 * tgt)),
        "stranded": _stranded(cars, run.final_soc, start),
        "solve_ms": 1000 * float(np.median(run.solve_s)),
    }


def sweep(
    scen: list[Scenario],
    kw_per_car: list[float],
    methods: list[Method],
    settings: list[Setting],
    bound: bool = True,
) -> dict[tuple[float, str, str], list[dict[str, float]]]:
    """Per (kW/car, method, setting) the per-day scores.

    Method ``"pf"`` is perfect foresight, ``"pf-every-moment"`` (with ``bound``) perfect
    foresight keeping the promise at every moment (:mod:`bench.planner_bound`).
    """
    out: dict[tuple[float, str, str], list[dict[str, float]]] = {}
    for sc in scen:
        tellers = {st: teller(st, sc.model, sc.by_id) for st in settings}
        for kw in kw_per_car:
            target = kw * sc.at_start
            pf = score(pf_run(sc.cars, sc.t0, sc.start, sc.end, target), target, sc.cars, sc.start)
            out.setdefault((kw, "pf", "real"), []).append(pf)
            if bound:
                run = pf_every_moment_run(sc.cars, sc.t0, sc.start, sc.end, target)
                row = score(run, target, sc.cars, sc.start)
                row["regret"] = row["nae"] - pf["nae"]
                if row["regret"] < -BOUND_TOL:
                    raise AssertionError(
                        f"{sc.day} {kw:g} kW/car: PF-every-moment NAE {row['nae']:.4f} below PF-LP {pf['nae']:.4f}"
                    )
                out.setdefault((kw, "pf-every-moment", "real"), []).append(row)
            for method in methods:
                for st in settings:
                    run = online_run(sc.cars, sc.t0, sc.start, sc.end, target, method, tellers[st])
                    row = score(run, target, sc.cars, sc.start)
                    row["regret"] = row["nae"] - pf["nae"]
                    out.setdefault((kw, method, st), []).append(row)
    return out


# --------------------------------------------------------------------------- report


def _timing_line(name: str, r: Timed, reps: int, budget: str) -> tuple[str, str, str]:
    p = r.plan
    return (
        name,
        f"{r.wall:.3f} s wall, {r.cpu:.3f} s CPU (median of {reps})",
        f"{budget}; used {p.method}, {p.n_steps} steps, delivers "
        f"{p.shortfall.achievable_kwh:.0f}/{p.shortfall.target_kwh:.0f} kWh of the target",
    )


def _sweep_one(job: tuple[Scenario, list[float], list[Method], list[Setting], bool]) -> dict:
    sc, kws, methods, settings, bound = job
    return sweep([sc], kws, methods, settings, bound)


def run_sweep(
    data: Path,
    splits: list[str],
    n_days: int,
    kws: list[float],
    methods: list[Method],
    settings: list[Setting],
    lead_h: float,
    jobs: int,
    emit: Callable[[str], None] = print,
    bound: bool = True,
) -> None:
    """Emit the sweep table: per split, target, planner and departure setting, the mean scores over the days."""
    sessions = load_sessions(data)
    out = [
        "Caltech 16:00-21:00 export event, online planners replanning every 5 min from "
        f"{lead_h:g} h before; target = kW/car x cars connected at 16:00; regret = NAE - NAE of the "
        "perfect-foresight LP (knows every arrival and departure)",
        "departures told: real = the real one; estimate = the driver's estimate (the middle of "
        "the model's range); model = learned from the dev months by weekday and hour of arrival; the promise "
        "is kept at every moment in both",
        "PF-every-moment = the perfect-foresight LP keeping the promise at every moment since plug-in: "
        "its regret is the least any zero-stranded planner blind to departures can reach",
    ]
    head = (
        f"{'split':<9} {'days':>4} {'cars':>5} {'kW/car':>6}  {'planner':<15} {'departures':<16} "
        f"{'NAE':>6} {'ratio':>6} {'+-10%':>6} {'regret':>7} {'stranded':>8} {'solve ms':>8}"
    )
    out += [head, "-" * len(head)]
    for line in out:
        emit(line)
    for split in splits:
        out = []
        scen = scenarios(sessions, split, n_days, lead_h)
        if not scen:
            emit(f"{split:<9} no weekdays with a fleet at 16:00")
            continue
        work = [(sc, kws, methods, settings, bound) for sc in scen]
        if jobs > 1:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                parts = list(pool.map(_sweep_one, work))
        else:
            parts = [_sweep_one(w) for w in work]
        res: dict[tuple[float, str, str], list[dict[str, float]]] = {}
        for part in parts:
            for key, rows in part.items():
                res.setdefault(key, []).extend(rows)
        n_cars = float(np.mean([len(sc.cars) for sc in scen]))
        for kw in kws:
            refs = ["pf", "pf-every-moment"] if bound else ["pf"]
            for method in [*refs, *methods]:
                for st in ["real"] if method in refs else settings:
                    rows = res[(kw, method, st)]

                    def mean(key: str, rows: list[dict[str, float]] = rows) -> float:
                        return float(np.mean([r[key] for r in rows]))

                    regret = f"{mean('regret'):+7.3f}" if method != "pf" else f"{'':>7}"
                    name = {"pf": "PF-LP", "pf-every-moment": "PF-every-moment", "lp": "LP"}.get(method, method)
                    out.append(
                        f"{split:<9} {len(scen):>4} {n_cars:>5.1f} {kw:>6g}  {name:<15} {st:<16} "
                        f"{mean('nae'):>6.3f} {mean('ratio'):>6.2f} {mean('within'):>6.2f} {regret} "
                        f"{int(sum(r['stranded'] for r in rows)):>8d} {mean('solve_ms'):>8.0f}"
                    )
        for line in out:
            emit(line)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=8, help="Caltech weekdays per split (spread over its months)")
    ap.add_argument(
        "--kw-per-car", default="0.5,1,2,3,6", help="targets per car connected at 16:00, kW (comma-separated)"
    )
    ap.add_argument("--splits", default="dev,held-out", help="dev and/or held-out")
    ap.add_argument("--methods", default="lp,heuristic", help="online planners: lp, heuristic")
    ap.add_argument("--departures", default=",".join(SETTINGS), help="what the planner is told: real,estimate,model")
    ap.add_argument("--lead-h", type=float, default=2.0, help="hours of control before the event")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes for the sweep")
    ap.add_argument("--no-timing", action="store_true", help="skip the solve-time benchmarks")
    ap.add_argument("--no-bound", action="store_true", help="skip the PF-every-moment reference row")
    ap.add_argument("--quick", action="store_true", help="1 repetition, 3 days per split")
    ap.add_argument("--lp-10k", action="store_true", help="also time the LP on 10,000 cars (slow)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args(argv)
    reps = 1 if args.quick else 3
    days = 3 if args.quick else args.days
    lines: list[tuple[str, str, str]] = []

    if not args.no_timing:
        for per_car, label in ((1.0, "feasible target, 1 kW/car"), (6.0, "infeasible target, 6 kW/car")):
            r = bench_lp_1000(reps, per_car)
            lines.append(_timing_line(f"1,000 cars x 60 intervals, LP ({label})", r, reps, "target < 2 s"))
        methods_t: list[Method] = ["heuristic", "auto"] + (["lp"] if args.lp_10k else [])
        for method in methods_t:
            r = bench_10k(method, 1 if method == "lp" else reps)
            lines.append(_timing_line(f"10,000 cars x 60 intervals, {method}", r, reps, "target < 5 s"))
        w0 = max(len(a) for a, _, _ in lines)
        w1 = max(len(b) for _, b, _ in lines)
        print(f"{'benchmark':<{w0}}  {'result':<{w1}}  notes")
        print("-" * (w0 + w1 + 60))
        for a, b, c in lines:
            print(f"{a:<{w0}}  {b:<{w1}}  {c}")
        print()

    if not args.data.exists():
        print(f"Caltech sweep skipped: no data in {args.data}")
        return 0
    kws = [float(x) for x in args.kw_per_car.split(",") if x]
    methods: list[Method] = [m for m in args.methods.split(",") if m]  # type: ignore[misc]
    settings = [x for x in args.departures.split(",") if x]
    for x in settings:
        if x not in SETTINGS + EXTRA_SETTINGS:
            ap.error(f"unknown departure setting {x!r}")
    splits = [x for x in args.splits.split(",") if x]
    t = time.perf_counter()
    run_sweep(
        args.data,
        splits,
        days,
        kws,
        methods,
        settings,
        args.lead_h,
        args.jobs,
        lambda x: print(x, flush=True),
        bound=not args.no_bound,
    )
    print(f"(sweep: {time.perf_counter() - t:.0f} s wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
