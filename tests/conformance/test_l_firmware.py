"""L - Firmware management: the OCA test cases TC_L_01..13_CSMS on OCPP 2.0.1 and 2.1, plus
negative cases (firmware publishing, L_17..24, is not implemented).

The operator starts an update with ``POST .../commands/UpdateFirmware``; the OCTT-style station
answers and reports its progress with FirmwareStatusNotification (and SecurityEventNotification
where the test case says so). Each test asserts the request the CSMS sent, its answers and the
progress it records (``GET .../events?kind=FirmwareStatus``, security events, the firmware
version after the reboot)."""

from __future__ import annotations

from typing import Any

from .conftest import Rig, wait_for
from .octt import SESSION, Octt, api_get, command, connect, new_tx_id, now, reconnect, shared_rig

pytestmark = SESSION
rig = shared_rig()

SIGNING_CERT = "-----BEGIN CERTIFICATE-----\nTUlJQ0ZJUk1XQVJF\n-----END CERTIFICATE-----"
SIGNATURE = "c2lnbmF0dXJlLW9mLXRoZS1maXJtd2FyZQ=="
LOCATION = "https://firmware.example.com/fe-20/2.0.0.bin"


async def _update(rig: Rig, st: Octt, **body: Any) -> dict[str, Any]:
    body = {"location": LOCATION, "signature": SIGNATURE, "signing_certificate": SIGNING_CERT, **body}
    out = await command(rig, st, "UpdateFirmware", body)
    request = st.got("UpdateFirmware")[-1]
    assert request["firmware"]["location"] == LOCATION and isinstance(request["requestId"], int)
    assert request["firmware"]["signature"] == SIGNATURE and request["firmware"]["signingCertificate"] == SIGNING_CERT
    assert "retrieveDateTime" in request["firmware"]
    return out  # type: ignore[no-any-return]


async def _report(st: Octt, request_id: int, *statuses: str) -> None:
    for status in statuses:
        assert await st.call("FirmwareStatusNotification", {"status": status, "requestId": request_id}) == {}


async def _statuses(rig: Rig, st: Octt) -> list[str]:
    page = await api_get(rig, f"/api/v1/stations/{st.station_id}/events", kind="FirmwareStatus")
    return [e["payload"]["status"] for e in reversed(page["items"])]  # oldest first


async def _security(rig: Rig, st: Octt) -> list[str]:
    page = await api_get(rig, f"/api/v1/stations/{st.station_id}/security-events")
    return [e["type"] for e in page["items"]]


async def _station(rig: Rig, answer: Any = None) -> Octt:
    return await connect(rig, {"UpdateFirmware": answer or {"status": "Accepted"}})


async def test_TC_L_01_CSMS_secure_firmware_update_installation_successful(rig: Rig) -> None:
    st = await _station(rig)
    assert (await _update(rig, st))["status"] == "Accepted"
    rid = st.got("UpdateFirmware")[0]["requestId"]
    await _report(st, rid, "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting")
    st, answer = await reconnect(rig, st, reason=None)
    answer = await st.call(
        "BootNotification",
        {
            "chargingStation": {"model": "FE-20", "vendorName": "Fermata", "firmwareVersion": "2.0.0"},
            "reason": "FirmwareUpdate",
        },
    )
    assert answer["status"] == "Accepted"
    await _report(st, rid, "Installed")
    assert await _statuses(rig, st) == [
        "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting", "Installed"
    ]  # fmt: skip

    async def new_version() -> bool:
        return (await api_get(rig, f"/api/v1/stations/{st.station_id}"))["firmware_version"] == "2.0.0"

    await wait_for(new_version)
    await st.close()


async def test_TC_L_02_CSMS_secure_firmware_update_install_scheduled(rig: Rig) -> None:
    st = await _station(rig)
    install_at = now(3600)
    assert (await _update(rig, st, install_at=install_at))["status"] == "Accepted"
    request = st.got("UpdateFirmware")[0]
    assert request["firmware"]["installDateTime"][:19] == install_at[:19]
    await _report(st, request["requestId"], "Downloading", "Downloaded", "SignatureVerified", "InstallScheduled")
    await _report(st, request["requestId"], "Installing", "Installed")
    assert (await _statuses(rig, st))[3] == "InstallScheduled"
    await st.close()


async def test_TC_L_03_CSMS_secure_firmware_update_download_scheduled(rig: Rig) -> None:
    st = await _station(rig)
    retrieve_at = now(3600)
    assert (await _update(rig, st, retrieve_at=retrieve_at))["status"] == "Accepted"
    request = st.got("UpdateFirmware")[0]
    assert request["firmware"]["retrieveDateTime"][:19] == retrieve_at[:19]
    await _report(st, request["requestId"], "DownloadScheduled", "Downloading", "Downloaded", "Installing", "Installed")
    assert (await _statuses(rig, st))[0] == "DownloadScheduled"
    await st.close()


async def test_TC_L_04_CSMS_secure_firmware_update_revoked_certificate(rig: Rig) -> None:
    st = await _station(rig, {"status": "RevokedCertificate"})
    assert (await _update(rig, st))["status"] == "RevokedCertificate"
    await st.close()


