"""Tiers: levels members reach with the qualifying points they earned over a window.

``tier_program``: the one definition (id 1): the qualifying account, the window, how long a
reached level is kept, and the schedule of its evaluations with the last one performed.
``tier_level``: the levels, lowest first, each with its threshold. ``member_tier``: each
member's level as the latest evaluation left it. ``tier_run``: one row per evaluation
performed (its time is the primary key). ``ix_entry_tier``: the tier moves by time.

Revision ID: 0013_tiers
Revises: 0012_holds
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_tiers"
down_revision = "0012_holds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tier_program",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(),
                  sa.ForeignKey("account.id", name="fk_tier_program_account_id_account"),
                  nullable=False),
        sa.Column("window", sa.String(32), nullable=False),
        sa.Column("keep", sa.String(32), nullable=True),
        sa.Column("schedule", sa.String(100), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("last_evaluated_at", sa.DateTime(), nullable=True),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tier_program"),
    )
    op.create_table(
        "tier_level",
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("name_key", sa.String(100), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_tier_level"),
        sa.UniqueConstraint("name_key", name="uq_tier_level_name_key"),
    )
    op.create_table(
        "member_tier",
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("level", sa.String(100), nullable=False),
        sa.Column("reached_at", sa.DateTime(), nullable=False),
        sa.Column("kept_until", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_member_tier"),
    )
    op.create_table(
        "tier_run",
        sa.Column("evaluated_at", sa.DateTime(), nullable=False),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.Column("up", sa.BigInteger(), nullable=False),
        sa.Column("down", sa.BigInteger(), nullable=False),
        sa.Column("changed", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("performed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("evaluated_at", name="pk_tier_run"),
    )
    op.create_index("ix_entry_tier", "entry", ["occurred_at"],
                    sqlite_where=sa.text("type = 'tier'"),
                    postgresql_where=sa.text("type = 'tier'"))


def downgrade() -> None:
    op.drop_index("ix_entry_tier", table_name="entry")
    op.drop_table("tier_run")
    op.drop_table("member_tier")
    op.drop_table("tier_level")
    op.drop_table("tier_program")
