"""Site load balancing: ``site_limits``, limits changed at run time over the ``[[sites]]`` config.

Revision ID: 0004_site_limits
Revises: 0100_cluster
Create Date: 2026-12-07 00:00:00+00:00

Chained after the cluster revision (0003 -> 0100_cluster -> 0004_site_limits) so the history
keeps one head. Types are spelled out as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_site_limits"
down_revision: str | Sequence[str] | None = "0100_cluster"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "site_limits",
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("limits", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", name="pk_site_limits"),
    )


def downgrade() -> None:
    op.drop_table("site_limits")
