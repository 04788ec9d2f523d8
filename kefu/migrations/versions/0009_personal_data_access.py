"""personal data access log: who read a customer's personal data in full, when, which case, through what

Revision ID: personal_data_access
Revises: intake_rate_limits
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "personal_data_access"
down_revision: str | None = "intake_rate_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "personal_data_access",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("through", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["complaint_id"], ["complaints.id"], name=op.f("fk_personal_data_access_complaint_id_complaints")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_personal_data_access_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_personal_data_access_staff_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personal_data_access")),
    )
    for column in ("at", "complaint_id", "customer_id", "staff_id"):
        op.create_index(op.f(f"ix_personal_data_access_{column}"), "personal_data_access", [column], unique=False)


def downgrade() -> None:
    for column in ("at", "complaint_id", "customer_id", "staff_id"):
        op.drop_index(op.f(f"ix_personal_data_access_{column}"), table_name="personal_data_access")
    op.drop_table("personal_data_access")
