"""The point ledger's commands: issue, spend, reverse, adjust, transfer, activity, and balance.

Every credit creates a lot; every debit records its draws on lots (``draw``), so what became of
any point is exact. Each write is a chunk of one request for the ledger engine
(``pointctl.services.engine``), the code ``pointctl batch`` runs too; its locks are those of
``pointctl.services.locks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from pointctl.core import clock
from pointctl.core.draws import group_spendable, spendable
from pointctl.core.errors import InvalidInputError, NotFoundError
from pointctl.core.validation import check_points
from pointctl.db.rawsql import RawSql
from pointctl.services.writes import (
    DEFAULT_REFERENCE_TYPES,
    WriteOptions,
    check_reason,
    clean_user,
)

if TYPE_CHECKING:
    from pointctl.services.engine import Request

__all__ = ["DEFAULT_REFERENCE_TYPES", "WriteOptions", "clean_user"]  # re-exported


# --- the operations: each a chunk of one for the engine ----------------------------------

def issue(session: Session, *, user: str, points: int, source: str, account: str | None = None,
          clamp: bool = False, options: WriteOptions, entry_type: str = "issue",
          reference_type: str | None = None, note: str | None = None) -> dict[str, Any]:
    """Issue points from a source into a user's account (also the add side of ``adjust``)."""
    from pointctl.services import engine

    return engine.apply_one(session, engine.IssueRequest(
        user=user, points=points, source=source, account=account, clamp=clamp, options=options,
        entry_type=entry_type, reference_type=reference_type, note=note))


def spend(session: Session, *, user: str, points: int, accounts: Sequence[str] = (),
          clamp: bool = False, options: WriteOptions) -> dict[str, Any]:
    """Spend FIFO across the accounts in play; a shortfall becomes debt on the first account
    that allows a negative balance (up to its max debt: beyond it refused, or with ``clamp``
    only the part allowed is spent), or the spend is refused."""
    from pointctl.services import engine

    return engine.apply_one(session, engine.SpendRequest(
        user=user, points=points, accounts=tuple(accounts), clamp=clamp, options=options))


def reverse(session: Session, *, entry_id: int | None = None, reference_id: str | None = None,
            reference_type: str | None = None, points: int | None = None,
            clamp: bool = False, options: WriteOptions) -> dict[str, Any]:
    """Undo issues or spends, whole or in part (the latest target first); ``clamp``: only
    what a max debt allows, where returning spent points would create debt."""
    from pointctl.services import engine

    return engine.apply_one(session, engine.ReverseRequest(
        entry_id=entry_id, reference_id=reference_id, reference_type=reference_type,
        points=points, clamp=clamp, options=options))


def adjust_request(*, user: str, points: int, account: str, reason: str, source: str | None,
                   options: WriteOptions) -> Request:
    """adjust +N is an issue from a source (an "adjustment" entry, not limited by
    restrictions); adjust -N draws FIFO from the account, pending points included."""
    from pointctl.services import engine

    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        raise InvalidInputError("points must be a non-zero whole number (+N adds, -N removes)")
    check_points(abs(points), what="points")
    reason = check_reason(reason)
    if points < 0:
        return engine.SubtractRequest(user=user, points=points, account=account, reason=reason,
                                      options=options)
    if source is None:
        raise InvalidInputError("adding points needs --source: points always come from a "
                                "source")
    return engine.IssueRequest(user=user, points=points, source=source, account=account,
                               options=options, entry_type="adjustment", note=reason,
                               reference_type=DEFAULT_REFERENCE_TYPES["adjust_add"])


def adjust(session: Session, *, user: str, points: int, account: str, reason: str,
           source: str | None = None, options: WriteOptions) -> dict[str, Any]:
    """A manual correction: +N from a source (like an issue), or -N drawn FIFO from the
    account (pending points included; debt where negative balances are allowed)."""
    from pointctl.services import engine

    return engine.apply_one(session, adjust_request(
        user=user, points=points, account=account, reason=reason, source=source,
        options=options))


def transfer(session: Session, *, user: str, points: int, from_account: str, to_account: str,
             to_user: str | None = None, options: WriteOptions) -> dict[str, Any]:
    """Move available points FIFO to another account of the user or to another user; the new
    lots keep their sources; never creates debt; the receiving max balance holds."""
    from pointctl.services import engine

    return engine.apply_one(session, engine.TransferRequest(
        user=user, points=points, from_account=from_account, to_account=to_account,
        to_user=to_user, options=options))


def record_activity(session: Session, *, user: str, event: str, options: WriteOptions
                    ) -> dict[str, Any]:
    from pointctl.services import engine

    return engine.apply_one(session, engine.ActivityRequest(user=user, event=event,
                                                            options=options))


# --- holds -----------------------------------------------------------------------------------

