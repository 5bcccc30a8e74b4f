"""What a point is worth: a value per point and its currency on each source.

``source.value_micros``: the value of one point in millionths of the currency's unit (0.01 USD
is 10,000), exact; NULL: the source's points have no value set. ``source.currency``: its ISO
4217 code, set exactly when the value is.

Revision ID: 0008_point_value
Revises: 0007_catch_up
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_point_value"
down_revision = "0007_catch_up"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("source", sa.Column("value_micros", sa.BigInteger(), nullable=True))
    op.add_column("source", sa.Column("currency", sa.String(3), nullable=True))


def downgrade() -> None:
    op.drop_column("source", "currency")
    op.drop_column("source", "value_micros")
