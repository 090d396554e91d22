"""Q - Bidirectional power transfer (OCPP 2.1): the OCA test cases TC_Q_*_CSMS this CSMS
implements, plus negative cases.

The OCTT-style station drives a V2X session (Authorize answered with the CSMS's
allowedEnergyTransfer, TransactionEvent, NotifyEVChargingNeeds with V2X parameters); the operator
sends V2X charging profiles (operation modes) and the CSMS's ChargingControl pushes dynamic
setpoints (UpdateDynamicSchedule). Each test asserts the CSMS's answers, the requests it sent,
the profile it records and the operation mode it then shows for the EVSE."""

from __future__ import annotations

from typing import Any

from .conftest import Rig, wait_for
from .octt import MODULE, Octt, api_get, command, connect, module_rig, new_tx_id, now, token

pytestmark = MODULE
rig = module_rig(versions=("2.1",))

ACCEPT = {"status": "Accepted"}
V2X_TOKEN = token("OCTT-V2X", "eMAID")


# ------------------------------------------------------------------------------ Q - V2X
def _discovery(dynamic: bool) -> Any:
    values = {"SupportsDynamicProfiles": "true" if dynamic else "false", "RateUnit": "W"}

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        out = []
        for d in request["getVariableData"]:
            r: dict[str, Any] = {"component": d["component"], "variable": d["variable"]}
            value = values.get(d["variable"]["name"])
            r.update(
                {"attributeStatus": "Accepted", "attributeValue": value}
                if value
                else {"attributeStatus": "UnknownVariable"}
            )
            out.append(r)
        return {"getVariableResult": out}

    return answer


async def _v2x_session(rig: Rig, dynamic: bool = False) -> tuple[Octt, str]:
    """Reusable state: a V2X-authorized transaction charging on EVSE 1 (Q01/Q02)."""
    await rig.store.upsert_id_token(
        V2X_TOKEN["idToken"], V2X_TOKEN["type"], status="Accepted", allowed_energy_transfer=["DC", "DC_BPT"]
    )
    st = await connect(
        rig,
        {
            "GetVariables": _discovery(dynamic),
            "SetChargingProfile": ACCEPT,
            "UpdateDynamicSchedule": ACCEPT,
            "NotifyAllowedEnergyTransfer": ACCEPT,
        },
    )
    auth = await st.call("Authorize", {"idToken": V2X_TOKEN})
    assert auth["idTokenInfo"]["status"] == "Accepted" and auth["allowedEnergyTransfer"] == ["DC", "DC_BPT"]
    tx_id = new_tx_id()
    await st.status("Occupied")
    r = await st.tx("Started", "Authorized", tx_id, idToken=V2X_TOKEN, charging_state="EVConnected")
    assert r["idTokenInfo"]["status"] == "Accepted"
    needs = {
        "evseId": 1,
        "chargingNeeds": {
            "requestedEnergyTransfer": "DC_BPT",
            "availableEnergyTransfer": ["DC", "DC_BPT"],
            "controlMode": "DynamicControl" if dynamic else "ScheduledControl",
            "departureTime": now(4 * 3600),
            "v2xChargingParameters": {
                "maxChargePower": 11000,
                "maxDischargePower": 11000,
                "evMinEnergyRequest": -5000,
                "evMaxEnergyRequest": 40000,
                "targetSoC": 80,
            },
        },
    }
    assert (await st.call("NotifyEVChargingNeeds", needs))["status"] in ("NoChargingProfile", "Accepted")
    await st.tx("Updated", "ChargingStateChanged", tx_id, charging_state="Charging")
    return st, tx_id


def _v2x_profile(pid: int, tx_id: str, mode: str, kind: str = "Absolute", **period: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": kind,
        "transactionId": tx_id,
        "chargingSchedule": [
            {
                "id": pid,
                "chargingRateUnit": "W",
                "startSchedule": now(-1),
                "chargingSchedulePeriod": [{"startPeriod": 0, "operationMode": mode, **period}],
            }
        ],
    }


async def test_TC_Q_102_CSMS_v2x_authorisation_allowed_energy(rig: Rig) -> None:
    st, tx_id = await _v2x_session(rig)
    tx = await api_get(rig, f"/api/v1/stations/{st.station_id}/transactions/{tx_id}")
    assert tx["charging_needs"] is not None and tx["charging_needs"]["requested_energy_transfer"] == "DC_BPT"
    evse = rig.central.state(st.station_id).evse(1)
    assert evse.allowed_energy_transfer == ["DC", "DC_BPT"]
    await st.close()


async def _mode_reported(rig: Rig, st: Octt, tx_id: str, mode: str) -> None:
    info = {"transactionId": tx_id, "chargingState": "Charging", "operationMode": mode}
    payload = {
        "eventType": "Updated",
        "timestamp": now(),
        "triggerReason": "OperationModeChanged",
        "seqNo": next(st.seq),
    }
    assert await st.call("TransactionEvent", {**payload, "transactionInfo": info}) == {}
    await wait_for(lambda: rig.central.state(st.station_id).evse(1).operation_mode == mode)


async def test_TC_Q_108_CSMS_central_v2x_control_with_charging_schedule(rig: Rig) -> None:
    st, tx_id = await _v2x_session(rig)
    profile = _v2x_profile(1108, tx_id, "CentralSetpoint", setpoint=-7000.0, dischargeLimit=-11000.0, limit=11000.0)
    assert (await command(rig, st, "SetChargingProfile", {"evse_id": 1, "charging_profile": profile}))[
        "status"
    ] == "Accepted"
    rows = await api_get(rig, f"/api/v1/stations/{st.station_id}/profiles")
    assert [(r["profile_id"], r["transaction_id"]) for r in rows] == [(1108, tx_id)]
    await _mode_reported(rig, st, tx_id, "CentralSetpoint")
    await st.close()


