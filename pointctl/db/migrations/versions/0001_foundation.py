"""Foundation: accounts, sources, their links, and the append-only audit log.

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("name_key", sa.String(100), nullable=False),
        sa.Column("group_label", sa.String(100), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("allow_negative", sa.Boolean(), nullable=False),
        sa.Column("max_balance", sa.BigInteger(), nullable=True),
        sa.Column("qualifying", sa.Boolean(), nullable=False),
        sa.Column("pending_for", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account")),
        sa.UniqueConstraint("name_key", name=op.f("uq_account_name_key")),
    )
    op.create_table(
        "source",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("name_key", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("inventory", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source")),
        sa.UniqueConstraint("name_key", name=op.f("uq_source_name_key")),
    )
    op.create_table(
        "account_source",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_account_source_account_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["source.id"], name=op.f("fk_account_source_source_id_source")
        ),
        sa.PrimaryKeyConstraint("account_id", "source_id", name=op.f("pk_account_source")),
    )
    op.create_index(
        op.f("ix_account_source_source_id"), "account_source", ["source_id"], unique=False
    )
    op.create_table(
        "entry",
        sa.Column("id", BigId, nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("reference_id", sa.String(200), nullable=True),
        sa.Column("reference_type", sa.String(200), nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_entry_account_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["source.id"], name=op.f("fk_entry_source_id_source")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entry")),
    )
    op.create_index(
        "ix_entry_source_id_occurred_at", "entry", ["source_id", "occurred_at"], unique=False
    )
    _make_entries_append_only()


def _make_entries_append_only() -> None:
    """Entries are append-only: the database refuses to rewrite or delete an audit entry."""
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER entry_append_only_{action.lower()} BEFORE {action} ON entry "
                "BEGIN SELECT RAISE(ABORT, 'entry is append-only'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION pointctl_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'entry is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER entry_append_only BEFORE UPDATE OR DELETE ON entry "
            "FOR EACH ROW EXECUTE FUNCTION pointctl_entry_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS entry_append_only_update")
        op.execute("DROP TRIGGER IF EXISTS entry_append_only_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS entry_append_only ON entry")
        op.execute("DROP FUNCTION IF EXISTS pointctl_entry_append_only()")
    op.drop_index("ix_entry_source_id_occurred_at", table_name="entry")
    op.drop_table("entry")
    op.drop_index(op.f("ix_account_source_source_id"), table_name="account_source")
    op.drop_table("account_source")
    op.drop_table("source")
    op.drop_table("account")
