"""customer registry: customer code, more addresses, industry, preferences; key-account teams, monthly business
figures, key-account nominations

Revision ID: customer_registry
Revises: case_policy_and_pauses
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "customer_registry"
down_revision: str | None = "case_policy_and_pauses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns and a unique index added in place: a batch (copy-and-move) of ``customers`` on SQLite drops the table,
    # which the complaints' and phones' foreign keys refuse once it holds customers.
    op.add_column("customers", sa.Column("code", sa.String(length=32), nullable=True))
    op.add_column("customers", sa.Column("more_addresses", sa.JSON(), server_default="[]", nullable=False))
    op.add_column("customers", sa.Column("industry", sa.String(length=100), nullable=True))
    op.add_column("customers", sa.Column("preferences", sa.Text(), nullable=True))
    op.create_index(op.f("ix_customers_code"), "customers", ["code"], unique=True)
    op.create_table(
        "key_account_team",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column(
            "team_role",
            sa.Enum(
                "project_manager",
                "service_specialist",
                "dispatcher",
                "after_sales",
                name="team_role",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_key_account_team_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_key_account_team_staff_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_account_team")),
        sa.UniqueConstraint("customer_id", "team_role", name=op.f("uq_key_account_team_customer_id_team_role")),
    )
    op.create_index(op.f("ix_key_account_team_customer_id"), "key_account_team", ["customer_id"], unique=False)
    op.create_index(op.f("ix_key_account_team_staff_id"), "key_account_team", ["staff_id"], unique=False)
    op.create_table(
        "business_figures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("volume", sa.Numeric(16, 2), nullable=False),
        sa.Column("orders_on_time", sa.Integer(), nullable=False),
        sa.Column("deliveries_on_time", sa.Integer(), nullable=False),
        sa.Column("complaints", sa.Integer(), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_business_figures_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_figures")),
        sa.UniqueConstraint("customer_id", "month", name=op.f("uq_business_figures_customer_id_month")),
    )
    op.create_index(op.f("ix_business_figures_customer_id"), "business_figures", ["customer_id"], unique=False)
    op.create_index(op.f("ix_business_figures_month"), "business_figures", ["month"], unique=False)
    op.create_table(
        "key_account_nominations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column(
            "source",
            sa.Enum("scoring", "market", name="nomination_source", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("month", sa.Date(), nullable=True),
        sa.Column("score", sa.Numeric(6, 2), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("nominated_by_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_key_account_nominations_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["nominated_by_id"], ["staff.id"], name=op.f("fk_key_account_nominations_nominated_by_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_account_nominations")),
    )
    op.create_index(
        op.f("ix_key_account_nominations_customer_id"), "key_account_nominations", ["customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("key_account_nominations")
    op.drop_table("business_figures")
    op.drop_table("key_account_team")
    op.drop_index(op.f("ix_customers_code"), table_name="customers")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("preferences")
        batch_op.drop_column("industry")
        batch_op.drop_column("more_addresses")
        batch_op.drop_column("code")
