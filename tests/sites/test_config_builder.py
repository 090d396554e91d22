"""``[[sites]]`` configuration errors and the ChargingStationMaxProfile the balancer sends."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from csms.config import ConfigError, load_settings
from csms.smartcharging.builder import BuilderError, PowerIntent, StationCapabilities, build_set_charging_profile

T0 = datetime(2026, 8, 18, 12, tzinfo=UTC)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "csms.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_sites_config_loads(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        """
[[sites]]
id = "garage"
import_limit_kw = 100
stations = ["A", "B"]
priorities = { A = 2 }
[sites.meter]
mqtt_topic = "site/garage/meter"
""",
    )
    s = load_settings(f)
    assert s.sites[0].import_limit_kw == 100 and s.sites[0].meter.mqtt_topic == "site/garage/meter"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('import_limit_kw = 0\nstations = ["A"]', "sites.0.import_limit_kw: Input should be greater than 0"),
        ("import_limit_kw = 10\nstations = []", "sites.0.stations"),
        ('import_limit_kw = 10\nstations = ["A"]\nstrategy = "loudest"', "sites.0.strategy"),
        ('import_limit_kw = 10\nstations = ["A"]\nlimit = 3', "unknown key 'sites.0.limit'"),
        ('import_limit_kw = 10\nstations = ["A"]\npriorities = { B = 1 }', "sites.0.priorities: 'B' is not"),
        ('import_limit_kw = 10\nstations = ["A"]\n[sites.meter]\nmeasures = "total"', "exactly one of mqtt_topic"),
        ('import_limit_kw = 10\nstations = ["A"]\n[sites.meter]\nstation = "Z"', "sites.0.meter.station: 'Z'"),
    ],
)
def test_bad_sites_config_names_the_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    f = write(tmp_path, f'[[sites]]\nid = "garage"\n{body}\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(f)
    assert str(f) in str(exc.value) and message in str(exc.value)


def test_a_station_on_two_sites_and_duplicate_ids_are_refused(tmp_path: Path) -> None:
    site = 'id = "{}"\nimport_limit_kw = 10\nstations = ["A"]\n'
    f = write(tmp_path, "[[sites]]\n" + site.format("a") + "[[sites]]\n" + site.format("a"))
    with pytest.raises(ConfigError) as exc:
        load_settings(f)
    assert "sites.1.id: site id 'a' is used twice" in str(exc.value)
    assert "sites.1.stations: station 'A' is already on site 'a'" in str(exc.value)


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_station_cap_profile(version: str) -> None:
    caps = StationCapabilities(
        version=version,  # type: ignore[arg-type]
        max_stack_level=8,
        max_periods=24,
        supported_operation_modes=frozenset({"ChargingOnly", "Idle", "CentralSetpoint"}),
    )
    for watts in (0.0, 7400.0):
        intent = PowerIntent(
            evse_id=0, start=T0, periods=[(0, watts)], purpose="ChargingStationMaxProfile", max_offline_duration_s=900
        )
        req = build_set_charging_profile(intent, caps, profile_id=1_000_001, stack_level=5)
        profile = req["chargingProfile"]
        assert req["evseId"] == 0 and profile["chargingProfilePurpose"] == "ChargingStationMaxProfile"
        assert "maxOfflineDuration" not in profile and "transactionId" not in profile  # holds while offline
        period = profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]
        assert period["limit"] == watts
        if version == "2.1":
            assert period["operationMode"] == "ChargingOnly"  # also at 0 W (Idle is not allowed on a cap)
    cap = "ChargingStationMaxProfile"
    for bad in (PowerIntent(evse_id=1, start=T0, periods=[(0, 1000.0)], purpose=cap),
                PowerIntent(evse_id=0, start=T0, periods=[(0, -1000.0)], purpose=cap)):  # fmt: skip
        with pytest.raises(BuilderError, match="charging cap on evseId 0"):
            build_set_charging_profile(bad, caps, profile_id=1_000_001, stack_level=5)
