"""J - Meter values: the OCA test cases TC_J_*_CSMS on OCPP 2.0.1 and 2.1, plus negative cases.

The OCTT-style station sends clock-aligned and sampled meter values, in MeterValuesRequest and in
TransactionEvent; each test asserts the CSMS's answer and the samples its HTTP API then returns
(value, context, EVSE and transaction they are filed under)."""

from __future__ import annotations

from typing import Any

from tests.support import raw_exchange

from .conftest import Rig, wait_for
from .octt import SESSION, Octt, api_get, connect, energy, new_tx_id, now, shared_rig, token, transaction

pytestmark = SESSION
rig = shared_rig()

SIGNED = {
    "signedMeterData": "T0NNRnxTSUdORUQtREFUQQ==",
    "signingMethod": "ECDSA-secp256r1-SHA256",
    "encodingMethod": "OCMF",
    "publicKey": "UFVCTElDLUtFWQ==",
}


async def _samples(rig: Rig, st: Octt, **params: Any) -> list[dict[str, Any]]:
    page = await api_get(rig, f"/api/v1/stations/{st.station_id}/meter-values", **params)
    return page["items"]  # type: ignore[no-any-return]


async def _wait_samples(rig: Rig, st: Octt, n: int, **params: Any) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        items = await _samples(rig, st, **params)
        return items if len(items) >= n else None

    return await wait_for(enough)  # type: ignore[no-any-return]


async def _started(st: Octt, tx_id: str, **extra: Any) -> None:
    await st.tx("Started", "CablePluggedIn", tx_id, charging_state="EVConnected", **extra)


def _clock(wh: float, **extra: Any) -> list[dict[str, Any]]:
    return energy(wh, "Sample.Clock", **extra)


# ------------------------------------------------------------------------------ J01 clock-aligned
async def test_TC_J_01_CSMS_clock_aligned_no_transaction(rig: Rig) -> None:
    st = await connect(rig)
    assert await st.call("MeterValues", {"evseId": 1, "meterValue": _clock(1500)}) == {}
    assert await st.call("MeterValues", {"evseId": 0, "meterValue": _clock(9000)}) == {}  # the main meter
    (sample,) = await _wait_samples(rig, st, 1, evse_id=1)
    assert sample["value"] == 1500 and sample["context"] == "Sample.Clock" and sample["transaction_id"] is None
    (main,) = await _wait_samples(rig, st, 1, evse_id=0)
    assert main["value"] == 9000
    await st.close()


