"""customer phone index (a returning complainant found by phone or e-mail without a table scan)

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_phones",
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_phones_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("phone", name=op.f("pk_customer_phones")),
    )
    with op.batch_alter_table("customer_phones", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_phones_customer_id"), ["customer_id"], unique=False)
    op.create_index("ix_customers_email_lower", "customers", [sa.text("lower(email)")], unique=False)

    # Existing customers: each number to the first customer (lowest id) who gave it.
    connection = op.get_bind()
    customers = sa.table("customers", sa.column("id", sa.Integer()), sa.column("phones", sa.JSON()))
    phones = sa.table("customer_phones", sa.column("phone", sa.String()), sa.column("customer_id", sa.Integer()))
    owner: dict[str, int] = {}
    for customer_id, numbers in connection.execute(sa.select(customers.c.id, customers.c.phones).order_by("id")):
        for number in numbers or []:
            owner.setdefault(str(number), int(customer_id))
    if owner:
        op.bulk_insert(phones, [{"phone": p, "customer_id": c} for p, c in owner.items()])


def downgrade() -> None:
    op.drop_index("ix_customers_email_lower", table_name="customers")
    with op.batch_alter_table("customer_phones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_phones_customer_id"))
    op.drop_table("customer_phones")
