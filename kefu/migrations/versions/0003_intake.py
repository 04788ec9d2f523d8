"""intake (intake outbox, idempotency keys, case-number counters)

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "intake_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=False),
        sa.Column("case_no", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["complaint_id"], ["complaints.id"], name=op.f("fk_intake_outbox_complaint_id_complaints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_outbox")),
        sa.UniqueConstraint("case_no", name=op.f("uq_intake_outbox_case_no")),
        sa.UniqueConstraint("complaint_id", name=op.f("uq_intake_outbox_complaint_id")),
    )
    with op.batch_alter_table("intake_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_intake_outbox_dispatched_at"), ["dispatched_at"], unique=False)

    op.create_table(
        "intake_idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["complaint_id"], ["complaints.id"], name=op.f("fk_intake_idempotency_keys_complaint_id_complaints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_idempotency_keys")),
        sa.UniqueConstraint("key", name=op.f("uq_intake_idempotency_keys_key")),
    )
    with op.batch_alter_table("intake_idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intake_idempotency_keys_complaint_id"), ["complaint_id"], unique=False
        )

    op.create_table(
        "intake_case_counters",
        sa.Column("day", sa.String(length=8), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_intake_case_counters")),
    )


def downgrade() -> None:
    op.drop_table("intake_case_counters")
    with op.batch_alter_table("intake_idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_idempotency_keys_complaint_id"))
    op.drop_table("intake_idempotency_keys")
    with op.batch_alter_table("intake_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_outbox_dispatched_at"))
    op.drop_table("intake_outbox")
