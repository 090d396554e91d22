"""Station firmware logic driven directly with payload dicts (no sockets, manual clock)."""

from __future__ import annotations

import pytest

from .harness import Rig

SETPOINT = "CentralSetpoint"


def discharge(power: float) -> dict[str, object]:
    return {"startPeriod": 0, "operationMode": SETPOINT, "setpoint": power, "limit": 0.0, "dischargeLimit": power}


NEG_201 = {"vendorId": "org.openv2g.negativeLimit", "mode": "discharge"}


# ---------------------------------------------------------------------------------------- sessions
async def test_session_event_sequence_and_charging_without_profile() -> None:
    rig = Rig("2.1")
    rig.plug(soc=79.0, target_soc=80.0, departure_s=3600)
    tes = rig.events()
    assert [(p["eventType"], p["triggerReason"]) for p in tes[:4]] == [
        ("Started", "CablePluggedIn"),
        ("Updated", "EVDetected"),
        ("Updated", "Authorized"),
        ("Updated", "ChargingStateChanged"),
    ]
    assert [p["seqNo"] for p in tes] == list(range(len(tes)))
    assert tes[3]["transactionInfo"]["chargingState"] == "Charging"
    assert tes[3]["transactionInfo"]["operationMode"] == "ChargingOnly"
    assert tes[2]["idToken"]["type"] == "eMAID"
    needs = rig.events("NotifyEVChargingNeeds")[0]["chargingNeeds"]
    assert needs["requestedEnergyTransfer"] == "DC_BPT"
    assert needs["controlMode"] == "ScheduledControl"
    v2x = needs["v2xChargingParameters"]
    assert v2x["maxChargePower"] == 20_000.0 and v2x["maxDischargePower"] == 14_250.0
    assert v2x["evMinV2XEnergyRequest"] < 0 < v2x["evTargetEnergyRequest"]
    assert "departureTime" in needs
    statuses = [p["connectorStatus"] for p in rig.events("StatusNotification")]
    assert statuses == ["Available", "Occupied"]
    # charges at max until the 80 % target, then SuspendedEV
    rig.run(600, step=5)
    evse = rig.station.evses[1]
    assert evse.soc == pytest.approx(80.0, abs=1e-6)
    assert evse.tx is not None and evse.tx.charging_state == "SuspendedEV"
    # the car leaves: EVConnected, Ended (EVDeparted / EVDisconnected), Available
    rig.run(3600, step=60)
    last = rig.events()[-1]
    assert last["eventType"] == "Ended"
    assert last["triggerReason"] == "EVDeparted"
    assert last["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    assert rig.events("StatusNotification")[-1]["connectorStatus"] == "Available"
    assert evse.ev is None


async def test_meter_registers_match_the_counters() -> None:
    rig = Rig("2.1", tx_updated_interval_s=60)
    rig.plug(soc=40.0, target_soc=80.0, departure_s=7200)
    rig.run(1800, step=7)
    evse = rig.station.evses[1]
    periodic = [p for p in rig.events() if p["triggerReason"] == "MeterValuePeriodic"]
    assert len(periodic) >= 29
    sv = {s["measurand"]: s for s in periodic[-1]["meterValue"][0]["sampledValue"]}
    assert set(sv) >= {"Energy.Active.Import.Register", "Energy.Active.Export.Register", "Power.Active.Import",
                       "Power.Active.Export", "SoC", "Voltage", "Current.Import", "Current.Export"}  # fmt: skip
    assert sv["Power.Active.Import"]["value"] == 20_000.0
    assert sv["Energy.Active.Import.Register"]["unitOfMeasure"]["unit"] == "Wh"
    # the last reading is at most one interval old; the register equals the counter at that instant
    rig.run(60, step=60)
    last = [p for p in rig.events() if p.get("meterValue")][-1]
    reading = {s["measurand"]: s["value"] for s in last["meterValue"][0]["sampledValue"]}
    assert reading["Energy.Active.Import.Register"] == round(evse.import_wh, 2)


async def test_aligned_meter_values_when_idle() -> None:
    rig = Rig("2.0.1", aligned_interval_s=10)
    rig.run(35, step=1)
    mv = rig.events("MeterValues")
    assert len(mv) == 3
    assert all(m["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock" for m in mv)
    stamps = [m["meterValue"][0]["timestamp"] for m in mv]
    assert all(s.endswith(("0.000Z",)) for s in stamps)


async def test_offline_transaction_events_queue_in_seqno_order() -> None:
    rig = Rig("2.1", tx_updated_interval_s=30)
    rig.plug(soc=50.0, departure_s=600)
    rig.go_offline()
    rig.run(900, step=5)  # periodic samples, departure and Ended all while offline
    queued = rig.station.queued("TransactionEvent")
    assert queued and all(p["offline"] is True for p in queued)
    seqs = [p["seqNo"] for p in queued]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert queued[-1]["eventType"] == "Ended"
    assert not rig.station.queued("MeterValues")  # non-transaction messages are not queued
    rig.go_online()
    sent = rig.deliver()
    te = [p for a, p in sent if a == "TransactionEvent"]
    assert [p["seqNo"] for p in te] == seqs
    assert rig.events("StatusNotification")[-1]["connectorStatus"] == "Available"


# ---------------------------------------------------------------------------------------- K01 on the station
@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda r: r["chargingProfile"].update(stackLevel=99), "InvalidStackLevel"),
        (lambda r: r["chargingProfile"].update(transactionId="not-the-tx"), "TxNotFound"),
        (
            lambda r: r["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(startPeriod=5),
            "InvalidSchedule",
        ),
        (lambda r: r["chargingProfile"]["chargingSchedule"][0].pop("startSchedule"), "InvalidSchedule"),
        (lambda r: r.update(evseId=0), "InvalidProfile"),
        (
            lambda r: r["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(
                operationMode="ExternalSetpoint"
            ),
            "UnsupportedMode",
        ),
        (
            lambda r: r["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0].pop("setpoint"),
            "InvalidSetpoint",
        ),
    ],
)
async def test_set_charging_profile_k01_rejections(mutate, code) -> None:  # type: ignore[no-untyped-def]
    rig = Rig("2.1")
    rig.plug(soc=70.0)
    req = rig.profile([discharge(-5000.0)])
    mutate(req)
    resp = await rig.call("SetChargingProfile", req)
    assert resp["status"] == "Rejected"
    assert resp["statusInfo"]["reasonCode"] == code
    assert resp["statusInfo"]["additionalInfo"]
    assert rig.station.profiles == []


async def test_negative_limit_rejected_on_21_and_on_201_without_convention() -> None:
    rig = Rig("2.1")
    rig.plug(soc=70.0)
    resp = await rig.call("SetChargingProfile", rig.profile([{"startPeriod": 0, "limit": -5000.0}]))
    assert resp["status"] == "Rejected" and resp["statusInfo"]["reasonCode"] == "InvalidValue"

    plain = Rig("2.0.1", v2x_vendor_convention=False)
    plain.plug(soc=70.0)
    period = {"startPeriod": 0, "limit": -5000.0, "customData": NEG_201}
    resp = await plain.call("SetChargingProfile", plain.profile([period]))
    assert resp["status"] == "Rejected" and resp["statusInfo"]["reasonCode"] == "InvalidValue"
    assert "customData" not in plain.events("NotifyEVChargingNeeds")[0]["chargingNeeds"]


async def test_201_convention_requires_its_customdata() -> None:
    rig = Rig("2.0.1")
    rig.plug(soc=70.0)
    resp = await rig.call("SetChargingProfile", rig.profile([{"startPeriod": 0, "limit": -5000.0}]))
    assert resp["status"] == "Rejected" and resp["statusInfo"]["reasonCode"] == "InvalidValue"
    period = {"startPeriod": 0, "limit": -5000.0, "customData": NEG_201}
    ok = await rig.call("SetChargingProfile", rig.profile([period]))
    assert ok == {"status": "Accepted"}
    rig.run(10)
    assert rig.station.evses[1].power_w == pytest.approx(-5000.0)
    needs = rig.events("NotifyEVChargingNeeds")[0]["chargingNeeds"]
    assert needs["requestedEnergyTransfer"] == "DC"
    assert needs["customData"]["vendorId"] == "org.openv2g.bpt"
    assert needs["customData"]["evMinSoC"] == 20
    assert isinstance(needs["dcChargingParameters"]["evMaxPower"], int)


async def test_no_bpt_allowed_rejects_discharge_txprofile_and_never_discharges() -> None:
    rig = Rig("2.1")
    rig.allowed = ["DC"]
    rig.plug(soc=70.0, target_soc=70.0)
    resp = await rig.call("SetChargingProfile", rig.profile([discharge(-8000.0)]))
    assert resp["status"] == "Rejected" and resp["statusInfo"]["reasonCode"] == "NoBPTAllowed"
    # a TxDefaultProfile asking for discharge is stored but does not move energy out
    default = rig.profile([discharge(-8000.0)], purpose="TxDefaultProfile", profile_id=2, evse=0)
    assert (await rig.call("SetChargingProfile", default))["status"] == "Accepted"
    rig.run(60)
    assert rig.station.evses[1].export_wh == 0.0
    # NotifyAllowedEnergyTransfer grants BPT: now it discharges
    resp = await rig.call(
        "NotifyAllowedEnergyTransfer", {"transactionId": rig.tx_id(), "allowedEnergyTransfer": ["DC", "DC_BPT"]}
    )
    assert resp["status"] == "Accepted"
    rig.run(30)
    assert rig.station.evses[1].power_w == pytest.approx(-8000.0)


async def test_charge_only_car_is_never_discharged() -> None:
    rig = Rig("2.1")
    rig.plug(car="generic-charge-only", soc=70.0, target_soc=70.0)
    resp = await rig.call("SetChargingProfile", rig.profile([discharge(-8000.0)]))
    assert resp["status"] == "Rejected" and resp["statusInfo"]["reasonCode"] == "NoBPTAllowed"
    assert rig.events("NotifyEVChargingNeeds")[0]["chargingNeeds"]["requestedEnergyTransfer"] == "DC"


# ---------------------------------------------------------------------------------------- power follows the schedule
async def test_discharge_follows_setpoint_within_the_ramp() -> None:
    rig = Rig("2.1", ramp_kw_per_s=2.0)
    rig.plug(soc=80.0, target_soc=80.0)
    evse = rig.station.evses[1]
    assert evse.power_w == 0.0
    resp = await rig.call("SetChargingProfile", rig.profile([discharge(-10_000.0)]))
    assert resp == {"status": "Accepted"}
    rig.run(1)
    assert evse.power_w == pytest.approx(-2000.0)
    rig.run(2)
    assert evse.power_w == pytest.approx(-6000.0)
    rig.run(10)
    assert evse.power_w == pytest.approx(-10_000.0)
    tes = rig.events()
    assert tes[-1]["transactionInfo"]["operationMode"] == SETPOINT or any(
        p["triggerReason"] == "OperationModeChanged" for p in tes
    )
    # exported energy = ramp triangle (2.5 s-equivalent) + flat part
    assert evse.export_wh == pytest.approx((10_000 * 5 / 2 + 10_000 * 8) / 3600.0, rel=1e-9)
    # a new setpoint within limits is followed with the same ramp
    await rig.call("SetChargingProfile", rig.profile([discharge(-4_000.0)]))
    rig.run(2)
    assert evse.power_w == pytest.approx(-6000.0)
    rig.run(5)
    assert evse.power_w == pytest.approx(-4000.0)


async def test_setpoint_is_capped_by_charger_and_car() -> None:
    rig = Rig("2.1", discharge_kw=15.0)
    rig.plug(car="mitsubishi-outlander-phev", soc=80.0, target_soc=80.0)
    await rig.call("SetChargingProfile", rig.profile([discharge(-15_000.0)]))
    rig.run(20)
    assert rig.station.evses[1].power_w == pytest.approx(-6000.0 * 0.95)


async def test_soc_never_below_floor_and_suspended_ev() -> None:
    rig = Rig("2.1")
    rig.plug(car="nissan-leaf-40", soc=24.0, target_soc=24.0)
    await rig.call("SetChargingProfile", rig.profile([discharge(-14_000.0)]))
    rig.run(3600, step=30)
    evse = rig.station.evses[1]
    assert evse.soc == pytest.approx(20.0, abs=1e-9)
    assert evse.power_w == 0.0
    assert evse.tx is not None and evse.tx.charging_state == "SuspendedEV"
    floor_loss = 0.04 * 39_000
    assert evse.export_wh == pytest.approx(floor_loss * 0.95 * 0.95)


async def test_idle_and_charging_only_modes() -> None:
    rig = Rig("2.1")
    rig.plug(soc=50.0, target_soc=80.0)
    evse = rig.station.evses[1]
    await rig.call("SetChargingProfile", rig.profile([{"startPeriod": 0, "operationMode": "Idle"}]))
    rig.run(20)
    assert evse.power_w == 0.0 and evse.tx is not None and evse.tx.charging_state == "SuspendedEVSE"
    await rig.call("SetChargingProfile", rig.profile([{"startPeriod": 0, "operationMode": "ChargingOnly",
                                                       "limit": 7000.0}]))  # fmt: skip
    rig.run(20)
    assert evse.power_w == pytest.approx(7000.0)
    assert evse.tx.charging_state == "Charging"


async def test_schedule_periods_switch_at_their_start() -> None:
    rig = Rig("2.1")
    rig.plug(soc=80.0, target_soc=80.0)
    periods = [discharge(-5000.0), {**discharge(-9000.0), "startPeriod": 600}]
    await rig.call("SetChargingProfile", rig.profile(periods))
    rig.run(590, step=10)
    assert rig.station.evses[1].power_w == pytest.approx(-5000.0)
    rig.run(20, step=10)
    assert rig.station.evses[1].power_w == pytest.approx(-9000.0)


async def test_max_offline_duration_stops_discharging() -> None:
    rig = Rig("2.1")
    rig.plug(soc=80.0, target_soc=80.0)
    req = rig.profile([discharge(-8000.0)], maxOfflineDuration=300, invalidAfterOfflineDuration=True)
    assert (await rig.call("SetChargingProfile", req))["status"] == "Accepted"
    rig.run(30)
    evse = rig.station.evses[1]
    assert evse.power_w == pytest.approx(-8000.0)
    rig.go_offline()
    rig.run(290, step=10)
    assert evse.power_w == pytest.approx(-8000.0)
    rig.run(30, step=5)
    assert evse.power_w >= 0.0  # back to charge-only (no profile)
    assert rig.station.profiles == []  # invalidAfterOfflineDuration


async def test_201_stops_discharging_after_offline_threshold() -> None:
    rig = Rig("2.0.1", offline_discharge_timeout_s=300)
    rig.plug(soc=80.0, target_soc=80.0)
    await rig.call("SetChargingProfile", rig.profile([{"startPeriod": 0, "limit": -6000.0, "customData": NEG_201}]))
    rig.run(10)
    evse = rig.station.evses[1]
    assert evse.power_w == pytest.approx(-6000.0)
    rig.go_offline()
    rig.run(320, step=10)
    assert evse.power_w == 0.0
    rig.go_online()
    rig.run(10)
    assert evse.power_w == pytest.approx(-6000.0)


async def test_fault_ignore_profiles_and_drift_and_reject() -> None:
    rig = Rig("2.1")
    rig.plug(soc=80.0, target_soc=80.0)
    rig.station.set_faults(ignore_profiles=True)
    assert (await rig.call("SetChargingProfile", rig.profile([discharge(-8000.0)])))["status"] == "Accepted"
    rig.run(20)
    assert rig.station.evses[1].power_w == 0.0
    rig.station.set_faults(ignore_profiles=False, power_drift=-0.1)
    rig.run(20)
    assert rig.station.evses[1].power_w == pytest.approx(-7200.0)
    rig.station.set_faults(reject_profiles=True)
    resp = await rig.call("SetChargingProfile", rig.profile([discharge(-2000.0)], profile_id=5, stack=2))
    assert resp["status"] == "Rejected" and resp["statusInfo"]["reasonCode"] == "SimulatedFault"


# ---------------------------------------------------------------------------------------- profile management
async def test_get_clear_and_composite() -> None:
    rig = Rig("2.1")
    rig.plug(soc=60.0)
    cap = {"startPeriod": 0, "limit": 12_000.0}
    station_cap = rig.profile([cap], purpose="ChargingStationMaxProfile", evse=0, profile_id=10, stack=0)
    assert (await rig.call("SetChargingProfile", station_cap))["status"] == "Accepted"
    for i in range(2, 9):
        req = rig.profile([{"startPeriod": 0, "operationMode": "ChargingOnly", "limit": 1000.0 * i}],
                          purpose="TxDefaultProfile", profile_id=100 + i, stack=i)  # fmt: skip
        assert (await rig.call("SetChargingProfile", req))["status"] == "Accepted"
    resp = await rig.call("GetChargingProfiles", {"requestId": 42, "chargingProfile": {}})
    assert resp["status"] == "Accepted"
    reports = rig.deliver()
    parts = [p for a, p in reports if a == "ReportChargingProfiles"]
    assert sum(len(p["chargingProfile"]) for p in parts) == 8
    assert all(p.get("tbc") for p in parts[:-1]) and not parts[-1].get("tbc", False)
    assert {p["evseId"] for p in parts} == {0, 1}
    none = await rig.call("GetChargingProfiles", {"requestId": 43, "chargingProfile": {"stackLevel": 9}})
    assert none["status"] == "NoProfiles"
    comp = await rig.call("GetCompositeSchedule", {"evseId": 1, "duration": 3600, "chargingRateUnit": "W"})
    assert comp["status"] == "Accepted"
    assert comp["schedule"]["chargingSchedulePeriod"][0]["limit"] == 8000.0  # highest TxDefault stack wins
    rig.run(20)
    assert rig.station.evses[1].power_w == pytest.approx(8000.0)
    cleared = await rig.call("ClearChargingProfile", {"chargingProfileCriteria": {"chargingProfilePurpose":
                                                                                 "TxDefaultProfile"}})  # fmt: skip
    assert cleared["status"] == "Accepted"
    assert (await rig.call("ClearChargingProfile", {"chargingProfileId": 555}))["status"] == "Unknown"
    rig.run(20)
    assert rig.station.evses[1].power_w == pytest.approx(12_000.0)  # only the station cap remains
    comp0 = await rig.call("GetCompositeSchedule", {"evseId": 0, "duration": 60})
    assert comp0["schedule"]["chargingSchedulePeriod"][0]["limit"] == 12_000.0
    bad = await rig.call("GetCompositeSchedule", {"evseId": 7, "duration": 60})
    assert bad["status"] == "Rejected"


async def test_tx_profile_dropped_at_transaction_end_defaults_kept() -> None:
    rig = Rig("2.1")
    rig.plug(soc=60.0, departure_s=120)
    await rig.call("SetChargingProfile", rig.profile([discharge(-3000.0)]))
    await rig.call("SetChargingProfile", rig.profile([{"startPeriod": 0, "limit": 9000.0}], purpose="TxDefaultProfile",
                                                     profile_id=2))  # fmt: skip
    assert len(rig.station.profiles) == 2
    rig.run(200, step=10)
    assert [p.profile.id for p in rig.station.profiles] == [2]


# ---------------------------------------------------------------------------------------- device model
async def test_device_model_get_set_and_report_parts() -> None:
    rig = Rig("2.1")
    res = await rig.call("GetVariables", {"getVariableData": [
        {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "RateUnit"}},
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}},
        {"component": {"name": "V2XChargingCtrlr", "evse": {"id": 1}}, "variable": {"name": "SupportedOperationModes"}},
        {"component": {"name": "Nope"}, "variable": {"name": "X"}},
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "Nope"}},
        {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "SupportsFeature",
                                                                   "instance": "DynamicProfiles"}},
    ]})  # fmt: skip
    statuses = [r["attributeStatus"] for r in res["getVariableResult"]]
    assert statuses == ["Accepted", "Rejected", "Accepted", "UnknownComponent", "UnknownVariable", "Accepted"]
    assert res["getVariableResult"][0]["attributeValue"] == "W,A"
    assert "CentralSetpoint" in res["getVariableResult"][2]["attributeValue"]
    res = await rig.call("SetVariables", {"setVariableData": [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "attributeValue": "45"},
        {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "ProfileStackLevel"}, "attributeValue": "3"},
        {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}, "attributeValue": "x"},
        {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedMeasurands"},
         "attributeValue": "Energy.Active.Import.Register,Bogus"},
    ]})  # fmt: skip
    assert [r["attributeStatus"] for r in res["setVariableResult"]] == ["Accepted", "Rejected", "Rejected", "Rejected"]
    assert rig.station.heartbeat_interval == 45
    resp = await rig.call("GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"})
    assert resp["status"] == "Accepted"
    parts = [p for a, p in rig.deliver() if a == "NotifyReport"]
    assert len(parts) > 2
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert all(p["tbc"] for p in parts[:-1]) and not parts[-1].get("tbc", False)
    names = {(d["component"]["name"], d["variable"]["name"]) for p in parts for d in p["reportData"]}
    assert ("EVSE", "Power") in names and ("Connector", "AvailabilityState") in names
    pw = next(d for p in parts for d in p["reportData"] if d["variable"]["name"] == "BasicAuthPassword")
    assert pw["variableAttribute"][0]["mutability"] == "WriteOnly" and "value" not in pw["variableAttribute"][0]
    resp = await rig.call("GetReport", {"requestId": 8, "componentVariable": [{"component": {"name": "Nothing"}}]})
    assert resp["status"] == "EmptyResultSet"


