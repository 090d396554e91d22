"""Fleet/scenario files and the Caltech replay mapping."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from csms.clock import Clock
from simulators import Fleet, FleetConfig, ReplayConfig, load_fleet
from simulators.cars import CARS
from simulators.config import parse_duration
from simulators.sessions import LOCAL_TZ, acn_path, build_replay, car_for, initial_soc, load_acn

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
ACN = acn_path("2019-05-01_2019-08-31.csv.gz")


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("+90m") == 5400
    assert parse_duration("45s") == 45
    assert parse_duration("12") == 12
    assert parse_duration(7.5) == 7.5
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_demo_files_load_and_expand() -> None:
    cfg = load_fleet(CONFIGS / "fleet-demo.toml", CONFIGS / "scenario-evening.toml")
    stations = cfg.all_stations()
    ids = [s.id for s in stations]
    assert "FE20-001" in ids and "FE15-004" in ids and "FE20-DUAL" in ids
    fe15 = next(s for s in stations if s.id == "FE15-001")
    assert fe15.ocpp == ["2.0.1"] and fe15.v2x_vendor_convention
    assert fe15.tx_updated_interval_s == 60  # from [defaults]
    dual = next(s for s in stations if s.id == "FE20-DUAL")
    assert [x.evse for x in dual.sessions] == [1, 2]
    assert cfg.scenario.clock.speed == 300
    assert cfg.scenario.duration_s == 5.5 * 3600
    assert len(cfg.scenario.faults) == 3
    fleet = Fleet(cfg)
    epoch = fleet.clock.epoch
    plan = fleet["FE20-002"].evses[1].plans[0]
    assert plan.plug_in_t == (epoch + timedelta(minutes=10)).timestamp()
    assert all(16 <= len(s.basic_auth_password) <= 40 for s in stations)


def test_other_config_files_load() -> None:
    scale = load_fleet(CONFIGS / "fleet-scale.toml")
    assert len(scale.all_stations()) == 2000
    caltech = load_fleet(CONFIGS / "fleet-caltech.toml", CONFIGS / "scenario-caltech.toml")
    assert caltech.scenario.replay is not None and len(caltech.all_stations()) == 15


def test_config_errors_are_reported() -> None:
    with pytest.raises(ValidationError):
        FleetConfig.model_validate({"stations": [{"id": "a:b"}]})
    with pytest.raises(ValidationError):
        FleetConfig.model_validate({"stations": [{"id": "A", "password": "short"}]})
    with pytest.raises(ValidationError):
        FleetConfig.model_validate({"stations": [{"id": "A", "ocpp": ["1.6"]}]})
    with pytest.raises(ValidationError):
        FleetConfig.model_validate({"stations": [{"id": "A", "sessions": [
            {"evse": 2, "plug_in": "0", "departure": "1h"}]}]})  # fmt: skip
    with pytest.raises(ValueError, match="duplicate"):
        FleetConfig.model_validate({"stations": [{"id": "A"}, {"id": "A"}]}).all_stations()


def test_car_assignment_is_deterministic_and_spread() -> None:
    assert car_for("abc") == car_for("abc")
    names = [car_for(f"s{i}") for i in range(2000)]
    share = {n: names.count(n) / len(names) for n in set(names)}
    assert set(share) == {"nissan-leaf-40", "nissan-leaf-62", "mitsubishi-outlander-phev", "ford-f150-lightning",
                          "kia-ev9"}  # fmt: skip
    assert 0.30 < share["nissan-leaf-40"] < 0.40
    assert 0.06 < share["kia-ev9"] < 0.14
    assert car_for("abc", seed="other") in CARS


def test_initial_soc_rule() -> None:
    assert initial_soc(19.5, 39.0, 80.0, 10.0) == pytest.approx(30.0)
    assert initial_soc(100.0, 39.0, 80.0, 10.0) == 10.0  # clamped low
    assert initial_soc(0.0, 39.0, 80.0, 10.0) == 80.0
    assert initial_soc(-5.0, 39.0, 80.0, 10.0) == 80.0  # clamped high


@pytest.mark.skipif(not ACN.exists(), reason="ACN data not available")
def test_replay_maps_a_weekday_onto_the_fleet() -> None:
    epoch = datetime(2026, 8, 18, 16, 0, tzinfo=LOCAL_TZ).astimezone(UTC)
    slots = [(f"ACN-{i:02d}", e) for i in range(1, 16) for e in (1, 2)]
    cfg = ReplayConfig(file=str(ACN), date="2019-07-16")
    res = build_replay(cfg, epoch, slots)
    again = build_replay(cfg, epoch, slots)
    assert [(a.station_id, a.evse_id, a.plan.car, a.plan.initial_soc) for a in res.assignments] == [
        (a.station_id, a.evse_id, a.plan.car, a.plan.initial_soc) for a in again.assignments
    ]
    connected_at_16 = [a for a in res.assignments if a.plan.plug_in_t == epoch.timestamp()]
    assert 20 <= len(connected_at_16) <= 30
    for a in res.assignments:
        p = a.plan
        assert p.departure_t > p.plug_in_t >= epoch.timestamp()
        assert p.plan_departure_t > p.plug_in_t
        assert cfg.min_initial_soc <= p.initial_soc <= cfg.target_soc
        assert p.car == car_for(a.source.session_id)
        # the shifted arrival keeps the local time of day
        if a.source.arrival >= datetime(2019, 7, 16, 23, 0, tzinfo=UTC):
            local = datetime.fromtimestamp(p.plug_in_t, LOCAL_TZ)
            assert local.time() == a.source.arrival.astimezone(LOCAL_TZ).time()
    # no EVSE holds two cars at once
    by_slot: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for a in res.assignments:
        by_slot.setdefault((a.station_id, a.evse_id), []).append((a.plan.plug_in_t, a.plan.departure_t))
    for visits in by_slot.values():
        visits.sort()
        assert all(b[0] >= a[1] for a, b in itertools.pairwise(visits))


@pytest.mark.skipif(not ACN.exists(), reason="ACN data not available")
def test_replay_with_few_slots_skips_and_counts() -> None:
    epoch = datetime(2026, 8, 18, 16, 0, tzinfo=LOCAL_TZ).astimezone(UTC)
    res = build_replay(ReplayConfig(file=str(ACN), date="2019-07-16"), epoch, [("ONE", 1), ("ONE", 2)])
    assert len(res.assignments) >= 2 and res.skipped
    assert len(load_acn(str(ACN))) > 3000


@pytest.mark.skipif(not ACN.exists(), reason="ACN data not available")
def test_fleet_loads_caltech_scenario() -> None:
    cfg = load_fleet(CONFIGS / "fleet-caltech.toml", CONFIGS / "scenario-caltech.toml")
    sc = cfg.scenario.clock
    fleet = Fleet(cfg, Clock(sc.epoch, sc.speed))
    assert fleet.replay is not None
    planned = sum(len(e.plans) for st in fleet for e in st.evses.values())
    assert planned == len(fleet.replay.assignments) > 20
