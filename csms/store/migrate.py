"""Run the store's Alembic migrations from code (no ``alembic.ini`` at run time).

The Alembic :class:`~alembic.config.Config` is built in memory with ``script_location`` pointing
at the ``migrations`` folder shipped inside this package, so an installed CSMS can migrate its
database wherever it runs. :func:`upgrade` runs inside one transaction on the application's own
async engine; on PostgreSQL it first takes a transaction-scoped advisory lock so that several
CSMS processes starting together migrate one after the other instead of racing.

Developer use (new revisions, manual up/downgrades)::

    python -m csms.store --url sqlite+aiosqlite:///data/csms.db upgrade
    python -m csms.store --url sqlite+aiosqlite:///data/csms.db current
    python -m csms.store --url sqlite+aiosqlite:////tmp/dev.db revision -m "add foo" --autogenerate
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Arbitrary constant key for ``pg_advisory_xact_lock`` ("csms" in ASCII).
PG_MIGRATION_LOCK = 0x63736D73


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade_sync(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _current_sync(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``; a no-op when already there.

    Serialised across processes: PostgreSQL takes an advisory lock, SQLite opens the transaction
    with ``BEGIN IMMEDIATE`` (the ``csms_immediate`` option understood by the store's engine hooks),
    so a second process waits and then finds the schema current.
    """
    if engine.dialect.name == "sqlite":
        engine = engine.execution_options(csms_immediate=True)
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        await conn.run_sync(_upgrade_sync, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Downgrade to ``revision`` (``"base"`` drops everything). For development and tests."""
    if engine.dialect.name == "sqlite":
        engine = engine.execution_options(csms_immediate=True)
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade_sync, revision)


def _downgrade_sync(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current_sync)


def _cli_sync(connection: Connection, args: argparse.Namespace) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    if args.cmd == "upgrade":
        command.upgrade(cfg, args.revision)
    elif args.cmd == "downgrade":
        command.downgrade(cfg, args.revision)
    elif args.cmd == "current":
        command.current(cfg, verbose=True)
    else:
        command.revision(cfg, message=args.message, autogenerate=args.autogenerate)


async def _cli(args: argparse.Namespace) -> None:
    from .engine import create_engine  # the store's engine: same pragmas, folder creation

    engine = create_engine(args.url)
    if engine.dialect.name == "sqlite":
        engine = engine.execution_options(csms_immediate=True)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_cli_sync, args)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m csms.store")
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the database")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upgrade")
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade")
    down.add_argument("revision")
    sub.add_parser("current")
    rev = sub.add_parser("revision", help="write a new revision file into csms/store/migrations/versions")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true")
    asyncio.run(_cli(parser.parse_args(argv)))