# ---------------------------------------------------------------------------------------- remote control
async def test_remote_start_before_plug_in_and_remote_stop() -> None:
    rig = Rig("2.1")
    token = {"idToken": "CSMS-123", "type": "Central"}
    resp = await rig.call("RequestStartTransaction", {"evseId": 1, "remoteStartId": 77, "idToken": token})
    assert resp["status"] == "Accepted" and "transactionId" not in resp
    rig.plug(soc=50.0)
    tes = rig.events()
    assert tes[0]["transactionInfo"]["remoteStartId"] == 77
    auth = [p for p in tes if p["triggerReason"] == "RemoteStart"]
    assert auth and auth[0]["idToken"] == token
    assert rig.events("Authorize")[0]["idToken"] == token
    again = await rig.call("RequestStartTransaction", {"evseId": 1, "remoteStartId": 78, "idToken": token})
    assert again["status"] == "Rejected"
    unlock = await rig.call("UnlockConnector", {"evseId": 1, "connectorId": 1})
    assert unlock["status"] == "OngoingAuthorizedTransaction"
    stop = await rig.call("RequestStopTransaction", {"transactionId": rig.tx_id()})
    assert stop["status"] == "Accepted"
    rig.deliver()
    ended = rig.events()[-1]
    assert ended["eventType"] == "Ended" and ended["triggerReason"] == "RemoteStop"
    assert ended["transactionInfo"]["stoppedReason"] == "Remote"
    assert (await rig.call("RequestStopTransaction", {"transactionId": "nope"}))["status"] == "Rejected"
    status = await rig.call("GetTransactionStatus", {"transactionId": ended["transactionInfo"]["transactionId"]})
    assert status == {"messagesInQueue": False, "ongoingIndicator": False}


