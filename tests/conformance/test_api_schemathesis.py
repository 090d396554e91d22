"""Schemathesis against the operator API routes of the D, C, H, I, N and O blocks (real server,
real sockets, a connected station behind them): no server error and no response that breaks the
documented schema. The rest of the API is covered by ``tests/api/test_schemathesis.py``, which
leaves these routes out to stay within its time budget."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.support import Env, running_csms
from tests.api.test_schemathesis import BLOCK_ROUTES, run_schemathesis


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running_csms(tmp_path / "csms", call_timeout=5) as e:
        yield e


async def test_block_routes_hold_under_schemathesis(env: Env, tmp_path: Path) -> None:
    await env.connect("FE-0001")
    code, out, seconds = await run_schemathesis(
        env,
        tmp_path,
        "--include-path-regex",
        BLOCK_ROUTES,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "5",
    )
    assert code == 0, out[-8000:]
    assert "Tested:" in out and seconds < 90, out[-2000:]
    tested = re.search(r"Tested: (\d+)", out)
    assert tested is not None and int(tested[1]) >= 25, out[-2000:]
