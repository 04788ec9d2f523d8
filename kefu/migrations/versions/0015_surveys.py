"""satisfaction surveys: campaigns, invitations (token hashes only, or why a customer was skipped), answers

Revision ID: surveys
Revises: customer_registry
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "surveys"
down_revision: str | None = "customer_registry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "survey_campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("yearly", "key_account", "ad_hoc", name="survey_kind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "segment",
            sa.Enum("all", "key", "general", name="survey_segment", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("launched_by", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_campaigns")),
    )
    with op.batch_alter_table("survey_campaigns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_campaigns_opened_at"), ["opened_at"], unique=False)

    op.create_table(
        "survey_invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("skipped_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["survey_campaigns.id"], name=op.f("fk_survey_invitations_campaign_id_survey_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_survey_invitations_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_invitations")),
        sa.UniqueConstraint("campaign_id", "customer_id", name=op.f("uq_survey_invitations_campaign_id_customer_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_survey_invitations_token_hash")),
    )
    with op.batch_alter_table("survey_invitations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_invitations_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_survey_invitations_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_survey_invitations_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "survey_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("nps", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column(
            "collected_by",
            sa.Enum("link", "phone", "visit", name="survey_collected_by", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("entered_by_id", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=True),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["survey_campaigns.id"], name=op.f("fk_survey_answers_campaign_id_survey_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["complaint_id"], ["complaints.id"], name=op.f("fk_survey_answers_complaint_id_complaints")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_survey_answers_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["entered_by_id"], ["staff.id"], name=op.f("fk_survey_answers_entered_by_id_staff")),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["survey_invitations.id"],
            name=op.f("fk_survey_answers_invitation_id_survey_invitations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_answers")),
        sa.UniqueConstraint("campaign_id", "customer_id", name=op.f("uq_survey_answers_campaign_id_customer_id")),
        sa.UniqueConstraint("invitation_id", name=op.f("uq_survey_answers_invitation_id")),
    )
    with op.batch_alter_table("survey_answers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_answers_answered_at"), ["answered_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_survey_answers_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_survey_answers_customer_id"), ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("survey_answers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_answers_customer_id"))
        batch_op.drop_index(batch_op.f("ix_survey_answers_campaign_id"))
        batch_op.drop_index(batch_op.f("ix_survey_answers_answered_at"))

    op.drop_table("survey_answers")
    with op.batch_alter_table("survey_invitations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_invitations_customer_id"))
        batch_op.drop_index(batch_op.f("ix_survey_invitations_created_at"))
        batch_op.drop_index(batch_op.f("ix_survey_invitations_campaign_id"))

    op.drop_table("survey_invitations")
    with op.batch_alter_table("survey_campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_campaigns_opened_at"))

    op.drop_table("survey_campaigns")