def hold(session: Session, *, user: str, points: int, accounts: Sequence[str] = (),
         expires_in: str | None = None, options: WriteOptions) -> dict[str, Any]:
    """Reserve points FIFO as a spend would take them (available drops, the lots are
    earmarked, the balance stays) under ``options.reference_id``, until ``expires_in``."""
    from pointctl.services import engine
    from pointctl.services.writes import DEFAULT_HOLD_TIME

    return engine.apply_one(session, engine.HoldRequest(
        user=user, points=points, accounts=tuple(accounts),
        expires_in=expires_in or DEFAULT_HOLD_TIME, options=options))


def capture(session: Session, *, reference_id: str, points: int | None = None,
            options: WriteOptions) -> dict[str, Any]:
    """Spend ``points`` (default all) of the hold's earmarked points; release the rest."""
    from pointctl.services import engine

    return engine.apply_one(session, engine.CaptureRequest(
        reference_id=reference_id, points=points, options=options))


def void(session: Session, *, reference_id: str, options: WriteOptions) -> dict[str, Any]:
    """Release every point of the hold."""
    from pointctl.services import engine

    return engine.apply_one(session, engine.VoidRequest(reference_id=reference_id,
                                                        options=options))


HOLD_STATUSES = ("open", "captured", "voided", "expired")


def list_holds(session: Session, *, user: str | None = None, status: str = "open",
               limit: int = 1000) -> list[dict[str, Any]]:
    """Holds, newest first: open ones by default (``status`` "all": every one)."""
    if status != "all" and status not in HOLD_STATUSES:
        raise InvalidInputError(f"unknown hold status {status!r}; choose from "
                                f"{', '.join(HOLD_STATUSES)}, all")
    sql = RawSql(session)
    where, params = [], {}
    if user is not None:
        where.append("user_id = :user")
        params["user"] = clean_user(user)
    if status != "all":
        where.append("status = :status")
        params["status"] = status
    rows = sql.run(
        "SELECT reference_id, user_id, points, captured, status, expires_at, created_at, "
        "closed_at FROM hold" + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY id DESC LIMIT {int(limit)}", **params).all()
    return [{"hold": ref, "user": who, "points": int(points), "captured": int(captured),
             "status": state, "expires_at": clock.format_time(sql.moment(expires)),
             "created_at": clock.format_time(sql.moment(created)),
             "closed_at": clock.format_time(sql.moment(closed)) if closed else None}
            for ref, who, points, captured, state, expires, created, closed in rows]


# --- balance ---------------------------------------------------------------------------------

def balance(session: Session, *, user: str, at: datetime | None = None) -> dict[str, Any]:
    """Per account: balance, available, pending, debt, group; and a total per group label."""
    user = clean_user(user)
    moment = at or clock.now()
    from pointctl.services.punctual import as_punctual, late_note

    with as_punctual(session, user, moment) as applied:  # as if expire run ran on time
        found = _balance(session, user, moment)
    return {**found, **late_note(applied)}


def _balance(session: Session, user: str, moment: datetime) -> dict[str, Any]:
    # SQL text, like the other reads: no table model is built for the command that runs most
    sql = RawSql(session)
    rows = sql.run(
        """SELECT a.name, a.group_label, a.status, a.qualifying, b.debt,
                  COALESCE(l.total, 0), COALESCE(l.available, 0), COALESCE(l.held, 0)
           FROM account a
           JOIN balance b ON b.account_id = a.id AND b.user_id = :user
           LEFT JOIN (SELECT account_id, SUM(remaining) AS total,
                             SUM(CASE WHEN available_at <= :moment THEN remaining ELSE 0 END)
                             AS available, SUM(held) AS held
                      FROM lot WHERE user_id = :user AND remaining > 0
                      GROUP BY account_id) l ON l.account_id = a.id
           ORDER BY a.id""", user=user, moment=sql.time(moment)).all()
    if not rows:
        raise NotFoundError(f"no entries for user {user!r}")
    accounts: list[dict[str, Any]] = []
    groups: dict[str, dict[str, Any]] = {}
    usable: dict[str, list[tuple[int, int]]] = {}
    for name, group_label, status, qualifying, debt, total, available, held in rows:
        total, available, debt, qualifying = int(total), int(available), int(debt), \
            bool(qualifying)
        # points earmarked by open holds stay in the balance but are not available
        held = int(held)
        available, free_total = available - held, total - held
        # what a spend could use now: not in an inactive or a tier qualifying account
        can_spend = status == "active" and not qualifying
        row = {"account": name, "group": group_label, "status": status,
               "qualifying": qualifying, "balance": total - debt,
               "available": spendable(available, free_total, debt) if can_spend else 0,
               "held": held, "pending": free_total - available, "debt": debt}
        accounts.append(row)
        if group_label:
            group = groups.setdefault(group_label, {
                "group": group_label, "balance": 0, "available": 0, "held": 0, "pending": 0,
                "debt": 0})
            for key in ("balance", "held", "pending", "debt"):
                group[key] += row[key]
            parts = usable.setdefault(group_label, [])
            if can_spend:
                parts.append((available, debt))
    for label, group in groups.items():
        group["available"] = group_spendable(usable[label])
    return {"user": user, "at": clock.format_time(moment), "accounts": accounts,
            "groups": list(groups.values())}
