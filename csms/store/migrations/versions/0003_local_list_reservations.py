"""Local Authorization List (``local_list_entries``, ``local_list_stations``) and reservations.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 00:00:00+00:00

Types are spelled out as in 0001; constraint names follow the models' naming convention.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "local_list_entries",
        sa.Column("id_token", sa.String(255), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("id_token_info", JSON, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id_token", "type", name="pk_local_list_entries"),
    )
    op.create_index("ix_local_list_entries_version", "local_list_entries", ["version"])
    op.create_table(
        "local_list_stations",
        sa.Column("station_id", sa.String(48), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("station_id", name="pk_local_list_stations"),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("station_id", sa.String(48), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=True),
        sa.Column("connector_type", sa.String(32), nullable=True),
        sa.Column("id_token", sa.String(255), nullable=False),
        sa.Column("id_token_type", sa.String(32), nullable=False),
        sa.Column("group_id_token", sa.String(255), nullable=True),
        _ts("expiry_at", nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reservations"),
    )
    op.create_index("ix_reservations_station_id_status", "reservations", ["station_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_reservations_station_id_status", table_name="reservations")
    op.drop_table("reservations")
    op.drop_table("local_list_stations")
    op.drop_index("ix_local_list_entries_version", table_name="local_list_entries")
    op.drop_table("local_list_entries")
