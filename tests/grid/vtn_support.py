"""Helpers for the OpenADR 3 tests: a business-logic client of the VTN simulator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx


def iso(dt: datetime) -> str:
    return dt.isoformat()


class BusinessLogic:
    """The utility side: creates programs and events on the VTN over HTTP (role ``bl``)."""

    def __init__(self, url: str, client_id: str = "bl", secret: str = "bl-secret") -> None:
        self.url, self.client_id, self.secret = url, client_id, secret
        self._token: str | None = None

    async def _headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        if self._token is None:
            resp = await http.post(
                f"{self.url}/auth/token",
                data={"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.secret},
            )
            resp.raise_for_status()
            self._token = resp.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    async def call(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.request(method, f"{self.url}{path}", json=body, headers=await self._headers(http))
        if expect is not None:
            assert resp.status_code == expect, (resp.status_code, resp.text)
        return resp.json()

    async def program(self, name: str) -> str:
        return (await self.call("POST", "/programs", {"programName": name}, expect=201))["id"]

    async def event(self, program_id: str, start: datetime, kw: list[float], *, minutes: int = 15, **extra: Any) -> str:
        body = export_event(program_id, start, kw, minutes=minutes, **extra)
        return (await self.call("POST", "/events", body, expect=201))["id"]


def export_event(program_id: str, start: datetime, kw: list[float], *, minutes: int = 15, **extra: Any) -> dict:
    """An OpenADR 3 event: consecutive ``minutes``-long intervals of EXPORT_CAPACITY_LIMIT kW."""
    return {
        "programID": program_id,
        "eventName": "evening export",
        "priority": 1,
        "payloadDescriptors": [
            {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "EXPORT_CAPACITY_LIMIT", "units": "KW"}
        ],
        "intervalPeriod": {"start": iso(start), "duration": f"PT{minutes}M"},
        "intervals": [
            {"id": k, "payloads": [{"type": "EXPORT_CAPACITY_LIMIT", "values": [v]}]} for k, v in enumerate(kw)
        ],
        **extra,
    }
