"""Restrictions: frequency limits on sources, and the indexes that keep their window sums cheap.

Revision ID: 0003_restrictions
Revises: 0002_ledger
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_restrictions"
down_revision = "0002_ledger"
branch_labels = None
depends_on = None

ISSUES_ONLY = sa.text("type = 'issue'")


def upgrade() -> None:
    op.create_table(
        "restriction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("max_points", sa.BigInteger(), nullable=False),
        sa.Column("per", sa.String(32), nullable=False),
        sa.Column("per_customer", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"],
                                name=op.f("fk_restriction_source_id_source")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restriction")),
    )
    op.create_index("ix_restriction_source_id", "restriction", ["source_id"])
    # new indexes only: entry keeps its append-only triggers (no table rebuild)
    op.create_index("ix_entry_issue_source_time", "entry",
                    ["source_id", "occurred_at", "points"],
                    sqlite_where=ISSUES_ONLY, postgresql_where=ISSUES_ONLY)
    op.create_index("ix_entry_issue_source_user_time", "entry",
                    ["source_id", "user_id", "occurred_at", "points"],
                    sqlite_where=ISSUES_ONLY, postgresql_where=ISSUES_ONLY)


def downgrade() -> None:
    op.drop_index("ix_entry_issue_source_user_time", table_name="entry")
    op.drop_index("ix_entry_issue_source_time", table_name="entry")
    op.drop_index("ix_restriction_source_id", table_name="restriction")
    op.drop_table("restriction")
