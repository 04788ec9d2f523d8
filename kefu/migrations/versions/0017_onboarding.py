"""key-account onboarding: the nomination's run and outcome, the departments' reviews, the onboarding audit trail

Revision ID: onboarding
Revises: enquiries
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "onboarding"
down_revision: str | None = "enquiries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns added in place (no batch copy of a table others reference by foreign key).
    op.add_column("key_account_nominations", sa.Column("flow_run_id", sa.String(length=64), nullable=True))
    op.add_column("key_account_nominations", sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("key_account_nominations", sa.Column("outcome_reason", sa.Text(), nullable=True))
    op.create_table(
        "onboarding_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nomination_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("comments", sa.Text(), nullable=True),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["nomination_id"],
            ["key_account_nominations.id"],
            name=op.f("fk_onboarding_reviews_nomination_id_key_account_nominations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["reviewer_id"], ["staff.id"], name=op.f("fk_onboarding_reviews_reviewer_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_reviews")),
        sa.UniqueConstraint("nomination_id", "department", name=op.f("uq_onboarding_reviews_nomination_id_department")),
    )
    op.create_index(op.f("ix_onboarding_reviews_nomination_id"), "onboarding_reviews", ["nomination_id"], unique=False)
    op.create_table(
        "onboarding_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nomination_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["nomination_id"],
            ["key_account_nominations.id"],
            name=op.f("fk_onboarding_events_nomination_id_key_account_nominations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_events")),
        sa.UniqueConstraint("nomination_id", "action", "key", name=op.f("uq_onboarding_events_nomination_id_action_key")),
    )
    op.create_index(op.f("ix_onboarding_events_nomination_id"), "onboarding_events", ["nomination_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_onboarding_events_nomination_id"), table_name="onboarding_events")
    op.drop_table("onboarding_events")
    op.drop_index(op.f("ix_onboarding_reviews_nomination_id"), table_name="onboarding_reviews")
    op.drop_table("onboarding_reviews")
    op.drop_column("key_account_nominations", "outcome_reason")
    op.drop_column("key_account_nominations", "closed_at")
    op.drop_column("key_account_nominations", "flow_run_id")
