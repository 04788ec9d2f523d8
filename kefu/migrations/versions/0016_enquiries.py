"""enquiries: the enquiry (咨询) and its audit trail; customer feedback and suggestions

Revision ID: enquiries
Revises: surveys
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "enquiries"
down_revision: str | None = "surveys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "enquiries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enquiry_no", sa.String(length=32), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "hotline",
                "email",
                "web",
                "im",
                "face_to_face",
                "social",
                "phone",
                "visit",
                name="channel",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "referred",
                "answered",
                "closed",
                "converted",
                name="enquiry_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("answered_by_id", sa.Integer(), nullable=True),
        sa.Column("department", sa.String(length=32), nullable=True),
        sa.Column("department_answer", sa.Text(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("reply_sent", sa.String(length=32), nullable=True),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("complaint_id", sa.Integer(), nullable=True),
        sa.Column("marked_wrong_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("marked_wrong_by_id", sa.Integer(), nullable=True),
        sa.Column("wrong_reason", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["answered_by_id"], ["staff.id"], name=op.f("fk_enquiries_answered_by_id_staff")),
        sa.ForeignKeyConstraint(["complaint_id"], ["complaints.id"], name=op.f("fk_enquiries_complaint_id_complaints")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_enquiries_customer_id_customers")),
        sa.ForeignKeyConstraint(
            ["marked_wrong_by_id"], ["staff.id"], name=op.f("fk_enquiries_marked_wrong_by_id_staff")
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["staff.id"], name=op.f("fk_enquiries_owner_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enquiries")),
        sa.UniqueConstraint("enquiry_no", name=op.f("uq_enquiries_enquiry_no")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_enquiries_idempotency_key")),
    )
    op.create_index(op.f("ix_enquiries_answered_by_id"), "enquiries", ["answered_by_id"], unique=False)
    op.create_index(op.f("ix_enquiries_complaint_id"), "enquiries", ["complaint_id"], unique=False)
    op.create_index(op.f("ix_enquiries_customer_id"), "enquiries", ["customer_id"], unique=False)
    op.create_index(op.f("ix_enquiries_due_at"), "enquiries", ["due_at"], unique=False)
    op.create_index(op.f("ix_enquiries_owner_id"), "enquiries", ["owner_id"], unique=False)
    op.create_index(op.f("ix_enquiries_received_at"), "enquiries", ["received_at"], unique=False)
    op.create_index(op.f("ix_enquiries_status"), "enquiries", ["status"], unique=False)
    op.create_table(
        "enquiry_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enquiry_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["enquiry_id"], ["enquiries.id"], name=op.f("fk_enquiry_events_enquiry_id_enquiries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enquiry_events")),
        sa.UniqueConstraint("enquiry_id", "action", "key", name=op.f("uq_enquiry_events_enquiry_id_action_key")),
    )
    op.create_index(op.f("ix_enquiry_events_at"), "enquiry_events", ["at"], unique=False)
    op.create_index(op.f("ix_enquiry_events_enquiry_id"), "enquiry_events", ["enquiry_id"], unique=False)

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feedback_no", sa.String(length=32), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("feedback", "suggestion", name="feedback_kind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "channel",
            sa.Enum(
                "hotline",
                "email",
                "web",
                "im",
                "face_to_face",
                "social",
                "phone",
                "visit",
                name="channel",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=True),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("department_answer", sa.Text(), nullable=True),
        sa.Column("answered_by_id", sa.Integer(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("reply_sent", sa.String(length=32), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reasonable", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["answered_by_id"], ["staff.id"], name=op.f("fk_feedback_answered_by_id_staff")),
        sa.ForeignKeyConstraint(["recorded_by_id"], ["staff.id"], name=op.f("fk_feedback_recorded_by_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("feedback_no", name=op.f("uq_feedback_feedback_no")),
    )
    op.create_index(op.f("ix_feedback_due_at"), "feedback", ["due_at"], unique=False)
    op.create_index(op.f("ix_feedback_received_at"), "feedback", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_feedback_received_at"), table_name="feedback")
    op.drop_index(op.f("ix_feedback_due_at"), table_name="feedback")
    op.drop_table("feedback")
    op.drop_index(op.f("ix_enquiry_events_enquiry_id"), table_name="enquiry_events")
    op.drop_index(op.f("ix_enquiry_events_at"), table_name="enquiry_events")
    op.drop_table("enquiry_events")
    op.drop_index(op.f("ix_enquiries_status"), table_name="enquiries")
    op.drop_index(op.f("ix_enquiries_received_at"), table_name="enquiries")
    op.drop_index(op.f("ix_enquiries_owner_id"), table_name="enquiries")
    op.drop_index(op.f("ix_enquiries_due_at"), table_name="enquiries")
    op.drop_index(op.f("ix_enquiries_customer_id"), table_name="enquiries")
    op.drop_index(op.f("ix_enquiries_complaint_id"), table_name="enquiries")
    op.drop_index(op.f("ix_enquiries_answered_by_id"), table_name="enquiries")
    op.drop_table("enquiries")
