"""contact cadence: follow-up items of communication records, the business-review flag, cadence reminders sent,
KPI improvement tasks and the audited tier changes (demotion)

Revision ID: contact_cadence
Revises: staff_assessment
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "contact_cadence"
down_revision: str | None = "staff_assessment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("by_staff_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["by_staff_id"], ["staff.id"], name=op.f("fk_account_changes_by_staff_id_staff")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_account_changes_customer_id_customers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_changes")),
    )
    with op.batch_alter_table("account_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_account_changes_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "cadence_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("gap", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_cadence_notices_customer_id_customers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_cadence_notices_staff_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cadence_notices")),
        sa.UniqueConstraint(
            "customer_id", "gap", "period", "stage", name=op.f("uq_cadence_notices_customer_id_gap_period_stage")
        ),
    )
    with op.batch_alter_table("cadence_notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cadence_notices_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "kpi_improvement_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("kpi", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("target", sa.Float(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_kpi_improvement_tasks_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["staff.id"], name=op.f("fk_kpi_improvement_tasks_owner_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_improvement_tasks")),
        sa.UniqueConstraint("customer_id", "month", "kpi", name=op.f("uq_kpi_improvement_tasks_customer_id_month_kpi")),
    )
    with op.batch_alter_table("kpi_improvement_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kpi_improvement_tasks_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "contact_follow_ups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["staff.id"], name=op.f("fk_contact_follow_ups_owner_id_staff")),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["communication_records.id"],
            name=op.f("fk_contact_follow_ups_record_id_communication_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_follow_ups")),
    )
    with op.batch_alter_table("contact_follow_ups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_follow_ups_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_contact_follow_ups_record_id"), ["record_id"], unique=False)

    # In place: communication_records is referenced by foreign key (no batch copy on SQLite).
    op.add_column("communication_records", sa.Column("business_review", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("communication_records", schema=None) as batch_op:
        batch_op.drop_column("business_review")

    with op.batch_alter_table("contact_follow_ups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_follow_ups_record_id"))
        batch_op.drop_index(batch_op.f("ix_contact_follow_ups_owner_id"))

    op.drop_table("contact_follow_ups")
    with op.batch_alter_table("kpi_improvement_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kpi_improvement_tasks_customer_id"))

    op.drop_table("kpi_improvement_tasks")
    with op.batch_alter_table("cadence_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cadence_notices_customer_id"))

    op.drop_table("cadence_notices")
    with op.batch_alter_table("account_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_changes_customer_id"))

    op.drop_table("account_changes")
