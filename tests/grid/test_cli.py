"""``csms event ...`` against the router on an in-process app (sync Starlette TestClient)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from typer.testing import CliRunner

from csms.clock import Clock
from csms.grid import cli
from csms.grid.book import EventBook
from csms.grid.webhook import router
from tests.grid.conftest import MemoryStore, event_doc
from tests.grid.test_leap import SLOT, notification

TOKEN = "s3cret"
runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def json_of(output: str) -> Any:
    """The JSON document the CLI printed (log lines of the in-process server may precede it)."""
    return orjson.loads(output[output.index("{\n") :])


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[EventBook]:
    app = FastAPI()

    @app.middleware("http")
    async def auth(request: Request, call_next: Any) -> Any:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"error": {"code": "unauthorized", "message": "bad token"}}, status_code=401)
        return await call_next(request)

    # mounted under a path prefix: the CLI keeps the prefix of --url
    app.include_router(router, prefix="/prefix")
    book = EventBook(MemoryStore(), Clock())
    app.state.event_book = book

    with warnings.catch_warnings():  # starlette's TestClient warns about httpx on import
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    def factory(base_url: str, headers: dict[str, str]) -> httpx.Client:
        return TestClient(app, base_url=base_url, headers=headers)

    monkeypatch.setattr(cli, "make_client", factory)
    monkeypatch.setenv("CSMS_API_URL", "http://testserver/prefix")
    monkeypatch.setenv("CSMS_API_TOKEN", TOKEN)
    yield book


def run(*args: str) -> Any:
    return runner.invoke(cli.event_app, list(args))


def test_create_list_show_cancel(api: EventBook) -> None:
    r = run(
        "create",
        "--id",
        "e1",
        "--target-kw",
        "400",
        "--start",
        "+1h",
        "--duration",
        "2h",
        "--priority",
        "1",
        "--program",
        "DSGS",
        "--group",
        "garage-a",
    )
    assert r.exit_code == 0, r.output
    assert "submitted" in r.output and "e1" in r.output
    ev = api.get("e1")
    assert ev is not None and ev.source == "cli" and ev.priority == 1 and ev.targets.group_ids == ["garage-a"]
    r = run("list")
    assert r.exit_code == 0 and "e1" in r.output and "DSGS" in r.output
    r = run("list", "--json")
    assert json_of(r.output)["count"] == 1
    r = run("show", "e1")
    assert r.exit_code == 0 and "garage-a" in r.output and "400" in r.output
    r = run("cancel", "e1", "--reason", "withdrawn")
    assert r.exit_code == 0 and "cancelled" in r.output
    assert api.get("e1").cancel_reason == "withdrawn"  # type: ignore[union-attr]


def test_create_test_event_with_end(api: EventBook) -> None:
    r = run(
        "create",
        "--target-kw",
        "50",
        "--start",
        "2026-07-14T16:00:00-07:00",
        "--end",
        "2026-07-14T17:00:00-07:00",
        "--test",
        "--json",
    )
    assert r.exit_code == 0, r.output
    body = json_of(r.output)
    assert body["event"]["is_test"] is True and body["event"]["intervals"][0]["start"] == "2026-07-14T23:00:00Z"


def test_create_from_file(api: EventBook, tmp_path: Path) -> None:
    f = tmp_path / "events.json"
    f.write_bytes(orjson.dumps([event_doc("f1"), notification(SLOT)]))
    r = run("create", "--file", str(f))
    assert r.exit_code == 0, r.output
    assert api.get("f1") is not None and api.get(SLOT["market_group_event_id"]) is not None


def test_422_prints_field_and_reason(api: EventBook) -> None:
    r = run("create", "--id", "bad", "--target-kw", "-5", "--duration", "1h")
    assert r.exit_code == 1
    assert "intervals[0].target_kw" in r.output and "must be >= 0" in r.output


def test_usage_errors(api: EventBook) -> None:
    r = run("create", "--target-kw", "5")
    assert r.exit_code == 2 and "--end" in r.output
    r = run("create", "--target-kw", "5", "--start", "2026-07-14T16:00:00", "--duration", "1h")
    assert r.exit_code == 2 and "offset" in r.output


def test_not_found_and_bad_token(api: EventBook) -> None:
    r = run("show", "nope")
    assert r.exit_code == 1 and "csms event list" in r.output
    r = run("list", "--token", "wrong")
    assert r.exit_code == 1 and "401" in r.output and "--token" in r.output


def test_connection_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CSMS_API_URL", raising=False)
    r = run("list", "--url", "http://127.0.0.1:1")
    assert r.exit_code == 1
    assert "cannot reach the CSMS at http://127.0.0.1:1" in r.output and "running" in r.output
