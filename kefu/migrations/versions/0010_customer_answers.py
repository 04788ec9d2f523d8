"""the customer's own answers: single-use links to accept or reject a proposed solution (hashes only)

Revision ID: customer_answers
Revises: personal_data_access
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "customer_answers"
down_revision: str | None = "personal_data_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_answer_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=False),
        sa.Column("step_key", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("solution", sa.Text(), nullable=False),
        sa.Column("promised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted", sa.Boolean(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["complaint_id"], ["complaints.id"], name=op.f("fk_customer_answer_links_complaint_id_complaints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_answer_links")),
        sa.UniqueConstraint("complaint_id", "step_key", name=op.f("uq_customer_answer_links_complaint_id_step_key")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_customer_answer_links_token_hash")),
    )
    op.create_index(
        op.f("ix_customer_answer_links_complaint_id"), "customer_answer_links", ["complaint_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_customer_answer_links_complaint_id"), table_name="customer_answer_links")
    op.drop_table("customer_answer_links")
