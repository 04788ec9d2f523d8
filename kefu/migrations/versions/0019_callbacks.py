"""callbacks: communication records get a kind, satisfaction, remarks and a follow-up owner/due time; routine
callbacks, quality reviews and their step events (issue 17)

Revision ID: callbacks
Revises: complaint_contact_name
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "callbacks"
down_revision: str | None = "complaint_contact_name"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None



def upgrade() -> None:
    # Columns added in place (no batch copy): complaints and others reference communication_records' neighbours.
    op.add_column(
        "communication_records", sa.Column("kind", sa.String(length=32), server_default="contact", nullable=False)
    )
    op.add_column("communication_records", sa.Column("satisfaction", sa.Integer(), nullable=True))
    op.add_column("communication_records", sa.Column("remarks", sa.Text(), nullable=True))
    op.add_column("communication_records", sa.Column("follow_up_owner_id", sa.Integer(), nullable=True))
    op.add_column("communication_records", sa.Column("follow_up_due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "communication_records",
        sa.Column("follow_up_open", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index(op.f("ix_communication_records_kind"), "communication_records", ["kind"], unique=False)
    op.create_table(
        "routine_callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("owned_by", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("complaint_id", sa.Integer(), nullable=True),
        sa.Column("complaint_wanted", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_routine_callbacks_customer_id_customers")),
        sa.ForeignKeyConstraint(["owner_id"], ["staff.id"], name=op.f("fk_routine_callbacks_owner_id_staff")),
        sa.ForeignKeyConstraint(
            ["record_id"], ["communication_records.id"], name=op.f("fk_routine_callbacks_record_id_communication_records")
        ),
        sa.ForeignKeyConstraint(
            ["complaint_id"], ["complaints.id"], name=op.f("fk_routine_callbacks_complaint_id_complaints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routine_callbacks")),
        sa.UniqueConstraint("customer_id", "due_on", name=op.f("uq_routine_callbacks_customer_id_due_on")),
    )
    op.create_index(op.f("ix_routine_callbacks_customer_id"), "routine_callbacks", ["customer_id"], unique=False)
    op.create_table(
        "quality_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("case_event_id", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"], ["communication_records.id"], name=op.f("fk_quality_reviews_record_id_communication_records")
        ),
        sa.ForeignKeyConstraint(
            ["case_event_id"], ["case_events.id"], name=op.f("fk_quality_reviews_case_event_id_case_events")
        ),
        sa.ForeignKeyConstraint(["agent_id"], ["staff.id"], name=op.f("fk_quality_reviews_agent_id_staff")),
        sa.ForeignKeyConstraint(["reviewer_id"], ["staff.id"], name=op.f("fk_quality_reviews_reviewer_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_reviews")),
        sa.UniqueConstraint("year", "month", "record_id", name=op.f("uq_quality_reviews_year_month_record_id")),
        sa.UniqueConstraint(
            "year", "month", "case_event_id", name=op.f("uq_quality_reviews_year_month_case_event_id")
        ),
    )
    op.create_index(op.f("ix_quality_reviews_record_id"), "quality_reviews", ["record_id"], unique=False)
    op.create_index(op.f("ix_quality_reviews_agent_id"), "quality_reviews", ["agent_id"], unique=False)
    op.create_index(op.f("ix_quality_reviews_case_event_id"), "quality_reviews", ["case_event_id"], unique=False)
    op.create_table(
        "contact_step_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_step_events")),
        sa.UniqueConstraint("subject", "key", "outcome", name=op.f("uq_contact_step_events_subject_key_outcome")),
    )
    op.create_index(op.f("ix_contact_step_events_subject"), "contact_step_events", ["subject"], unique=False)


def downgrade() -> None:
    op.drop_table("contact_step_events")
    op.drop_table("quality_reviews")
    op.drop_table("routine_callbacks")
    op.drop_index(op.f("ix_communication_records_kind"), table_name="communication_records")
    with op.batch_alter_table("communication_records") as batch_op:
        for column in ("follow_up_open", "follow_up_due_at", "follow_up_owner_id", "remarks", "satisfaction", "kind"):
            batch_op.drop_column(column)