async def test_TC_L_05_CSMS_secure_firmware_update_invalid_certificate(rig: Rig) -> None:
    st = await _station(rig, {"status": "InvalidCertificate"})
    assert (await _update(rig, st))["status"] == "InvalidCertificate"
    event = {"type": "InvalidFirmwareSigningCertificate", "timestamp": now()}
    assert await st.call("SecurityEventNotification", event) == {}
    assert await _security(rig, st) == ["InvalidFirmwareSigningCertificate"]
    await st.close()


async def test_TC_L_06_CSMS_secure_firmware_update_invalid_signature(rig: Rig) -> None:
    st = await _station(rig)
    await _update(rig, st)
    rid = st.got("UpdateFirmware")[0]["requestId"]
    await _report(st, rid, "Downloading", "Downloaded", "InvalidSignature")
    assert await st.call("SecurityEventNotification", {"type": "InvalidFirmwareSignature", "timestamp": now()}) == {}
    assert (await _statuses(rig, st))[-1] == "InvalidSignature"
    assert await _security(rig, st) == ["InvalidFirmwareSignature"]
    await st.close()


async def test_TC_L_07_CSMS_secure_firmware_update_download_failed(rig: Rig) -> None:
    st = await _station(rig)
    await _update(rig, st, retries=0)
    assert st.got("UpdateFirmware")[0]["retries"] == 0
    await _report(st, st.got("UpdateFirmware")[0]["requestId"], "Downloading", "DownloadFailed")
    assert await _statuses(rig, st) == ["Downloading", "DownloadFailed"]
    await st.close()


async def test_TC_L_08_CSMS_secure_firmware_update_install_verification_failed(rig: Rig) -> None:
    st = await _station(rig)
    await _update(rig, st)
    rid = st.got("UpdateFirmware")[0]["requestId"]
    await _report(st, rid, "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallVerificationFailed")
    assert (await _statuses(rig, st))[-1] == "InstallVerificationFailed"
    await st.close()


async def test_TC_L_09_CSMS_secure_firmware_update_installation_failed(rig: Rig) -> None:
    st = await _station(rig)
    await _update(rig, st)
    rid = st.got("UpdateFirmware")[0]["requestId"]
    await _report(st, rid, "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallationFailed")
    assert (await _statuses(rig, st))[-1] == "InstallationFailed"
    await st.close()


async def test_TC_L_10_CSMS_secure_firmware_update_accepted_canceled(rig: Rig) -> None:
    answers = iter([{"status": "Accepted"}, {"status": "AcceptedCanceled"}])
    st = await _station(rig, lambda _r: next(answers))
    await _update(rig, st)
    first = st.got("UpdateFirmware")[0]["requestId"]
    await _report(st, first, "Downloading")
    assert (await _update(rig, st))["status"] == "AcceptedCanceled"
    second = st.got("UpdateFirmware")[1]["requestId"]
    assert second != first  # a new request id for the new update
    await _report(st, second, "Downloading", "Downloaded", "Installing", "Installed")
    await st.close()


async def test_TC_L_11_CSMS_secure_firmware_update_unable_to_cancel(rig: Rig) -> None:
    answers = iter([{"status": "Accepted"}, {"status": "Rejected"}])
    st = await _station(rig, lambda _r: next(answers))
    await _update(rig, st)
    first = st.got("UpdateFirmware")[0]["requestId"]
    await _report(st, first, "Downloading")
    assert (await _update(rig, st))["status"] == "Rejected"
    await _report(st, first, "Downloaded", "Installing", "Installed")  # the first one goes on
    assert (await _statuses(rig, st))[-1] == "Installed"
    await st.close()


async def test_TC_L_13_CSMS_firmware_update_with_ongoing_transaction(rig: Rig) -> None:
    st = await _station(rig)
    tx_id = new_tx_id()
    await st.tx("Started", "CablePluggedIn", tx_id, charging_state="Charging")
    await _update(rig, st)
    rid = st.got("UpdateFirmware")[0]["requestId"]
    await _report(st, rid, "Downloading", "Downloaded", "SignatureVerified")
    assert (await api_get(rig, f"/api/v1/stations/{st.station_id}/transactions/{tx_id}"))["active"]
    await st.tx("Ended", "StopAuthorized", tx_id, stopped_reason="Local")
    await _report(st, rid, "Installing", "Installed")
    assert (await _statuses(rig, st))[-2:] == ["Installing", "Installed"]
    await st.close()


# ------------------------------------------------------------------------------ negative cases
async def test_update_firmware_bad_requests_and_bad_notifications(rig: Rig) -> None:
    from tests.support import raw_exchange

    st = await _station(rig)
    path = f"/api/v1/stations/{st.station_id}/commands/UpdateFirmware"
    assert (await rig.post(path, {})).status_code == 422  # location is required
    assert (await rig.post(path, {"location": LOCATION, "install_at": "2026-01-01T00:00:00"})).status_code == 422
    assert st.got("UpdateFirmware") == []
    await st.detach()
    bad = '[2,"f1","FirmwareStatusNotification",{"status":"Exploded","requestId":1}]'
    assert (await raw_exchange(st.ws, bad))[:3] == [4, "f1", "PropertyConstraintViolation"]
    assert await _statuses(rig, st) == []
    await st.ws.close()
