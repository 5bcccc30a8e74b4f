"""Transfer limits of an account, for transfers from one member to another: the fewest and the
most points per transfer, and the most one sending member may transfer per calendar year
(``account.transfer_min``, ``transfer_max``, ``transfer_yearly_max``; NULL: no limit).

Revision ID: 0011_transfer_limits
Revises: 0010_credit_limits
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_transfer_limits"
down_revision = "0010_credit_limits"
branch_labels = None
depends_on = None

COLUMNS = ("transfer_min", "transfer_max", "transfer_yearly_max")


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("account", sa.Column(column, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("account", column)
