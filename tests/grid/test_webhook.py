"""The HTTP router, mounted on a bare FastAPI app (the full API is tested elsewhere)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from csms.grid.book import EventBook
from csms.grid.webhook import router
from tests.grid.conftest import event_doc
from tests.grid.test_leap import SLOT, notification
from tests.grid.test_openadr import EVENT


@pytest.fixture
async def http(book: EventBook) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(router)
    app.state.event_book = book
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://csms") as client:
        yield client


async def test_canonical_create_get_list_cancel(http: httpx.AsyncClient, book: EventBook) -> None:
    r = await http.post("/grid/events", json=event_doc())
    assert r.status_code == 201, r.text
    assert r.json()["outcome"] == "submitted" and r.json()["event"]["source"] == "api"
    r = await http.post("/grid/events", json={**event_doc(), "source": "cli"})
    assert r.status_code == 200 and r.json()["outcome"] == "duplicate"
    r = await http.post("/grid/events", json=event_doc(kw=1, revision=1, source="cli"))
    assert r.status_code == 201 and r.json()["event"]["source"] == "cli"
    r = await http.get("/grid/events/ev-1")
    assert r.status_code == 200 and r.json()["revision"] == 1 and r.json()["history"][0]["status"] == "superseded"
    r = await http.get("/grid/events", params={"status": "pending"})
    assert r.json()["count"] == 1
    r = await http.delete("/grid/events/ev-1", params={"reason": "done"})
    assert r.status_code == 200 and r.json()["event"]["status"] == "cancelled"
    assert book.get("ev-1").cancel_reason == "done"  # type: ignore[union-attr]


async def test_errors(http: httpx.AsyncClient) -> None:
    bad = event_doc()
    bad["intervals"][0]["end"] = bad["intervals"][0]["start"]
    r = await http.post("/grid/events", json=bad)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_event" and err["field"] == "intervals[0].end"
    assert err["message"] == "intervals[0].end: must be after start"
    r = await http.post("/grid/events", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    r = await http.delete("/grid/events/missing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await http.get("/grid/events/missing")
    assert r.status_code == 404
    r = await http.get("/grid/events", params={"status": "weird"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "status"
    await http.post("/grid/events", json=event_doc(kw=5))
    r = await http.post("/grid/events", json=event_doc(kw=6))
    assert r.status_code == 422 and r.json()["error"]["field"] == "revision"


async def test_leap(http: httpx.AsyncClient) -> None:
    bad = {**SLOT, "market_group_event_id": "e2", "end_time": "2026-07-14T22:00:00Z"}
    r = await http.post("/grid/leap", json=notification(SLOT, bad))
    assert r.status_code == 200
    body = r.json()
    assert [a["event"]["id"] for a in body["accepted"]] == [SLOT["market_group_event_id"]]
    assert body["rejected"][0]["field"] == "group_dispatches[0].timeslots[1].end_time"
    r = await http.post("/grid/leap", json=notification(bad))
    assert r.status_code == 422 and r.json()["error"]["field"].endswith("end_time")
    r = await http.post("/grid/leap", json={"hello": 1})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"


async def test_openadr(http: httpx.AsyncClient) -> None:
    r = await http.post("/grid/openadr/events", json=EVENT)
    assert r.status_code == 201 and r.json()["event"]["source"] == "openadr"
    r = await http.post("/grid/openadr/events", json={**EVENT, "programID": None})
    assert r.status_code == 422 and r.json()["error"]["field"] == "programID"


async def test_missing_book_is_503() -> None:
    app = FastAPI()
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://csms") as client:
        assert (await client.get("/grid/events")).status_code == 503
