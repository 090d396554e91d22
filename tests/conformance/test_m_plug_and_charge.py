"""ISO 15118 Plug & Charge over real sockets on OCPP 2.0.1 and 2.1: the bundled station simulator
relays an EV's messages, the CSMS asks a real OCSP responder and a contract-certificate provider
(both local servers from simulators/pnc_servers.py, over HTTP) with a local test PKI.

OCA test cases TC_M_24 (GetCertificateStatus), TC_M_26 / TC_M_28 / TC_M_100 (Get15118EVCertificate
install, update, ISO 15118-20), TC_C_50 / TC_C_51 / TC_C_52 (Authorize with contract
certificates), plus the negative cases: revoked, expired, foreign and tampered chains, an eMAID
that is not the certificate's, OCSP responder and provider unreachable, failing, slow or answering
garbage, malformed payloads."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509 import ocsp

from csms.config import PncSettings
from simulators import pnc as sim_pnc
from simulators.pki import ContractPki
from simulators.pnc_servers import OCSP_PATH, PROVIDER_PATH, ContractProvider, LocalServer, OcspResponder, reserve_port
from tests.support import open_ws, raw_exchange

from .conftest import Rig, running_rig, wait_for

EMAID = "DE-ABC-C12345678-9"
EXI = base64.b64encode(b"\x80\x98\x02\x10 opaque EXI CertificateInstallationReq").decode()


@dataclass
class Pnc:
    rig: Rig
    pki: ContractPki
    responder: OcspResponder
    provider: ContractProvider


async def _servers() -> tuple[OcspResponder, LocalServer, ContractProvider, LocalServer]:
    responder = OcspResponder()
    ocsp_server = LocalServer(responder.app(), name="ocsp")
    await ocsp_server.start()
    responder.pki = ContractPki(ocsp_server.url + OCSP_PATH)
    provider = ContractProvider()
    provider_server = LocalServer(provider.app(), name="provider")
    await provider_server.start()
    return responder, ocsp_server, provider, provider_server


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@contextlib.asynccontextmanager
async def _pnc_rig(tmp_path: Path, version: str, **pnc_settings: Any) -> AsyncIterator[Pnc]:
    responder, ocsp_server, provider, provider_server = await _servers()
    assert responder.pki is not None
    roots = _write(tmp_path / "contract-roots.pem", responder.pki.roots_pem)
    settings = PncSettings(
        **{
            "contract_provider_url": provider_server.url + PROVIDER_PATH,
            "contract_roots_file": roots,
            "contract_provider_timeout": 2.0,
            "ocsp_timeout": 2.0,
            **pnc_settings,
        }
    )
    try:
        async with running_rig(tmp_path, version, pnc=settings, call_timeout=5) as rig:
            await rig.store.upsert_id_token(EMAID, "eMAID", status="Accepted")
            yield Pnc(rig, responder.pki, responder, provider)
    finally:
        await provider_server.stop()
        await ocsp_server.stop()


@pytest.fixture(params=["2.0.1", "2.1"])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pnc]:
    async with _pnc_rig(tmp_path, request.param) as e:
        yield e


async def _events(rig: Rig, message: str) -> list[dict[str, Any]]:
    rows = await rig.store.list_station_events("FE-0001", kind="PlugAndCharge")
    return [r.payload for r in rows if r.payload["message"] == message]


# ---------------------------------------------------------------------------- GetCertificateStatus
async def test_TC_M_24_get_certificate_status_success_and_cached_until_next_update(env: Pnc) -> None:
    st = await env.rig.station()
    leaf = env.pki.contract(EMAID)
    data = sim_pnc.hash_data_of_chain(env.pki.chain_pem(leaf))[0]
    reply = await sim_pnc.get_certificate_status(st, data)
    assert reply["status"] == "Accepted", reply
    answer = ocsp.load_der_ocsp_response(base64.b64decode(reply["ocspResult"]))
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.serial_number == leaf.cert.serial_number
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert env.responder.requests == 1
    again = await sim_pnc.get_certificate_status(st, data)
    assert again == reply and env.responder.requests == 1  # served from the cache until nextUpdate
    events = await _events(env.rig, "GetCertificateStatus")
    assert [e["cached"] for e in events] == [True, False] and events[1]["certStatus"] == "good"
    # the station's own V2G (SECC) certificate, as in the OCTT case
    from simulators.pki import issue

    secc = issue("FE-0001", env.pki.sub_ca, ca=False, ocsp_url=env.pki.ocsp_url)
    env.pki.issued.append(secc)
    own = await sim_pnc.get_certificate_status(st, sim_pnc.hash_data_of_chain(secc.pem + env.pki.sub_ca.pem)[0])
    own_answer = ocsp.load_der_ocsp_response(base64.b64decode(own["ocspResult"]))
    assert own["status"] == "Accepted" and own_answer.serial_number == secc.cert.serial_number
    # a revoked certificate is still Accepted: the station judges the OCSP result
    other = env.pki.contract("DE-ABC-C00000002-1")
    env.responder.revoke(other.cert)
    revoked = await sim_pnc.get_certificate_status(st, sim_pnc.hash_data_of_chain(env.pki.chain_pem(other))[0])
    assert revoked["status"] == "Accepted"
    rev = ocsp.load_der_ocsp_response(base64.b64decode(revoked["ocspResult"]))
    assert rev.certificate_status == ocsp.OCSPCertStatus.REVOKED


async def test_ocsp_answer_is_fetched_again_after_its_next_update(tmp_path: Path) -> None:
    async with _pnc_rig(tmp_path, "2.1") as env:
        env.responder.validity = timedelta(seconds=1)
        st = await env.rig.station()
        data = sim_pnc.hash_data_of_chain(env.pki.chain_pem(env.pki.contract(EMAID)))[0]
        assert (await sim_pnc.get_certificate_status(st, data))["status"] == "Accepted"
        await asyncio.sleep(1.2)
        assert (await sim_pnc.get_certificate_status(st, data))["status"] == "Accepted"
        assert env.responder.requests == 2


async def test_get_certificate_status_failures_name_the_reason(env: Pnc) -> None:
    st = await env.rig.station()
    data = sim_pnc.hash_data_of_chain(env.pki.chain_pem(env.pki.contract(EMAID)))[0]

    async def reason(d: dict[str, Any]) -> str:
        reply = await sim_pnc.get_certificate_status(st, d)
        assert reply["status"] == "Failed" and "ocspResult" not in reply, reply
        return str(reply["statusInfo"]["reasonCode"])

    closed = f"http://127.0.0.1:{reserve_port()}/ocsp"
    assert await reason({**data, "responderURL": closed}) == "OCSPUnreachable"
    assert await reason({**data, "responderURL": "ldap://example/ocsp"}) == "OCSPUnreachable"
    assert await reason({**data, "issuerKeyHash": "zz"}) == "InvalidHashData"
    assert await reason({**data, "issuerNameHash": "ab" * 8}) == "InvalidHashData"  # not 32 bytes
    env.responder.mode = "http500"
    assert await reason(data) == "OCSPUnreachable"
    env.responder.mode = "garbage"
    assert await reason(data) == "OCSPBadResponse"
    env.responder.mode = "try_later"
    assert await reason(data) == "OCSPNotSuccessful"
    env.responder.mode = "ok"
    foreign = ContractPki(data["responderURL"], name="Other")  # a CA the responder does not serve
    assert (
        await reason(sim_pnc.hash_data_of_chain(foreign.chain_pem(foreign.contract(EMAID)))[0]) == "OCSPNotSuccessful"
    )
    env.responder.mode = "slow"
    assert await reason(data) == "OCSPTimeout"  # ocsp_timeout 2 s
    events = await _events(env.rig, "GetCertificateStatus")
    assert all(e["status"] == "Failed" for e in events) and len(events) == 9


# ---------------------------------------------------------------------------- Authorize (C07)
async def test_TC_C_52_authorization_with_contract_certificate_central_validation_accepted(env: Pnc) -> None:
    st = await env.rig.station()
    leaf = env.pki.contract(EMAID)
    reply = await sim_pnc.authorize_contract(st, EMAID, env.pki.chain_pem(leaf), validation="central")
    assert reply["certificateStatus"] == "Accepted" and reply["idTokenInfo"]["status"] == "Accepted", reply
    assert env.responder.requests == 2  # the leaf and the sub-CA
    (event,) = await _events(env.rig, "Authorize")
    assert event["validation"] == "central" and event["certificateStatus"] == "Accepted"


async def test_TC_C_50_local_validation_accepted_and_TC_C_51_rejected_revoked(env: Pnc) -> None:
    st = await env.rig.station()
    leaf = env.pki.contract(EMAID)
    ok = await sim_pnc.authorize_contract(st, EMAID, env.pki.chain_pem(leaf), validation="local")
    assert ok["certificateStatus"] == "Accepted" and ok["idTokenInfo"]["status"] == "Accepted", ok
    assert sent_authorize(st)[-1]["iso15118CertificateHashData"][0]["serialNumber"] == format(
        leaf.cert.serial_number, "x"
    )
    revoked_leaf = env.pki.contract(EMAID)
    env.responder.revoke(revoked_leaf.cert)
    refused = await sim_pnc.authorize_contract(st, EMAID, env.pki.chain_pem(revoked_leaf), validation="local")
    assert refused["certificateStatus"] == "CertificateRevoked", refused
    assert refused["idTokenInfo"]["status"] == "Invalid"
    central = await sim_pnc.authorize_contract(st, EMAID, env.pki.chain_pem(revoked_leaf), validation="central")
    assert central["certificateStatus"] == "CertificateRevoked"


def sent_authorize(st: Any) -> list[dict[str, Any]]:
    return [p for a, p in st.sent if a == "Authorize"]


async def test_contract_chain_errors(env: Pnc) -> None:
    st = await env.rig.station()

    async def status(chain: str, emaid: str = EMAID) -> str:
        reply = await sim_pnc.authorize_contract(st, emaid, chain, validation="central")
        if reply["certificateStatus"] != "Accepted":
            assert reply["idTokenInfo"]["status"] == "Invalid"
        return str(reply["certificateStatus"])

    expired = env.pki.contract(EMAID, not_before=datetime.now(UTC) - timedelta(days=10), days=5)
    assert await status(env.pki.chain_pem(expired)) == "CertificateExpired"
    foreign = ContractPki(env.pki.ocsp_url, name="Other")
    assert await status(foreign.chain_pem(foreign.contract(EMAID))) == "CertChainError"
    assert (
        await status("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n") == "CertChainError"
    )
    # a leaf whose issuer name is the sub-CA's but signed by another key
    from simulators.pki import Issued, issue

    impostor_ca = issue("Test MO Sub-CA", foreign.root, ca=True)
    forged = issue(EMAID, Issued(impostor_ca.cert, impostor_ca.key), ca=False, ocsp_url=env.pki.ocsp_url)
    assert await status(forged.pem + env.pki.sub_ca.pem) == "SignatureError"
    leaf = env.pki.contract(EMAID)
    assert await status(env.pki.chain_pem(leaf), emaid="NL-XYZ-C99999999-9") == "CertChainError"  # not its eMAID
    unknown = env.pki.contract(EMAID)
    env.pki.issued.remove(unknown)  # the responder does not know it
    assert await status(env.pki.chain_pem(unknown)) == "CertChainError"
    env.responder.mode = "http500"
    assert await status(env.pki.chain_pem(env.pki.contract(EMAID))) == "NoCertificateAvailable"


async def test_no_contract_roots_is_cert_chain_error_and_plain_authorize_unchanged(
    tmp_path: Path,
) -> None:
    async with _pnc_rig(tmp_path, "2.0.1", contract_roots_file=None) as env:
        st = await env.rig.station()
        leaf = env.pki.contract(EMAID)
        reply = await sim_pnc.authorize_contract(st, EMAID, env.pki.chain_pem(leaf), validation="central")
        assert reply["certificateStatus"] == "CertChainError"
        plain = await sim_pnc._call(st, "Authorize", {"idToken": {"idToken": EMAID, "type": "eMAID"}}, 10)
        assert plain == {"idTokenInfo": {"status": "Accepted"}}  # no certificateStatus without certificate data


# ---------------------------------------------------------------------------- Get15118EVCertificate
async def test_TC_M_26_certificate_installation_ev_and_TC_M_28_update(env: Pnc) -> None:
    st = await env.rig.station()
    install = await sim_pnc.get_15118_ev_certificate(st, EXI, action="Install")
    assert install == {"status": "Accepted", "exiResponse": ContractProvider.exi_response_for(EXI)}
    update_exi = base64.b64encode(b"\x80\x98\x02 CertificateUpdateReq").decode()
    update = await sim_pnc.get_15118_ev_certificate(st, update_exi, action="Update")
    assert update["exiResponse"] == ContractProvider.exi_response_for(update_exi)
    first, second = env.provider.requests
    assert first == {
        "stationId": "FE-0001",
        "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
        "action": "Install",
        "exiRequest": EXI,
    }
    assert second["action"] == "Update" and second["exiRequest"] == update_exi
    events = await _events(env.rig, "Get15118EVCertificate")
    assert [(e["action"], e["status"]) for e in events] == [("Update", "Accepted"), ("Install", "Accepted")]


async def test_TC_M_100_certificate_installation_ev_iso15118_20(tmp_path: Path) -> None:
    async with _pnc_rig(tmp_path, "2.1") as env:
        env.provider.remaining_contracts = 2
        st = await env.rig.station()
        reply = await sim_pnc.get_15118_ev_certificate(
            st, EXI, schema_version="urn:iso:std:iso:15118:-20:CommonMessages", maximum_chains=3,
            prioritized_emaids=[EMAID],
        )  # fmt: skip
        assert reply == {
            "status": "Accepted",
            "exiResponse": ContractProvider.exi_response_for(EXI),
            "remainingContracts": 2,
        }
        assert env.provider.requests[0]["maximumContractCertificateChains"] == 3
        assert env.provider.requests[0]["prioritizedEMAIDs"] == [EMAID]


async def test_provider_failures_are_failed_with_the_reason(env: Pnc) -> None:
    st = await env.rig.station()

    async def reason() -> str:
        reply = await sim_pnc.get_15118_ev_certificate(st, EXI)
        assert reply["status"] == "Failed" and reply["exiResponse"] == "", reply
        return str(reply["statusInfo"]["reasonCode"])

    env.provider.mode = "fail"
    assert await reason() == "NoContract"
    env.provider.mode = "http500"
    assert await reason() == "ProviderError"
    env.provider.mode = "garbage"
    assert await reason() == "ProviderBadAnswer"
    env.provider.mode = "slow"
    assert await reason() == "ProviderTimeout"  # contract_provider_timeout 2 s


async def test_no_provider_or_provider_unreachable(tmp_path: Path) -> None:
    async with _pnc_rig(tmp_path, "2.1", contract_provider_url=None) as env:
        st = await env.rig.station()
        reply = await sim_pnc.get_15118_ev_certificate(st, EXI)
        assert reply["status"] == "Failed" and reply["statusInfo"]["reasonCode"] == "NoProvider"
    async with _pnc_rig(tmp_path / "b", "2.0.1", contract_provider_url=f"http://127.0.0.1:{reserve_port()}/x") as env:
        st = await env.rig.station()
        reply = await sim_pnc.get_15118_ev_certificate(st, EXI)
        assert reply["status"] == "Failed" and reply["statusInfo"]["reasonCode"] == "ProviderUnreachable"


# ---------------------------------------------------------------------------- malformed payloads
@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
async def test_malformed_pnc_messages_get_the_callerror_the_schema_names(tmp_path: Path, version: str) -> None:
    async with _pnc_rig(tmp_path, version) as env:
        ws = await open_ws(env.rig.port, "FE-0002", protocols=(f"ocpp{version}",))
        boot = {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}
        assert (await raw_exchange(ws, json.dumps([2, "b", "BootNotification", boot])))[0] == 3

        async def code(action: str, payload: Any) -> str:
            reply = await raw_exchange(ws, json.dumps([2, "m", action, payload]), timeout=5)
            assert reply[0] == 4, reply
            return str(reply[2])

        no_exi = {"iso15118SchemaVersion": "x", "action": "Install"}
        assert await code("Get15118EVCertificate", no_exi) == "OccurrenceConstraintViolation"
        bad_action = {**no_exi, "action": "Delete", "exiRequest": EXI}
        assert await code("Get15118EVCertificate", bad_action) == "PropertyConstraintViolation"
        too_long = {**no_exi, "exiRequest": "A" * 20_000}
        assert await code("Get15118EVCertificate", too_long) == "PropertyConstraintViolation"
        data = {"hashAlgorithm": "MD5", "issuerNameHash": "a", "issuerKeyHash": "b", "serialNumber": "1",
                "responderURL": "http://x"}  # fmt: skip
        assert await code("GetCertificateStatus", {"ocspRequestData": data}) == "PropertyConstraintViolation"
        assert await code("GetCertificateStatus", {}) == "OccurrenceConstraintViolation"
        five = [{**data, "hashAlgorithm": "SHA256"}] * 5
        auth = {"idToken": {"idToken": EMAID, "type": "eMAID"}, "iso15118CertificateHashData": five}
        assert await code("Authorize", auth) == "OccurrenceConstraintViolation"
        assert await code("Authorize", {**auth, "iso15118CertificateHashData": "x"}) == "TypeConstraintViolation"
        assert env.provider.requests == [] and env.responder.requests == 0
        await ws.close()


async def test_pnc_outcomes_are_emitted(env: Pnc) -> None:
    seen: list[dict[str, Any]] = []
    env.rig.central.subscribe(lambda kind, sid, data: seen.append(data) if kind == "pnc" else None)
    st = await env.rig.station()
    await sim_pnc.get_15118_ev_certificate(st, EXI)
    await wait_for(lambda: bool(seen))
    assert seen[0]["message"] == "Get15118EVCertificate" and seen[0]["status"] == "Accepted"


# ---------------------------------------------------------------------------- API and CLI
async def test_api_status_checks_and_events(tmp_path: Path) -> None:
    async with _pnc_rig(tmp_path, "2.1") as env:
        st = await env.rig.station()
        leaf = env.pki.contract(EMAID)
        data = sim_pnc.hash_data_of_chain(env.pki.chain_pem(leaf))[0]
        await sim_pnc.get_certificate_status(st, data)
        async with env.rig.client(env.rig.read_token) as c:
            status = (await c.get("/api/v1/pnc")).json()
            events = (await c.get("/api/v1/stations/FE-0001/pnc/events")).json()
            forbidden = await c.post("/api/v1/pnc/contract-check", json={"certificate": env.pki.chain_pem(leaf)})
        assert status["contract_provider_url"].endswith(PROVIDER_PATH)
        assert [r["subject"] for r in status["contract_roots"]] == [env.pki.root.cert.subject.rfc4514_string()]
        assert [e["serialNumber"] for e in status["ocsp_cache"]] == [data["serialNumber"]]
        assert events[0]["kind"] == "PlugAndCharge" and events[0]["payload"]["message"] == "GetCertificateStatus"
        assert forbidden.status_code == 403
        async with env.rig.client() as c:
            ok = (await c.post("/api/v1/pnc/contract-check", json={"certificate": env.pki.chain_pem(leaf)})).json()
            other = (
                await c.post(
                    "/api/v1/pnc/contract-check", json={"certificate": env.pki.chain_pem(leaf), "emaid": "NL-X-1"}
                )
            ).json()
            bad = await c.post("/api/v1/pnc/contract-check", json={"certificate": "nope"})
            body = {
                "issuer_name_hash": data["issuerNameHash"],
                "issuer_key_hash": data["issuerKeyHash"],
                "serial_number": data["serialNumber"],
                "responder_url": data["responderURL"],
            }
            good = (await c.post("/api/v1/pnc/ocsp-check", json=body)).json()
            closed = {**body, "responder_url": f"http://127.0.0.1:{reserve_port()}/"}
            down = (await c.post("/api/v1/pnc/ocsp-check", json=closed)).json()
            not_hex = await c.post("/api/v1/pnc/ocsp-check", json={**body, "serial_number": "xyz"})
        assert ok == {"certificate_status": "Accepted", "emaid": EMAID, "notes": []}
        assert other["certificate_status"] == "CertChainError"
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_certificate"
        assert good["status"] == "Accepted" and good["cert_status"] == "good" and good["cached"] is True
        assert down["status"] == "Failed" and down["reason"] == "OCSPUnreachable"
        assert not_hex.status_code == 422


async def test_cli_pnc(tmp_path: Path) -> None:
    from tests.cli.conftest import Cli

    from .test_d_local_auth_list import _CliEnv, rig_path

    async with _pnc_rig(tmp_path, "2.0.1") as env:
        st = await env.rig.station()
        cli = Cli(_CliEnv(env.rig), rig_path(env.rig))  # type: ignore[arg-type]
        r = await cli("pnc", "status")
        assert r.exit_code == 0 and "Test V2G Root CA" in r.stdout and PROVIDER_PATH in r.stdout, r.output
        leaf = env.pki.contract(EMAID)
        env.responder.revoke(leaf.cert)
        chain = _write(tmp_path / "chain.pem", env.pki.chain_pem(leaf))
        r = await cli("pnc", "check-contract", str(chain))
        assert r.exit_code == 0 and "CertificateRevoked" in r.stdout, r.output
        await sim_pnc.authorize_contract(st, EMAID, env.pki.chain_pem(leaf), validation="local")
        r = await cli("pnc", "events", "FE-0001")
        assert r.exit_code == 0 and "Authorize" in r.stdout and "CertificateRevoked" in r.stdout, r.output
        data = sim_pnc.hash_data_of_chain(env.pki.chain_pem(leaf))[0]
        r = await cli(
            "pnc", "check-ocsp", "--issuer-name-hash", data["issuerNameHash"], "--issuer-key-hash",
            data["issuerKeyHash"], "--serial", data["serialNumber"], "--responder", data["responderURL"],
        )  # fmt: skip
        assert r.exit_code == 0 and "revoked" in r.stdout, r.output


async def test_console_station_page_shows_pnc_outcomes(env: Pnc) -> None:
    import httpx

    from tests.web.test_session import _sign_in

    st = await env.rig.station()
    leaf = env.pki.contract(EMAID)
    env.responder.revoke(leaf.cert)
    await sim_pnc.authorize_contract(st, EMAID, env.pki.chain_pem(leaf), validation="local")
    await sim_pnc.get_15118_ev_certificate(st, EXI)
    async with httpx.AsyncClient(base_url=env.rig.url) as c:
        await _sign_in(c, env.rig.read_token)
        page = (await c.get("/console/stations/FE-0001")).text
    assert 'id="pnc-events"' in page
    assert "CertificateRevoked" in page and "Get15118EVCertificate" in page
