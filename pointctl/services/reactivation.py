"""Reactivation (SPEC §6.6, Siebel "Reactivation Enabled"): points that expired within an
account's window become a new lot again, each expired point at most once, never in a tier
qualifying account.

Each reactivated part is a ``reactivate`` draw on the expired lot that names the ``expire``
draw it undoes (``reverses_draw_id``): the lot's ``expired`` goes down and its ``moved`` up by
the same amount, so a lot's parts still add up and what is left to reactivate is the expire
draws less the reactivate draws naming them. The newest expirations come back first.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from pointctl.core.durations import parse_duration
from pointctl.core.errors import InvalidInputError, RefusedError
from pointctl.core.expiry import before
from pointctl.db.models import Account, Draw, Entry, Lot
from pointctl.services.ledger import (
    _balance_after,
    _credit,
    _new_entry,
    _usable_account,
    account_state,
    lock_balances,
)
from pointctl.services.lookup import account_by_name
from pointctl.services.settings import program_zone
from pointctl.services.writes import WriteOptions, clean_user

REFERENCE_TYPE = "Point Reactivation"


def describe(account: Account) -> str:
    if not account.reactivation_window:
        return "off"
    minimum = (f", at least {account.reactivation_min_points} points"
               if account.reactivation_min_points else "")
    return f"points expired within {account.reactivation_window}{minimum}"


def set_reactivation(session: Session, *, account: str, window: str | None,
                     min_points: int | None = None) -> dict[str, Any]:
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
    return {"account": target.name, "reactivation": describe(target),
            "window": target.reactivation_window,
            "min_points": target.reactivation_min_points, "changed": changed}


def _expired_parts(session: Session, user: str, account_id: int, since: Any, until: Any
                   ) -> list[tuple[Draw, Lot, int]]:
    """Expire draws of the user's lots in the account made within (since, until], newest
    first, with what is left of each to reactivate."""
    undo = aliased(Draw)
    back = (select(func.coalesce(func.sum(undo.points), 0))
            .where(undo.reverses_draw_id == Draw.id, undo.kind == "reactivate")
            .correlate(Draw).scalar_subquery())
    rows = session.execute(
        select(Draw, Lot, back).join(Lot, col(Lot.id) == col(Draw.lot_id))
        .join(Entry, col(Entry.id) == col(Draw.entry_id))
        .where(col(Draw.kind) == "expire", col(Lot.user_id) == user,
               col(Lot.account_id) == account_id, col(Entry.occurred_at) > since,
               col(Entry.occurred_at) <= until)
        .order_by(col(Entry.occurred_at).desc(), col(Draw.id).desc())
    ).all()
    return [(draw, lot, draw.points - int(done)) for draw, lot, done in rows
            if draw.points - int(done) > 0]


def reactivate(session: Session, *, user: str, account: str, points: int | None = None,
               options: WriteOptions) -> dict[str, Any]:
    from pointctl.services.idempotency import run_idempotent

    user = clean_user(user)
    if points is not None and points <= 0:
        raise InvalidInputError(f"--points must be a positive number, not {points}")
    request = {"user": user, "account": account.casefold(), "points": points,
               **options.request()}

    def work() -> dict[str, Any]:
        target = account_by_name(session, account)
        if target.qualifying:
            raise RefusedError(f"account {target.name!r} is tier qualifying; its points cannot "
                               "be reactivated")
        if not target.reactivation_window:
            raise RefusedError(f"account {target.name!r} does not allow reactivation; allow it "
                               "with 'pointctl accounts reactivation NAME --window DURATION'")
        _usable_account(target, action="new points")
        moment = options.moment
        balance = lock_balances(session, [(user, target.id)], moment)[(user, target.id)]
        window = parse_duration(target.reactivation_window)
        since = before(moment, window, program_zone(session))
        parts = _expired_parts(session, user, target.id, since, moment)
        left = sum(part for _, _, part in parts)
        if left == 0:
            raise RefusedError(f"{user} has no points that expired in {target.name!r} within "
                               f"the last {window}")
        wanted = left if points is None else points
        if wanted > left:
            raise RefusedError(f"only {left} points expired in {target.name!r} within the last "
                               f"{window} and can be reactivated; {wanted} asked")
        minimum = target.reactivation_min_points
        if minimum and wanted < minimum:
            raise RefusedError(f"at least {minimum} points must be reactivated at a time in "
                               f"{target.name!r}; {wanted} asked")
        if target.max_balance is not None:
            current = account_state(session, user, target.id, moment).total - balance.debt
            if current + wanted > target.max_balance:
                raise RefusedError(f"reactivation would take {user} to {current + wanted} in "
                                   f"{target.name!r}, above its max balance "
                                   f"{target.max_balance}")
        plan: list[tuple[Draw, Lot, int]] = []
        need = wanted
        for draw, lot, part in parts:
            take = min(part, need)
            plan.append((draw, lot, take))
            need -= take
            if need == 0:
                break
        sources = {lot.source_id for _, lot, _ in plan}
        entry = _new_entry(session, options, type="reactivation", points=wanted, user_id=user,
                           account_id=target.id,
                           source_id=next(iter(sources)) if len(sources) == 1 else None,
                           reference_type=REFERENCE_TYPE)
        # one new lot per origin: the liability report follows the points to their issue
        per_origin: dict[int, tuple[Lot, int]] = {}
        for draw, lot, take in plan:
            lot.expired -= take
            lot.moved += take
            session.add_all([lot, Draw(entry_id=entry.id, lot_id=lot.id, kind="reactivate",
                                       points=take, reverses_draw_id=draw.id)])
            origin = lot.origin_lot_id or lot.id
            per_origin[origin] = (lot, per_origin.get(origin, (lot, 0))[1] + take)
        repaid = 0
        for lot, total in per_origin.values():
            _, paid = _credit(session, balance=balance, account=target, source_id=lot.source_id,
                              points=total, entry=entry, moment=moment, origin=lot)
            repaid += paid
        return {"entry": entry.id, "user": user, "account": target.name, "points": wanted,
                "left_to_reactivate": left - wanted, "debt_repaid": repaid,
                "balance": _balance_after(session, balance, moment)}

    return run_idempotent(session, key=options.idempotency_key, operation="reactivate",
                          request=request, work=work)
