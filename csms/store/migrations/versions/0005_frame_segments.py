"""The frame log in segments: ``frame_segments`` (one row per station and flush) replaces
``frame_log`` (one row per frame); the frames already logged are carried over.

Revision ID: 0005_frame_segments
Revises: 0004_site_limits
Create Date: 2026-12-07 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import sqlalchemy as sa
from alembic import op

revision: str = "0005_frame_segments"
down_revision: str | Sequence[str] | None = "0004_site_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PER_SEGMENT = 1000  # frames carried over into one segment (fewer than the id stride, 65,536)


def _iso(value: datetime | str) -> str:
    if isinstance(value, str):  # SQLite hands back its text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def upgrade() -> None:
    segments = op.create_table(
        "frame_segments",
        sa.Column("id", BIGPK, autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(48), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_frame_segments"),
    )
    op.create_index("ix_frame_segments_station_id_id", "frame_segments", ["station_id", "id"])
    conn = op.get_bind()
    old = sa.table(
        "frame_log",
        sa.column("id", sa.BigInteger),
        sa.column("station_id", sa.String),
        sa.column("direction", sa.String),
        sa.column("timestamp", sa.DateTime(timezone=True)),
        sa.column("frame", sa.Text),
    )
    stations = [r[0] for r in conn.execute(sa.select(old.c.station_id).distinct())]
    for station_id in stations:
        rows = conn.execute(
            sa.select(old.c.direction, old.c.timestamp, old.c.frame)
            .where(old.c.station_id == station_id)
            .order_by(old.c.id)
        ).all()
        for start in range(0, len(rows), PER_SEGMENT):
            part = rows[start : start + PER_SEGMENT]
            frames = [[d, _iso(ts), f] for d, ts, f in part]
            first = datetime.fromisoformat(frames[0][1])
            row = {"station_id": station_id, "timestamp": first, "count": len(part)}
            conn.execute(segments.insert(), {**row, "frames": orjson.dumps(frames).decode()})
    op.drop_index("ix_frame_log_station_id_id", table_name="frame_log")
    op.drop_table("frame_log")


def downgrade() -> None:
    op.create_table(
        "frame_log",
        sa.Column("id", BIGPK, autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(48), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("frame", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_frame_log"),
    )
    op.create_index("ix_frame_log_station_id_id", "frame_log", ["station_id", "id"])
    op.drop_index("ix_frame_segments_station_id_id", table_name="frame_segments")
    op.drop_table("frame_segments")
