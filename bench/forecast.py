"""Backtest of the flexibility forecast (:mod:`csms.grid.forecast`) on the bundled Caltech ACN sessions.

For every weekday D of the bundled data (``simulators/data/acn-caltech``, 2019-2021), a
forecast is made at local midnight for the 24 hours of D, as the CSMS would make it:

* *known cars*: the sessions plugged in at midnight, with their announced departure
  (``estimated_departure``, else the real one) - what the CSMS knows at that moment;
* *scenarios*: the previous 10 weekdays with sessions (within 42 days), repeated onto D.

The *actual* is the same export capability computed from what really happened on D (every
session present, with its real departure). Cars, batteries and SoCs follow the replay rules of
:mod:`simulators.sessions` (car from the session id, promise 80 %, SoC at arrival from the
requested energy); chargers are 15 kW bidirectional. Errors per hour of day: MAPE of the median
(over the days where the actual is at least 1 kW; MAPE is undefined at zero and dominated by
near-empty days such as holidays), WAPE (sum of absolute errors / sum of actuals), the share of days
whose actual lies inside the forecast's 10-90 % band, and for scale a naive forecast (the
previous weekday's actual).

    .venv/bin/python -m bench.forecast            # all four periods
    .venv/bin/python -m bench.forecast --files 2019-05-01_2019-08-31.csv.gz
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from csms.grid.forecast import Stay, fleet_export, forecast, hour_grid, mape
from simulators.cars import CARS
from simulators.sessions import AcnSession, acn_path, car_for, initial_soc, load_acn

TZ = ZoneInfo("America/Los_Angeles")
FILES = (
    "2019-05-01_2019-08-31.csv.gz",
    "2019-09-01_2019-12-31.csv.gz",
    "2020-02-01_2020-05-31.csv.gz",
    "2021-05-01_2021-08-31.csv.gz",
)
CHARGER_KW = 15.0
PROMISE = 80.0


def stay_of(s: AcnSession, *, announced_at: datetime | None = None) -> Stay:
    """The session as a stay; with ``announced_at`` as the CSMS sees it at that moment: the
    announced departure when it is still ahead, else (overdue or none) 8 more hours."""
    car = CARS[car_for(s.session_id)]
    departure = s.departure
    if announced_at is not None:
        est = s.estimated_departure
        departure = est if est is not None and est > announced_at else announced_at + timedelta(hours=8)
    return Stay(
        arrival=s.arrival,
        departure=departure,
        capacity_kwh=car.capacity_kwh,
        soc_arrival=initial_soc(s.requested_kwh, car.capacity_kwh, PROMISE, 10.0),
        soc_target=PROMISE,
        max_discharge_kw=min(CHARGER_KW, car.max_discharge_kw),
        max_charge_kw=min(CHARGER_KW, car.max_charge_kw),
        soc_floor=car.min_soc,
    )


def run(files: tuple[str, ...], days: int = 10) -> dict[str, object]:
    sessions: list[AcnSession] = []
    for name in files:
        sessions += load_acn(str(acn_path(name)))
    by_day: dict[date, list[AcnSession]] = defaultdict(list)
    for s in sessions:
        by_day[s.arrival.astimezone(TZ).date()].append(s)
    weekdays = sorted(d for d in by_day if d.weekday() < 5 and len(by_day[d]) >= 5)
    per_hour: dict[int, list[tuple[float, float, float, float, float]]] = defaultdict(list)
    n_days = 0
    prev_actual: dict[int, float] | None = None
    prev_day: date | None = None
    for d in weekdays:
        history = [(h, [stay_of(s) for s in by_day[h]]) for h in weekdays if d - timedelta(days=42) <= h < d][-days:]
        now = datetime.combine(d, datetime.min.time(), tzinfo=TZ)
        end = now + timedelta(hours=24)
        if len(history) < 3:
            prev_actual, prev_day = None, None
            continue
        known_sessions = [s for s in sessions if s.arrival < now < s.departure]
        known = [stay_of(s, announced_at=now) for s in known_sessions]
        fc = forecast(now, known=known, history=history, hours=24, tz="America/Los_Angeles")
        actual_stays = [stay_of(s) for s in known_sessions] + [stay_of(s) for s in by_day[d] if s.arrival < end]
        actual = {}
        for (a, b), h in zip(hour_grid(now, 24), fc.hours, strict=True):
            kw, _ = fleet_export(actual_stays, a, b)
            hod = a.astimezone(TZ).hour
            actual[hod] = kw
            naive = prev_actual.get(hod) if prev_actual is not None and prev_day and (d - prev_day).days <= 4 else None
            per_hour[hod].append((kw, h.kw_p50, h.kw_p10, h.kw_p90, naive if naive is not None else float("nan")))
        prev_actual, prev_day = actual, d
        n_days += 1
    return {"days": n_days, "per_hour": per_hour}


def wape(forecast_kw: list[float], actual_kw: list[float]) -> float | None:
    total = sum(actual_kw)
    return None if total <= 0 else 100.0 * sum(abs(f - a) for f, a in zip(forecast_kw, actual_kw, strict=True)) / total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", nargs="*", default=list(FILES), help="ACN files (default: all bundled)")
    p.add_argument("--days", type=int, default=10, help="past weekdays used as scenarios")
    args = p.parse_args()
    t0 = time.perf_counter()
    res = run(tuple(args.files), args.days)
    per_hour = res["per_hour"]
    assert isinstance(per_hour, dict)
    print(f"flexibility forecast backtest: {res['days']} weekdays of Caltech ACN sessions, forecast at local midnight")
    print("hour  actual kW  median kW  MAPE median  WAPE median  in 10-90% band  MAPE naive  WAPE naive  days")
    all_f, all_a, all_n, all_na, inside, total = [], [], [], [], 0, 0
    for hod in range(24):
        rows = per_hour.get(hod, [])
        if not rows:
            continue
        act = [r[0] for r in rows]
        med = [r[1] for r in rows]
        band = sum(1 for r in rows if r[2] - 1e-6 <= r[0] <= r[3] + 1e-6)
        pairs = [(r[4], r[0]) for r in rows if r[4] == r[4]]
        m = mape(med, act)
        w = wape(med, act)
        mn = mape([x for x, _ in pairs], [y for _, y in pairs]) if pairs else None
        wn = wape([x for x, _ in pairs], [y for _, y in pairs]) if pairs else None
        all_f += med
        all_a += act
        all_n += [x for x, _ in pairs]
        all_na += [y for _, y in pairs]
        inside += band
        total += len(rows)
        print(
            f"{hod:02d}h  {sum(act) / len(act):9.1f}  {sum(med) / len(med):9.1f}  "
            f"{'-' if m is None else f'{m:9.1f} %':>11}  {'-' if w is None else f'{w:9.1f} %':>11}  "
            f"{100 * band / len(rows):12.0f} %  "
            f"{'-' if mn is None else f'{mn:8.1f} %':>10}  {'-' if wn is None else f'{wn:8.1f} %':>10}  "
            f"{len(rows):4d}"
        )
    m_all = mape(all_f, all_a)
    n_all = mape(all_n, all_na)
    print(
        f"all   MAPE median {m_all:.1f} % (hours with actual >= 1 kW), WAPE {wape(all_f, all_a):.1f} %, "
        f"band coverage {100 * inside / total:.0f} %, "
        f"naive MAPE {n_all:.1f} % WAPE {wape(all_n, all_na):.1f} %; {time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
