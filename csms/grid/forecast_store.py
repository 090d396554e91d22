"""Stays for the flexibility forecast, read from the store and the live station state (I/O).

History: the stored transactions of the last ``lookback_days`` (arrival = ``started_at``,
departure = ``ended_at``; battery, SoC, promise, floor and power limits from the charging needs
the car reported, defaults where it reported none), grouped by the local date of arrival; the
last ``days`` days of the same kind as the forecast day (weekday / weekend) are the scenarios
(any kind when fewer than 3 such days exist). Known cars: the transactions open at the forecast's
moment, with the SoC of their latest meter value (or, for a forecast "as of" a past moment, the
SoC they arrived with) and their announced departure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .forecast import Forecast, Stay, forecast

DEFAULTS = {"capacity_kwh": 60.0, "soc": 50.0, "target_soc": 80.0, "floor": 20.0, "charge_kw": 11.0}
DEFAULT_STAY_H = 8.0


def stay_from(
    needs: Mapping[str, Any] | None,
    arrival: datetime,
    departure: datetime | None,
    *,
    soc_now: float | None = None,
) -> Stay:
    """A :class:`Stay` from a transaction's stored charging needs (``ChargingNeeds.to_json``)."""
    n = dict(needs or {})
    dep = departure
    if dep is None and n.get("departure_time"):
        dep = datetime.fromisoformat(str(n["departure_time"]))
    if dep is None or dep <= arrival:
        dep = arrival + timedelta(hours=DEFAULT_STAY_H)
    cap = float(n.get("capacity_wh") or DEFAULTS["capacity_kwh"] * 1000) / 1000.0
    return Stay(
        arrival=arrival,
        departure=dep,
        capacity_kwh=cap,
        soc_arrival=float(soc_now if soc_now is not None else n.get("soc") or DEFAULTS["soc"]),
        soc_target=float(n.get("target_soc") or DEFAULTS["target_soc"]),
        max_discharge_kw=float(n.get("max_discharge_w") or 0.0) / 1000.0,
        max_charge_kw=float(n.get("max_charge_w") or DEFAULTS["charge_kw"] * 1000) / 1000.0,
        soc_floor=float(n.get("min_soc") or DEFAULTS["floor"]),
    )


def pick_days(by_day: Mapping[date, list[Stay]], target: date, days: int = 10) -> list[tuple[date, list[Stay]]]:
    """The last ``days`` days before ``target`` of the same kind (weekday/weekend)."""
    past = sorted((d for d in by_day if d < target), reverse=True)
    weekend = target.weekday() >= 5
    same = [d for d in past if (d.weekday() >= 5) == weekend]
    chosen = same[:days] if len(same) >= 3 else past[:days]
    return [(d, by_day[d]) for d in sorted(chosen)]


async def load_stays(
    central: Any, now: datetime, *, lookback_days: int = 42, tz: str = "UTC"
) -> tuple[dict[date, list[Stay]], list[Stay]]:
    """``(history by local arrival date, cars plugged in now)``."""
    store = central.store
    zone = ZoneInfo(tz)
    since = now - timedelta(days=lookback_days)
    by_day: dict[date, list[Stay]] = defaultdict(list)
    known: list[Stay] = []
    offset, page = 0, 1000
    while True:
        rows = await store.list_transactions(limit=page, offset=offset)
        for tx in rows:
            if tx.started_at is None or tx.started_at > now:
                continue
            if tx.ended_at is None:  # plugged in now: its live SoC, its announced departure
                soc = _live_soc(central, tx.station_id, tx.transaction_id)
                s = stay_from(tx.charging_needs, now, None, soc_now=soc) if soc is not None else None
                s = s or stay_from(tx.charging_needs, tx.started_at, None)
                if s.departure > now:
                    known.append(s)
            elif tx.ended_at > now:  # a forecast "as of" a past moment: plugged in then
                s = stay_from(tx.charging_needs, tx.started_at, None)  # announced, not actual, departure
                if s.departure > now:
                    known.append(s)
            elif tx.started_at >= since:
                day = tx.started_at.astimezone(zone).date()
                by_day[day].append(stay_from(tx.charging_needs, tx.started_at, tx.ended_at))
        if len(rows) < page or (rows and rows[-1].started_at is not None and rows[-1].started_at < since):
            break
        offset += page
    return dict(by_day), known


def _live_soc(central: Any, station_id: str, transaction_id: str) -> float | None:
    st = getattr(central, "states", {}).get(station_id)
    evse = st.evse_of_transaction(transaction_id) if st is not None else None
    return evse.soc if evse is not None else None


async def store_forecast(central: Any, now: datetime, *, hours: int = 24, days: int = 10, tz: str = "UTC") -> Forecast:
    by_day, known = await load_stays(central, now, tz=tz)
    history = pick_days(by_day, now.astimezone(ZoneInfo(tz)).date(), days)
    return forecast(now, known=known, history=history, hours=hours, tz=tz)


async def store_forecast_rows(central: Any, now: datetime) -> list[dict[str, Any]]:
    return (await store_forecast(central, now)).rows()
