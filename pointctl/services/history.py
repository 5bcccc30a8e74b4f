"""A customer's balances as they were at a past moment, computed from the ledger (support
disputes: "I had 500 points on March 3").

The balance of an account at T is the sum of the user's entries in it up to T (every change of
a balance is an entry: issues, spends with their debt, reversals, adjustments, transfers,
expirations, rollovers, reactivations). The pending part is what the lots not yet available at
T held then: their points less what draws up to T took (a spend reversal gives back; a
reactivation moves expired points and takes nothing from the lot).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from pointctl.core import clock, draws
from pointctl.core.errors import NotFoundError
from pointctl.db.rawsql import RawSql
from pointctl.services.writes import clean_user


def history(session: Session, *, user: str, at: datetime) -> dict[str, Any]:
    user = clean_user(user)
    from pointctl.services.punctual import as_punctual, late_note

    # the evaluations due by then count, as if a late expire run had run on time
    with as_punctual(session, user, min(at, clock.now())) as applied:
        found = _history(session, user, at)
    return {**found, **late_note(applied)}


def _history(session: Session, user: str, at: datetime) -> dict[str, Any]:
    sql = RawSql(session)
    if sql.run("SELECT 1 FROM entry WHERE user_id = :user LIMIT 1", user=user).first() is None:
        raise NotFoundError(f"no entries for user {user!r}")
    params = {"user": user, "at": sql.time(at)}
    pending = {account_id: int(points) for account_id, points in sql.run(
        """SELECT l.account_id, SUM(l.original - COALESCE((
                  SELECT SUM(""" + draws.taken_sql(kind="d.kind", points="d.points") + """)
                    FROM draw d JOIN entry e ON e.id = d.entry_id
                   WHERE d.lot_id = l.id AND e.occurred_at <= :at), 0))
             FROM lot l
            WHERE l.user_id = :user AND l.created_at <= :at AND l.available_at > :at
            GROUP BY l.account_id""", **params)}
    accounts: list[dict[str, Any]] = []
    groups: dict[str, dict[str, Any]] = {}
    for account_id, name, group, points in sql.run(
            """SELECT a.id, a.name, a.group_label, SUM(e.points)
                 FROM entry e JOIN account a ON a.id = e.account_id
                WHERE e.user_id = :user AND e.occurred_at <= :at
                GROUP BY a.id, a.name, a.group_label ORDER BY a.id""", **params):
        row = {"account": name, "group": group, "balance": int(points),
               "pending": pending.get(account_id, 0)}
        accounts.append(row)
        if group:
            total = groups.setdefault(group, {"group": group, "balance": 0, "pending": 0})
            total["balance"] += row["balance"]
            total["pending"] += row["pending"]
    return {"user": user, "at": clock.format_time(at), "accounts": accounts,
            "groups": list(groups.values())}
