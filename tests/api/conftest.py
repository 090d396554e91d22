"""A real CSMS (OCPP + HTTP API on ephemeral ports, SQLite in a temporary directory) per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.support import Env, running_csms


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running_csms(tmp_path, call_timeout=5) as e:
        yield e
