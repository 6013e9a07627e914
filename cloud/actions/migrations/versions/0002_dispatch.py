"""Tickets: lifecycle, technicians, webhooks, restock orders, feedback; accounts; customer email

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "device_feedback",
        sa.Column("device_id", sa.String(length=48), nullable=False),
        sa.Column("nff_streak", sa.Integer(), nullable=False),
        sa.Column("last_code", sa.String(length=24), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_table(
        "technicians",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("work_days", sa.JSON(), nullable=False),
        sa.Column("work_start_min", sa.Integer(), nullable=False),
        sa.Column("work_end_min", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_technicians_region"), "technicians", ["region"], unique=False)
    op.create_table(
        "webhooks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "api_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_used_ms", sa.BigInteger(), nullable=True),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_table(
        "email_consents",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=24), nullable=False),
        sa.Column("opted_in", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("changed_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.PrimaryKeyConstraint("customer_id", "category"),
    )
    op.create_table(
        "email_threads",
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("root_message_id", sa.String(length=128), nullable=False),
        sa.Column("root_kind", sa.String(length=40), nullable=False),
        sa.Column("message_id_domain", sa.String(length=200), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.PrimaryKeyConstraint("correlation_id"),
    )
    op.create_table(
        "reminders",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=48), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("due_on", sa.String(length=10), nullable=False),
        sa.Column("lead_days", sa.Integer(), nullable=False),
        sa.Column("repeat_months", sa.Integer(), nullable=True),
        sa.Column("send_after_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_queued_for", sa.String(length=10), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_reminders_customer_id"), "reminders", ["customer_id"], unique=False)
    op.create_index("ix_reminders_due", "reminders", ["active", "send_after_ms"], unique=False)
    op.create_table(
        "users",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "restock_orders",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("route", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=48), nullable=False),
        sa.Column("visit_day", sa.String(length=10), nullable=False),
        sa.Column("stockout_ms", sa.BigInteger(), nullable=True),
        sa.Column("stockout_lo_ms", sa.BigInteger(), nullable=True),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id"),
    )
    op.create_index(
        "ix_restock_route_day", "restock_orders", ["route", "visit_day", "status"], unique=False
    )
    op.add_column(
        "emails",
        sa.Column("category", sa.String(length=24), server_default="service", nullable=False),
    )
    op.add_column("emails", sa.Column("outbox_key", sa.String(length=160), nullable=True))
    op.add_column("emails", sa.Column("scheduled_ms", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_emails_customer_day", "emails", ["customer_id", "scheduled_ms"], unique=False
    )
    op.create_index(op.f("ix_emails_outbox_key"), "emails", ["outbox_key"], unique=False)
    op.add_column("tickets", sa.Column("region", sa.String(length=64), nullable=True))
    op.add_column(
        "tickets", sa.Column("skill", sa.String(length=48), server_default="", nullable=False)
    )
    # SQLite cannot add a constraint to a table, but takes REFERENCES in ADD COLUMN.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE tickets ADD COLUMN assignee_id VARCHAR(64) REFERENCES technicians (id)"
        )
    else:
        op.add_column("tickets", sa.Column("assignee_id", sa.String(length=64), nullable=True))
        op.create_foreign_key(
            "tickets_assignee_id_fkey", "tickets", "technicians", ["assignee_id"], ["id"]
        )
    op.add_column("tickets", sa.Column("status_ms", sa.BigInteger(), nullable=True))
    op.add_column("tickets", sa.Column("acknowledged_ms", sa.BigInteger(), nullable=True))
    op.add_column("tickets", sa.Column("booked_start_ms", sa.BigInteger(), nullable=True))
    op.add_column("tickets", sa.Column("booked_end_ms", sa.BigInteger(), nullable=True))
    op.add_column(
        "tickets",
        sa.Column("escalation_level", sa.SmallInteger(), server_default="0", nullable=False),
    )
    op.add_column("tickets", sa.Column("sla_breached_ms", sa.BigInteger(), nullable=True))
    op.add_column("tickets", sa.Column("closure_code", sa.String(length=24), nullable=True))
    op.add_column("tickets", sa.Column("closed_ms", sa.BigInteger(), nullable=True))
    op.create_index(op.f("ix_tickets_assignee_id"), "tickets", ["assignee_id"], unique=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("tickets_assignee_id_fkey", "tickets", type_="foreignkey")
    op.drop_index(op.f("ix_tickets_assignee_id"), table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("closed_ms")
        batch.drop_column("closure_code")
        batch.drop_column("sla_breached_ms")
        batch.drop_column("escalation_level")
        batch.drop_column("booked_end_ms")
        batch.drop_column("booked_start_ms")
        batch.drop_column("acknowledged_ms")
        batch.drop_column("status_ms")
        batch.drop_column("assignee_id")
        batch.drop_column("skill")
        batch.drop_column("region")
    op.drop_index(op.f("ix_emails_outbox_key"), table_name="emails")
    op.drop_index("ix_emails_customer_day", table_name="emails")
    op.drop_column("emails", "scheduled_ms")
    op.drop_column("emails", "outbox_key")
    op.drop_column("emails", "category")
    op.drop_index("ix_restock_route_day", table_name="restock_orders")
    op.drop_table("restock_orders")
    op.drop_table("users")
    op.drop_index("ix_reminders_due", table_name="reminders")
    op.drop_index(op.f("ix_reminders_customer_id"), table_name="reminders")
    op.drop_table("reminders")
    op.drop_table("email_threads")
    op.drop_table("email_consents")
    op.drop_table("api_tokens")
    op.drop_table("webhooks")
    op.drop_index(op.f("ix_technicians_region"), table_name="technicians")
    op.drop_table("technicians")
    op.drop_table("device_feedback")
