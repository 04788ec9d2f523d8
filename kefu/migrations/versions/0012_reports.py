"""files attached to outbox mails (the statistics report's HTML and XLSX to management)

Revision ID: reports
Revises: staff_sessions
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "reports"
down_revision: str | None = "staff_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["outbox_messages.id"],
            name=op.f("fk_outbox_attachments_message_id_outbox_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_attachments")),
    )
    op.create_index(op.f("ix_outbox_attachments_message_id"), "outbox_attachments", ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_attachments_message_id"), table_name="outbox_attachments")
    op.drop_table("outbox_attachments")
