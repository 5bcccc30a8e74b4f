"""Expiration: program settings, one expiration policy per account, the record of performed
evaluations, reactivation settings on accounts, and the index that finds an account's open lots
by age.

Revision ID: 0004_expiration
Revises: 0003_restrictions
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_expiration"
down_revision = "0003_restrictions"
branch_labels = None
depends_on = None

OPEN_LOTS = sa.text("remaining > 0")


def upgrade() -> None:
    op.create_table(
        "setting",
        sa.Column("key", sa.String(50), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_setting")),
    )
    op.create_table(
        "expiration_policy",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("schedule", sa.String(100), nullable=False),
        sa.Column("older_than", sa.String(32), nullable=True),
        sa.Column("rollover_to_id", sa.Integer(), nullable=True),
        sa.Column("snap_to", sa.String(16), nullable=True),
        sa.Column("fixed_date", sa.String(5), nullable=True),
        sa.Column("min_age", sa.String(32), nullable=True),
        sa.Column("inactive_for", sa.String(32), nullable=True),
        sa.Column("percent", sa.Integer(), nullable=True),
        sa.Column("activity", sa.String(500), nullable=True),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("last_evaluated_at", sa.DateTime(), nullable=True),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"],
                                name=op.f("fk_expiration_policy_account_id_account")),
        sa.ForeignKeyConstraint(["rollover_to_id"], ["account.id"],
                                name=op.f("fk_expiration_policy_rollover_to_id_account")),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_expiration_policy")),
    )
    op.create_table(
        "expiration_run",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(), nullable=False),
        sa.Column("policy", sa.String(300), nullable=False),
        sa.Column("users", sa.BigInteger(), nullable=False),
        sa.Column("lots", sa.BigInteger(), nullable=False),
        sa.Column("expired", sa.BigInteger(), nullable=False),
        sa.Column("rolled_over", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("performed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"],
                                name=op.f("fk_expiration_run_account_id_account")),
        sa.PrimaryKeyConstraint("account_id", "evaluated_at", name=op.f("pk_expiration_run")),
    )
    # plain ADD COLUMN on both databases (no table rebuild)
    op.add_column("account", sa.Column("reactivation_window", sa.String(32), nullable=True))
    op.add_column("account", sa.Column("reactivation_min_points", sa.BigInteger(),
                                       nullable=True))
    # an evaluation's candidates: an account's lots with points left, by age
    op.create_index("ix_lot_open_account_age", "lot", ["account_id", "created_at"],
                    sqlite_where=OPEN_LOTS, postgresql_where=OPEN_LOTS)


def downgrade() -> None:
    op.drop_index("ix_lot_open_account_age", table_name="lot")
    with op.batch_alter_table("account") as batch:
        batch.drop_column("reactivation_min_points")
        batch.drop_column("reactivation_window")
    op.drop_table("expiration_run")
    op.drop_table("expiration_policy")
    op.drop_table("setting")
