"""A - Security: the OCA test cases TC_A_*_CSMS on OCPP 2.0.1 and 2.1, plus negative cases.

Two CSMSs per OCPP version, each with a station CA that signs CSRs: one on security profile 2
(TLS, HTTP Basic) for the Basic-authentication, TLS-server and certificate-update cases, one on
profile 3 (TLS with client certificates). The OCTT-style station connects with exactly the
credentials and TLS settings a test case scripts; each test asserts the CSMS's side: the
handshake's outcome, its answers, the certificate it issues and what it records."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.exceptions import InvalidMessage, InvalidStatus

from csms.api.apitokens import issue_token
from csms.config import SecuritySettings
from tests.conftest import profile3_security
from tests.support import PASSWORD, open_ws

from .conftest import Rig, running_rig, wait_for
from .octt import MODULE, Octt, api_get, command

trustme = pytest.importorskip("trustme")
pytestmark = MODULE
TLS_REFUSED = (ssl.SSLError, ConnectionError, InvalidMessage)
_ids = iter(range(1, 10_000))


class TlsRig:
    def __init__(self, rig: Rig, ca: Any, profile: int) -> None:
        self.rig, self.ca, self.profile = rig, ca, profile

    def context(self, client_cn: str | None = None, max_tls: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if max_tls is not None:
            ctx.maximum_version = max_tls
        self.ca.configure_trust(ctx)
        if client_cn is not None:
            self.ca.issue_cert(client_cn, common_name=client_cn).configure_cert(ctx)
        return ctx

    async def new_id(self, password: str | None = PASSWORD) -> str:
        station_id = f"OCTT-A{next(_ids):04d}"
        await self.rig.central.register_station(station_id, password)
        return station_id

    async def open(
        self, station_id: str, password: str | None = PASSWORD, *, ctx: ssl.SSLContext | None = None, **answers: Any
    ) -> Octt:
        ws = await open_ws(
            self.rig.port, station_id, password, protocols=(f"ocpp{self.rig.version}",), ssl=ctx or self.context()
        )
        return Octt(ws, station_id, {"GetChargingProfiles": {"status": "NoProfiles"}, **answers})


def _ca_files(tmp: Path, ca: Any) -> dict[str, Path]:
    ca_file, key_file = tmp / "station-ca.pem", tmp / "station-ca.key"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.private_key_pem.write_to_path(str(key_file))
    return {"station_ca_cert_file": ca_file, "station_ca_key_file": key_file}


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["2.0.1", "2.1"])
async def versions(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def p2(versions: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TlsRig]:
    tmp = tmp_path_factory.mktemp(f"p2-{versions}")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp / "server.pem", tmp / "server.key"
    for blob in server.cert_chain_pems:
        blob.write_to_path(str(cert), append=True)
    server.private_key_pem.write_to_path(str(key))
    security = SecuritySettings(profile=2, tls_cert_file=cert, tls_key_file=key, **_ca_files(tmp, ca))
    async with running_rig(tmp, versions, security=security, call_timeout=5) as rig:
        yield TlsRig(rig, ca, 2)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def p3(versions: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TlsRig]:
    tmp = tmp_path_factory.mktemp(f"p3-{versions}")
    ca = trustme.CA()
    security = profile3_security(tmp, ca, **_ca_files(tmp, ca))
    async with running_rig(tmp, versions, security=security, call_timeout=5) as rig:
        yield TlsRig(rig, ca, 3)


def _csr(common_name: str) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


async def _certificate_events(rig: Rig, station_id: str) -> list[dict[str, Any]]:
    page = await api_get(rig, f"/api/v1/stations/{station_id}/events", kind="StationCertificate")
    return [e["payload"] for e in page["items"]]


# ------------------------------------------------------------------------------ A00 Basic authentication
async def test_TC_A_01_CSMS_basic_auth_valid_username_password(p2: TlsRig) -> None:
    sid = await p2.new_id()
    st = await p2.open(sid)
    assert st.ws.subprotocol == f"ocpp{p2.rig.version}"
    assert (await st.boot())["status"] == "Accepted"
    await wait_for(lambda: p2.rig.central.state(sid).connected)
    await st.close()


async def test_TC_A_02_CSMS_basic_auth_username_not_charging_station_id(p2: TlsRig) -> None:
    sid, other = await p2.new_id(), await p2.new_id()
    from tests.support import basic

    headers = basic(other, PASSWORD)  # right password, but of another station
    from websockets.asyncio.client import connect

    with pytest.raises(InvalidStatus) as refused:
        await connect(
            f"wss://127.0.0.1:{p2.rig.port}/ocpp/{sid}",
            subprotocols=[f"ocpp{p2.rig.version}"],  # type: ignore[list-item]
            additional_headers=headers,
            ssl=p2.context(),
            open_timeout=5,
        )
    assert refused.value.response.status_code == 401
    assert not p2.rig.central.state(sid).connected


async def test_TC_A_03_CSMS_basic_auth_invalid_password(p2: TlsRig) -> None:
    sid = await p2.new_id()
    with pytest.raises(InvalidStatus) as refused:
        await p2.open(sid, "not-the-password-0123456789")
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as missing:
        await p2.open(sid, None)  # no Authorization header at all
    assert missing.value.response.status_code == 401


# ------------------------------------------------------------------------------ A00 TLS
async def test_TC_A_04_CSMS_tls_server_certificate_valid(p2: TlsRig) -> None:
    sid = await p2.new_id()
    st = await p2.open(sid)
    peer = st.ws.transport.get_extra_info("peercert")
    assert ("IP Address", "127.0.0.1") in peer["subjectAltName"]  # the CSMS's own certificate, for its address
    assert st.ws.transport.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    assert (await st.boot())["status"] == "Accepted"
    await st.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
async def test_TC_A_06_CSMS_tls_version_too_low(p2: TlsRig) -> None:
    from csms.server.tls import server_context

    listening = server_context(p2.rig.central.settings.security)
    assert listening is not None and listening.minimum_version == ssl.TLSVersion.TLSv1_2
    sid = await p2.new_id()
    old = p2.context()
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises(TLS_REFUSED):
        await p2.open(sid, ctx=old)
    assert not p2.rig.central.state(sid).connected
    st = await p2.open(sid, ctx=p2.context(max_tls=ssl.TLSVersion.TLSv1_2))  # TLS 1.2 is enough
    assert (await st.boot())["status"] == "Accepted"
    await st.close()


async def test_TC_A_07_CSMS_tls_client_certificate_valid(p3: TlsRig) -> None:
    sid = await p3.new_id(password=None)
    st = await p3.open(sid, None, ctx=p3.context(client_cn=sid))
    assert (await st.boot())["status"] == "Accepted"
    live = await api_get(p3.rig, f"/api/v1/stations/{sid}/status")
    assert live["client_certificate"] is not None
    await st.close()


async def test_TC_A_08_CSMS_tls_client_certificate_invalid(p3: TlsRig) -> None:
    sid = await p3.new_id(password=None)
    stranger = trustme.CA()  # a certificate the CSMS does not trust
    ctx = p3.context()
    stranger.issue_cert(sid, common_name=sid).configure_cert(ctx)
    with pytest.raises(TLS_REFUSED):
        await p3.open(sid, None, ctx=ctx)
    with pytest.raises((*TLS_REFUSED, InvalidStatus)):
        await p3.open(sid, None, ctx=p3.context())  # no client certificate at all
    # a trusted certificate issued to another station id is refused too
    other = await p3.new_id(password=None)
    with pytest.raises(InvalidStatus) as wrong_cn:
        await p3.open(sid, None, ctx=p3.context(client_cn=other))
    assert wrong_cn.value.response.status_code in (401, 403)
    assert not p3.rig.central.state(sid).connected


# ------------------------------------------------------------------------------ A01 password update
async def _admin(rig: Rig) -> str:
    token, _ = await issue_token(rig.store, f"admin-{next(_ids)}", "admin")
    return token


def _set_answer(status: str) -> Any:
    def answer(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "setVariableResult": [
                {"attributeStatus": status, "component": d["component"], "variable": d["variable"]}
                for d in request["setVariableData"]
            ]
        }

    return answer


async def _set_password(p2: TlsRig, st: Octt, new: str) -> dict[str, Any]:
    body = {"variables": [{"component": "SecurityCtrlr", "variable": "BasicAuthPassword", "value": new}]}
    out = await command(p2.rig, st, "SetVariables", body)
    (sent,) = st.got("SetVariables")[0]["setVariableData"]
    assert sent["component"] == {"name": "SecurityCtrlr"} and sent["variable"] == {"name": "BasicAuthPassword"}
    return out["response"]["setVariableResult"][0]  # type: ignore[no-any-return]


async def test_TC_A_09_CSMS_update_basic_auth_password_accepted(p2: TlsRig) -> None:
    sid = await p2.new_id()
    st = await p2.open(sid, SetVariables=_set_answer("Accepted"))
    assert (await st.boot())["status"] == "Accepted"
    new = "NewPassword-0123456789"
    assert (await _set_password(p2, st, new))["attributeStatus"] == "Accepted"
    # the operator records the password the station accepted (registry), then the station reconnects with it
    async with httpx.AsyncClient(base_url=p2.rig.url, headers={"Authorization": f"Bearer {await _admin(p2.rig)}"}) as c:
        assert (await c.patch(f"/api/v1/stations/{sid}", json={"password": new})).status_code == 200
    await st.close()
    await wait_for(lambda: not p2.rig.central.state(sid).connected)
    with pytest.raises(InvalidStatus) as old:
        await p2.open(sid, PASSWORD)
    assert old.value.response.status_code == 401
    again = await p2.open(sid, new)
    assert (await again.boot())["status"] == "Accepted"
    await again.close()


async def test_TC_A_10_CSMS_update_basic_auth_password_rejected(p2: TlsRig) -> None:
    sid = await p2.new_id()
    st = await p2.open(sid, SetVariables=_set_answer("Rejected"))
    assert (await st.boot())["status"] == "Accepted"
    assert (await _set_password(p2, st, "NewPassword-0123456789"))["attributeStatus"] == "Rejected"
    await st.close()
    again = await p2.open(sid, PASSWORD)  # nothing changed: the old password still works
    assert (await again.boot())["status"] == "Accepted"
    await again.close()


# ------------------------------------------------------------------------------ A02/A03 certificate update
async def _sign(p2: TlsRig, cert_type: str | None, cn: str | None = None) -> tuple[Octt, dict[str, Any], list[Any]]:
    sid = await p2.new_id()
    signed: list[dict[str, Any]] = []

    def on_signed(p: dict[str, Any]) -> dict[str, Any]:
        signed.append(p)
        return {"status": "Accepted"}

    st = await p2.open(sid, TriggerMessage={"status": "Accepted"}, CertificateSigned=on_signed)
    assert (await st.boot())["status"] == "Accepted"
    trigger = "SignChargingStationCertificate" if cert_type != "V2GCertificate" else "SignV2GCertificate"
    out = await command(p2.rig, st, "TriggerMessage", {"requested_message": trigger})
    assert out["status"] == "Accepted" and st.got("TriggerMessage") == [{"requestedMessage": trigger}]
    pem, _key = _csr(cn or sid)
    request: dict[str, Any] = {"csr": pem}
    if cert_type is not None:
        request["certificateType"] = cert_type
    reply = await st.call("SignCertificate", request)
    return st, reply, signed


async def test_TC_A_11_CSMS_update_station_certificate_success(p2: TlsRig) -> None:
    st, reply, signed = await _sign(p2, "ChargingStationCertificate")
    assert reply["status"] == "Accepted"
    await wait_for(lambda: signed)
    chain = x509.load_pem_x509_certificates(signed[0]["certificateChain"].encode())
    chain[0].verify_directly_issued_by(x509.load_pem_x509_certificate(p2.ca.cert_pem.bytes()))
    assert chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == st.station_id
    events = await wait_for(lambda: _certificate_events(p2.rig, st.station_id))
    assert events[0]["step"] == "CertificateSigned" and events[0]["status"] == "Accepted"
    await st.close()


async def test_TC_A_14_CSMS_update_station_certificate_invalid_csr(p2: TlsRig) -> None:
    st, reply, signed = await _sign(p2, "ChargingStationCertificate", cn="SOMEONE-ELSE")
    assert reply["status"] == "Rejected" and reply["statusInfo"]["reasonCode"] == "InvalidCSR"
    events = await wait_for(lambda: _certificate_events(p2.rig, st.station_id))
    assert events[0]["step"] == "SignCertificate" and events[0]["status"] == "Rejected"
    assert signed == []
    garbage = await st.call(
        "SignCertificate", {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"}
    )
    assert garbage["status"] == "Rejected" and garbage["statusInfo"]["reasonCode"] == "InvalidCSR"
    await st.close()


async def test_v2g_certificate_csr_is_rejected_unsupported(p2: TlsRig) -> None:
    """TC_A_12 / TC_A_13 need a V2G PKI; this CSMS signs only station certificates and says so."""
    st, reply, signed = await _sign(p2, "V2GCertificate")
    assert reply["status"] == "Rejected" and reply["statusInfo"]["reasonCode"] == "UnsupportedCertType"
    assert signed == []
    await st.close()


# ------------------------------------------------------------------------------ A04 security events
async def test_security_event_notification_is_recorded(p2: TlsRig) -> None:
    sid = await p2.new_id()
    st = await p2.open(sid)
    assert (await st.boot())["status"] == "Accepted"
    from .octt import now

    event = {"type": "TamperDetectionActivated", "timestamp": now(), "techInfo": "door opened"}
    assert await st.call("SecurityEventNotification", event) == {}
    page = await api_get(p2.rig, f"/api/v1/stations/{sid}/security-events")
    assert [(e["type"], e["tech_info"]) for e in page["items"]] == [("TamperDetectionActivated", "door opened")]
    await st.close()


async def test_plain_ws_is_refused_by_a_tls_csms(p2: TlsRig) -> None:
    sid = await p2.new_id()
    with pytest.raises((InvalidMessage, ConnectionError, OSError, TimeoutError)):
        await open_ws(p2.rig.port, sid, PASSWORD, protocols=(f"ocpp{p2.rig.version}",))
    assert not p2.rig.central.state(sid).connected
