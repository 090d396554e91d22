"""Schemathesis against the OpenAPI document of a running CSMS (real server, real sockets, a
connected station behind the command routes): no server error and no response that breaks
the documented schema, status code, content type or headers.

502 (station_callerror / station_bad_response) and 504 (station_timeout) are documented answers
about the *station*, not failures of the CSMS, so the not_a_server_error check accepts them;
every other 5xx fails the run. Bounded: few examples per operation, well under 90 s.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from tests.api.support import Env

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
CONFIG = """\
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "502", "504"]
"""

# the routes of the D, C, H, I, N and O blocks: tested in tests/conformance/test_api_schemathesis.py
BLOCK_ROUTES = (
    "/local-list|/reservations|/display-messages|/monitors|/alerts|/tariff|/der/|/pnc"
    "|/commands/(GetLocalListVersion|SendLocalList|ClearCache|SetMonitoringBase|SetMonitoringLevel"
    "|CostUpdated|SetDefaultTariff|GetTariffs|ClearTariffs|ChangeTransactionTariff)"
)


async def run_schemathesis(env: Env, tmp_path: Path, *args: str, budget: float = 85.0) -> tuple[int, str, float]:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    exe = Path(sys.executable).with_name("schemathesis")
    cmd = [
        str(exe),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{env.url}/openapi.json",
        "--checks",
        CHECKS,
        "-H",
        f"Authorization: Bearer {env.operator_token}",
        "--seed",
        "20260601",
        "--request-timeout",
        "15",
        "--workers",
        "1",
        *args,
    ]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=tmp_path,  # its cache / report directories stay out of the repository
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), budget)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        pytest.fail(f"schemathesis did not finish within {budget} s:\n{out.decode()[-5000:]}")
    return proc.returncode or 0, out.decode(), time.monotonic() - started


async def test_openapi_document_holds_under_schemathesis(env: Env, tmp_path: Path) -> None:
    await env.connect("FE-0001")  # the path examples name FE-0001: commands reach a real station
    code, out, seconds = await run_schemathesis(
        env,
        tmp_path,
        "--exclude-path-regex",
        "^/grid/|" + BLOCK_ROUTES,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "8",
    )
    assert code == 0, out[-8000:]
    assert "Tested:" in out and seconds < 90, out[-2000:]


async def test_grid_webhook_routes_hold_under_schemathesis(env: Env, tmp_path: Path) -> None:
    if not env.service.api.app.state.grid_webhook:
        pytest.skip("csms.grid.webhook is not available")
    code, out, _ = await run_schemathesis(
        env,
        tmp_path,
        "--include-path-regex",
        "^/grid/",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "5",
        budget=60,
    )
    assert code == 0, out[-8000:]