async def test_TC_Q_109_CSMS_central_v2x_control_dynamic_setpoint_push(rig: Rig) -> None:
    st, tx_id = await _v2x_session(rig, dynamic=True)
    profile = _v2x_profile(1109, tx_id, "CentralSetpoint", kind="Dynamic", setpoint=0.0)
    profile["dynUpdateInterval"] = 60
    assert (await command(rig, st, "SetChargingProfile", {"evse_id": 1, "charging_profile": profile}))[
        "status"
    ] == "Accepted"
    answer = await rig.central.charging.update_setpoint(st.station_id, 1109, -5000.0)
    assert answer["status"] == "Accepted"
    assert st.got("UpdateDynamicSchedule") == [
        {"chargingProfileId": 1109, "scheduleUpdate": {"setpoint": -5000.0, "dischargeLimit": -5000.0}}
    ]
    await _mode_reported(rig, st, tx_id, "CentralSetpoint")
    await st.close()


async def test_TC_Q_111_CSMS_external_v2x_control_setpoint(rig: Rig) -> None:
    st, tx_id = await _v2x_session(rig)
    profile = _v2x_profile(1111, tx_id, "ExternalSetpoint")
    assert (await command(rig, st, "SetChargingProfile", {"evse_id": 1, "charging_profile": profile}))[
        "status"
    ] == "Accepted"
    await _mode_reported(rig, st, tx_id, "ExternalSetpoint")
    await st.close()


async def test_TC_Q_112_CSMS_external_v2x_control_limit(rig: Rig) -> None:
    st, tx_id = await _v2x_session(rig)
    profile = _v2x_profile(1112, tx_id, "ExternalLimits", limit=11000.0, dischargeLimit=-11000.0)
    assert (await command(rig, st, "SetChargingProfile", {"evse_id": 1, "charging_profile": profile}))[
        "status"
    ] == "Accepted"
    await _mode_reported(rig, st, tx_id, "ExternalLimits")
    await st.close()


async def test_TC_Q_117_CSMS_frequency_support_central_v2x_control_push(rig: Rig) -> None:
    st, tx_id = await _v2x_session(rig, dynamic=True)
    curve = [
        {"frequency": 49.8, "power": 11000.0},
        {"frequency": 50.0, "power": 0.0},
        {"frequency": 50.2, "power": -11000.0},
    ]
    profile = _v2x_profile(1117, tx_id, "CentralFrequency", kind="Dynamic", setpoint=0.0, v2xFreqWattCurve=curve)
    assert (await command(rig, st, "SetChargingProfile", {"evse_id": 1, "charging_profile": profile}))[
        "status"
    ] == "Accepted"
    assert (await rig.central.charging.update_setpoint(st.station_id, 1117, 3000.0))["status"] == "Accepted"
    await _mode_reported(rig, st, tx_id, "CentralFrequency")
    await st.close()


async def test_TC_Q_121_CSMS_frequency_support_local_v2x_control(rig: Rig) -> None:
    st, tx_id = await _v2x_session(rig)
    curve = [{"frequency": 49.8, "power": 11000.0}, {"frequency": 50.2, "power": -11000.0}]
    profile = _v2x_profile(1121, tx_id, "LocalFrequency", v2xFreqWattCurve=curve)
    assert (await command(rig, st, "SetChargingProfile", {"evse_id": 1, "charging_profile": profile}))[
        "status"
    ] == "Accepted"
    await _mode_reported(rig, st, tx_id, "LocalFrequency")
    await st.close()


async def test_TC_Q_124_CSMS_local_v2x_control_for_load_balancing(rig: Rig) -> None:
    st, tx_id = await _v2x_session(rig)
    profile = _v2x_profile(1124, tx_id, "LocalLoadBalancing", limit=11000.0, dischargeLimit=-11000.0)
    assert (await command(rig, st, "SetChargingProfile", {"evse_id": 1, "charging_profile": profile}))[
        "status"
    ] == "Accepted"
    await _mode_reported(rig, st, tx_id, "LocalLoadBalancing")
    await st.close()


# ------------------------------------------------------------------------------ negative cases
async def test_token_without_v2x_permission_gets_no_allowed_energy_transfer(rig: Rig) -> None:
    st = await connect(rig, {"NotifyAllowedEnergyTransfer": ACCEPT})
    await rig.store.upsert_id_token("OCTT-NO-V2X", "eMAID", status="Accepted", allowed_energy_transfer=[])
    auth = await st.call("Authorize", {"idToken": token("OCTT-NO-V2X", "eMAID")})
    assert auth["idTokenInfo"]["status"] == "Accepted" and "allowedEnergyTransfer" not in auth  # charge only
    tx_id = new_tx_id()
    r = await st.tx("Started", "Authorized", tx_id, idToken=token("OCTT-NO-V2X", "eMAID"))
    assert r["idTokenInfo"]["status"] == "Accepted"
    assert rig.central.state(st.station_id).evse(1).allowed_energy_transfer is None
    assert st.got("NotifyAllowedEnergyTransfer") == []  # no V2X permission is pushed either
    await st.close()


async def test_setpoint_update_for_a_station_without_dynamic_profiles_is_refused(rig: Rig) -> None:
    from csms.smartcharging.builder import BuilderError

    st, _tx_id = await _v2x_session(rig, dynamic=False)
    try:
        await rig.central.charging.update_setpoint(st.station_id, 1, -1000.0)
    except BuilderError as exc:
        assert "dynamic" in str(exc)
    else:
        raise AssertionError("UpdateDynamicSchedule sent to a station without SupportsDynamicProfiles")
    assert st.got("UpdateDynamicSchedule") == []
    await st.close()
