"""Console sign-in, session cookie, CSRF and the live feed over plain HTTP (no browser): a real
CSMS (OCPP + HTTP API + console) on ephemeral ports with a test station on a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from csms.api.apitokens import issue_token
from tests.api.support import Env, now_ts, running_csms


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running_csms(tmp_path, call_timeout=5) as e:
        yield e


def _nonce(html: str) -> str:
    m = re.search(r'name="nonce" value="([^"]+)"', html)
    assert m is not None
    return m.group(1)


async def _sign_in(c: httpx.AsyncClient, token: str) -> str:
    """Sign in like the form does; returns the page's CSRF token."""
    page = await c.get("/console/login")
    r = await c.post("/console/login", data={"token": token, "nonce": _nonce(page.text), "next": "/console/"})
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    fleet = await c.get("/console/")
    assert fleet.status_code == 200
    m = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', fleet.text)
    assert m is not None
    return m.group(1)


async def test_pages_need_a_session_and_the_cookie_is_httponly_samesite(env: Env) -> None:
    async with httpx.AsyncClient(base_url=env.url) as c:
        r = await c.get("/console/stations/FE-0001")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")
        assert (await c.get("/console/fleet/stream")).status_code == 401
        assert (await c.get("/console/fleet.json")).status_code == 401
        page = await c.get("/console/login")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        nonce = _nonce(page.text)
        # a wrong token: refused, no session
        bad = await c.post("/console/login", data={"token": "csms_wrong", "nonce": nonce})
        assert bad.status_code == 401 and "unknown or revoked" in bad.text
        assert "csms_console" not in c.cookies
        # the form's double-submit token is required (login CSRF)
        c.cookies.delete("csms_console_login")
        forged = await c.post("/console/login", data={"token": env.operator_token, "nonce": nonce})
        assert forged.status_code == 403 and "csms_console" not in c.cookies
        page = await c.get("/console/login")
        ok = await c.post("/console/login", data={"token": env.operator_token, "nonce": _nonce(page.text)})
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert (await c.get("/console/fleet.json")).status_code == 200


async def test_revoking_the_token_ends_the_session_and_logout_clears_it(env: Env) -> None:
    token, _ = await issue_token(env.store, "temp-operator", "operator")
    async with httpx.AsyncClient(base_url=env.url) as c:
        csrf = await _sign_in(c, token)
        assert (await c.get("/console/events")).status_code == 200
        await env.store.revoke_api_token("temp-operator")
        r = await c.get("/console/events")
        assert r.status_code == 303 and "/console/login" in r.headers["location"]
    async with httpx.AsyncClient(base_url=env.url) as c:
        csrf = await _sign_in(c, env.read_token)
        assert (await c.post("/console/logout", data={"csrf": "0" * 64})).status_code == 403
        out = await c.post("/console/logout", data={"csrf": csrf})
        assert out.status_code == 303
        assert (await c.get("/console/fleet.json")).status_code == 401


async def test_commands_need_operator_scope_and_the_csrf_token(env: Env) -> None:
    station = await env.connect("FE-0001")
    await env.quiet("FE-0001")
    async with httpx.AsyncClient(base_url=env.url) as c:
        csrf = await _sign_in(c, env.read_token)
        r = await c.post("/console/stations/FE-0001/commands/Reset", data={"type": "Immediate", "csrf": csrf})
        assert r.status_code == 403 and "needs scope" in r.text
    async with httpx.AsyncClient(base_url=env.url) as c:
        csrf = await _sign_in(c, env.operator_token)
        url = "/console/stations/FE-0001/commands/Reset"
        assert (await c.post(url, data={"type": "Immediate"})).status_code == 403
        tampered = csrf[:-1] + ("1" if csrf.endswith("0") else "0")
        assert (await c.post(url, data={"type": "Immediate", "csrf": tampered})).status_code == 403
        cross = await c.post(url, data={"type": "Immediate", "csrf": csrf}, headers={"Origin": "http://evil.test"})
        assert cross.status_code == 403
        assert station.calls_of("Reset") == []
        ok = await c.post(url, data={"type": "Immediate"}, headers={"X-CSRF-Token": csrf, "Origin": env.url})
        assert ok.status_code == 200 and 'data-status="Accepted"' in ok.text
        assert station.calls_of("Reset") == [{"type": "Immediate"}]
        # an API error is shown with its code and message
        offline = await c.post("/console/stations/FE-0002/commands/Reset", data={"type": "Immediate", "csrf": csrf})
        assert "station_offline" in offline.text


async def test_fleet_stream_sends_a_snapshot_then_coalesced_rows(env: Env) -> None:
    station = await env.connect("FE-0001")
    await env.quiet("FE-0001")
    events: list[tuple[str, Any]] = []
    changed = asyncio.Event()

    async def until(predicate: Any, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                changed.clear()
                await changed.wait()

    async with httpx.AsyncClient(base_url=env.url, timeout=10) as c:
        await _sign_in(c, env.read_token)
        async with c.stream("GET", "/console/fleet/stream") as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")

            async def read() -> None:
                kind = ""
                with contextlib.suppress(httpx.ReadError):
                    async for line in resp.aiter_lines():
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: "):
                            events.append((kind, orjson.loads(line[6:])))
                            changed.set()

            reader = asyncio.create_task(read())
            try:
                await until(lambda: bool(events))
                kind, snap = events[0]
                assert kind == "snapshot"
                ids = [r["id"] for r in snap["rows"]]
                assert "FE-0001" in ids and "FE-0002" in ids
                # 50 meter values in a burst reach the browser as a few batches, not 50 messages
                for i in range(50):
                    sv = [{"value": 1000.0 + 10 * i, "measurand": "Power.Active.Import"}]
                    mv = [{"timestamp": now_ts(), "sampledValue": sv}]
                    await station.call("MeterValues", {"evseId": 1, "meterValue": mv})

                def rows() -> list[dict[str, Any]]:
                    return [r for k, e in events if k == "rows" for r in e["rows"]]

                await until(lambda: any(r["power_kw"] == 1.49 for r in rows()))
                batches = [e for k, e in events if k == "rows"]
                assert 1 <= len(batches) <= 6, len(batches)
                assert rows()[-1]["id"] == "FE-0001"
                await station.close()
                await until(lambda: any(r["id"] == "FE-0001" and not r["connected"] for r in rows()))
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader


async def test_console_can_be_switched_off(tmp_path: Path) -> None:
    from csms.service import Service
    from tests.api.support import api_settings

    settings = api_settings(tmp_path)
    settings.api.console = False
    service = Service(settings)
    await service.start()
    try:
        assert service.api is not None
        async with httpx.AsyncClient(base_url=service.api.url) as c:
            assert (await c.get("/console/login")).status_code == 404
            assert (await c.get("/console/static/console.js")).status_code == 404
            assert (await c.get("/health")).status_code == 200
    finally:
        await service.stop()
