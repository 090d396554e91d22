"""Cluster mode: ``dispatch_commands``, the schedules the dispatch leader last sent per car.

Revision ID: 0100_cluster
Revises: 0003
Create Date: 2026-12-07 00:00:00+00:00

A node that takes over the dispatch leadership loads them and re-sends only what its plan
changes (stations keep the profiles they hold). Types are spelled out as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0100_cluster"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "dispatch_commands",
        sa.Column("car_id", sa.String(255), nullable=False),
        sa.Column("command", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("car_id", name="pk_dispatch_commands"),
    )


def downgrade() -> None:
    op.drop_table("dispatch_commands")
