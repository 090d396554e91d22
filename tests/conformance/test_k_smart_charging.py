"""K - Smart charging: the OCA test cases TC_K_*_CSMS on OCPP 2.0.1 and 2.1, plus negative cases.

The operator installs, replaces, clears and reads charging profiles through the HTTP API (and
GetChargingProfiles through the CSMS's ChargingControl, which has no HTTP command of its own);
the OCTT-style station answers and reports (ReportChargingProfiles, NotifyChargingLimit,
ClearedChargingLimit, NotifyEVChargingNeeds). Each test asserts the request the CSMS sent, its
answers, and the profiles / limits it records."""

from __future__ import annotations

import asyncio
from typing import Any

from .conftest import Rig
from .octt import SESSION, Octt, api_get, command, connect, new_tx_id, now, shared_rig

pytestmark = SESSION
rig = shared_rig()

ACCEPT = {"status": "Accepted"}
_background: set[asyncio.Task[None]] = set()


def _profile(
    pid: int,
    purpose: str,
    stack: int = 0,
    limit: float = 11000.0,
    *,
    kind: str = "Absolute",
    schedule: dict[str, Any] | None = None,
    period: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    sched: dict[str, Any] = {
        "id": pid,
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit, **(period or {})}],
        **(schedule or {}),
    }
    return {
        "id": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [sched],
        **extra,
    }


async def _set(rig: Rig, st: Octt, evse_id: int, profile: dict[str, Any], status: int = 200) -> Any:
    return await command(rig, st, "SetChargingProfile", {"evse_id": evse_id, "charging_profile": profile}, status)


async def _profiles(rig: Rig, st: Octt) -> list[dict[str, Any]]:
    return await api_get(rig, f"/api/v1/stations/{st.station_id}/profiles")  # type: ignore[no-any-return]


async def _station(rig: Rig, **answers: Any) -> Octt:
    return await connect(rig, {"SetChargingProfile": ACCEPT, "ClearChargingProfile": ACCEPT, **answers})


# ------------------------------------------------------------------------------ K01 set
async def test_TC_K_01_CSMS_set_txdefaultprofile_specific_evse(rig: Rig) -> None:
    st = await _station(rig)
    profile = _profile(101, "TxDefaultProfile")
    assert (await _set(rig, st, 1, profile))["status"] == "Accepted"
    assert st.got("SetChargingProfile") == [{"evseId": 1, "chargingProfile": profile}]
    (row,) = await _profiles(rig, st)
    assert (row["profile_id"], row["evse_id"], row["purpose"], row["source"]) == (
        101,
        1,
        "TxDefaultProfile",
        "operator",
    )
    await st.close()


async def test_TC_K_02_CSMS_set_txprofile_without_ongoing_transaction(rig: Rig) -> None:
    rejected = {"status": "Rejected", "statusInfo": {"reasonCode": "TxNotFound"}}
    st = await _station(rig, SetChargingProfile=rejected)
    out = await _set(rig, st, 1, _profile(102, "TxProfile", transactionId="NO-SUCH-TX"))
    assert out["status"] == "Rejected" and out["response"]["statusInfo"]["reasonCode"] == "TxNotFound"
    assert await _profiles(rig, st) == []  # nothing recorded for a rejected profile
    await st.close()


async def test_TC_K_03_CSMS_set_chargingstationmaxprofile(rig: Rig) -> None:
    st = await _station(rig)
    assert (await _set(rig, st, 0, _profile(103, "ChargingStationMaxProfile", limit=22000)))["status"] == "Accepted"
    (row,) = await _profiles(rig, st)
    assert row["evse_id"] == 0 and row["purpose"] == "ChargingStationMaxProfile"
    await st.close()


