"""Pure payload parsing (no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.store.payloads import parse_meter_values, parse_report_data, pick, profile_fields, scaled_value
from csms.store.types import ensure_utc, parse_ts

T0 = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)


def test_pick_accepts_camel_and_snake_case() -> None:
    assert pick({"sampledValue": 1}, "sampledValue") == 1
    assert pick({"sampled_value": 2}, "sampledValue") == 2
    assert pick(None, "x", 3) == 3


@pytest.mark.parametrize(
    ("value", "multiplier", "expected"),
    [(1.5, 3, 1500.0), ("2", 0, 2.0), (1234, -3, 1.234), (7, None, 7.0), (5, -1, 0.5)],
)
def test_scaled_value(value: object, multiplier: object, expected: float) -> None:
    assert scaled_value(value, multiplier) == expected


@pytest.mark.parametrize("bad", [True, "nan", "inf", None, "x"])
def test_scaled_value_rejects(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        scaled_value(bad, 0)


def test_parse_meter_values_defaults() -> None:
    rows = parse_meter_values(
        "CS", 0, None, [{"timestamp": "2026-06-01T18:00:00+02:00", "sampled_value": [{"value": 1}]}]
    )
    assert rows == [
        {
            "station_id": "CS",
            "evse_id": 0,
            "transaction_id": None,
            "timestamp": T0,
            "measurand": "Energy.Active.Import.Register",
            "phase": None,
            "location": None,
            "context": None,
            "unit": None,
            "value": 1.0,
        }
    ]


def test_parse_ts_and_ensure_utc() -> None:
    assert parse_ts("2026-06-01T16:00:00Z") == T0
    assert parse_ts("2026-06-01T16:00:00.123456") == T0.replace(microsecond=123456)  # naive wire value: UTC
    assert parse_ts(T0) is not None
    with pytest.raises(ValueError):
        ensure_utc(datetime(2026, 1, 1))


def test_report_rows_dedupe_last_wins() -> None:
    entry = {"component": {"name": "C"}, "variable": {"name": "V"}, "variableAttribute": [{"value": "1"}]}
    entry2 = {"component": {"name": "C"}, "variable": {"name": "V"}, "variableAttribute": [{"value": "2"}]}
    rows = parse_report_data("CS", [entry, entry2], T0)
    assert len(rows) == 1 and rows[0]["value"] == "2"


def test_profile_fields() -> None:
    fields = profile_fields({"id": 3, "stackLevel": 1, "chargingProfilePurpose": "TxProfile", "transactionId": "T"})
    assert fields == {"profile_id": 3, "purpose": "TxProfile", "stack_level": 1, "transaction_id": "T"}


@pytest.mark.parametrize(
    "sampled",
    [
        [{"value": 12.5}],
        [{"value": 2, "unitOfMeasure": {"unit": "kWh"}, "measurand": "Energy.Active.Export.Register"}],
        [{"value": 7, "unitOfMeasure": {"unit": "W", "multiplier": 3}, "phase": "L1", "location": "Outlet"}],
        [{"value": 1234, "unitOfMeasure": {"multiplier": -1}, "context": "Sample.Clock"}],
        [{"value": 61.5, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}, "location": "EV"}],
        [{"value": True}, {"value": 3}],
        [{"value": 1e308, "unitOfMeasure": {"unit": "Wh", "multiplier": 3}}],
    ],
)
def test_wire_fast_path_matches_general_parser(sampled: list) -> None:
    from csms.store.payloads import parse_meter_values, parse_wire_meter_values

    mvs = [{"timestamp": "2026-06-01T16:00:00.123Z", "sampledValue": sampled}]
    assert parse_wire_meter_values("S", 1, "T", mvs) == parse_meter_values("S", 1, "T", mvs)
