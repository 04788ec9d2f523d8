"""outbox channel (mail or SMS), why a queued message waits, the SMS provider's message id

Revision ID: sms_channel
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sms_channel"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=8), server_default="mail", nullable=False))
        batch_op.add_column(sa.Column("wait_reason", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("provider_message_id", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_column("provider_message_id")
        batch_op.drop_column("wait_reason")
        batch_op.drop_column("channel")