async def test_TC_K_04_CSMS_replace_charging_profile_with_id(rig: Rig) -> None:
    st = await _station(rig)
    await _set(rig, st, 1, _profile(104, "TxDefaultProfile", limit=11000))
    await _set(rig, st, 1, _profile(104, "TxDefaultProfile", limit=7000))
    (row,) = await _profiles(rig, st)  # the same id replaces, it does not add
    assert row["profile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == 7000
    await st.close()


async def test_TC_K_05_CSMS_clear_charging_profile_with_id(rig: Rig) -> None:
    st = await _station(rig)
    await _set(rig, st, 1, _profile(105, "TxDefaultProfile"))
    out = await command(rig, st, "ClearChargingProfile", {"charging_profile_id": 105})
    assert out["status"] == "Accepted" and st.got("ClearChargingProfile") == [{"chargingProfileId": 105}]
    assert await _profiles(rig, st) == []
    await st.close()


async def test_TC_K_06_CSMS_clear_charging_profile_stacklevel_purpose(rig: Rig) -> None:
    st = await _station(rig)
    await _set(rig, st, 1, _profile(106, "TxDefaultProfile", stack=2))
    await _set(rig, st, 1, _profile(107, "TxDefaultProfile", stack=3))
    body = {"evse_id": 1, "purpose": "TxDefaultProfile", "stack_level": 2}
    assert (await command(rig, st, "ClearChargingProfile", body))["status"] == "Accepted"
    assert st.got("ClearChargingProfile") == [
        {"chargingProfileCriteria": {"evseId": 1, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 2}}
    ]
    assert [p["profile_id"] for p in await _profiles(rig, st)] == [107]
    await st.close()


async def test_TC_K_08_CSMS_clear_charging_profile_without_previous_profile(rig: Rig) -> None:
    st = await _station(rig, ClearChargingProfile={"status": "Unknown"})
    out = await command(rig, st, "ClearChargingProfile", {"charging_profile_id": 999})
    assert out["status"] == "Unknown"
    await st.close()


async def test_TC_K_10_CSMS_set_txdefaultprofile_all_evse(rig: Rig) -> None:
    st = await _station(rig)
    assert (await _set(rig, st, 0, _profile(110, "TxDefaultProfile")))["status"] == "Accepted"
    assert st.got("SetChargingProfile")[0]["evseId"] == 0
    assert [(p["evse_id"], p["purpose"]) for p in await _profiles(rig, st)] == [(0, "TxDefaultProfile")]
    await st.close()


async def test_TC_K_15_CSMS_set_charging_profile_not_supported(rig: Rig) -> None:
    st = await connect(rig)  # no SetChargingProfile handler: the station answers CALLERROR NotSupported
    r = await rig.post(
        f"/api/v1/stations/{st.station_id}/commands/SetChargingProfile",
        {"evse_id": 1, "charging_profile": _profile(115, "TxDefaultProfile")},
    )
    assert r.status_code == 502 and r.json()["error"]["details"]["ocpp_code"] == "NotSupported"
    assert await _profiles(rig, st) == []
    await st.close()


async def test_TC_K_19_CSMS_set_charging_profile_recurring(rig: Rig) -> None:
    st = await _station(rig)
    profile = _profile(
        119,
        "TxDefaultProfile",
        kind="Recurring",
        recurrencyKind="Daily",
        schedule={"startSchedule": now(), "duration": 86400},
    )
    assert (await _set(rig, st, 1, profile))["status"] == "Accepted"
    sent = st.got("SetChargingProfile")[0]["chargingProfile"]
    assert sent["chargingProfileKind"] == "Recurring" and sent["recurrencyKind"] == "Daily"
    (row,) = await _profiles(rig, st)
    assert row["profile"]["recurrencyKind"] == "Daily"
    await st.close()


async def test_TC_K_60_CSMS_set_txprofile_with_ongoing_transaction(rig: Rig) -> None:
    st = await _station(rig)
    tx_id = new_tx_id()
    await st.tx("Started", "CablePluggedIn", tx_id, charging_state="Charging")
    assert (await _set(rig, st, 1, _profile(160, "TxProfile", transactionId=tx_id)))["status"] == "Accepted"
    (row,) = await _profiles(rig, st)
    assert row["purpose"] == "TxProfile" and row["transaction_id"] == tx_id
    await st.close()


async def test_TC_K_70_CSMS_set_multiple_profiles(rig: Rig) -> None:
    st = await _station(rig)
    start = {"startSchedule": now(-60)}
    await _set(rig, st, 0, _profile(170, "ChargingStationMaxProfile", limit=22000, schedule=start))
    await _set(rig, st, 1, _profile(171, "TxDefaultProfile", stack=0, limit=11000, schedule=start))
    await _set(rig, st, 1, _profile(172, "TxDefaultProfile", stack=1, limit=7000, schedule=start))
    rows = await _profiles(rig, st)
    assert sorted(p["profile_id"] for p in rows) == [170, 171, 172]
    predicted = await api_get(rig, f"/api/v1/stations/{st.station_id}/composite-schedule", evse_id=1, duration=3600)
    assert predicted["periods"][0]["limit"] == 7000  # the higher stack level wins, within the station maximum
    await st.close()


# ------------------------------------------------------------------------------ K09 GetChargingProfiles
def _reporting(st: Octt, profiles: list[tuple[int, dict[str, Any]]], source: str = "CSO") -> Any:
    """GetChargingProfiles answer: Accepted, then one ReportChargingProfiles per EVSE."""

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        if not profiles:
            return {"status": "NoProfiles"}

        async def report() -> None:
            by_evse: dict[int, list[dict[str, Any]]] = {}
            for evse_id, p in profiles:
                by_evse.setdefault(evse_id, []).append(p)
            items = list(by_evse.items())
            for i, (evse_id, ps) in enumerate(items):
                payload = {
                    "requestId": request["requestId"],
                    "chargingLimitSource": source,
                    "evseId": evse_id,
                    "chargingProfile": ps,
                    "tbc": i < len(items) - 1,
                }
                await st.call("ReportChargingProfiles", payload)

        task = asyncio.get_running_loop().create_task(report())
        _background.add(task)
        task.add_done_callback(_background.discard)
        return ACCEPT

    return answer


async def _get_profiles(
    rig: Rig, st: Octt, profiles: list[tuple[int, dict[str, Any]]], criteria: dict[str, Any], evse_id: int | None
) -> tuple[dict[str, Any], list[Any]]:
    st.answers["GetChargingProfiles"] = _reporting(st, profiles)
    got = await rig.central.charging.get_profiles(st.station_id, criteria, evse_id=evse_id, timeout=5)
    return st.got("GetChargingProfiles")[-1], got


async def test_TC_K_29_CSMS_get_charging_profile_evse_0(rig: Rig) -> None:
    st = await connect(rig)
    request, got = await _get_profiles(rig, st, [(0, _profile(129, "ChargingStationMaxProfile"))], {}, 0)
    assert request["evseId"] == 0 and request["chargingProfile"] == {}
    assert [(p.evse_id, p.profile.id) for p in got] == [(0, 129)]
    await st.close()


async def test_TC_K_30_CSMS_get_charging_profile_evse_above_0(rig: Rig) -> None:
    st = await connect(rig)
    request, got = await _get_profiles(rig, st, [(1, _profile(130, "TxDefaultProfile"))], {}, 1)
    assert request["evseId"] == 1
    assert [(p.evse_id, p.profile.id) for p in got] == [(1, 130)]
    await st.close()


async def test_TC_K_31_CSMS_get_charging_profile_no_evse_id(rig: Rig) -> None:
    st = await connect(rig)
    reported = [(0, _profile(131, "ChargingStationMaxProfile")), (1, _profile(132, "TxDefaultProfile"))]
    request, got = await _get_profiles(rig, st, reported, {}, None)
    assert "evseId" not in request
    assert sorted((p.evse_id, p.profile.id) for p in got) == [(0, 131), (1, 132)]  # both report parts joined
    await st.close()


async def test_TC_K_32_CSMS_get_charging_profile_by_id(rig: Rig) -> None:
    st = await connect(rig)
    request, got = await _get_profiles(
        rig, st, [(1, _profile(133, "TxDefaultProfile"))], {"chargingProfileId": [133]}, None
    )
    assert request["chargingProfile"] == {"chargingProfileId": [133]}
    assert [p.profile.id for p in got] == [133]
    await st.close()


async def test_TC_K_33_CSMS_get_charging_profile_evse_and_stack_level(rig: Rig) -> None:
    st = await connect(rig)
    request, got = await _get_profiles(rig, st, [(1, _profile(134, "TxDefaultProfile", stack=2))], {"stackLevel": 2}, 1)
    assert request["evseId"] == 1 and request["chargingProfile"] == {"stackLevel": 2}
    assert [p.profile.stack_level for p in got] == [2]
    await st.close()


async def test_TC_K_34_CSMS_get_charging_profile_evse_and_charging_limit_source(rig: Rig) -> None:
    st = await connect(rig)
    criteria = {"chargingLimitSource": ["EMS"]}
    request, got = await _get_profiles(rig, st, [(1, _profile(135, "ChargingStationExternalConstraints"))], criteria, 1)
    assert request["chargingProfile"] == criteria
    assert [p.profile.id for p in got] == [135]
    await st.close()


async def test_TC_K_35_CSMS_get_charging_profile_evse_and_purpose(rig: Rig) -> None:
    st = await connect(rig)
    criteria = {"chargingProfilePurpose": "TxDefaultProfile"}
    request, got = await _get_profiles(rig, st, [(1, _profile(136, "TxDefaultProfile"))], criteria, 1)
    assert request["chargingProfile"] == criteria and request["evseId"] == 1
    assert [p.profile.purpose for p in got] == ["TxDefaultProfile"]
    await st.close()


async def test_TC_K_36_CSMS_get_charging_profile_evse_purpose_and_stack_level(rig: Rig) -> None:
    st = await connect(rig)
    criteria = {"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 1}
    request, got = await _get_profiles(rig, st, [(1, _profile(137, "TxDefaultProfile", stack=1))], criteria, 1)
    assert request["chargingProfile"] == criteria
    assert [(p.profile.purpose, p.profile.stack_level) for p in got] == [("TxDefaultProfile", 1)]
    _, none = await _get_profiles(rig, st, [], criteria, 1)  # NoProfiles: an empty answer, no waiting
    assert none == []
    await st.close()


# ------------------------------------------------------------------------------ K05 remote start with a profile
async def test_TC_K_37_CSMS_remote_start_with_charging_profile(rig: Rig) -> None:
    st = await connect(rig, {"RequestStartTransaction": ACCEPT})
    profile = _profile(137, "TxProfile", kind="Relative")
    body = {"id_token": "OCTT-K37", "evse_id": 1, "charging_profile": profile}
    assert (await command(rig, st, "RequestStartTransaction", body))["status"] == "Accepted"
    assert st.got("RequestStartTransaction")[0]["chargingProfile"] == profile
    await st.close()


# ------------------------------------------------------------------------------ K08 composite schedule
def _composite(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "Accepted",
        "schedule": {
            "evseId": request["evseId"],
            "duration": request["duration"],
            "scheduleStart": now(),
            "chargingRateUnit": request.get("chargingRateUnit", "W"),
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7000.0}],
        },
    }


