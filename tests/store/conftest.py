"""Fixtures for the store tests: every DB test runs against SQLite (temp file) and PostgreSQL.

PostgreSQL isolation: one uniquely named database is created per test session (through the
``test`` database) and dropped at the end, so parallel or earlier runs never collide; each test
then starts from an empty ``public`` schema. When the server is unreachable the PostgreSQL
variants fail under ``CI=true`` and are skipped (reason printed in the summary) otherwise.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

from csms.store import Store

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("CSMS_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
_skip_notes: list[str] = []


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run admin coroutines on a private loop in a worker thread (never pytest-asyncio's loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _pg_exec(url: URL, *statements: str) -> None:
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
        timeout=5,
    )
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class PgDatabase:
    url: str | None
    problem: str | None = None


@pytest.fixture(scope="session")
def pg_database() -> Iterator[PgDatabase]:
    admin = make_url(PG_URL)
    name = f"csms_store_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        _run(_pg_exec(admin, f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        yield PgDatabase(None, f"PostgreSQL not usable at {admin.host}:{admin.port}: {exc!r}")
        return
    try:
        yield PgDatabase(admin.set(database=name).render_as_string(hide_password=False))
    finally:
        _run(_pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_database: PgDatabase) -> str:
    """An empty database URL; the SQLite file sits in a not-yet-existing folder on purpose."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'dir' / 'csms.db'}"
    if pg_database.url is None:
        if IN_CI:
            pytest.fail(f"{pg_database.problem} (CI=true: PostgreSQL is required)")
        if pg_database.problem not in _skip_notes:
            _skip_notes.append(str(pg_database.problem))
        pytest.skip(str(pg_database.problem))
    await _pg_exec(make_url(pg_database.url), "DROP SCHEMA public CASCADE", "CREATE SCHEMA public")
    return pg_database.url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await Store.open(db_url, frame_log_limit=20, flush_interval=0.1)
    try:
        yield s
    finally:
        await s.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for note in _skip_notes:
        terminalreporter.write_line(f"store tests: PostgreSQL variants skipped: {note}", yellow=True)
