"""OCSP over HTTP (RFC 6960 appendix A): POST the DER request to the responder named in the
OCPP ``OCSPRequestDataType`` and keep each successful answer until its ``nextUpdate``.

The cache key is the certificate id (hash algorithm, issuer name and key hashes, serial) plus the
responder URL; answers without ``nextUpdate`` are not kept (the responder may know better at any
time). Time is the wall clock: OCSP answers, like certificates, are about real time.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from csms.pnc import tls_context
from csms.security.pnc import CertId, OcspAnswer, OcspError, build_ocsp_request, read_ocsp_response

log = structlog.get_logger("csms.pnc.ocsp")

CONTENT_TYPE = "application/ocsp-request"


@dataclass(frozen=True)
class OcspResult:
    der: bytes
    answer: OcspAnswer
    cached: bool

    @property
    def ocsp_result(self) -> str:
        """``GetCertificateStatusResponse.ocspResult``: the DER OCSPResponse, base64."""
        return base64.b64encode(self.der).decode()


class OcspClient:
    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_entries: int = 10_000,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.timeout = timeout
        self.max_entries = max_entries
        self.now = now
        self._cache: OrderedDict[tuple[Any, ...], tuple[bytes, OcspAnswer]] = OrderedDict()
        self.fetches = 0

    def cached(self) -> list[dict[str, Any]]:
        """What the cache holds now (for the operator)."""
        now = self.now()
        out = []
        for (alg, _name, _key, serial, url), (_der, answer) in self._cache.items():
            if answer.next_update is not None and answer.next_update > now:
                out.append({"hashAlgorithm": alg, "serialNumber": format(serial, "x"), "responderURL": url,
                            **answer.facts()})  # fmt: skip
        return out

    async def check(self, data: Mapping[str, Any]) -> OcspResult:
        """The responder's answer for the certificate named by ``data``; OcspError with the reason
        when the request data are bad, the responder is unreachable or its answer unusable."""
        cid = CertId.of(data)
        url = str(data["responderURL"])
        key = cid.key(url)
        now = self.now()
        hit = self._cache.get(key)
        if hit is not None:
            der, answer = hit
            if answer.next_update is not None and answer.next_update > now:
                self._cache.move_to_end(key)
                return OcspResult(der, answer, cached=True)
            del self._cache[key]
        if not url.startswith(("http://", "https://")):
            raise OcspError("OCSPUnreachable", f"responderURL {url!r} is not an http(s) URL")
        request = build_ocsp_request(data)
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=self.timeout, verify=tls_context()) as client:
                reply = await client.post(url, content=request, headers={"Content-Type": CONTENT_TYPE})
        except httpx.TimeoutException:
            log.warning("OCSP responder timed out", url=url, timeout_s=self.timeout)
            raise OcspError("OCSPTimeout", f"OCSP responder {url} did not answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            log.warning("OCSP responder unreachable", url=url, error=str(exc) or type(exc).__name__)
            raise OcspError("OCSPUnreachable", f"OCSP responder {url} unreachable: {type(exc).__name__}") from None
        if reply.status_code != 200:
            raise OcspError("OCSPUnreachable", f"OCSP responder {url} answered HTTP {reply.status_code}")
        der = reply.content
        answer = read_ocsp_response(der, data, self.now())
        if answer.next_update is not None:
            self._cache[key] = (der, answer)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return OcspResult(der, answer, cached=False)
