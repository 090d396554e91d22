"""The fleet feed's back-pressure: a browser that stops reading gets one fresh snapshot instead
of a growing backlog (real CentralSystem and a real station socket; the hub driven directly)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from csms.web.fleet import FleetHub
from tests.api.support import Env, now_ts, running_csms


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running_csms(tmp_path, call_timeout=5) as e:
        yield e


def _event(chunk: bytes) -> tuple[str, dict[str, object]]:
    head, data = chunk.split(b"\ndata: ", 1)
    return head.rsplit(b"event: ", 1)[1].decode(), orjson.loads(data)


async def test_a_browser_that_falls_behind_gets_a_snapshot_not_a_backlog(env: Env) -> None:
    station = await env.connect("FE-0001")
    await env.quiet("FE-0001")
    hub = FleetHub(env.central, interval_s=0.05, queue_size=3)
    stream = hub.stream()
    try:
        kind, _ = _event(await anext(stream))
        assert kind == "snapshot"
        # the browser reads nothing while 12 batches are produced (more than its queue holds)
        for i in range(12):
            sv = [{"value": 100.0 * (i + 1), "measurand": "Power.Active.Import"}]
            await station.call(
                "MeterValues", {"evseId": 1, "meterValue": [{"timestamp": now_ts(), "sampledValue": sv}]}
            )
            await asyncio.sleep(0.08)
        assert hub.batches >= 4
        kind, payload = _event(await anext(stream))
        assert kind == "snapshot"  # the backlog was dropped
        row = next(r for r in payload["rows"] if r["id"] == "FE-0001")  # type: ignore[attr-defined]
        assert row["power_kw"] == 1.2  # and the snapshot is current
    finally:
        await hub.close()
        with contextlib.suppress(StopAsyncIteration):
            await anext(stream)
        await stream.aclose()
