"""feedback flow: a run per feedback record (its run id), the department deadline's breach and escalation level,
its closing, and its audit trail of steps waited on, answered and refused

Revision ID: feedback_flow
Revises: contact_cadence
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "feedback_flow"
down_revision: str | None = "contact_cadence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("feedback", sa.Column("flow_run_id", sa.String(length=64), nullable=True))
    op.add_column("feedback", sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("feedback", sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("feedback", sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    # Feedback answered before it had runs was finished then: closed, so the sweeper starts no follow-up for it.
    op.execute("UPDATE feedback SET closed_at = answered_at WHERE answered_at IS NOT NULL")
    op.create_table(
        "feedback_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feedback_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["feedback_id"], ["feedback.id"], name=op.f("fk_feedback_events_feedback_id_feedback")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_events")),
        sa.UniqueConstraint("feedback_id", "action", "key", name=op.f("uq_feedback_events_feedback_id_action_key")),
    )
    op.create_index(op.f("ix_feedback_events_at"), "feedback_events", ["at"], unique=False)
    op.create_index(op.f("ix_feedback_events_feedback_id"), "feedback_events", ["feedback_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_feedback_events_feedback_id"), table_name="feedback_events")
    op.drop_index(op.f("ix_feedback_events_at"), table_name="feedback_events")
    op.drop_table("feedback_events")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("closed_at")
        batch.drop_column("escalation_level")
        batch.drop_column("breached_at")
        batch.drop_column("flow_run_id")
