"""CLI tests: a real CSMS (OCPP + HTTP API) runs in the test's event loop; each ``csms ...``
command runs in a worker thread through typer's CliRunner and talks to it over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from csms.cli.main import app
from tests.api.support import Env, running_csms, server_logs_to_stderr


@dataclass
class Cli:
    env: Env
    config: Path

    async def __call__(self, *args: str, token: str | None = "operator", url: str | None = None, **kw: Any) -> Result:
        """Run ``csms *args`` with CSMS_API_URL / CSMS_API_TOKEN pointing at the test CSMS."""
        tok = {"operator": self.env.operator_token, "read": self.env.read_token}.get(token or "", token)
        environ = {
            "CSMS_API_URL": url or self.env.url,
            "CSMS_API_TOKEN": tok or "",
            "CSMS_CLI_CONFIG": str(self.config),
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
        environ.update(kw.pop("env", {}))
        runner = CliRunner()
        return await asyncio.to_thread(runner.invoke, app, list(args), env=environ, catch_exceptions=False, **kw)


@pytest.fixture
async def cli(tmp_path: Path) -> AsyncIterator[Cli]:
    with server_logs_to_stderr():
        async with running_csms(tmp_path / "csms", call_timeout=5) as env:
            yield Cli(env, tmp_path / "cli.toml")
