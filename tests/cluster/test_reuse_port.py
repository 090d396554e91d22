"""Cluster nodes on one machine sharing the OCPP port (``server.reuse_port``, SO_REUSEPORT): the
kernel spreads the stations over them, and every station is reachable through every node."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Cluster, free_port, register
from tests.support import TestStation, open_ws

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(90)]


async def test_nodes_share_the_ocpp_port(cluster: Cluster, tmp_path: Path) -> None:
    ids = [f"RP-{i:02d}" for i in range(30)]
    await register(cluster.db_url, tmp_path, ids)
    cluster.env["CSMS_SERVER__REUSE_PORT"] = "true"
    port = free_port()
    await cluster.start("a", "b", ocpp_port=port)

    def handlers(tag: str) -> dict[str, Any]:
        return {"Reset": lambda _ctx, _p: {"status": "Accepted", "statusInfo": {"reasonCode": tag}}}

    stations = [TestStation(await open_ws(port, sid), handlers(sid)) for sid in ids]
    assert all(r["status"] == "Accepted" for r in await asyncio.gather(*(st.boot() for st in stations)))
    held = [await cluster.holder("a", sid) for sid in ids]
    assert set(held) == {"a", "b"}, held  # both nodes took some of the stations
    for via in ("a", "b"):
        async with cluster.api(via) as http:
            for sid in ids:
                r = await http.post(f"/api/v1/stations/{sid}/commands/Reset", json={"type": "Immediate"})
                assert r.status_code == 200 and r.json()["response"]["statusInfo"]["reasonCode"] == sid, r.text
    await asyncio.gather(*(st.close() for st in stations))
