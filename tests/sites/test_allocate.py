"""The pure site allocator: plain calls and hypothesis properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.sites.allocate import EvseInput, allocate, order_changes, water_fill

NOW = datetime(2026, 8, 18, 12, tzinfo=UTC)


def car(n: int, max_kw: float = 20.0, **kw: object) -> EvseInput:
    return EvseInput(key=("S", n), max_w=max_kw * 1000, active=True, **kw)  # type: ignore[arg-type]


def test_water_fill_equal_share_and_small_demands_first() -> None:
    out = water_fill({"a": 2000, "b": 20000, "c": 20000}, 30000)
    assert out == {"a": 2000, "b": 14000, "c": 14000}
    assert water_fill({"a": 1000}, 5000) == {"a": 1000}
    assert water_fill({"a": 1000, "b": 1000}, 0) == {"a": 0.0, "b": 0.0}


def test_fair_share_under_the_limit_with_building_load() -> None:
    evses = [car(i) for i in range(10)]
    a = allocate(evses, import_limit_w=100_000, building_w=30_000, margin_w=0)
    assert sum(a.caps.values()) == pytest.approx(70_000)
    assert all(v == pytest.approx(7000) for v in a.caps.values())


def test_everyone_gets_max_when_the_limit_allows() -> None:
    evses = [car(i, 7.0) for i in range(5)]
    a = allocate(evses, import_limit_w=100_000)
    assert all(v == pytest.approx(7000) for v in a.caps.values())


def test_idle_arrival_allowance_is_budgeted_and_scaled() -> None:
    idle = [EvseInput(key=("I", i), max_w=20_000) for i in range(4)]
    a = allocate([car(1), *idle], import_limit_w=30_000, arrival_w=2000)
    assert a.caps[("I", 0)] == 2000 and a.caps[("S", 1)] == 20_000
    tight = allocate([car(1), *idle], import_limit_w=4000, arrival_w=2000)
    assert tight.caps[("I", 0)] == pytest.approx(1000) and tight.caps[("S", 1)] == 0
    assert tight.notes


def test_offline_station_keeps_counting_at_its_held_cap() -> None:
    off = EvseInput(key=("O", 1), max_w=20_000, active=True, online=False, held_w=15_000)
    unknown = EvseInput(key=("U", 1), max_w=22_000, active=True, online=False)
    a = allocate([off, unknown, car(1), car(2)], import_limit_w=70_000)
    assert a.held == {("O", 1): 15_000, ("U", 1): 22_000}
    assert ("O", 1) not in a.caps
    assert a.caps[("S", 1)] == a.caps[("S", 2)] == pytest.approx((70_000 - 37_000) / 2)
    over = allocate([off, car(1)], import_limit_w=10_000)
    assert over.shortfall_w == pytest.approx(5000) and over.caps[("S", 1)] == 0


def test_priority_classes_served_in_turn() -> None:
    evses = [car(1, priority=2), car(2, priority=2), car(3), car(4)]
    a = allocate(evses, import_limit_w=50_000, strategy="priority")
    assert a.caps[("S", 1)] == a.caps[("S", 2)] == 20_000
    assert a.caps[("S", 3)] == a.caps[("S", 4)] == 5000
    fair = allocate(evses, import_limit_w=50_000, strategy="fair")
    assert set(fair.caps.values()) == {12_500}
    with pytest.raises(ValueError, match="strategy"):
        allocate(evses, import_limit_w=1, strategy="loudest")  # type: ignore[arg-type]


def test_departing_car_gets_its_required_power_first() -> None:
    soon = car(1, departure=NOW + timedelta(hours=1), wanted_wh=12_000)
    late = [car(i, departure=NOW + timedelta(hours=8), wanted_wh=10_000) for i in range(2, 5)]
    a = allocate([soon, *late], import_limit_w=24_000, now=NOW)
    assert a.caps[("S", 1)] >= 12_000 - 1e-6
    assert sum(a.caps.values()) == pytest.approx(24_000)


def test_full_car_and_present_demand() -> None:
    full = car(1, wanted_wh=0.0)
    tapering = car(2, demand_w=3000)
    a = allocate([full, tapering, car(3)], import_limit_w=40_000)
    assert a.caps[("S", 1)] == 0 and a.caps[("S", 2)] == 3000 and a.caps[("S", 3)] == 20_000


def test_order_changes_decrease_first() -> None:
    dec, inc = order_changes({"a": 10_000, "b": 2000, "c": None}, {"a": 5000, "b": 7000, "c": 3000})
    assert [c.key for c in dec] == ["c", "a"] and [c.key for c in inc] == ["b"]
    dec, inc = order_changes({"a": 10_000, "b": 2000}, {"a": 9950, "b": 2080}, tolerance_w=100)
    assert dec == [] and inc == []  # within tolerance and the skipped increase covers the decrease
    dec, inc = order_changes({"a": 10_000, "b": 2000}, {"a": 9950, "b": 2000}, tolerance_w=100)
    assert [c.key for c in dec] == ["a"]


# ------------------------------------------------------------------------------------------ hypothesis
evse_st = st.builds(
    lambda i, mx, active, online, held, demand, wanted, prio: EvseInput(
        key=i, max_w=mx, active=active, online=online, held_w=held, demand_w=demand, wanted_wh=wanted, priority=prio
    ),
    st.integers(),
    st.floats(0, 50_000),
    st.booleans(),
    st.booleans(),
    st.one_of(st.none(), st.floats(0, 50_000)),
    st.one_of(st.none(), st.floats(0, 50_000)),
    st.one_of(st.none(), st.floats(-1000, 80_000)),
    st.integers(0, 3),
)
sites_st = st.lists(evse_st, max_size=25, unique_by=lambda e: e.key)


@settings(max_examples=300, deadline=None)
@given(
    sites_st,
    st.floats(0, 200_000),
    st.floats(-20_000, 80_000),
    st.floats(0, 5000),
    st.sampled_from(["fair", "priority"]),
)
def test_properties(evses: list[EvseInput], limit: float, building: float, arrival: float, strategy: str) -> None:
    a = allocate(evses, import_limit_w=limit, building_w=building, arrival_w=arrival, strategy=strategy)  # type: ignore[arg-type]
    by_key = {e.key: e for e in evses}
    room = max(limit - max(building, 0.0) - sum(a.held.values()), 0.0)
    assert sum(a.caps.values()) <= room + 1e-3  # never above what the limit leaves
    if a.shortfall_w == 0:
        assert a.planned_w <= a.budget_w + 1e-3
    for key, cap in a.caps.items():
        e = by_key[key]
        assert cap >= 0
        ceiling = min(arrival, e.max_w) if not e.active else e.max_w
        assert cap <= ceiling + 1e-6  # nobody above its own maximum
    # water-filling: within a class, an active EVSE held below its demand has at least anyone's share
    groups: dict[int, list[EvseInput]] = {}
    for e in evses:
        if e.online and e.active:
            groups.setdefault(e.priority if strategy == "priority" else 0, []).append(e)
    for group in groups.values():
        for e in group:
            d = e.max_w if e.demand_w is None else min(e.demand_w, e.max_w)
            d = 0.0 if (e.wanted_wh is not None and e.wanted_wh <= 0) else d
            if a.caps[e.key] < d - 1e-3:
                assert all(a.caps[e.key] >= a.caps[o.key] - 1e-3 for o in group)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.integers(0, 30), st.one_of(st.none(), st.floats(0, 30_000)), max_size=20),
    st.dictionaries(st.integers(0, 30), st.floats(0, 30_000), max_size=20),
    st.floats(0, 500),
)
def test_order_never_exceeds_the_target_total(current: dict, target: dict, tol: float) -> None:
    rating = 30_000.0
    ratings = dict.fromkeys(range(31), rating)
    dec, inc = order_changes(current, target, tolerance_w=tol, ratings=ratings)
    caps = {k: (rating if v is None else v) for k, v in current.items()}
    for k in target:
        caps.setdefault(k, rating)
    old_total = sum(caps.values())
    for c in dec:
        assert c.new_w < caps[c.key]
        caps[c.key] = c.new_w
        assert sum(caps.values()) <= old_total + 1e-6
    untouched = {k: caps[k] for k in caps if k not in target}
    final_total = sum(target.values()) + sum(untouched.values())
    for c in inc:
        assert c.new_w > caps[c.key]
        caps[c.key] = c.new_w
        assert sum(caps.values()) <= final_total + 1e-3  # every increase stays under the target total
