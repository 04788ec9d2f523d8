"""the name the complainant gave: letters about the case greet the person who spoke, not the company on record

Revision ID: complaint_contact_name
Revises: onboarding
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "complaint_contact_name"
down_revision: str | None = "onboarding"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("complaints", sa.Column("contact_name", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("complaints") as batch:
        batch.drop_column("contact_name")
