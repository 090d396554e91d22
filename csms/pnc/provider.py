"""Contract-certificate providers: who answers an EV's ISO 15118 certificate installation or
update (Get15118EVCertificate) for the CSMS.

The CSMS never decodes the EXI: it passes the station's ``exiRequest`` (base64 EXI) to the
provider and the provider's ``exiResponse`` back verbatim.

:class:`HttpContractProvider` speaks this JSON over HTTP (``POST <url>``):

- request: ``{"stationId", "iso15118SchemaVersion", "action": "Install"|"Update", "exiRequest"}``
  plus, from OCPP 2.1 stations, ``maximumContractCertificateChains`` and ``prioritizedEMAIDs``;
- answer (HTTP 200): ``{"status": "Accepted"|"Failed", "exiResponse": "<base64 EXI>"}``, optional
  ``remainingContracts`` (2.1) and ``reasonCode`` / ``additionalInfo`` when Failed.

``simulators/pnc_servers.py`` has a local provider speaking it for tests and demos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog

from csms.pnc import tls_context

log = structlog.get_logger("csms.pnc.provider")


class ProviderError(Exception):
    """The provider could not be asked or gave no usable answer; ``reason`` is a reasonCode."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason[:20]
        self.message = message


@dataclass(frozen=True)
class ProviderAnswer:
    status: str  # Accepted | Failed
    exi_response: str
    remaining_contracts: int | None = None
    reason: str | None = None
    info: str | None = None


class ContractCertificateProvider(Protocol):
    async def get_ev_certificate(self, station_id: str, request: dict[str, Any]) -> ProviderAnswer: ...


class HttpContractProvider:
    def __init__(self, url: str, *, timeout: float = 10.0, token: str | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.token = token

    async def get_ev_certificate(self, station_id: str, request: dict[str, Any]) -> ProviderAnswer:
        body = {"stationId": station_id, **{k: v for k, v in request.items() if k != "customData"}}
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with httpx.AsyncClient(timeout=self.timeout, verify=tls_context()) as client:
                reply = await client.post(self.url, json=body, headers=headers)
        except httpx.TimeoutException:
            raise ProviderError("ProviderTimeout", f"contract provider {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ProviderError("ProviderUnreachable", f"contract provider {self.url}: {type(exc).__name__}") from None
        if reply.status_code != 200:
            raise ProviderError("ProviderError", f"contract provider {self.url} answered HTTP {reply.status_code}")
        try:
            data = reply.json()
            status = data["status"]
            exi = data.get("exiResponse", "")
            if status not in ("Accepted", "Failed") or not isinstance(exi, str):
                raise ValueError(status)
            remaining = data.get("remainingContracts")
            if remaining is not None and (not isinstance(remaining, int) or remaining < 0):
                raise ValueError(remaining)
        except (ValueError, KeyError, TypeError):
            raise ProviderError("ProviderBadAnswer", f"contract provider {self.url} gave an unusable answer") from None
        if status == "Accepted" and not exi:
            raise ProviderError("ProviderBadAnswer", f"contract provider {self.url} accepted without an exiResponse")
        return ProviderAnswer(status, exi, remaining, data.get("reasonCode"), data.get("additionalInfo"))
