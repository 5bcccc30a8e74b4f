"""Exact catch-up of late expiration runs.

``balance.evaluated_through``: the latest evaluation of the account's policy applied to this
user alone, by a write that came after it and before ``expire run`` performed it for
everyone (NULL: none beyond the policy's ``last_evaluated_at``). ``expire run`` skips the
users already evaluated through its time, so each (account, user, evaluation) happens once.

``expiration_policy.next_due_at``: the next evaluation after the last one performed (or after
the start), kept by pointctl whenever it changes; a write compares its time with it, so a
punctual cron costs writes one comparison.

Revision ID: 0007_catch_up
Revises: 0006_weights_enrollment
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_catch_up"
down_revision = "0006_weights_enrollment"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("balance", sa.Column("evaluated_through", sa.DateTime(), nullable=True))
    op.create_index("ix_balance_evaluated_through", "balance",
                    ["account_id", "evaluated_through"],
                    sqlite_where=sa.text("evaluated_through IS NOT NULL"),
                    postgresql_where=sa.text("evaluated_through IS NOT NULL"))
    op.add_column("expiration_policy", sa.Column("next_due_at", sa.DateTime(), nullable=True))
    bind = op.get_bind()
    policies = bind.execute(sa.text(
        "SELECT account_id, schedule, starts_at, last_evaluated_at FROM expiration_policy"
    )).all()
    if policies:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        from pointctl.core.schedules import parse_schedule

        zone = bind.execute(sa.text(
            "SELECT value FROM setting WHERE key = 'timezone'")).scalar() or "UTC"

        def moment(value: object) -> datetime:
            return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))

        for account_id, schedule, starts, last in policies:
            start = moment(starts)
            due = parse_schedule(schedule).next_after(moment(last) if last else start,
                                                      ZoneInfo(zone), start)
            if due is None:
                continue
            stamp = due if bind.dialect.name == "postgresql" else \
                due.isoformat(" ", "microseconds")
            bind.execute(sa.text("UPDATE expiration_policy SET next_due_at = :due "
                                 "WHERE account_id = :account"),
                         {"due": stamp, "account": account_id})


def downgrade() -> None:
    with op.batch_alter_table("expiration_policy") as batch:
        batch.drop_column("next_due_at")
    op.drop_index("ix_balance_evaluated_through", table_name="balance")
    with op.batch_alter_table("balance") as batch:
        batch.drop_column("evaluated_through")
