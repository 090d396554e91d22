"""The simulated station's ISO 15118 Plug & Charge messages (station-initiated, OCPP 2.0.1 and 2.1).

The station relays what the EV's ISO 15118 session needs: :func:`get_15118_ev_certificate` passes
the EV's (opaque, base64 EXI) certificate installation / update request on; :func:`get_certificate_status`
asks for the OCSP status of one certificate; :func:`authorize_contract` authorizes an EV's contract,
either with the certificate chain for the CSMS to validate (``central``) or, after validating the
chain against the station's own V2G roots, with the OCSP request data of each certificate
(``local``). Each returns the CSMS's response (or raises the OCPP error), going through the
station's outbox like every other message.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509

from csms.security import pnc

if TYPE_CHECKING:
    from .model import Firmware


class NotOnline(RuntimeError):
    """The station is not connected and accepted: the message was not queued."""


async def _call(st: Firmware, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[dict[str, Any]] = loop.create_future()

    def ok(resp: dict[str, Any]) -> None:
        if not done.done():
            done.set_result(resp)

    def failed(exc: Exception) -> None:
        if not done.done():
            done.set_exception(exc)

    if not st._send_if_online(action, payload, on_result=ok, on_error=failed):
        raise NotOnline(f"station {st.id} is not online")
    async with asyncio.timeout(timeout):
        return await done


def hash_data_of_chain(chain_pem: str, responder_url: str | None = None) -> list[dict[str, str]]:
    """``iso15118CertificateHashData`` for a contract chain (leaf first): the OCSP request data of
    each certificate issued by the next one (at most 4)."""
    certs = x509.load_pem_x509_certificates(chain_pem.encode())
    return [pnc.ocsp_request_data(c, i, responder_url) for c, i in itertools.pairwise(certs)][:4]


async def authorize_contract(
    st: Firmware,
    emaid: str,
    chain_pem: str,
    *,
    validation: Literal["central", "local"] = "central",
    hash_data: list[dict[str, Any]] | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Authorize for ISO 15118 Plug & Charge (C07)."""
    payload: dict[str, Any] = {"idToken": {"idToken": emaid, "type": "eMAID"}}
    if validation == "central":
        payload["certificate"] = chain_pem
    else:
        payload["iso15118CertificateHashData"] = hash_data or hash_data_of_chain(chain_pem)
    return await _call(st, "Authorize", payload, timeout)


async def get_certificate_status(
    st: Firmware, ocsp_request_data: dict[str, Any], timeout: float = 30.0
) -> dict[str, Any]:
    """GetCertificateStatus (M06) for one certificate."""
    return await _call(st, "GetCertificateStatus", {"ocspRequestData": ocsp_request_data}, timeout)


async def get_15118_ev_certificate(
    st: Firmware,
    exi_request: str,
    *,
    action: Literal["Install", "Update"] = "Install",
    schema_version: str = "urn:iso:15118:2:2013:MsgDef",
    maximum_chains: int | None = None,
    prioritized_emaids: list[str] | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Get15118EVCertificate (M02 install / M03 update); ``maximum_chains`` and
    ``prioritized_emaids`` are OCPP 2.1 (ISO 15118-20)."""
    payload: dict[str, Any] = {"iso15118SchemaVersion": schema_version, "action": action, "exiRequest": exi_request}
    if st.version == "2.1":
        if maximum_chains is not None:
            payload["maximumContractCertificateChains"] = maximum_chains
        if prioritized_emaids:
            payload["prioritizedEMAIDs"] = prioritized_emaids
    return await _call(st, "Get15118EVCertificate", payload, timeout)
