"""Promotion weights on accounts, and members' enrollment dates.

``account.qualifying_weight`` and ``account.non_qualifying_weight``: whole numbers that a
promotion engine reads to choose between promotions that both apply (NULL: not set).
``enrollment``: the date a member joined the program, recorded once per user (a member
migrated from another system keeps the date they really joined); anniversary expiration
counts from it.

Revision ID: 0006_weights_enrollment
Revises: 0005_lot_origin
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_weights_enrollment"
down_revision = "0005_lot_origin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("account", sa.Column("qualifying_weight", sa.Integer(), nullable=True))
    op.add_column("account", sa.Column("non_qualifying_weight", sa.Integer(), nullable=True))
    op.create_table(
        "enrollment",
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_enrollment")),
    )


def downgrade() -> None:
    op.drop_table("enrollment")
    with op.batch_alter_table("account") as batch:
        batch.drop_column("non_qualifying_weight")
        batch.drop_column("qualifying_weight")
