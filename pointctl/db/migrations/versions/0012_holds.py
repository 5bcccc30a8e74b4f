"""Checkout holds: points reserved for an order, then captured (spent) or released.

``lot.held``: the points of the lot earmarked by open holds (never more than ``remaining``);
what a debit may take from a lot is ``remaining - held``. ``hold``: one row per hold, named by
its reference id (unique): who, how many points, until when, and what became of it (open,
captured, voided, expired). The lots a hold earmarks are its ``hold`` draws.

Revision ID: 0012_holds
Revises: 0011_transfer_limits
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_holds"
down_revision = "0011_transfer_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("lot", sa.Column("held", sa.BigInteger(), nullable=False,
                                   server_default="0"))
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "hold",
        sa.Column("id", big_id, primary_key=True),
        sa.Column("reference_id", sa.String(200), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("captured", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("entry_id", big_id, sa.ForeignKey("entry.id", name="fk_hold_entry_id_entry"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_hold"),
        sa.UniqueConstraint("reference_id", name="uq_hold_reference_id"),
    )
    op.create_index("ix_hold_open_expires_at", "hold", ["expires_at"],
                    sqlite_where=sa.text("status = 'open'"),
                    postgresql_where=sa.text("status = 'open'"))
    op.create_index("ix_hold_user_id", "hold", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_hold_user_id", table_name="hold")
    op.drop_index("ix_hold_open_expires_at", table_name="hold")
    op.drop_table("hold")
    op.drop_column("lot", "held")
