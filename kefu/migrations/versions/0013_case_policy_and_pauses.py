"""the policy each case follows: its version and content hash on the case, the content in policy_snapshots

Revision ID: case_policy_and_pauses
Revises: reports
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "case_policy_and_pauses"
down_revision: str | None = "reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_snapshots",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_policy_snapshots")),
    )
    with op.batch_alter_table("complaints") as batch:
        batch.add_column(sa.Column("policy_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("policy_hash", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_complaints_policy_hash"), ["policy_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("complaints") as batch:
        batch.drop_index(batch.f("ix_complaints_policy_hash"))
        batch.drop_column("policy_hash")
        batch.drop_column("policy_version")
    op.drop_table("policy_snapshots")
