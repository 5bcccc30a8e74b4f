"""Lot lineage for the liability report, and an index of a source's issued lots by time.

``lot.origin_lot_id`` names the issued lot whose points a moved lot carries (a transfer, a
rollover or a reactivation keeps the points' origin); NULL on the issued lots themselves.

Existing moved lots are traced back: rollover and transfer lots exactly (a rollover credit
names its debit entry, whose one draw names the lot; a transfer's new lots were made in the
order of its draws); a reactivation lot made before this revision gathers one source's expired
points and is traced to the first lot it reactivated.

Revision ID: 0005_lot_origin
Revises: 0004_expiration
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_lot_origin"
down_revision = "0004_expiration"
branch_labels = None
depends_on = None

ROOT = "COALESCE(s.origin_lot_id, s.id)"
# (lot id, the lot its points came from) for every moved lot
PARENTS = f"""
SELECT l.id AS lot_id, {ROOT} AS origin
  FROM lot l JOIN entry c ON c.id = l.entry_id AND c.type = 'rollover'
  JOIN draw d ON d.entry_id = c.related_entry_id AND d.kind = 'rollover'
  JOIN lot s ON s.id = d.lot_id
UNION ALL
SELECT n.lot_id, {ROOT} AS origin
  FROM (SELECT l.id AS lot_id, l.entry_id,
               ROW_NUMBER() OVER (PARTITION BY l.entry_id ORDER BY l.id) AS n
          FROM lot l JOIN entry c ON c.id = l.entry_id AND c.type = 'transfer') n
  JOIN entry c ON c.id = n.entry_id
  JOIN (SELECT d.entry_id, d.lot_id,
               ROW_NUMBER() OVER (PARTITION BY d.entry_id ORDER BY d.id) AS n
          FROM draw d WHERE d.kind = 'transfer') d
    ON d.entry_id = c.related_entry_id AND d.n = n.n
  JOIN lot s ON s.id = d.lot_id
UNION ALL
SELECT l.id AS lot_id, MIN({ROOT}) AS origin
  FROM lot l JOIN entry c ON c.id = l.entry_id AND c.type = 'reactivation'
  JOIN draw d ON d.entry_id = c.id AND d.kind = 'reactivate'
  JOIN lot s ON s.id = d.lot_id AND s.source_id = l.source_id
 GROUP BY l.id
"""


def upgrade() -> None:
    op.add_column("lot", sa.Column("origin_lot_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_lot_origin_lot_id", "lot", ["origin_lot_id"],
                    sqlite_where=sa.text("origin_lot_id IS NOT NULL"),
                    postgresql_where=sa.text("origin_lot_id IS NOT NULL"))
    op.create_index("ix_lot_issued_source_time", "lot", ["source_id", "created_at"],
                    sqlite_where=sa.text("origin_lot_id IS NULL"),
                    postgresql_where=sa.text("origin_lot_id IS NULL"))
    bind = op.get_bind()
    differs = "IS DISTINCT FROM" if bind.dialect.name == "postgresql" else "IS NOT"
    # a chain of moves (escrow -> core -> another user) settles one link per round
    for _ in range(1000):
        changed = bind.execute(sa.text(
            f"UPDATE lot SET origin_lot_id = p.origin FROM ({PARENTS}) p "
            f"WHERE lot.id = p.lot_id AND lot.origin_lot_id {differs} p.origin")).rowcount
        if not changed:
            break


def downgrade() -> None:
    op.drop_index("ix_lot_issued_source_time", table_name="lot")
    op.drop_index("ix_lot_origin_lot_id", table_name="lot")
    op.drop_column("lot", "origin_lot_id")
