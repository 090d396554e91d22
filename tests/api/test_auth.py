"""Bearer tokens: 401 without or with a bad/revoked token, 403 for a read token on operator
routes; tokens are stored hashed; /health, /metrics and the OpenAPI document are open."""

from __future__ import annotations

import hashlib

import httpx

from csms.api.apitokens import hash_token, issue_token
from tests.api.support import Env

READ_ROUTES = [
    "/api/v1/stations",
    "/api/v1/stations/FE-0001",
    "/api/v1/stations/FE-0001/status",
    "/api/v1/stations/FE-0001/transactions",
    "/api/v1/transactions",
    "/api/v1/stations/FE-0001/meter-values",
    "/api/v1/security-events",
    "/api/v1/stations/FE-0001/events",
    "/api/v1/stations/FE-0001/frames",
    "/api/v1/stations/FE-0001/variables",
    "/api/v1/stations/FE-0001/profiles",
    "/api/v1/stations/FE-0001/composite-schedule",
    "/api/v1/id-tokens",
    "/api/v1/grid/events",
    "/api/v1/whoami",
]
OPERATOR_ROUTES = [
    ("POST", "/api/v1/stations/FE-0001/commands/Reset", {"type": "Immediate"}),
    ("POST", "/api/v1/stations/FE-0001/commands/GetVariables", {"variables": [{"component": "A", "variable": "B"}]}),
    ("POST", "/api/v1/id-tokens", {"id_token": "T", "type": "Central"}),
    ("PUT", "/api/v1/id-tokens/Central/T", {}),
    ("DELETE", "/api/v1/id-tokens/Central/T", None),
]


async def test_missing_or_bad_token_is_401(env: Env) -> None:
    for token in (None, "csms_not-a-real-token"):
        async with env.client(token) as c:
            for path in READ_ROUTES:
                r = await c.get(path)
                assert r.status_code == 401, path
                assert r.json()["error"]["code"] == "unauthorized"
                assert r.headers["www-authenticate"].startswith("Bearer")
            for method, path, body in OPERATOR_ROUTES:
                r = await c.request(method, path, json=body)
                assert r.status_code == 401, path
    async with httpx.AsyncClient(base_url=env.url, headers={"Authorization": f"Basic {env.read_token}"}) as c:
        assert (await c.get("/api/v1/stations")).status_code == 401


async def test_read_token_reads_but_cannot_command_403(env: Env) -> None:
    await env.connect()
    async with env.client("read") as c:
        for path in READ_ROUTES:
            r = await c.get(path)
            assert r.status_code == 200, (path, r.text)
        for method, path, body in OPERATOR_ROUTES:
            r = await c.request(method, path, json=body)
            assert r.status_code == 403, path
            err = r.json()["error"]
            assert err["code"] == "forbidden" and err["details"]["required_scope"] == "operator"
            assert err["details"]["token"] == "reader"
        me = (await c.get("/api/v1/whoami")).json()
        assert me == {"name": "reader", "scope": "read"}
    assert env.stations[0].calls_of("Reset") == []  # nothing reached the station
    async with env.client("operator") as c:
        for method, path, body in OPERATOR_ROUTES:
            r = await c.request(method, path, json=body)
            assert r.status_code in (200, 201, 204), (path, r.text)
        assert (await c.get("/api/v1/whoami")).json() == {"name": "operator", "scope": "operator"}


async def test_tokens_are_stored_hashed_and_revocable(env: Env) -> None:
    token, row = await issue_token(env.store, "alice", "operator")
    assert token.startswith("csms_") and len(token) > 40
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() == hash_token(token)
    assert token not in {r.token_hash for r in await env.store.list_api_tokens()}
    async with env.client(token) as c:
        assert (await c.get("/api/v1/whoami")).json()["name"] == "alice"
        assert await env.store.revoke_api_token("alice")
        r = await c.get("/api/v1/whoami")
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


async def test_open_endpoints(env: Env) -> None:
    async with env.client(None) as c:
        h = (await c.get("/health")).json()
        assert h["status"] == "ok" and h["known_stations"] == 3 and h["connected_stations"] == 0
        doc = (await c.get("/openapi.json")).json()
        assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert "/api/v1/stations/{station_id}/commands/Reset" in doc["paths"]
        assert (await c.get("/docs")).status_code == 200
        assert (await c.get("/metrics")).status_code == 200
