"""Initial schema: stations, transactions, metering, logs, device model, profiles, grid events, tokens.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00+00:00

Types are spelled out here rather than imported from ``csms.store.models`` so this revision keeps
describing the schema as it was when written, whatever the models become later. Constraint names
follow the models' naming convention.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _sid(name: str = "station_id", primary_key: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(48), nullable=False, primary_key=primary_key)


def upgrade() -> None:
    op.create_table(
        "stations",
        sa.Column("id", sa.String(48), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        _ts("registered_at", nullable=False),
        sa.Column("vendor", sa.String(255), nullable=True),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("serial_number", sa.String(255), nullable=True),
        sa.Column("firmware_version", sa.String(255), nullable=True),
        sa.Column("ocpp_version", sa.String(8), nullable=True),
        sa.Column("boot_status", sa.String(16), nullable=True),
        _ts("last_boot_at"),
        _ts("last_seen_at"),
        sa.Column("connected", sa.Boolean(), server_default=sa.false(), nullable=False),
        _ts("connected_since"),
        sa.Column("capabilities", JSON, nullable=True),
        sa.Column("meta", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stations"),
    )

    op.create_table(
        "connector_status",
        _sid(),
        sa.Column("evse_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("connector_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("status", sa.String(32), nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("station_id", "evse_id", "connector_id", name="pk_connector_status"),
    )

    op.create_table(
        "id_tokens",
        sa.Column("id_token", sa.String(255), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        _ts("expires_at"),
        sa.Column("group_id", sa.String(255), nullable=True),
        sa.Column("allowed_energy_transfer", JSON, nullable=True),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id_token", "type", name="pk_id_tokens"),
    )

    op.create_table(
        "transactions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _sid(),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=True),
        sa.Column("connector_id", sa.Integer(), nullable=True),
        sa.Column("id_token", sa.String(255), nullable=True),
        sa.Column("id_token_type", sa.String(32), nullable=True),
        _ts("started_at"),
        _ts("ended_at"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("charging_state", sa.String(32), nullable=True),
        sa.Column("stopped_reason", sa.String(64), nullable=True),
        sa.Column("last_seq_no", sa.Integer(), nullable=False),
        sa.Column("energy_import_wh", sa.Float(), nullable=True),
        sa.Column("energy_export_wh", sa.Float(), nullable=True),
        sa.Column("charging_needs", JSON, nullable=True),
        sa.Column("allowed_energy_transfer", JSON, nullable=True),
        sa.Column("meta", JSON, nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transactions"),
        sa.UniqueConstraint("station_id", "transaction_id", name="uq_transactions_station_id_transaction_id"),
    )
    op.create_index(
        "ix_transactions_station_id_evse_id_ended_at", "transactions", ["station_id", "evse_id", "ended_at"]
    )
    op.create_index("ix_transactions_started_at", "transactions", ["started_at"])

    op.create_table(
        "transaction_events",
        sa.Column("id", BIGPK, autoincrement=True, nullable=False),
        sa.Column("transaction_pk", sa.Integer(), nullable=False),
        sa.Column("seq_no", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.Column("trigger_reason", sa.String(64), nullable=True),
        _ts("timestamp", nullable=False),
        sa.Column("offline", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        _ts("received_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["transaction_pk"],
            ["transactions.id"],
            name="fk_transaction_events_transaction_pk_transactions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_transaction_events"),
        sa.UniqueConstraint("transaction_pk", "seq_no", name="uq_transaction_events_transaction_pk_seq_no"),
    )

    op.create_table(
        "meter_samples",
        sa.Column("id", BIGPK, autoincrement=True, nullable=False),
        _sid(),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=True),
        _ts("timestamp", nullable=False),
        sa.Column("measurand", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(8), nullable=True),
        sa.Column("location", sa.String(16), nullable=True),
        sa.Column("context", sa.String(32), nullable=True),
        sa.Column("unit", sa.String(20), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_meter_samples"),
    )
    op.create_index("ix_meter_samples_station_id_timestamp", "meter_samples", ["station_id", "timestamp"])
    op.create_index("ix_meter_samples_station_id_transaction_id", "meter_samples", ["station_id", "transaction_id"])

    op.create_table(
        "security_events",
        sa.Column("id", BIGPK, autoincrement=True, nullable=False),
        _sid(),
        sa.Column("type", sa.String(64), nullable=False),
        _ts("timestamp", nullable=False),
        sa.Column("tech_info", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_security_events"),
    )
    op.create_index("ix_security_events_station_id_timestamp", "security_events", ["station_id", "timestamp"])

    op.create_table(
        "station_events",
        sa.Column("id", BIGPK, autoincrement=True, nullable=False),
        _sid(),
        sa.Column("kind", sa.String(64), nullable=False),
        _ts("timestamp", nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_station_events"),
    )
    op.create_index(
        "ix_station_events_station_id_kind_timestamp", "station_events", ["station_id", "kind", "timestamp"]
    )
    op.create_index("ix_station_events_station_id_timestamp", "station_events", ["station_id", "timestamp"])

    op.create_table(
        "device_model",
        _sid(),
        sa.Column("component", sa.String(64), nullable=False),
        sa.Column("component_instance", sa.String(64), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("connector_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("variable", sa.String(64), nullable=False),
        sa.Column("variable_instance", sa.String(64), nullable=False),
        sa.Column("attribute_type", sa.String(16), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("characteristics", JSON, nullable=True),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint(
            "station_id",
            "component",
            "component_instance",
            "evse_id",
            "connector_id",
            "variable",
            "variable_instance",
            "attribute_type",
            name="pk_device_model",
        ),
    )

    op.create_table(
        "frame_log",
        sa.Column("id", BIGPK, autoincrement=True, nullable=False),
        _sid(),
        sa.Column("direction", sa.String(3), nullable=False),
        _ts("timestamp", nullable=False),
        sa.Column("frame", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_frame_log"),
    )
    op.create_index("ix_frame_log_station_id_id", "frame_log", ["station_id", "id"])

    op.create_table(
        "charging_profiles",
        _sid(),
        sa.Column("profile_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("stack_level", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("profile", JSON, nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=True),
        _ts("installed_at", nullable=False),
        sa.PrimaryKeyConstraint("station_id", "profile_id", name="pk_charging_profiles"),
    )

    op.create_table(
        "grid_events",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_grid_events"),
    )
    op.create_index("ix_grid_events_status", "grid_events", ["status"])

    op.create_table(
        "event_reports",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("report", JSON, nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_event_reports"),
    )

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("token_hash", sa.String(255), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        _ts("created_at", nullable=False),
        sa.Column("revoked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("name", name="uq_api_tokens_name"),
    )
    op.create_index("ix_api_tokens_token_hash", "api_tokens", ["token_hash"], unique=True)


def downgrade() -> None:
    for table in (
        "api_tokens",
        "event_reports",
        "grid_events",
        "charging_profiles",
        "frame_log",
        "device_model",
        "station_events",
        "security_events",
        "meter_samples",
        "transaction_events",
        "transactions",
        "id_tokens",
        "connector_status",
        "stations",
    ):
        op.drop_table(table)
