"""Local stand-ins for the Plug & Charge back ends, for tests and demos, each an ASGI app served
by uvicorn on 127.0.0.1:

- :class:`OcspResponder`: an OCSP responder (RFC 6960 over HTTP POST) for the CAs of a
  :class:`~simulators.pki.ContractPki`: ``good`` for a certificate the PKI issued, ``revoked``
  after :meth:`OcspResponder.revoke`, ``unknown`` otherwise; each answer is signed by the
  certificate's issuing CA (carried in the response) and valid for ``validity`` (``nextUpdate``).
- :class:`ContractProvider`: a contract-certificate provider speaking the JSON of
  :mod:`csms.pnc.provider`. The EXI is opaque here as in the CSMS: the ``exiResponse`` is a
  deterministic base64 blob derived from the request (so a test can check the CSMS forwarded it
  verbatim), never a real ISO 15118 message.

Both have a ``mode`` to misbehave (``http500``, ``garbage``, ``slow``; the provider also ``fail``,
the responder ``unauthorized`` and ``try_later``) and count the requests they got.

``python -m simulators.pnc_servers --dir DIR`` runs both and writes the contract root to
``DIR/contract-roots.pem`` (for ``pnc.contract_roots_file``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from csms.security.certificates import _public_key_bits

from .pki import ContractPki, Issued

log = structlog.get_logger("simulators.pnc")
_DER = Encoding.DER

OCSP_PATH = "/ocsp"
PROVIDER_PATH = "/ev-certificate"


class LocalServer:
    """An ASGI app on 127.0.0.1 (port 0: a free one) in the running event loop."""

    def __init__(self, app: Any, *, port: int = 0, name: str = "server") -> None:
        self.app, self.port, self.name = app, port, name
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name=self.name)
        while not server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        self._server.force_exit = True  # never wait for a request in flight (the ``slow`` modes hang 30 s)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = self._task = None


def reserve_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- OCSP responder
@dataclass
class OcspResponder:
    pki: ContractPki | None = None
    validity: timedelta = timedelta(hours=1)
    mode: str = "ok"
    revoked: dict[int, datetime] = field(default_factory=dict)
    requests: int = 0

    def revoke(self, cert: x509.Certificate) -> None:
        self.revoked[cert.serial_number] = datetime.now(UTC) - timedelta(minutes=1)

    def _cas(self) -> list[Issued]:
        return [] if self.pki is None else [self.pki.root, self.pki.sub_ca]

    def answer(self, body: bytes) -> bytes:
        """The DER OCSP response to a DER OCSP request."""
        try:
            req = ocsp.load_der_ocsp_request(body)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(
                _DER
            )
        if self.mode in ("unauthorized", "try_later"):
            status = (
                ocsp.OCSPResponseStatus.UNAUTHORIZED
                if self.mode == "unauthorized"
                else ocsp.OCSPResponseStatus.TRY_LATER
            )
            return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(_DER)
        algorithm = req.hash_algorithm
        cas = [
            ca
            for ca in self._cas()
            if hashlib.new(algorithm.name, _public_key_bits(ca.cert)).digest() == req.issuer_key_hash
        ]
        issuer = cas[0] if cas else None
        if issuer is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(_DER)
        issued = {c.cert.serial_number for c in (self.pki.issued if self.pki else [])}
        if req.serial_number in self.revoked:
            status, revoked_at = ocsp.OCSPCertStatus.REVOKED, self.revoked[req.serial_number]
        elif req.serial_number in issued:
            status, revoked_at = ocsp.OCSPCertStatus.GOOD, None
        else:
            status, revoked_at = ocsp.OCSPCertStatus.UNKNOWN, None
        now = datetime.now(UTC).replace(microsecond=0)
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=req.issuer_name_hash,
                issuer_key_hash=req.issuer_key_hash,
                serial_number=req.serial_number,
                algorithm=algorithm,
                cert_status=status,
                this_update=now,
                next_update=now + self.validity,
                revocation_time=revoked_at,
                revocation_reason=x509.ReasonFlags.key_compromise if revoked_at else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.cert)
            .certificates([issuer.cert])
        )
        return builder.sign(issuer.key, hashes.SHA256()).public_bytes(_DER)

    def app(self) -> FastAPI:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

        @app.post(OCSP_PATH)
        async def respond(request: Request) -> Response:
            self.requests += 1
            if self.mode == "http500":
                return Response(status_code=500)
            if self.mode == "garbage":
                return Response(b"not an OCSP response", media_type="application/ocsp-response")
            if self.mode == "slow":
                await asyncio.sleep(30)
            return Response(self.answer(await request.body()), media_type="application/ocsp-response")

        return app


# ---------------------------------------------------------------------------- contract provider
@dataclass
class ContractProvider:
    mode: str = "ok"
    remaining_contracts: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def exi_response_for(exi_request: str) -> str:
        """The deterministic stand-in for the provider's EXI answer to ``exi_request``."""
        digest = hashlib.sha256(exi_request.encode()).digest()
        return base64.b64encode(b"\x80\x98\x02" + b"CertificateInstallationRes" + digest).decode()

    def app(self) -> FastAPI:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

        @app.post(PROVIDER_PATH)
        async def ev_certificate(request: Request) -> Response:
            try:
                body = await request.json()
                exi = body["exiRequest"]
                base64.b64decode(exi, validate=True)
                action = body["action"]
            except (ValueError, KeyError, TypeError):
                return JSONResponse({"error": "bad request"}, status_code=400)
            self.requests.append(body)
            if self.mode == "http500":
                return Response(status_code=500)
            if self.mode == "garbage":
                return Response(b"<html>oops</html>", media_type="text/html")
            if self.mode == "slow":
                await asyncio.sleep(30)
            if self.mode == "fail":
                return JSONResponse(
                    {"status": "Failed", "exiResponse": "", "reasonCode": "NoContract",
                     "additionalInfo": f"no contract for this EV ({action})"}
                )  # fmt: skip
            answer: dict[str, Any] = {"status": "Accepted", "exiResponse": self.exi_response_for(exi)}
            if "maximumContractCertificateChains" in body:
                answer["remainingContracts"] = self.remaining_contracts
            return JSONResponse(answer)

        return app


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def _main(directory: Path, ocsp_port: int, provider_port: int) -> None:
    responder = OcspResponder()
    ocsp_server = LocalServer(responder.app(), port=ocsp_port, name="ocsp")
    await ocsp_server.start()
    responder.pki = ContractPki(ocsp_server.url + OCSP_PATH)
    provider = ContractProvider()
    provider_server = LocalServer(provider.app(), port=provider_port, name="provider")
    await provider_server.start()
    _write(directory / "contract-roots.pem", responder.pki.roots_pem)
    print(f"OCSP responder    {ocsp_server.url}{OCSP_PATH}")
    print(f"contract provider {provider_server.url}{PROVIDER_PATH}  (pnc.contract_provider_url)")
    print(f"contract root     {directory / 'contract-roots.pem'}  (pnc.contract_roots_file)")
    try:
        await asyncio.Event().wait()
    finally:
        await provider_server.stop()
        await ocsp_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("data/pnc"))
    parser.add_argument("--ocsp-port", type=int, default=8701)
    parser.add_argument("--provider-port", type=int, default=8700)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.dir, args.ocsp_port, args.provider_port))


if __name__ == "__main__":
    main()