async def test_TC_K_43_CSMS_get_composite_schedule_specific_evse(rig: Rig) -> None:
    st = await connect(rig, {"GetCompositeSchedule": _composite})
    body = {"evse_id": 1, "duration": 3600, "charging_rate_unit": "W"}
    out = await command(rig, st, "GetCompositeSchedule", body)
    assert st.got("GetCompositeSchedule") == [{"duration": 3600, "evseId": 1, "chargingRateUnit": "W"}]
    assert out["status"] == "Accepted" and out["response"]["schedule"]["evseId"] == 1
    await st.close()


async def test_TC_K_44_CSMS_get_composite_schedule_charging_station(rig: Rig) -> None:
    st = await connect(rig, {"GetCompositeSchedule": _composite})
    out = await command(rig, st, "GetCompositeSchedule", {"evse_id": 0, "duration": 600})
    assert st.got("GetCompositeSchedule") == [{"duration": 600, "evseId": 0}]
    assert out["response"]["schedule"]["evseId"] == 0
    await st.close()


# ------------------------------------------------------------------------------ K11-K13 external limits
def _limit(source: str = "EMS", evse_id: int | None = 1, limit: float = 5000.0) -> dict[str, Any]:
    p: dict[str, Any] = {
        "chargingLimit": {"chargingLimitSource": source, "isGridCritical": False},
        "chargingSchedule": [
            {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
        ],
    }
    if evse_id is not None:
        p["evseId"] = evse_id
    return p


async def _kinds(rig: Rig, st: Octt, kind: str) -> list[dict[str, Any]]:
    page = await api_get(rig, f"/api/v1/stations/{st.station_id}/events", kind=kind)
    return [e["payload"] for e in page["items"]]


async def test_TC_K_48_CSMS_ems_set_external_charging_limit_not_on_transaction(rig: Rig) -> None:
    st = await connect(rig)
    assert await st.call("NotifyChargingLimit", _limit()) == {}
    limit = rig.central.state(st.station_id).evse(1).external_limit
    assert limit["source"] == "EMS" and limit["schedules"][0]["chargingSchedulePeriod"][0]["limit"] == 5000.0
    assert len(await _kinds(rig, st, "NotifyChargingLimit")) == 1
    assert await st.call("NotifyChargingLimit", _limit(limit=3000.0)) == {}  # an update replaces it
    limit = rig.central.state(st.station_id).evse(1).external_limit
    assert limit["schedules"][0]["chargingSchedulePeriod"][0]["limit"] == 3000.0
    await st.close()


async def test_TC_K_50_CSMS_ems_release_external_limit_without_transaction(rig: Rig) -> None:
    st = await connect(rig)
    await st.call("NotifyChargingLimit", _limit())
    assert await st.call("ClearedChargingLimit", {"chargingLimitSource": "EMS", "evseId": 1}) == {}
    assert rig.central.state(st.station_id).evse(1).external_limit is None
    assert len(await _kinds(rig, st, "ClearedChargingLimit")) == 1
    await st.close()


async def test_TC_K_51_CSMS_ems_release_external_limit_with_transaction(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await st.tx("Started", "CablePluggedIn", tx_id, charging_state="Charging")
    await st.call("NotifyChargingLimit", _limit())
    await st.tx("Updated", "ChargingRateChanged", tx_id)
    assert await st.call("ClearedChargingLimit", {"chargingLimitSource": "EMS", "evseId": 1}) == {}
    assert await st.tx("Updated", "ChargingRateChanged", tx_id) == {}
    assert rig.central.state(st.station_id).evse(1).external_limit is None
    tx = await api_get(rig, f"/api/v1/stations/{st.station_id}/transactions/{tx_id}")
    assert [e["trigger_reason"] for e in tx["events"]][-2:] == ["ChargingRateChanged", "ChargingRateChanged"]
    await st.close()


async def test_TC_K_52_CSMS_ems_set_external_limit_report(rig: Rig) -> None:
    st = await connect(rig)
    await st.call("NotifyChargingLimit", _limit())
    external = _profile(152, "ChargingStationExternalConstraints", limit=5000.0)
    request, got = await _get_profiles(rig, st, [(1, external)], {"chargingLimitSource": ["EMS"]}, 1)
    assert request["chargingProfile"] == {"chargingLimitSource": ["EMS"]}
    assert [p.profile.purpose for p in got] == ["ChargingStationExternalConstraints"]
    await st.close()


# ------------------------------------------------------------------------------ K15-K17 ISO 15118 needs
async def test_TC_K_53_CSMS_load_leveling_hlc_success(rig: Rig) -> None:
    st = await _station(rig)
    tx_id = new_tx_id()
    await st.tx("Started", "CablePluggedIn", tx_id, charging_state="EVConnected")
    needs = {
        "evseId": 1,
        "chargingNeeds": {
            "requestedEnergyTransfer": "DC",
            "departureTime": now(3600),
            "dcChargingParameters": {"evMaxCurrent": 200, "evMaxVoltage": 500, "energyAmount": 20000},
        },
    }
    answer = await st.call("NotifyEVChargingNeeds", needs)
    assert answer["status"] == ("NoChargingProfile" if rig.version == "2.1" else "Accepted")
    tx = await api_get(rig, f"/api/v1/stations/{st.station_id}/transactions/{tx_id}")
    assert tx["charging_needs"] is not None
    assert (await _set(rig, st, 1, _profile(153, "TxProfile", transactionId=tx_id)))["status"] == "Accepted"
    schedule = {
        "timeBase": now(),
        "evseId": 1,
        "chargingSchedule": {
            "id": 1,
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10000.0}],
        },
    }
    assert (await st.call("NotifyEVChargingSchedule", schedule))["status"] == "Accepted"
    assert len(await _kinds(rig, st, "NotifyEVChargingSchedule")) == 1
    await st.close()


