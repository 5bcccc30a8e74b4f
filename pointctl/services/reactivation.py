"""Reactivation: points that expired within an
account's window become a new lot again, each expired point at most once, never in a tier
qualifying account.

Each reactivated part is a ``reactivate`` draw on the expired lot that names the ``expire``
draw it undoes (``reverses_draw_id``): the lot's ``expired`` goes down and its ``moved`` up by
the same amount, so a lot's parts still add up and what is left to reactivate is the expire
draws less the reactivate draws naming them. The newest expirations come back first.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from pointctl.core.durations import parse_duration
from pointctl.core.errors import InvalidInputError, RefusedError
from pointctl.db.models import Account
from pointctl.services.lookup import account_by_name
from pointctl.services.writes import WriteOptions


def describe(account: Account) -> str:
    if not account.reactivation_window:
        return "off"
    minimum = (f", at least {account.reactivation_min_points} points"
               if account.reactivation_min_points else "")
    return f"points expired within {account.reactivation_window}{minimum}"


def set_reactivation(session: Session, *, account: str, window: str | None,
                     min_points: int | None = None, actor: str) -> dict[str, Any]:
    """Allow reactivation in ``account`` (``window`` None: turn it off)."""
    target = account_by_name(session, account, lock=True)
    if window is None:
        if min_points is not None:
            raise InvalidInputError("--min-points needs --window (or use --off alone)")
        changed = target.reactivation_window is not None
        target.reactivation_window = target.reactivation_min_points = None
    else:
        if target.qualifying:
            raise RefusedError(f"account {target.name!r} is tier qualifying; its points cannot "
                               "be reactivated")
        if min_points is not None and min_points < 1:
            raise InvalidInputError(f"--min-points must be a positive number, not {min_points}")
        clean = str(parse_duration(window, what="--window duration"))
        changed = (target.reactivation_window, target.reactivation_min_points) != (clean,
                                                                                  min_points)
        target.reactivation_window, target.reactivation_min_points = clean, min_points
    session.add(target)
    session.flush()
    if changed:
        from pointctl.services.changes import record_change

        record_change(session, kind="account", key=int(target.id or 0), actor=actor,
                      action="reactivation")
    return {"account": target.name, "reactivation": describe(target),
            "window": target.reactivation_window,
            "min_points": target.reactivation_min_points, "changed": changed}


def reactivate(session: Session, *, user: str, account: str, points: int | None = None,
               options: WriteOptions) -> dict[str, Any]:
    """Reactivate ``points`` (default: all) of what expired in the account within its window,
    newest expirations first: a chunk of one for the ledger engine."""
    from pointctl.services import engine

    return engine.apply_one(session, engine.ReactivateRequest(
        user=user, account=account, points=points, options=options))
