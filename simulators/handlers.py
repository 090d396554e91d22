"""Station-side handlers of CSMS requests (the firmware's answer to each CALL).

Each handler is ``async (station, payload) -> response payload``; the tables are shared by every
station and passed to :class:`~csms.ocpp.rpc.RpcEndpoint` with ``context=station``. The local
authorization list and cache, reservations, display messages, monitoring and tariffs live in their
own modules (local_auth, reservations, display, monitoring, tariff, der), and charging profiles (K) in
charging_profiles. An action the simulator lacks
(battery swapping, ...) has no handler, so the endpoint answers ``NotSupported`` (or ``NotImplemented``
for an action the version does not define).

Follow-up messages (NotifyReport, ReportChargingProfiles, TransactionEvents after a remote start or
stop, triggered messages) are put into the station's outbox from inside the handler: the outbox is
drained by another task, and the CALLRESULT is written to the socket before that task runs again,
so the CSMS always sees the response first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from csms.clock import parse_rfc3339
from csms.ocpp.errors import CallError, ErrorCode
from csms.smartcharging.k01 import (
    rejection_response,
)

from . import certificates, charging_profiles, der, display, local_auth, monitoring, reservations, tariff
from .charging_profiles import check_tx_profile_for, install_tx_profile_from_remote_start
from .model import status_info

if TYPE_CHECKING:
    from .model import Evse, Firmware

Handler = Callable[["Firmware", dict[str, Any]], Awaitable[dict[str, Any]]]

FIRMWARE_STEP_S = 30.0
LOG_UPLOAD_S = 20.0


def _evse(st: Firmware, evse_id: int) -> Evse | None:
    return st.evses.get(evse_id)


# ====================================================================== provisioning / device model
async def get_variables(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    limit = st.dm.int("DeviceDataCtrlr", "ItemsPerMessage", instance="GetVariables")
    if len(p["getVariableData"]) > limit:
        raise CallError(ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, f"at most {limit} getVariableData per request")
    return {"getVariableResult": st.dm.get_variables(p["getVariableData"])}


async def set_variables(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    limit = st.dm.int("DeviceDataCtrlr", "ItemsPerMessage", instance="SetVariables")
    if len(p["setVariableData"]) > limit:
        raise CallError(ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, f"at most {limit} setVariableData per request")
    return {"setVariableResult": st.dm.set_variables(p["setVariableData"])}


def _send_report(st: Firmware, request_id: int, data: list[dict[str, Any]]) -> None:
    per = max(1, st.dm.int("DeviceDataCtrlr", "ItemsPerMessage", instance="GetReport"))
    chunks = [data[i : i + per] for i in range(0, len(data), per)]
    generated = st.clock.timestamp()
    for seq, chunk in enumerate(chunks):
        payload: dict[str, Any] = {"requestId": request_id, "generatedAt": generated, "seqNo": seq, "reportData": chunk}
        if seq < len(chunks) - 1:
            payload["tbc"] = True
        st._send_if_online("NotifyReport", payload)


async def get_base_report(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    data = st.dm.base_report(p["reportBase"])
    if not data:
        return {"status": "EmptyResultSet"}
    _send_report(st, p["requestId"], data)
    return {"status": "Accepted"}


async def get_report(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    data = st.dm.custom_report(p.get("componentVariable"), p.get("componentCriteria"))
    if not data:
        return {"status": "EmptyResultSet"}
    _send_report(st, p["requestId"], data)
    return {"status": "Accepted"}


# ====================================================================== reset / availability
async def reset(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    kind = p["type"]
    if "evseId" in p and p["evseId"] != 0:
        return {"status": "Rejected", "statusInfo": status_info("UnsupportedRequest", "EVSE-level reset not supported")}
    if kind == "ImmediateAndResume":
        return {
            "status": "Rejected",
            "statusInfo": status_info("UnsupportedRequest", "ImmediateAndResume not supported"),
        }
    busy = any(e.tx is not None and not e.tx.ended for e in st.evses.values())
    if kind == "OnIdle" and busy:
        st.pending_reset = True
        return {"status": "Scheduled"}
    st._spawn(_reset_after_response(st))
    return {"status": "Accepted"}


async def _reset_after_response(st: Firmware) -> None:
    await asyncio.sleep(0.01)
    await st._reboot(boot_reason="RemoteReset", trigger="ResetCommand", stopped="ImmediateReset")


async def change_availability(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    operative = p["operationalStatus"] == "Operative"
    evse_ref = p.get("evse")
    if evse_ref is None or evse_ref.get("id", 0) == 0:
        targets = list(st.evses.values())
        st.station_operative_flag = operative
    else:
        evse = _evse(st, evse_ref["id"])
        if evse is None or evse_ref.get("connectorId", 1) != 1:
            return {"status": "Rejected", "statusInfo": status_info("UnknownEvse")}
        targets = [evse]
    scheduled = False
    for evse in targets:
        if operative:
            evse.operative_flag = True
            evse.scheduled_inoperative = False
        elif evse.tx is not None and not evse.tx.ended:
            evse.scheduled_inoperative = True
            scheduled = True
        else:
            evse.operative_flag = False
            reservations.removed(st, evse.id)
        st._status_changed(evse)
    st.wake()
    return {"status": "Scheduled" if scheduled else "Accepted"}


# ====================================================================== transactions
async def request_start_transaction(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    evse_id = p.get("evseId")
    if evse_id is None:
        candidates = [e for e in st.evses.values() if e.operative and (e.tx is None or not e.tx.authorized)]
        candidates.sort(key=lambda e: (e.ev is None, e.id))  # a plugged car waiting for authorization first
        if not candidates:
            return {"status": "Rejected", "statusInfo": status_info("NoEvseAvailable")}
        evse = candidates[0]
    else:
        found = _evse(st, evse_id)
        if found is None:
            return {"status": "Rejected", "statusInfo": status_info("UnknownEvse")}
        evse = found
    if not evse.operative:
        return {"status": "Rejected", "statusInfo": status_info("Unavailable", f"EVSE {evse.id} is inoperative")}
    tx = evse.tx
    if tx is not None and not tx.ended and tx.authorized:
        return {
            "status": "Rejected",
            "statusInfo": status_info("TxInProgress", f"transaction {tx.id} already authorized"),
        }
    profile = p.get("chargingProfile")
    if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
        info = status_info("InvalidProfile", "only a TxProfile may come with a remote start")
        return {"status": "Rejected", "statusInfo": info}
    now_t = st.now_t()
    id_token = p["idToken"]
    remote_id = p["remoteStartId"]
    if tx is not None and not tx.ended:
        if profile is not None:
            bad = check_tx_profile_for(st, evse, profile, now_t)
            if bad:
                return rejection_response(bad, st.version)  # type: ignore[arg-type]
        tx.remote_start_id = remote_id
        tx.remote_start_reported = False
        if profile is not None:
            install_tx_profile_from_remote_start(st, evse, profile, now_t)
        if st._dm_bool("AuthCtrlr", "AuthorizeRemoteStart", True):
            st._authorize(evse, id_token, trigger="RemoteStart")
        else:
            st._authorized(evse, tx.id, id_token, "RemoteStart", {"idTokenInfo": {"status": "Accepted"}})
        return {"status": "Accepted", "transactionId": tx.id}
    timeout = st._dm_int("TxCtrlr", "EVConnectionTimeOut", 120)
    evse.remote_auth = (id_token, remote_id, now_t + timeout)
    evse.pending_tx_profile = profile
    if evse.ev is not None and evse.tx_done:
        evse.tx_done = False  # the plugged car gets a new transaction
        evse.tx = None
    st.wake()
    return {"status": "Accepted"}


async def request_stop_transaction(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    for evse in st.evses.values():
        tx = evse.tx
        if tx is not None and not tx.ended and tx.id == p["transactionId"]:
            now_t = st.now_t()
            st._advance(evse, now_t)
            tx.stopped = True
            st._end_transaction(evse, now_t, trigger="RemoteStop", reason="Remote")
            st.wake()
            return {"status": "Accepted"}
    return {"status": "Rejected", "statusInfo": status_info("TxNotFound")}


async def get_transaction_status(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    tx_id = p.get("transactionId")
    queued = [o for o in st._outbox if o.action == "TransactionEvent" and (tx_id is None or o.tx_id == tx_id)]
    out: dict[str, Any] = {"messagesInQueue": bool(queued)}
    if tx_id is not None:
        out["ongoingIndicator"] = any(
            e.tx is not None and not e.tx.ended and e.tx.id == tx_id for e in st.evses.values()
        )
    return out


async def unlock_connector(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    evse = _evse(st, p["evseId"])
    if evse is None or p["connectorId"] != 1:
        return {"status": "UnknownConnector"}
    tx = evse.tx
    if tx is not None and not tx.ended and tx.authorized:
        return {"status": "OngoingAuthorizedTransaction"}
    return {"status": "Unlocked"}


async def data_transfer(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    return {"status": "UnknownVendorId"}


# ====================================================================== trigger message
async def trigger_message(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    what = p["requestedMessage"]
    evse_ref = p.get("evse")
    evses = list(st.evses.values())
    if evse_ref is not None:
        evse = _evse(st, evse_ref["id"])
        if evse is None and evse_ref["id"] != 0:
            return {"status": "Rejected", "statusInfo": status_info("UnknownEvse")}
        evses = [evse] if evse is not None else evses
    now_t = st.now_t()
    if what == "BootNotification":
        if st.registration == "Accepted":
            return {"status": "Rejected", "statusInfo": status_info("AlreadyAccepted")}
        st._boot_now.set()
        return {"status": "Accepted"}
    if what == "Heartbeat":
        st._send_if_online("Heartbeat", {}, on_result=st._heartbeat_result)
        return {"status": "Accepted"}
    if what == "StatusNotification":
        for evse in evses:
            st._send_status(evse)
        return {"status": "Accepted"}
    if what == "MeterValues":
        measurands = st._measurands("Measurands", "AlignedDataCtrlr")
        for evse in evses:
            st._advance(evse, now_t)
            meter = st._meter_value(evse, measurands, "Trigger", now_t)
            if meter:
                st._send_if_online("MeterValues", {"evseId": evse.id, "meterValue": meter})
        return {"status": "Accepted"}
    if what == "TransactionEvent":
        active = [e for e in evses if e.tx is not None and not e.tx.ended]
        if not active:
            return {"status": "Rejected", "statusInfo": status_info("NoTransaction")}
        for evse in active:
            st._advance(evse, now_t)
            meter = st._meter_value(evse, st._measurands("TxUpdatedMeasurands"), "Trigger", now_t)
            st._tx_event(evse, "Updated", "Trigger", now_t, meter=meter)
        return {"status": "Accepted"}
    if what == "FirmwareStatusNotification":
        st._send_if_online("FirmwareStatusNotification", {"status": "Idle"})
        return {"status": "Accepted"}
    if what == "LogStatusNotification":
        st._send_if_online("LogStatusNotification", {"status": "Idle"})
        return {"status": "Accepted"}
    if what in ("SignChargingStationCertificate", "SignV2GCertificate"):
        if st.registration != "Accepted":
            return {"status": "Rejected", "statusInfo": status_info("NotAccepted")}
        kind = "ChargingStationCertificate" if what == "SignChargingStationCertificate" else "V2GCertificate"
        certificates.request_signing(st, kind)
        return {"status": "Accepted"}
    return {"status": "NotImplemented"}


# ====================================================================== firmware / logs
async def update_firmware(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    status = "Accepted"
    if st._fw_task is not None and not st._fw_task.done():
        st._fw_task.cancel()
        status = "AcceptedCanceled"
    st._fw_task = st._spawn(_firmware_update(st, p))
    return {"status": status}


async def _firmware_update(st: Firmware, p: dict[str, Any]) -> None:
    req = p["requestId"]
    fw = p["firmware"]

    def notify(status: str) -> None:
        st._send_if_online("FirmwareStatusNotification", {"status": status, "requestId": req})

    await asyncio.sleep(0.01)
    retrieve = parse_rfc3339(fw["retrieveDateTime"]).timestamp()
    if retrieve > st.now_t():
        notify("DownloadScheduled")
        await st._sleep_sim(retrieve - st.now_t(), min_wall=0.01)
    notify("Downloading")
    await st._sleep_sim(FIRMWARE_STEP_S, min_wall=0.01)
    location = fw["location"]
    if urlparse(location).scheme not in ("http", "https", "ftp", "ftps") or "fail" in location:
        notify("DownloadFailed")
        return
    notify("Downloaded")
    if "signature" in fw:
        if "invalid" in location:
            notify("InvalidSignature")
            return
        notify("SignatureVerified")
    install = fw.get("installDateTime")
    if install:
        at = parse_rfc3339(install).timestamp()
        if at > st.now_t():
            notify("InstallScheduled")
            await st._sleep_sim(at - st.now_t(), min_wall=0.01)
    # wait for running transactions to end (L01: install when idle)
    while any(e.tx is not None and not e.tx.ended for e in st.evses.values()):
        await st._sleep_sim(FIRMWARE_STEP_S, min_wall=0.01)
    notify("Installing")
    await st._sleep_sim(FIRMWARE_STEP_S, min_wall=0.01)
    notify("InstallRebooting")
    await asyncio.sleep(0.05)
    st.firmware_version = _next_version(st.firmware_version, location)
    st._fw_installed_request = req
    await st._reboot(boot_reason="FirmwareUpdate", trigger="ResetCommand", stopped="Reboot")


def _next_version(current: str, location: str) -> str:
    name = urlparse(location).path.rsplit("/", 1)[-1]
    for ext in (".bin", ".img", ".tar.gz", ".zip"):
        name = name.removesuffix(ext)
    if name and any(c.isdigit() for c in name):
        return name[:50]
    parts = current.split(".")
    if parts and parts[-1].isdigit():
        parts[-1] = str(int(parts[-1]) + 1)
        return ".".join(parts)
    return current + ".1"


async def get_log(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    stamp = st.clock.now().strftime("%Y%m%dT%H%M%SZ")
    filename = f"{st.id}-{p['logType']}-{stamp}.log"
    st._spawn(_upload_log(st, p))
    return {"status": "Accepted", "filename": filename}


async def _upload_log(st: Firmware, p: dict[str, Any]) -> None:
    req = p["requestId"]
    await asyncio.sleep(0.01)
    st._send_if_online("LogStatusNotification", {"status": "Uploading", "requestId": req})
    await st._sleep_sim(LOG_UPLOAD_S, min_wall=0.01)
    scheme = urlparse(p["log"]["remoteLocation"]).scheme
    status = "Uploaded" if scheme in ("http", "https", "ftp", "ftps") else "UploadFailure"
    st._send_if_online("LogStatusNotification", {"status": status, "requestId": req})


# ====================================================================== tables
def _wrap(action: str, fn: Handler) -> Handler:
    async def run(st: Firmware, payload: dict[str, Any]) -> dict[str, Any]:
        if st.record:
            st.received.append((action, payload))
        delay = st.faults.answer_delay_s
        if delay:
            await asyncio.sleep(delay)
        return await fn(st, payload)

    run.__name__ = fn.__name__
    return run


_COMMON: dict[str, Handler] = {
    "GetVariables": get_variables,
    "SetVariables": set_variables,
    "GetBaseReport": get_base_report,
    "GetReport": get_report,
    "Reset": reset,
    "ChangeAvailability": change_availability,
    "RequestStartTransaction": request_start_transaction,
    "RequestStopTransaction": request_stop_transaction,
    "GetTransactionStatus": get_transaction_status,
    "UnlockConnector": unlock_connector,
    "TriggerMessage": trigger_message,
    "UpdateFirmware": update_firmware,
    "GetLog": get_log,
    "DataTransfer": data_transfer,
    **charging_profiles.HANDLERS,
    **certificates.HANDLERS,
    **local_auth.HANDLERS,
    **reservations.HANDLERS,
    **display.HANDLERS,
    **monitoring.HANDLERS,
    **tariff.HANDLERS,
}
_V21_ONLY: dict[str, Handler] = {
    **charging_profiles.HANDLERS_21,
    **tariff.HANDLERS_21,
    **der.HANDLERS_21,
}

HANDLERS: dict[str, dict[str, Handler]] = {
    "2.0.1": {k: _wrap(k, v) for k, v in _COMMON.items()},
    "2.1": {k: _wrap(k, v) for k, v in {**_COMMON, **_V21_ONLY}.items()},
}


def handlers_for(version: str) -> dict[str, Handler]:
    return HANDLERS[version]


__all__ = ["HANDLERS", "handlers_for"]
