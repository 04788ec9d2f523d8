"""notifications (outbox of messages, delivery attempts, dead letters)

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_type", sa.String(length=48), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["complaint_id"], ["complaints.id"], name=op.f("fk_outbox_messages_complaint_id_complaints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outbox_messages_dedupe_key")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_messages_message_id")),
    )
    op.create_index(op.f("ix_outbox_messages_complaint_id"), "outbox_messages", ["complaint_id"], unique=False)
    op.create_index(op.f("ix_outbox_messages_message_type"), "outbox_messages", ["message_type"], unique=False)
    op.create_index(op.f("ix_outbox_messages_not_before"), "outbox_messages", ["not_before"], unique=False)
    op.create_index(op.f("ix_outbox_messages_status"), "outbox_messages", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_messages_status"), table_name="outbox_messages")
    op.drop_index(op.f("ix_outbox_messages_not_before"), table_name="outbox_messages")
    op.drop_index(op.f("ix_outbox_messages_message_type"), table_name="outbox_messages")
    op.drop_index(op.f("ix_outbox_messages_complaint_id"), table_name="outbox_messages")
    op.drop_table("outbox_messages")
