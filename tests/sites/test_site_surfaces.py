"""Site load balancing from the outside: the HTTP API, the ``csms site`` CLI and the console
pages, against a running CSMS with simulated stations (real sockets, accelerated clock).
A limit lowered through the API lands on the stations as ChargingStationMaxProfile caps, decreases
first, and is stored; a bad limit is refused with the field named."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from typer.testing import CliRunner

from csms.api.apitokens import issue_token
from csms.cli.main import app
from csms.config import SiteSettings
from csms.demo.site import Site, evening_fleet, running_site
from csms.store.sites import site_limits
from tests.api.support import server_logs_to_stderr

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

EPOCH = datetime(2026, 8, 18, 16, 0, tzinfo=ZoneInfo("America/Los_Angeles"))


def station_cap_w(station: Any) -> float | None:
    """The ChargingStationMaxProfile limit the simulated station holds (W), None without one."""
    for inst in station.profiles:
        p = inst.profile
        if p.purpose.value == "ChargingStationMaxProfile":
            return float(p.schedules[0].periods[0].limit)
    return None


async def until(predicate: Any, timeout: float = 20.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := predicate()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return value


class Env:
    def __init__(self, site: Site, read: str, operator: str) -> None:
        self.site, self.read, self.operator = site, read, operator
        self.url = site.service.api.url

    def client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def caps_kw(self) -> dict[str, float | None]:
        out = {}
        for st in self.site.fleet:
            w = station_cap_w(st)
            out[st.id] = None if w is None else w / 1000
        return out

    async def cli(self, *args: str) -> Any:
        environ = {"CSMS_API_URL": self.url, "CSMS_API_TOKEN": self.operator, "COLUMNS": "200", "NO_COLOR": "1"}
        return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=environ, catch_exceptions=False)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    fleet = evening_fleet(4, epoch=EPOCH, seed=3, share_201=0.5, tx_interval_s=30)
    ids = [s.id for s in fleet.stations]
    site = SiteSettings(id="depot", import_limit_kw=40, stations=ids, building_kw=5, control_interval_s=30)
    with server_logs_to_stderr():
        async with running_site(fleet, tmp_path, epoch=EPOCH, speed=30, api=True, sites=[site]) as s:
            read, _ = await issue_token(s.central.store, "viewer", "read")
            operator, _ = await issue_token(s.central.store, "operator", "operator")
            yield Env(s, read, operator)


async def test_api_cli_and_console(env: Env) -> None:
    # every station holds a cap, and the caps fit under 40 kW - 5 kW building - 1 kW margin
    caps = await until(lambda: (c := env.caps_kw()) and all(v is not None for v in c.values()) and c)
    assert sum(caps.values()) <= 34.0 + 1e-6
    async with env.client(env.read) as c:
        sites = (await c.get("/api/v1/sites")).json()
        assert [s["id"] for s in sites] == ["depot"] and sites[0]["stations"] == 4
        one = (await c.get("/api/v1/sites/depot")).json()
        assert one["import_limit_kw"] == 40 and len(one["stations"]) == 4 and one["history"]
        assert one["building_source"] == "assumed (building_kw)" and one["building_kw"] == 5
        assert (await c.put("/api/v1/sites/depot/limits", json={"import_limit_kw": 20})).status_code == 403
        missing = await c.get("/api/v1/sites/nowhere")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_site"

    async with env.client(env.operator) as c:
        bad = await c.put("/api/v1/sites/depot/limits", json={"import_limit_kw": -3})
        assert bad.status_code == 422 and "import_limit_kw" in bad.text
        empty = await c.put("/api/v1/sites/depot/limits", json={})
        assert empty.status_code == 422
        r = await c.put("/api/v1/sites/depot/limits", json={"import_limit_kw": 16})
        assert r.status_code == 200 and r.json()["import_limit_kw"] == 16
    # lowered: the stations' caps come down to 16 - 5 - 1 = 10 kW in total, and the change is stored
    await until(lambda: sum(v or 0 for v in env.caps_kw().values()) <= 10.0 + 1e-6)
    assert (await site_limits(env.site.central.store))["depot"]["import_limit_kw"] == 16

    # CLI
    listed = await env.cli("site", "list")
    assert listed.exit_code == 0 and "depot" in listed.output and "16.0 kW" in listed.output
    shown = await env.cli("site", "show", "depot")
    assert shown.exit_code == 0 and all(sid in shown.output for sid in env.caps_kw())
    changed = await env.cli("site", "set-limit", "depot", "--import-kw", "30", "--strategy", "priority")
    assert changed.exit_code == 0 and "30.0 kW" in changed.output and "priority" in changed.output
    unknown = await env.cli("site", "show", "nowhere")
    assert unknown.exit_code != 0 and "unknown site" in (unknown.output + str(unknown.stderr_bytes))

    # console: the site list and page, the chart series, the allocation table and the limit form
    async with httpx.AsyncClient(base_url=env.url) as c:
        page = await c.get("/console/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = await c.post("/console/login", data={"token": env.operator, "nonce": nonce, "next": "/console/sites"})
        assert r.status_code == 303
        sites_page = await c.get("/console/sites")
        assert sites_page.status_code == 200 and "/console/sites/depot" in sites_page.text
        site_page = await c.get("/console/sites/depot")
        assert site_page.status_code == 200
        assert 'id="site-chart"' in site_page.text and 'id="allocation"' in site_page.text
        csrf = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', site_page.text).group(1)  # type: ignore[union-attr]
        series = (await c.get("/console/sites/depot/series.json")).json()
        assert len(series["t"]) == len(series["site_kw"]) >= 1 and series["limit_kw"][-1] == 30
        bad = await c.post("/console/sites/depot/limits", data={"import_limit_kw": "0", "csrf": csrf})
        assert 'id="site-error"' in bad.text and "import_limit_kw" in bad.text
        ok = await c.post("/console/sites/depot/limits", data={"import_limit_kw": "25", "csrf": csrf})
        assert ok.status_code == 200 and "25.0 kW" in ok.text
        assert (await c.post("/console/sites/depot/limits", data={"import_limit_kw": "20"})).status_code == 403
        assert (await c.get("/console/sites/nowhere")).status_code == 404
    assert env.site.service.sites.sites["depot"].settings.import_limit_kw == 25
    # dispatch plans under the running limit minus the building load (5 kW assumed)
    from csms.sites.limits import site_limits_for_dispatch

    assert site_limits_for_dispatch(env.site.central, None) == (None, 20.0)
    # a restarted balancer takes the stored limits over the configuration file
    from csms.sites.balancer import SiteBalancer

    fresh = SiteBalancer(env.site.central)
    assert fresh.sites["depot"].settings.import_limit_kw == 40
    await fresh._load_stored_limits()
    assert fresh.sites["depot"].settings.import_limit_kw == 25
    assert fresh.sites["depot"].settings.strategy == "priority"
    async with env.client(env.operator) as c:
        r = await c.post("/api/v1/sites/depot/rebalance")
        assert r.status_code == 200 and r.json()["limit_kw"] == 25


def test_dispatch_plans_under_the_configured_site_limits() -> None:
    from csms.config import Settings
    from csms.sites.limits import dispatch_site_limits

    site = SiteSettings(id="depot", import_limit_kw=40, stations=["A", "B"])
    settings = Settings(sites=[site, SiteSettings(id="yard", import_limit_kw=60, export_limit_kw=20, stations=["C"])])
    assert dispatch_site_limits(settings) == (None, 100.0)  # depot has no export limit: none known
    assert dispatch_site_limits(settings, {"C"}) == (20.0, 60.0)
    assert dispatch_site_limits(settings, {"elsewhere"}) == (None, None)
    assert dispatch_site_limits(Settings()) == (None, None)
    pinned = Settings(sites=[site], dispatch={"site_import_limit_kw": 12.0})
    assert dispatch_site_limits(pinned) == (None, 12.0)  # [dispatch] wins where it sets a limit
    # the building takes its load off the import limit and absorbs as much export
    assert dispatch_site_limits(settings, {"C"}, building_kw={"yard": 15.0}) == (35.0, 45.0)
