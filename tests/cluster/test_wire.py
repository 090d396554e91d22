"""What nodes send each other, without a broker: every typed error survives the trip, station
ids map to KV keys and back, a station's live state is rebuilt exactly, dispatch schedules too."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.central import StationOffline, UnknownStation
from csms.cluster import state as station_state
from csms.cluster import wire
from csms.cluster.leader import CommandLedger, command_json, command_of
from csms.dispatch.executor import Command
from csms.domain.station import BootState, StationState
from csms.ocpp.errors import (
    CallErrorReceived,
    CallTimeout,
    ConnectionLost,
    ErrorCode,
    InvalidPayload,
    NotAllowed,
)
from csms.smartcharging.needs import ChargingNeeds


@pytest.mark.parametrize(
    "error",
    [
        StationOffline("CS-1"),
        UnknownStation("CS-2"),
        CallTimeout("Reset", 2.5),
        CallErrorReceived("Reset", "NotSupported", "no", {"k": 1}),
        InvalidPayload("Reset", ErrorCode.FORMAT_VIOLATION, "bad"),
        NotAllowed("CS-1: Reset not allowed while boot is Pending"),
        ConnectionLost("CS-1: connection closed"),
    ],
)
def test_typed_errors_cross_nodes(error: Exception) -> None:
    with pytest.raises(type(error)) as raised:
        wire.call_outcome(wire.call_failure(error))
    assert str(raised.value) == str(error)
    assert vars(raised.value) == vars(error)


def test_an_unexpected_error_is_an_internal_error_not_a_crash() -> None:
    with pytest.raises(wire.RemoteError, match="ZeroDivisionError"):
        wire.call_outcome(wire.call_failure(ZeroDivisionError("x")))


def test_results_and_station_keys() -> None:
    assert wire.call_outcome(wire.call_result({"status": "Accepted"})) == {"status": "Accepted"}
    for sid in ("CS-1", "cs_2", "FE20.003", "ähm/1 x", "a" * 48):
        key = wire.station_key(sid)
        assert wire.station_of_key(key) == sid
        assert all(c.isalnum() or c in "-_=." for c in key), key


def test_events_keep_their_timestamps() -> None:
    at = datetime(2026, 8, 18, 23, 0, 5, tzinfo=UTC)
    node, kind, sid, data = wire.event_of(wire.event("a", "meter", "CS-1", {"at": at, "evse_id": 1, "soc": 50.0}))
    assert (node, kind, sid, data) == ("a", "meter", "CS-1", {"at": at, "evse_id": 1, "soc": 50.0})


def test_station_state_is_rebuilt_exactly() -> None:
    now = datetime(2026, 8, 18, 23, 0, tzinfo=UTC)
    st = StationState("CS-1", boot=BootState.ACCEPTED, ocpp_version="2.1", connected=True, connected_since=now)
    st.capabilities = {"PeriodsPerSchedule": 24}
    evse = st.evse(1)
    evse.connectors[1] = "Occupied"
    evse.transaction_id, evse.soc, evse.metered_at, evse.power_export_w = "tx-1", 61.5, now, 7000.0
    evse.charging_needs = ChargingNeeds(
        1, "DC_BPT", True, departure_time=now, soc=60, available_energy_transfer=("DC", "DC_BPT")
    )
    mirror = StationState("CS-1")
    station_state.apply(mirror, wire.loads(wire.dumps(station_state.encode(st))))
    assert mirror == st


def test_dispatch_schedules_round_trip_and_the_ledger_tracks_changes() -> None:
    cmd = Command("car-1", "CS-1", 1, datetime(2026, 8, 18, 23, 0, tzinfo=UTC), ((0, -7000.0), (300, -5000.0)), 900)
    assert command_of(wire.loads(wire.dumps(command_json(cmd)))) == cmd
    ledger = CommandLedger({"car-0": cmd})
    assert ledger.dirty == set()
    ledger["car-1"] = cmd
    ledger.pop("car-0")
    assert ledger.dirty == {"car-0", "car-1"} and set(ledger) == {"car-1"}
    ledger.clear()
    assert ledger.cleared and not ledger.dirty
