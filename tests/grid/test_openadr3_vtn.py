"""The VTN simulator's REST API and the VEN's client, over real HTTP (uvicorn on 127.0.0.1),
plus the pure OpenADR 3 translation (SIMPLE / PRICE, forecast requests, report intervals)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI, Request

from csms.grid.model import EventRejected
from csms.grid.openadr import map_openadr
from csms.grid.openadr3.client import VtnAuthError, VtnClient, VtnRefused, VtnUnavailable
from csms.grid.openadr3.mapping import is_forecast_request, prepare_event, report_interval
from simulators.vtn import VtnServer, VtnState

from .vtn_support import BusinessLogic, export_event

T0 = datetime(2026, 8, 18, 23, 0, tzinfo=UTC)


@pytest.fixture
async def vtn() -> AsyncIterator[VtnServer]:
    state = VtnState()
    state.add_client("ven-1", "ven-secret", "ven")
    state.add_client("bl", "bl-secret", "bl")
    server = VtnServer(state)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_token_endpoint_follows_rfc6749(vtn: VtnServer) -> None:
    async with httpx.AsyncClient(base_url=vtn.url) as http:
        form = {"grant_type": "client_credentials", "client_id": "ven-1", "client_secret": "ven-secret"}
        ok = await http.post("/auth/token", data=form)
        assert ok.status_code == 200
        body = ok.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["access_token"]
        missing = await http.post("/auth/token", data={"grant_type": "client_credentials", "client_id": "ven-1"})
        assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
        assert "client_secret" in missing.json()["error_description"]
        grant = await http.post("/auth/token", data={"grant_type": "password", "client_id": "a", "client_secret": "b"})
        assert grant.json()["error"] == "unsupported_grant_type"
        wrong = await http.post(
            "/auth/token", data={"grant_type": "client_credentials", "client_id": "ven-1", "client_secret": "nope"}
        )
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        anonymous = await http.get("/events")
        assert anonymous.status_code == 403 and anonymous.json()["status"] == 403


async def test_objects_status_codes_and_field_names(vtn: VtnServer) -> None:
    bl = BusinessLogic(vtn.url)
    program = await bl.program("dsgs")
    dup = await bl.call("POST", "/programs", {"programName": "dsgs"})
    assert dup["status"] == 409
    ev = await bl.call("POST", "/events", export_event(program, T0, [100.0]), expect=201)
    assert ev["objectType"] == "EVENT" and ev["programID"] == program and ev["createdDateTime"]
    bad = await bl.call("POST", "/events", {"programID": program})
    assert bad["status"] == 400 and bad["detail"].startswith("intervals:")
    bad_id = await bl.call("POST", "/events", {**export_event(program, T0, [1.0]), "programID": "no spaces!"})
    assert bad_id["status"] == 400 and "programID" in bad_id["detail"]
    assert (await bl.call("GET", "/events/event-999"))["status"] == 404
    listed = await bl.call("GET", f"/events?programID={program}", expect=200)
    assert [e["id"] for e in listed] == [ev["id"]]
    assert (await bl.call("GET", "/events?limit=51"))["status"] == 400
    deleted = await bl.call("DELETE", f"/events/{ev['id']}", expect=200)
    assert deleted["id"] == ev["id"]
    assert await bl.call("GET", "/events", expect=200) == []


async def test_client_roles_errors_and_outage(vtn: VtnServer) -> None:
    client = VtnClient(vtn.url, "ven-1", "ven-secret", timeout_s=2.0, retries=1, retry_delay_s=0.01)
    try:
        with pytest.raises(VtnRefused) as exc:
            await client.request("POST", "/events", json=export_event("p", T0, [1.0]))
        assert exc.value.status == 403 and "may not write events" in exc.value.detail
        ven = await client.create_ven({"venName": "v"})
        with pytest.raises(VtnRefused) as exc:
            await client.create_ven({"venName": "v"})
        assert exc.value.status == 409
        await client.create_resource(ven["id"], {"resourceName": "FE20-001"})
        with pytest.raises(VtnRefused) as exc:
            await client.create_resource(ven["id"], {"resourceName": "FE20-001"})
        assert exc.value.status == 409
        assert [r["resourceName"] for r in await client.resources(ven["id"])] == ["FE20-001"]
        await vtn.stop()
        with pytest.raises(VtnUnavailable):
            await client.vens("v")
        await vtn.start()
        assert [v["venName"] for v in await client.vens("v")] == ["v"]
    finally:
        await client.aclose()
    bad = VtnClient(vtn.url, "ven-1", "wrong")
    try:
        with pytest.raises(VtnAuthError) as auth:
            await bad.programs()
        assert auth.value.status == 401 and "client_secret" in auth.value.detail
    finally:
        await bad.aclose()


async def test_subscription_notifies_the_callback(vtn: VtnServer) -> None:
    received: list[tuple[str | None, dict]] = []
    hook = FastAPI()

    @hook.post("/cb")
    async def cb(request: Request) -> dict:
        received.append((request.headers.get("authorization"), await request.json()))
        return {}

    server = VtnServer(app=hook)  # the same uvicorn helper serves any ASGI app
    await server.start()
    try:
        bl = BusinessLogic(vtn.url)
        program = await bl.program("dsgs")
        ven = BusinessLogic(vtn.url, "ven-1", "ven-secret")
        sub = {
            "clientName": "v",
            "programID": program,
            "objectOperations": [
                {
                    "objects": ["EVENT"],
                    "operations": ["POST", "DELETE"],
                    "callbackUrl": f"{server.url}/cb",
                    "bearerToken": "s3cret",
                }
            ],
        }
        await ven.call("POST", "/subscriptions", sub, expect=201)
        ev = await bl.call("POST", "/events", export_event(program, T0, [5.0]), expect=201)
        await bl.call("PUT", f"/events/{ev['id']}", export_event(program, T0, [6.0]), expect=200)  # not subscribed
        await bl.call("DELETE", f"/events/{ev['id']}", expect=200)
        async with asyncio.timeout(5):
            while len(received) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert [(a, d["operation"], d["objectType"]) for a, d in received] == [
            ("Bearer s3cret", "POST", "EVENT"),
            ("Bearer s3cret", "DELETE", "EVENT"),
        ]
        assert received[0][1]["object"]["id"] == ev["id"]
    finally:
        await server.stop()


# ---------------------------------------------------------------------------------- pure mapping
LEVELS = {0: 0.0, 1: 100.0, 2: 200.0}


def simple_event(values: list[object], ptype: str = "SIMPLE") -> dict:
    return {
        "id": "e1",
        "programID": "p",
        "intervalPeriod": {"start": "2026-08-18T23:00:00Z", "duration": "PT30M"},
        "intervals": [{"id": k, "payloads": [{"type": ptype, "values": [v]}]} for k, v in enumerate(values)],
    }


def test_simple_levels_become_export_targets() -> None:
    doc, notes = prepare_event(simple_event([1, 2]), simple_levels_kw=LEVELS, price_export_threshold=None,
                               price_export_kw=0.0)  # fmt: skip
    ev = map_openadr(doc, now=T0).event
    assert ev is not None and ev.direction == "export"
    assert [iv.target_kw for iv in ev.intervals] == [100.0, 200.0]
    assert notes == ["intervals[0]: SIMPLE level 1 -> export 100 kW", "intervals[1]: SIMPLE level 2 -> export 200 kW"]


def test_unknown_simple_level_and_bad_price_name_the_field() -> None:
    with pytest.raises(EventRejected) as exc:
        prepare_event(simple_event([1, 7]), simple_levels_kw=LEVELS, price_export_threshold=None, price_export_kw=0)
    assert exc.value.field == "intervals[1].payloads[0].values[0]" and "known: 0, 1, 2" in exc.value.reason
    with pytest.raises(EventRejected) as exc:
        prepare_event(simple_event([1.5]), simple_levels_kw=LEVELS, price_export_threshold=None, price_export_kw=0)
    assert "integer" in exc.value.reason
    with pytest.raises(EventRejected) as exc:
        prepare_event(simple_event(["high"], "PRICE"), simple_levels_kw=LEVELS, price_export_threshold=0.5,
                      price_export_kw=300)  # fmt: skip
    assert exc.value.field == "intervals[0].payloads[0].values[0]"


def test_price_above_threshold_exports() -> None:
    doc, _ = prepare_event(simple_event([0.2, 0.8], "PRICE"), simple_levels_kw=LEVELS, price_export_threshold=0.5,
                           price_export_kw=300.0)  # fmt: skip
    ev = map_openadr(doc, now=T0).event
    assert ev is not None and [iv.target_kw for iv in ev.intervals] == [0.0, 300.0]


def test_forecast_request_and_report_interval() -> None:
    req = {**simple_event([0], "SIMPLE_LEVEL_REQUEST"), "reportDescriptors": [
        {"payloadType": "STORAGE_MAX_DISCHARGE_POWER", "historical": False}]}  # fmt: skip
    assert is_forecast_request(req)
    assert not is_forecast_request({**req, "intervals": simple_event([1])["intervals"]})
    assert not is_forecast_request(simple_event([1]))
    iv = report_interval(3, T0, T0 + timedelta(minutes=5), target_kw=400.0, delivered_kw=360.0)
    assert iv["id"] == 3 and iv["intervalPeriod"] == {"start": "2026-08-18T23:00:00Z", "duration": "PT5M"}
    assert iv["payloads"] == [
        {"type": "USAGE", "values": [-30.0]},
        {"type": "DEMAND", "values": [-360.0]},
        {"type": "SETPOINT", "values": [-400.0]},
    ]
