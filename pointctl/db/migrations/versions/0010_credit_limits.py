"""Credit limits: ``account.max_debt``, the most points a customer may owe in an account that
allows negative balances (NULL: no limit, as before).

Revision ID: 0010_credit_limits
Revises: 0009_change_history
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_credit_limits"
down_revision = "0009_change_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("account", sa.Column("max_debt", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("account", "max_debt")
