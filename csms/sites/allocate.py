"""Site load balancing, the pure part: share a grid connection's import limit over its EVSEs.

No I/O. :func:`allocate` turns the site's limit, its building load and what each EVSE is doing
into a power cap per EVSE; :func:`order_changes` orders the resulting cap changes so that the
site stays under its limit while they are applied (every decrease before any increase).

The budget (W) is ``import_limit - building_load - margin``; from it, in this order:

1. **Held** EVSEs count at what they hold and are not changed: an offline station keeps running
   on the last cap it accepted (a ChargingStationMaxProfile without ``maxOfflineDuration``, so it
   never lapses while the station is cut off), and a station whose cap is not known counts at
   its rating.
2. **Idle** EVSEs (online, no car) get the arrival allowance ``arrival_w``: a car that plugs in
   starts under that cap before the CSMS hears of it, so the allowance is budgeted in advance.
   When the budget cannot cover the allowances they are scaled down together (to 0 at worst).
3. **Active** EVSEs (a car in a transaction) share what is left by *water-filling*: every car
   gets the same power ``level``, except that no car gets more than its demand; ``level`` is the
   largest value the budget allows. With departure times, a first round water-fills up to each
   car's *required* power (energy still wanted / time left, at most its demand) and a second
   round water-fills the rest up to the demand, so cars that must leave soon are served first.
   With the ``priority`` strategy, classes (higher ``priority`` first) are served in turn: a class
   gets both rounds before the next class gets anything.

Guarantees (checked with hypothesis in ``tests/sites``): the caps of the EVSEs it sets never
sum above the budget left after held EVSEs (so with no held EVSE over the limit, the site is
under its limit); no EVSE gets more than its demand (idle: the arrival allowance); every cap
is >= 0; within a class and a round, an EVSE below its demand has at least every other's share.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Strategy = Literal["fair", "priority"]
EPS = 1e-6


@dataclass(frozen=True, slots=True)
class EvseInput:
    """One EVSE of the site as the balancer sees it (powers in W, import positive)."""

    key: Hashable  # e.g. (station_id, evse_id)
    max_w: float  # what it could draw now: min(station rating, EV maximum), >= 0
    active: bool = False  # a car is in a transaction on it
    online: bool = True
    held_w: float | None = None  # offline: the cap it holds (None: unknown -> rating)
    demand_w: float | None = None  # present demand (tapering / full car); None: max_w
    wanted_wh: float | None = None  # energy still wanted; None: unknown (assume it wants max)
    departure: datetime | None = None
    priority: int = 0  # higher is served first by the priority strategy


@dataclass(frozen=True, slots=True)
class Allocation:
    caps: dict[Hashable, float]  # cap per EVSE it controls (held EVSEs are not in it)
    held: dict[Hashable, float]  # what held (offline) EVSEs count at
    budget_w: float  # import limit - building - margin
    planned_w: float  # sum of caps + held: at most budget_w unless held alone exceed it
    shortfall_w: float = 0.0  # held EVSEs alone exceed the budget by this much (cannot be helped)
    notes: list[str] = field(default_factory=list)


def demand_of(evse: EvseInput, now: datetime | None = None) -> float:
    """The most an active EVSE should get: its present demand, 0 once it wants no more energy."""
    if evse.wanted_wh is not None and evse.wanted_wh <= 0:
        return 0.0
    base = evse.max_w if evse.demand_w is None else min(evse.demand_w, evse.max_w)
    return max(base, 0.0)


def required_of(evse: EvseInput, now: datetime | None) -> float:
    """Power needed to deliver the wanted energy by departure (0 when unknown), at most demand."""
    if now is None or evse.departure is None or evse.wanted_wh is None or evse.wanted_wh <= 0:
        return 0.0
    hours = (evse.departure - now).total_seconds() / 3600.0
    d = demand_of(evse)
    if hours <= 1 / 60:
        return d
    return min(d, evse.wanted_wh / hours)


def water_fill(ceilings: Mapping[Hashable, float], budget: float) -> dict[Hashable, float]:
    """Give every key ``min(ceiling, level)`` with the largest ``level`` whose total fits ``budget``."""
    out = {k: 0.0 for k in ceilings}
    if budget <= EPS or not ceilings:
        return out
    items = sorted(ceilings.items(), key=lambda kv: kv[1])
    left, n = budget, len(items)
    for i, (key, ceiling) in enumerate(items):
        share = left / (n - i)
        if ceiling <= share:
            out[key] = max(ceiling, 0.0)
            left -= max(ceiling, 0.0)
        else:
            for k2, _ in items[i:]:
                out[k2] = share
            return out
    return out


def allocate(
    evses: Sequence[EvseInput],
    *,
    import_limit_w: float,
    building_w: float = 0.0,
    margin_w: float = 0.0,
    arrival_w: float = 0.0,
    strategy: Strategy = "fair",
    now: datetime | None = None,
) -> Allocation:
    """Per-EVSE caps for one site (see the module docstring)."""
    if strategy not in ("fair", "priority"):
        raise ValueError(f"unknown strategy {strategy!r} (fair or priority)")
    budget = import_limit_w - max(building_w, 0.0) - margin_w
    notes: list[str] = []
    held = {e.key: (e.max_w if e.held_w is None else max(e.held_w, 0.0)) for e in evses if not e.online}
    left = budget - sum(held.values())
    shortfall = max(-left, 0.0)
    if shortfall > EPS:
        notes.append(f"offline stations hold {sum(held.values()):.0f} W, over the budget by {shortfall:.0f} W")
    left = max(left, 0.0)
    caps: dict[Hashable, float] = {}
    idle = [e for e in evses if e.online and not e.active]
    want_idle = {e.key: min(arrival_w, e.max_w) for e in idle}
    total_idle = sum(want_idle.values())
    scale = 1.0 if total_idle <= left or total_idle <= EPS else left / total_idle
    if scale < 1.0:
        notes.append(f"arrival allowance scaled to {scale:.0%}")
    for key, w in want_idle.items():
        caps[key] = w * scale
    left = max(left - sum(caps.values()), 0.0)
    active = [e for e in evses if e.online and e.active]
    classes: list[list[EvseInput]]
    if strategy == "priority":
        levels = sorted({e.priority for e in active}, reverse=True)
        classes = [[e for e in active if e.priority == p] for p in levels]
    else:
        classes = [active]
    for group in classes:
        demand = {e.key: demand_of(e, now) for e in group}
        required = {e.key: min(required_of(e, now), demand[e.key]) for e in group}
        first = water_fill(required, min(left, sum(required.values())))
        left = max(left - sum(first.values()), 0.0)
        rest = water_fill({k: demand[k] - first[k] for k in demand}, left)
        for k in demand:
            caps[k] = first[k] + rest[k]
        left = max(left - sum(rest.values()), 0.0)
    planned = sum(caps.values()) + sum(held.values())
    return Allocation(caps=caps, held=held, budget_w=budget, planned_w=planned, shortfall_w=shortfall, notes=notes)


def floor_to(value: float, step: float) -> float:
    """Round a cap down to the station's granularity (never up: the sum must stay under)."""
    if step <= 0:
        return value
    return max(0.0, (value // step) * step)


@dataclass(frozen=True, slots=True)
class Change:
    key: Hashable
    old_w: float | None  # None: no cap known (the station may run at its rating)
    new_w: float


def order_changes(
    current: Mapping[Hashable, float | None],
    target: Mapping[Hashable, float],
    *,
    tolerance_w: float = 0.0,
    ratings: Mapping[Hashable, float] | None = None,
) -> tuple[list[Change], list[Change]]:
    """Split the changes from ``current`` caps to ``target`` caps into (decreases, increases).

    Apply every decrease and wait for it to be accepted before sending any increase: while the
    decreases are in flight each cap is at most ``max(old, new)`` of the decreasing ones plus the
    old ones of the rest, which is at most the old total; once they are in, every cap is
    ``min(old, new)`` and each increase applied one by one keeps the total at most ``sum(target)``.
    An unknown current cap counts as the EVSE's rating (``ratings``, else infinite): setting a
    cap on it is a decrease. Increases up to ``tolerance_w`` are left out (that is always safe);
    decreases up to ``tolerance_w`` only while their sum fits in what the skipped increases left
    unused, so the total after applying the rest is still at most ``sum(target)``. Decreases come
    largest first (they free the most), increases smallest first.
    """
    decreases: list[Change] = []
    increases: list[Change] = []
    small_down: list[Change] = []
    slack = 0.0  # what skipped small increases leave unused: small decreases may be skipped within it
    for key, new in target.items():
        old = current.get(key)
        old_eff = old if old is not None else (ratings or {}).get(key, float("inf"))
        if new < old_eff:
            change = Change(key, old, new)
            if old is not None and old - new <= tolerance_w:
                small_down.append(change)
            else:
                decreases.append(change)
        elif new > old_eff:
            if old is not None and new - old <= tolerance_w:
                slack += new - old
            else:
                increases.append(Change(key, old, new))
    for change in sorted(small_down, key=lambda c: (c.old_w or 0.0) - c.new_w):
        excess = (change.old_w or 0.0) - change.new_w
        if excess <= slack:
            slack -= excess
        else:
            decreases.append(change)
    decreases.sort(key=lambda c: -((c.old_w if c.old_w is not None else float("inf")) - c.new_w))
    increases.sort(key=lambda c: c.new_w - (c.old_w or 0.0))
    return decreases, increases


def station_caps(caps: Mapping[Hashable, float], keys: Iterable[tuple[str, int]]) -> dict[str, float]:
    """Sum per-EVSE caps keyed ``(station_id, evse_id)`` into per-station caps."""
    out: dict[str, float] = {}
    for key in keys:
        out[key[0]] = out.get(key[0], 0.0) + caps.get(key, 0.0)
    return out
