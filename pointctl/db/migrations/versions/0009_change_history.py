"""The program's change history.

``entry.detail``: on an entry of type ``change`` (0 points), JSON of one change to an account, a
source or a setting: the fields that changed (old -> new) and the object's whole state after
it. ``ix_entry_change`` finds an object's latest state among the change entries.

The history starts here: every account, source and setting that exists gets one ``change``
entry holding its state now (reference type "... baseline"), so that the program can be
rebuilt for any moment from now on. The states are built from the tables as this revision
leaves them (this code is frozen with the revision; later fields are absent, and absent means
the default).

Revision ID: 0009_change_history
Revises: 0008_point_value
Create Date: 2026-12-04
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009_change_history"
down_revision = "0008_point_value"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("entry", sa.Column("detail", sa.Text(), nullable=True))
    op.create_index("ix_entry_change", "entry", ["id"],
                    sqlite_where=sa.text("type = 'change'"),
                    postgresql_where=sa.text("type = 'change'"))
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM account UNION ALL SELECT 1 FROM setting")).first() \
            is None:
        return  # an empty program: its history starts with its first change
    from pointctl.core import clock

    moment = clock.now()
    stamp: Any = moment if bind.dialect.name == "postgresql" else \
        moment.isoformat(" ", "microseconds")
    for kind, key, state in _states(bind):
        column = {"account": "account_id", "source": "source_id"}.get(kind)
        detail = {"object": kind, "id": key, "name": state.get("name", key),
                  "action": "baseline", "changes": [], "state": state}
        bind.execute(sa.text(
            "INSERT INTO entry (type, points, written_off, " + (f"{column}, " if column else "")
            + "reference_id, reference_type, note, actor, occurred_at, recorded_at, detail) "
            "VALUES ('change', 0, 0, " + (":key, " if column else "")
            + ":reference, :type, :note, 'pointctl', :at, :at, :detail)"),
            {"key": key, "reference": None if column else key,
             "type": f"{kind.capitalize()} baseline",
             "note": f"{kind} {state.get('name', key)!r} as it was when the change history "
                     "began",
             "at": stamp, "detail": json.dumps(detail)})


def _states(bind: Any) -> list[tuple[str, Any, dict[str, Any]]]:
    from pointctl.core.money import value_text

    found: list[tuple[str, Any, dict[str, Any]]] = []
    for key, value in bind.execute(sa.text("SELECT key, value FROM setting ORDER BY key")):
        found.append(("setting", key, {"value": value}))
    policies = {row.account_id: row for row in bind.execute(sa.text(
        "SELECT * FROM expiration_policy"))}
    for row in bind.execute(sa.text("SELECT * FROM account ORDER BY id")):
        item: dict[str, Any] = {"name": row.name}
        if row.group_label:
            item["group"] = row.group_label
        item.update({"default": bool(row.is_default), "allow_negative": bool(row.allow_negative),
                     "qualifying": bool(row.qualifying)})
        if row.max_balance is not None:
            item["max_balance"] = row.max_balance
        if row.pending_for:
            item["pending_for"] = row.pending_for
        for name in ("qualifying_weight", "non_qualifying_weight"):
            if getattr(row, name) is not None:
                item[name] = getattr(row, name)
        item["status"] = row.status
        policy = policies.get(row.id)
        if policy is not None:
            rule: dict[str, Any] = {"type": policy.kind, "every": policy.schedule}
            if policy.kind == "rolling":
                rule["older_than"] = policy.older_than
                if policy.rollover_to_id:
                    rule["rollover_to"] = policy.rollover_to_id
                if policy.snap_to:
                    rule["snap_to"] = policy.snap_to
            elif policy.kind == "fixed-date":
                rule["date"] = policy.fixed_date
                if policy.min_age:
                    rule["min_age"] = policy.min_age
            else:
                rule.update(inactive_for=policy.inactive_for, percent=policy.percent,
                            activity=(policy.activity or "").split(","))
            item["expiration"] = rule
        if row.reactivation_window:
            item["reactivation"] = {"window": row.reactivation_window}
            if row.reactivation_min_points:
                item["reactivation"]["min_points"] = row.reactivation_min_points
        found.append(("account", row.id, item))
    links: dict[int, list[int]] = {}
    for source_id, account_id in bind.execute(sa.text(
            "SELECT source_id, account_id FROM account_source ORDER BY account_id")):
        links.setdefault(source_id, []).append(account_id)
    rules: dict[int, list[dict[str, Any]]] = {}
    for row in bind.execute(sa.text("SELECT * FROM restriction ORDER BY id")):
        rules.setdefault(row.source_id, []).append(
            {"max_points": row.max_points, "per": row.per,
             "per_customer": bool(row.per_customer)})
    for row in bind.execute(sa.text("SELECT * FROM source ORDER BY id")):
        found.append(("source", row.id, {
            "name": row.name, "inventory": "unlimited" if row.inventory is None else "limited",
            "accounts": links.get(row.id, []), "status": row.status,
            **({} if row.value_micros is None else {
                "value": value_text(row.value_micros), "currency": row.currency}),
            "restrictions": rules.get(row.id, [])}))
    return found


def downgrade() -> None:
    op.drop_index("ix_entry_change", table_name="entry")
    op.drop_column("entry", "detail")