# ------------------------------------------------------------------------------ 2.1 profile fields
async def _v21_profile(rig: Rig, profile: dict[str, Any], evse_id: int = 1) -> Octt:
    st = await _station(rig)
    if rig.version == "2.0.1":  # a 2.1 field: refused with the OCPP field named, nothing sent
        r = await rig.post(
            f"/api/v1/stations/{st.station_id}/commands/SetChargingProfile",
            {"evse_id": evse_id, "charging_profile": profile},
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_payload", r.text
        assert st.got("SetChargingProfile") == []
    else:
        assert (await _set(rig, st, evse_id, profile))["status"] == "Accepted"
        assert st.got("SetChargingProfile") == [{"evseId": evse_id, "chargingProfile": profile}]
    return st


async def test_TC_K_100_CSMS_set_charging_profile_max_offline_duration(rig: Rig) -> None:
    st = await _v21_profile(
        rig, _profile(1100, "TxDefaultProfile", maxOfflineDuration=600, invalidAfterOfflineDuration=True)
    )
    await st.close()


async def test_TC_K_101_CSMS_set_charging_profile_change_operation_mode(rig: Rig) -> None:
    st = await _v21_profile(rig, _profile(1101, "TxDefaultProfile", period={"operationMode": "ChargingOnly"}))
    await st.close()


async def test_TC_K_102_CSMS_set_charging_profile_limit_at_soc(rig: Rig) -> None:
    st = await _v21_profile(
        rig, _profile(1102, "TxDefaultProfile", schedule={"limitAtSoC": {"soc": 80, "limit": 3000}})
    )
    await st.close()


async def test_TC_K_104_CSMS_set_charging_profile_priority_charging(rig: Rig) -> None:
    st = await _v21_profile(rig, _profile(1104, "PriorityCharging", limit=22000))
    await st.close()


async def test_TC_K_106_CSMS_set_charging_profile_randomized_delay(rig: Rig) -> None:
    st = await _v21_profile(rig, _profile(1106, "TxDefaultProfile", schedule={"randomizedDelay": 300}))
    await st.close()


async def test_TC_K_115_CSMS_iso15118_20_dynamic_control_mode_success(rig: Rig) -> None:
    tx_id = new_tx_id()
    profile = _profile(
        1115, "TxProfile", kind="Dynamic", transactionId=tx_id, dynUpdateInterval=60, period={"setpoint": 5000.0}
    )
    st = await _v21_profile(rig, profile)
    await st.close()


# ------------------------------------------------------------------------------ negative cases
async def test_malformed_profiles_are_refused_before_sending(rig: Rig) -> None:
    st = await _station(rig)
    bad_purpose = _profile(1, "SomeProfile")
    no_schedule = {k: v for k, v in _profile(2, "TxDefaultProfile").items() if k != "chargingSchedule"}
    for profile in (bad_purpose, no_schedule):
        r = await rig.post(
            f"/api/v1/stations/{st.station_id}/commands/SetChargingProfile", {"evse_id": 1, "charging_profile": profile}
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_payload", r.text
    assert st.got("SetChargingProfile") == [] and await _profiles(rig, st) == []
    await st.close()


async def test_malformed_limit_notifications_get_callerrors(rig: Rig) -> None:
    from tests.support import raw_exchange

    st = await connect(rig)
    await st.detach()
    no_limit = '[2,"k1","NotifyChargingLimit",{"evseId":1}]'
    assert (await raw_exchange(st.ws, no_limit))[:3] == [4, "k1", "OccurrenceConstraintViolation"]
    bad_needs = '[2,"k2","NotifyEVChargingNeeds",{"evseId":1,"chargingNeeds":{"requestedEnergyTransfer":"Warp"}}]'
    assert (await raw_exchange(st.ws, bad_needs))[:3] == [4, "k2", "PropertyConstraintViolation"]
    # needs for an EVSE without a transaction: answered Rejected, not an error
    needs = '[2,"k3","NotifyEVChargingNeeds",{"evseId":1,"chargingNeeds":{"requestedEnergyTransfer":"DC"}}]'
    reply = await raw_exchange(st.ws, needs)
    assert reply[:2] == [3, "k3"] and reply[2]["status"] == "Rejected"
    assert rig.central.state(st.station_id).evse(1).external_limit is None
    await st.ws.close()


async def test_station_that_never_answers_set_charging_profile(rig: Rig) -> None:
    st = await _station(rig)
    st.answers["SetChargingProfile"] = None
    r = await rig.post(
        f"/api/v1/stations/{st.station_id}/commands/SetChargingProfile",
        {"evse_id": 1, "charging_profile": _profile(3, "TxDefaultProfile")},
        timeout=0.3,
    )
    assert r.status_code == 504 and r.json()["error"]["code"] == "station_timeout"
    assert await _profiles(rig, st) == []  # not recorded without the station's Accepted
    await st.close()