async def test_TC_J_02_CSMS_clock_aligned_transaction_ongoing(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _started(st, tx_id)
    assert await st.tx("Updated", "MeterValueClock", tx_id, meterValue=_clock(2500)) == {}
    (sample,) = await _wait_samples(rig, st, 1, transaction_id=tx_id)
    assert sample["value"] == 2500 and sample["context"] == "Sample.Clock" and sample["evse_id"] == 1
    await st.close()


async def test_TC_J_03_CSMS_clock_aligned_eventtype_ended(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _started(st, tx_id)
    values = _clock(3000) + energy(3100, "Transaction.End")
    assert await st.tx("Ended", "EVCommunicationLost", tx_id, stopped_reason="EVDisconnected", meterValue=values) == {}
    samples = await _wait_samples(rig, st, 2, transaction_id=tx_id)
    assert {(s["context"], s["value"]) for s in samples} == {("Sample.Clock", 3000), ("Transaction.End", 3100)}
    tx = await transaction(rig, st, tx_id)
    assert not tx["active"]
    await st.close()


async def test_TC_J_04_CSMS_clock_aligned_signed(rig: Rig) -> None:
    st = await connect(rig)
    assert await st.call("MeterValues", {"evseId": 1, "meterValue": _clock(4000, signedMeterValue=SIGNED)}) == {}
    (sample,) = await _wait_samples(rig, st, 1, evse_id=1)
    assert sample["value"] == 4000 and sample["context"] == "Sample.Clock"
    await st.close()


# ------------------------------------------------------------------------------ J02 sampled
async def test_TC_J_07_CSMS_sampled_eventtype_started_evse_known(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _started(st, tx_id, meterValue=energy(100, "Transaction.Begin"))
    (sample,) = await _wait_samples(rig, st, 1, transaction_id=tx_id)
    assert sample["context"] == "Transaction.Begin" and sample["evse_id"] == 1 and sample["value"] == 100
    await st.close()


async def test_TC_J_08_CSMS_sampled_transaction_begin_evse_not_known(rig: Rig) -> None:
    await rig.store.upsert_id_token("OCTT-J08", "ISO14443", status="Accepted")
    st = await connect(rig)
    tx_id = new_tx_id()
    # authorization first: the Started event cannot name an EVSE yet (no evse field)
    r = await st.tx("Started", "Authorized", tx_id, evse_id=None, idToken=token("OCTT-J08"))
    assert r["idTokenInfo"]["status"] == "Accepted"
    assert (await transaction(rig, st, tx_id))["evse_id"] is None
    await st.tx(
        "Updated",
        "CablePluggedIn",
        tx_id,
        evse={"id": 1, "connectorId": 1},
        charging_state="EVConnected",
        meterValue=energy(200, "Transaction.Begin"),
    )
    (sample,) = await _wait_samples(rig, st, 1, transaction_id=tx_id)
    assert sample["context"] == "Transaction.Begin" and sample["evse_id"] == 1
    assert (await transaction(rig, st, tx_id))["evse_id"] == 1
    await st.close()


async def test_TC_J_09_CSMS_sampled_eventtype_updated(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _started(st, tx_id)
    for wh in (300, 600):
        assert await st.tx("Updated", "MeterValuePeriodic", tx_id, meterValue=energy(wh)) == {}
    samples = await _wait_samples(rig, st, 2, transaction_id=tx_id)
    assert [s["value"] for s in samples] == [300, 600] and {s["context"] for s in samples} == {"Sample.Periodic"}
    await wait_for(lambda: rig.central.state(st.station_id).evse(1).energy_import_wh == 600)  # live reading
    await st.close()


async def test_TC_J_10_CSMS_sampled_eventtype_ended(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _started(st, tx_id)
    await st.tx("Ended", "StopAuthorized", tx_id, stopped_reason="Local", meterValue=energy(700, "Transaction.End"))
    (sample,) = await _wait_samples(rig, st, 1, transaction_id=tx_id)
    assert sample["context"] == "Transaction.End" and sample["value"] == 700
    await st.close()


async def test_TC_J_11_CSMS_sampled_signed(rig: Rig) -> None:
    st = await connect(rig)
    tx_id = new_tx_id()
    await _started(st, tx_id)
    values = energy(800, signedMeterValue=SIGNED)
    assert await st.tx("Updated", "MeterValuePeriodic", tx_id, meterValue=values) == {}
    (sample,) = await _wait_samples(rig, st, 1, transaction_id=tx_id)
    assert sample["value"] == 800
    tx = await transaction(rig, st, tx_id)
    assert tx["events"][-1]["payload"]["meterValue"][0]["sampledValue"][0]["signedMeterValue"] == SIGNED
    await st.close()


# ------------------------------------------------------------------------------ negative cases
async def test_malformed_meter_values_are_refused_and_not_stored(rig: Rig) -> None:
    st = await connect(rig)
    await st.detach()
    empty = f'{{"timestamp":"{now()}","sampledValue":[]}}'
    no_samples = f'[2,"j1","MeterValues",{{"evseId":1,"meterValue":[{empty}]}}]'
    assert (await raw_exchange(st.ws, no_samples))[:3] == [4, "j1", "OccurrenceConstraintViolation"]
    bad_context = (
        f'[2,"j2","MeterValues",{{"evseId":1,"meterValue":[{{"timestamp":"{now()}",'
        '"sampledValue":[{"value":1,"context":"Whenever"}]}]}]'
    )
    assert (await raw_exchange(st.ws, bad_context))[:3] == [4, "j2", "PropertyConstraintViolation"]
    text_value = (
        f'[2,"j3","MeterValues",{{"evseId":1,"meterValue":[{{"timestamp":"{now()}",'
        '"sampledValue":[{"value":"12"}]}]}]'
    )
    assert (await raw_exchange(st.ws, text_value))[:3] == [4, "j3", "TypeConstraintViolation"]
    missing_evse = '[2,"j4","MeterValues",{"meterValue":[]}]'
    assert (await raw_exchange(st.ws, missing_evse))[:3] == [4, "j4", "OccurrenceConstraintViolation"]
    assert await _samples(rig, st) == []
    await st.ws.close()


async def test_meter_values_before_boot_are_a_security_error(rig: Rig) -> None:
    st = await connect(rig, boot=False)
    await st.detach()
    sample = f'{{"timestamp":"{now()}","sampledValue":[{{"value":1}}]}}'
    frame = f'[2,"j5","MeterValues",{{"evseId":1,"meterValue":[{sample}]}}]'
    assert (await raw_exchange(st.ws, frame))[:3] == [4, "j5", "SecurityError"]
    await st.ws.close()
