"""Station registry change feed (``station_changes``) and ``stations.blocked``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 00:00:00+00:00

``station_changes`` gets a row in the same transaction as every registration, credential, boot
policy, block or removal of a station; running servers poll it with ``WHERE rev > last`` (the
primary key) and prune it by ``changed_at``. On SQLite the table is ``AUTOINCREMENT`` so a
revision is never handed out twice, even after the newest rows were pruned.

Types are spelled out as in 0001; constraint names follow the models' naming convention.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("stations", sa.Column("blocked", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "station_changes",
        sa.Column("rev", BIGPK, autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(48), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rev", name="pk_station_changes"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_station_changes_changed_at", "station_changes", ["changed_at"])


def downgrade() -> None:
    op.drop_index("ix_station_changes_changed_at", table_name="station_changes")
    op.drop_table("station_changes")
    with op.batch_alter_table("stations") as batch:
        batch.drop_column("blocked")
