"""rate limits of the intake's status page, shared by every intake process

Revision ID: intake_rate_limits
Revises: staff_directory
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_rate_limits"
down_revision: str | None = "staff_directory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", "window_start", name=op.f("pk_rate_limits")),
    )
    op.create_index(op.f("ix_rate_limits_window_start"), "rate_limits", ["window_start"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_limits_window_start"), table_name="rate_limits")
    op.drop_table("rate_limits")
