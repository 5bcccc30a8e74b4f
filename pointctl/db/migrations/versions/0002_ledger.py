"""The ledger: balances, lots, draws, activity events and idempotency records.

Revision ID: 0002_ledger
Revises: 0001_foundation
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_ledger"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN_LOTS = sa.text("remaining > 0")


def upgrade() -> None:
    # plain ADD COLUMN (no table rebuild), so the append-only triggers on entry stay in place
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE entry ADD COLUMN related_entry_id INTEGER "
                   "CONSTRAINT fk_entry_related_entry_id_entry REFERENCES entry (id)")
    else:
        op.add_column("entry", sa.Column("related_entry_id", BigId, nullable=True))
        op.create_foreign_key(op.f("fk_entry_related_entry_id_entry"), "entry", "entry",
                              ["related_entry_id"], ["id"])
    op.add_column("entry", sa.Column("written_off", sa.BigInteger(), nullable=False,
                                     server_default="0"))
    op.create_index("ix_entry_user_id_occurred_at", "entry", ["user_id", "occurred_at"])
    op.create_index("ix_entry_reference_id", "entry", ["reference_id"])
    op.create_index("ix_entry_related_entry_id", "entry", ["related_entry_id"])
    op.create_index("ix_entry_occurred_at", "entry", ["occurred_at"])

    op.create_table(
        "balance",
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("debt", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"],
                                name=op.f("fk_balance_account_id_account")),
        sa.PrimaryKeyConstraint("user_id", "account_id", name=op.f("pk_balance")),
    )
    op.create_table(
        "lot",
        sa.Column("id", BigId, nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", BigId, nullable=False),
        sa.Column("original", sa.BigInteger(), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.Column("expired", sa.BigInteger(), nullable=False),
        sa.Column("moved", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("available_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"],
                                name=op.f("fk_lot_account_id_account")),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"],
                                name=op.f("fk_lot_source_id_source")),
        sa.ForeignKeyConstraint(["entry_id"], ["entry.id"], name=op.f("fk_lot_entry_id_entry")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lot")),
    )
    op.create_index("ix_lot_open_fifo", "lot", ["user_id", "account_id", "created_at", "id"],
                    sqlite_where=OPEN_LOTS, postgresql_where=OPEN_LOTS)
    op.create_index("ix_lot_source_id", "lot", ["source_id"])
    op.create_index("ix_lot_entry_id", "lot", ["entry_id"])
    op.create_table(
        "draw",
        sa.Column("id", BigId, nullable=False),
        sa.Column("entry_id", BigId, nullable=False),
        sa.Column("lot_id", BigId, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("reverses_draw_id", BigId, nullable=True),
        sa.ForeignKeyConstraint(["entry_id"], ["entry.id"], name=op.f("fk_draw_entry_id_entry")),
        sa.ForeignKeyConstraint(["lot_id"], ["lot.id"], name=op.f("fk_draw_lot_id_lot")),
        sa.ForeignKeyConstraint(["reverses_draw_id"], ["draw.id"],
                                name=op.f("fk_draw_reverses_draw_id_draw")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draw")),
    )
    op.create_index("ix_draw_entry_id", "draw", ["entry_id"])
    op.create_index("ix_draw_lot_id", "draw", ["lot_id"])
    op.create_index("ix_draw_reverses_draw_id", "draw", ["reverses_draw_id"])
    op.create_table(
        "activity",
        sa.Column("id", BigId, nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("event", sa.String(50), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity")),
    )
    op.create_index("ix_activity_user_id_occurred_at", "activity", ["user_id", "occurred_at"])
    op.create_table(
        "idempotency",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency")),
    )


def downgrade() -> None:
    op.drop_table("idempotency")
    op.drop_table("activity")
    op.drop_table("draw")
    op.drop_table("lot")
    op.drop_table("balance")
    for index in ("ix_entry_occurred_at", "ix_entry_related_entry_id", "ix_entry_reference_id",
                  "ix_entry_user_id_occurred_at"):
        op.drop_index(index, table_name="entry")
    op.drop_column("entry", "written_off")
    op.drop_column("entry", "related_entry_id")
