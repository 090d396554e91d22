"""HTTP client of an OpenADR 3.0.1 VTN: OAuth2 client credentials, JSON, retries with back-off.

:class:`VtnClient` knows the REST API (paths, query parameters, status codes) and nothing of
grid events. Errors form a small hierarchy:

* :class:`VtnUnavailable` - the VTN could not be reached, timed out or answered 5xx (after the
  retries of one call): try again later;
* :class:`VtnRefused` - the VTN answered 4xx with a ``problem`` (``status``, ``detail``): the
  request itself is wrong, retrying the same request will not help;
* :class:`VtnAuthError` - the token endpoint refused the client credentials.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog

from .models import ClientCredentialResponse

log = structlog.get_logger("csms.grid.openadr3")

Sleep = Callable[[float], Awaitable[None]]


class VtnError(Exception):
    """Base class of everything :class:`VtnClient` raises."""


class VtnUnavailable(VtnError):
    """Connection refused or reset, timeout, or 5xx: the VTN is down or overloaded."""


class VtnRefused(VtnError):
    """A 4xx answer: ``status`` and the problem's ``detail``."""

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {detail}")
        self.method, self.path, self.status, self.detail = method, path, status, detail


class VtnAuthError(VtnRefused):
    """POST /auth/token refused the credentials (``invalid_client`` and the like)."""


def backoff_delays(initial_s: float, max_s: float, factor: float = 2.0, jitter: float = 0.1) -> Any:
    """Endless exponential back-off delays: initial, x2, ... capped at ``max_s``, +-``jitter``."""
    delay = initial_s
    while True:
        yield delay * (1 + random.uniform(-jitter, jitter))
        delay = min(max_s, delay * factor)


class VtnClient:
    """One VTN, one client identity. ``base_url`` includes the API's base path (e.g.
    ``https://vtn.example/openadr3/3.0.1``)."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 2,
        retry_delay_s: float = 0.2,
        token_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url or f"{self.base_url}/auth/token"
        self.client_id, self.client_secret = client_id, client_secret
        self.retries, self.retry_delay_s = retries, retry_delay_s
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        self._token: str | None = None
        self._token_expires = 0.0
        self.requests = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ auth
    async def token(self, *, force: bool = False) -> str:
        """A bearer token (cached until 30 s before ``expires_in``)."""
        if self._token is not None and not force and time.monotonic() < self._token_expires:
            return self._token
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret}
        try:
            resp = await self._http.post(self.token_url, data=form)
        except httpx.HTTPError as exc:
            raise VtnUnavailable(f"POST {self.token_url}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500:
            raise VtnUnavailable(f"POST {self.token_url}: HTTP {resp.status_code}")
        if resp.status_code != 200:
            body = _json(resp)
            detail = body.get("error_description") or body.get("error") or body.get("detail") or resp.text[:200]
            raise VtnAuthError("POST", "/auth/token", resp.status_code, str(detail))
        tok = ClientCredentialResponse.model_validate(resp.json())
        self._token = tok.access_token
        self._token_expires = time.monotonic() + max(0.0, (tok.expires_in or 3600) - 30)
        log.debug("VTN token obtained", client_id=self.client_id, expires_in=tok.expires_in)
        return self._token

    # ------------------------------------------------------------------ requests
    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """One API call with a bearer token; retried ``retries`` times on connection errors and
        5xx, once with a fresh token on 401/403. Returns the decoded JSON body."""
        attempt, refreshed = 0, False
        while True:
            attempt += 1
            try:
                token = await self.token()
                self.requests += 1
                resp = await self._http.request(
                    method,
                    f"{self.base_url}{path}",
                    json=json,
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                )
            except (httpx.HTTPError, VtnUnavailable) as exc:
                if attempt > self.retries:
                    if isinstance(exc, VtnUnavailable):
                        raise
                    raise VtnUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(self.retry_delay_s * attempt)
                continue
            if resp.status_code in (401, 403) and not refreshed:
                refreshed = True
                self._token = None
                continue
            if resp.status_code >= 500:
                if attempt > self.retries:
                    raise VtnUnavailable(f"{method} {path}: HTTP {resp.status_code}")
                await asyncio.sleep(self.retry_delay_s * attempt)
                continue
            if resp.status_code >= 400:
                body = _json(resp)
                detail = body.get("detail") or body.get("title") or resp.text[:200]
                raise VtnRefused(method, path, resp.status_code, str(detail))
            return resp.json() if resp.content else None

    async def list_all(self, path: str, params: dict[str, Any] | None = None, page: int = 50) -> list[dict[str, Any]]:
        """Every object of a search (``skip`` / ``limit`` pages until a short page)."""
        out: list[dict[str, Any]] = []
        skip = 0
        while True:
            batch = await self.request("GET", path, params={**(params or {}), "skip": skip, "limit": page})
            if not isinstance(batch, list):
                raise VtnRefused("GET", path, 200, "expected a JSON array")
            out += batch
            if len(batch) < page:
                return out
            skip += page

    # ------------------------------------------------------------------ the objects the VEN uses
    async def programs(self) -> list[dict[str, Any]]:
        return await self.list_all("/programs")

    async def events(self, program_id: str) -> list[dict[str, Any]]:
        return await self.list_all("/events", {"programID": program_id})

    async def vens(self, ven_name: str) -> list[dict[str, Any]]:
        return await self.list_all("/vens", {"venName": ven_name})

    async def create_ven(self, ven: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", "/vens", json=ven)

    async def resources(self, ven_id: str) -> list[dict[str, Any]]:
        return await self.list_all(f"/vens/{ven_id}/resources")

    async def create_resource(self, ven_id: str, resource: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", f"/vens/{ven_id}/resources", json=resource)

    async def subscriptions(self, client_name: str, program_id: str) -> list[dict[str, Any]]:
        return await self.list_all("/subscriptions", {"clientName": client_name, "programID": program_id})

    async def create_subscription(self, sub: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", "/subscriptions", json=sub)

    async def update_subscription(self, sub_id: str, sub: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PUT", f"/subscriptions/{sub_id}", json=sub)

    async def create_report(self, report: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", "/reports", json=report)

    async def update_report(self, report_id: str, report: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PUT", f"/reports/{report_id}", json=report)


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