async def test_remote_start_with_plugged_car_and_txprofile() -> None:
    rig = Rig("2.1")
    rig.responses["Authorize"] = lambda p: {"idTokenInfo": {"status": "Invalid"}}
    rig.plug(soc=60.0)
    # the car's own token was refused: transaction ended (DeAuthorized), car still plugged
    assert rig.events()[-1]["transactionInfo"]["stoppedReason"] == "DeAuthorized"
    rig.responses["Authorize"] = rig._authorize
    profile = {"id": 3, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
               "chargingSchedule": [{"id": 1, "chargingRateUnit": "W",
                                     "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 5000.0}]}]}  # fmt: skip
    token = {"idToken": "X", "type": "Central"}
    resp = await rig.call("RequestStartTransaction", {"remoteStartId": 5, "idToken": token, "chargingProfile": profile})
    assert resp["status"] == "Accepted"
    rig.tick()
    rig.tick()
    rig.run(20)
    evse = rig.station.evses[1]
    assert evse.transaction_id is not None
    assert evse.power_w == pytest.approx(5000.0)
    assert rig.station.profiles[0].profile.transaction_id == evse.transaction_id


async def test_change_availability_and_trigger_message() -> None:
    rig = Rig("2.1")
    rig.plug(soc=60.0)
    resp = await rig.call("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
    assert resp["status"] == "Scheduled"
    trig = await rig.call("TriggerMessage", {"requestedMessage": "MeterValues", "evse": {"id": 1}})
    assert trig["status"] == "Accepted"
    trig = await rig.call("TriggerMessage", {"requestedMessage": "TransactionEvent", "evse": {"id": 1}})
    assert trig["status"] == "Accepted"
    assert (await rig.call("TriggerMessage", {"requestedMessage": "BootNotification"}))["status"] == "Rejected"
    assert (await rig.call("TriggerMessage", {"requestedMessage": "SignV2GCertificate"}))["status"] == "Accepted"
    trig = await rig.call("TriggerMessage", {"requestedMessage": "PublishFirmwareStatusNotification"})
    assert trig["status"] == "NotImplemented"
    rig.responses["SignCertificate"] = lambda p: {"status": "Rejected"}
    sent = rig.deliver()
    csr = [p for a, p in sent if a == "SignCertificate"]
    assert [p["certificateType"] for p in csr] == ["V2GCertificate"]
    assert csr[0]["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert any(a == "MeterValues" and p["meterValue"][0]["sampledValue"][0]["context"] == "Trigger" for a, p in sent)
    assert any(a == "TransactionEvent" and p["triggerReason"] == "Trigger" for a, p in sent)
    await rig.call("RequestStopTransaction", {"transactionId": rig.tx_id()})
    rig.deliver()
    assert rig.events("StatusNotification")[-1]["connectorStatus"] == "Unavailable"
    again = await rig.call("ChangeAvailability", {"operationalStatus": "Operative"})
    assert again["status"] == "Accepted"
    rig.deliver()
    assert rig.events("StatusNotification")[-1]["connectorStatus"] == "Occupied"


async def test_every_outbound_payload_is_schema_valid_on_201() -> None:
    rig = Rig("2.0.1", aligned_interval_s=60, tx_updated_interval_s=30)
    rig.plug(soc=30.0, departure_s=1800)
    await rig.call("SetChargingProfile", rig.profile([{"startPeriod": 0, "limit": -4000.0, "customData": NEG_201}]))
    rig.run(2000, step=15)  # Rig.deliver validates each payload against the 2.0.1 schema
    assert rig.events()[-1]["eventType"] == "Ended"
    assert all("operationMode" not in p["transactionInfo"] for p in rig.events())


async def test_dynamic_profile_updates() -> None:
    rig = Rig("2.1")
    rig.plug(soc=80.0, target_soc=80.0)
    req = rig.profile([discharge(-4000.0)], chargingProfileKind="Dynamic", dynUpdateInterval=60)
    assert (await rig.call("SetChargingProfile", req))["status"] == "Accepted"
    rig.run(10)
    assert rig.station.evses[1].power_w == pytest.approx(-4000.0)
    upd = {"chargingProfileId": 1, "scheduleUpdate": {"setpoint": -9000.0, "dischargeLimit": -9000.0}}
    assert (await rig.call("UpdateDynamicSchedule", upd))["status"] == "Accepted"
    rig.run(10)
    assert rig.station.evses[1].power_w == pytest.approx(-9000.0)
    bad = await rig.call("UpdateDynamicSchedule", {"chargingProfileId": 99, "scheduleUpdate": {"setpoint": 0.0}})
    assert bad["status"] == "Rejected"
    # a negative limit breaks the 2.1 rules (K01): rejected, the old values stay
    worse = await rig.call("UpdateDynamicSchedule", {"chargingProfileId": 1, "scheduleUpdate": {"limit": -50.0}})
    assert worse["status"] == "Rejected"
    rig.run(10)
    assert rig.station.evses[1].power_w == pytest.approx(-9000.0)


async def test_meter_noise_leaves_registers_exact() -> None:
    rig = Rig("2.1", tx_updated_interval_s=10)
    rig.station.set_faults(meter_noise=0.05)
    rig.plug(soc=40.0)
    rig.run(300, step=10)
    evse = rig.station.evses[1]
    samples = [p["meterValue"][0]["sampledValue"] for p in rig.events() if p["triggerReason"] == "MeterValuePeriodic"]
    powers = [s["value"] for sv in samples for s in sv if s["measurand"] == "Power.Active.Import"]
    assert len(set(powers)) > 5 and all(15_000 < p < 25_000 for p in powers)
    registers = [s["value"] for sv in samples for s in sv if s["measurand"] == "Energy.Active.Import.Register"]
    assert registers == sorted(registers)
    assert registers[-1] == pytest.approx(evse.import_wh, abs=20_000 * 10 / 3600 + 0.01)


async def test_reset_on_idle_is_scheduled_while_charging() -> None:
    rig = Rig("2.1")
    rig.plug(soc=60.0)
    resp = await rig.call("Reset", {"type": "OnIdle"})
    assert resp == {"status": "Scheduled"}
    assert rig.station.pending_reset
    assert (await rig.call("Reset", {"type": "Immediate", "evseId": 1}))["status"] == "Rejected"


async def test_station_cap_is_shared_between_evses() -> None:
    rig = Rig("2.1", evse_count=2)
    rig.plug(1, soc=40.0)
    rig.plug(2, soc=40.0)
    cap = rig.profile([{"startPeriod": 0, "limit": 24_000.0}], purpose="ChargingStationMaxProfile", evse=0,
                      profile_id=9, stack=0)  # fmt: skip
    assert (await rig.call("SetChargingProfile", cap))["status"] == "Accepted"
    rig.run(20)
    powers = [rig.station.evses[i].power_w for i in (1, 2)]
    assert powers == [pytest.approx(12_000.0), pytest.approx(12_000.0)]
