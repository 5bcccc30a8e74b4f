"""The point ledger (SPEC §2, §7): issue, spend, reverse, adjust, transfer, activity, balance.

Every credit creates a lot; every debit records its draws on lots (``draw``), so what became of
any point is exact. Writers lock the balance rows they touch, sorted by (user, account), then
the source row (FOR UPDATE when its inventory is limited, FOR SHARE otherwise); SQLite's
BEGIN IMMEDIATE serialises writers instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from pointctl.core import clock
from pointctl.core.durations import parse_duration
from pointctl.core.errors import InvalidInputError, NotFoundError, RefusedError
from pointctl.core.validation import MAX_POINTS, check_points
from pointctl.db.models import (
    Account,
    Activity,
    Balance,
    Draw,
    Entry,
    Lot,
    Source,
)
from pointctl.services.audit import record_entry
from pointctl.services.idempotency import run_idempotent
from pointctl.services.lookup import account_by_name, dedupe_names
from pointctl.services.writes import (
    DEFAULT_REFERENCE_TYPES,
    WriteOptions,
    clean_event,
    clean_user,
)

__all__ = ["DEFAULT_REFERENCE_TYPES", "WriteOptions", "clean_user"]  # re-exported

# --- locking and balances -------------------------------------------------------------------

def lock_balances(session: Session, keys: Sequence[tuple[str, int]], moment: datetime
                  ) -> dict[tuple[str, int], Balance]:
    """Create missing balance rows, then lock all of them in (user, account) order."""
    pairs = sorted(set(keys))
    create_balances(session, pairs, moment)
    locked: dict[tuple[str, int], Balance] = {}
    for user_id, account_id in pairs:
        locked[(user_id, account_id)] = session.exec(
            select(Balance).where(Balance.user_id == user_id, Balance.account_id == account_id)
            .with_for_update().execution_options(populate_existing=True)
        ).scalar_one()
    return locked


def create_balances(session: Session, pairs: Sequence[tuple[str, int]], moment: datetime
                    ) -> None:
    """Insert the balance rows (debt 0) that do not exist yet, in one executemany."""
    if not pairs:
        return
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" \
        else sqlite.insert
    # through the connection: a Core executemany, not the ORM's slower bulk-insert path
    session.connection().execute(insert(Balance).values(debt=0).on_conflict_do_nothing(),
                    [{"user_id": user, "account_id": account, "created_at": moment}
                     for user, account in pairs])


def lock_source(session: Session, source: Source, *, exclusive: bool = False) -> Source:
    """Re-read the source under a lock: exclusive when inventory is limited (we will change it)
    or when asked (a system restriction), shared otherwise (no concurrent pause, archive or
    restriction change while we issue, but issues run in parallel)."""
    query = select(Source).where(Source.id == source.id).execution_options(populate_existing=True)
    query = query.with_for_update(read=not exclusive and source.inventory is None)
    return session.exec(query).scalar_one()


@dataclass
class AccountState:
    total: int  # sum of the lots' remaining
    available: int  # of which available (not pending) at the moment

    def spendable(self, debt: int) -> int:
        """What can be drawn: available points, but never the points owed as debt."""
        return max(0, min(self.available, self.total - debt))


def account_state(session: Session, user_id: str, account_id: int, moment: datetime
                  ) -> AccountState:
    row = session.execute(
        select(func.coalesce(func.sum(Lot.remaining), 0),
               func.coalesce(func.sum(case((Lot.available_at <= moment, Lot.remaining),
                                           else_=0)), 0))
        .where(Lot.user_id == user_id, Lot.account_id == account_id, Lot.remaining > 0)
    ).one()
    return AccountState(int(row[0]), int(row[1]))


def _open_lots(session: Session, user_id: str, account_ids: Sequence[int],
               moment: datetime | None) -> list[Lot]:
    """Open lots in FIFO order (oldest first, then lowest id); ``moment`` None includes
    pending lots."""
    query = select(Lot).where(Lot.user_id == user_id, col(Lot.account_id).in_(account_ids),
                              Lot.remaining > 0)
    if moment is not None:
        query = query.where(Lot.available_at <= moment)
    query = query.order_by(col(Lot.created_at), col(Lot.id)).execution_options(
        populate_existing=True)
    return list(session.exec(query).scalars().all())


def _plan_fifo(lots: Sequence[Lot], points: int, caps: dict[int, int]) -> list[tuple[Lot, int]]:
    """Which lots give how much, FIFO, never more than each account's cap."""
    plan: list[tuple[Lot, int]] = []
    left = points
    caps = dict(caps)
    for lot in lots:
        if left == 0:
            break
        take = min(lot.remaining, left, caps.get(lot.account_id, 0))
        if take > 0:
            plan.append((lot, take))
            caps[lot.account_id] -= take
            left -= take
    return plan


def _new_entry(session: Session, options: WriteOptions, *, type: str, points: int,
               user_id: str | None, account_id: int | None, source_id: int | None,
               reference_type: str, related_entry_id: int | None = None,
               note: str | None = None, written_off: int = 0,
               reference_id: str | None = None) -> Entry:
    return record_entry(
        session, type=type, points=points, actor=options.actor, user_id=user_id,
        account_id=account_id, source_id=source_id,
        reference_id=options.reference_id or reference_id,
        reference_type=options.reference_type or reference_type, note=note,
        related_entry_id=related_entry_id, written_off=written_off,
        occurred_at=options.moment,
    )


def _credit(session: Session, *, balance: Balance, account: Account, source_id: int,
            points: int, entry: Entry, moment: datetime, origin: Lot | None = None
            ) -> tuple[Lot, int]:
    """A new lot; its points first repay the account's debt. Returns the lot and the debt
    repaid. ``origin``: the lot whose points move here (transfer, reactivation)."""
    available_at = moment
    if account.pending_for:
        available_at = parse_duration(account.pending_for).add_to(moment)
    lot = Lot(user_id=balance.user_id, account_id=account.id, source_id=source_id,
              entry_id=entry.id, original=points, remaining=points, created_at=moment,
              available_at=available_at,
              origin_lot_id=None if origin is None else origin.origin_lot_id or origin.id)
    session.add(lot)
    session.flush()
    repaid = min(balance.debt, points)
    if repaid:
        lot.spent += repaid
        lot.remaining -= repaid
        balance.debt -= repaid
        session.add_all([lot, balance, Draw(entry_id=entry.id, lot_id=lot.id, kind="repay",
                                            points=repaid)])
    return lot, repaid


def _apply_draws(session: Session, entry: Entry, plan: Sequence[tuple[Lot, int]],
                 kind: str) -> None:
    bucket = "moved" if kind in ("transfer", "reverse") else "spent"
    for lot, take in plan:
        lot.remaining -= take
        setattr(lot, bucket, getattr(lot, bucket) + take)
        session.add_all([lot, Draw(entry_id=entry.id, lot_id=lot.id, kind=kind, points=take)])
    session.flush()


def _balance_after(session: Session, balance: Balance, moment: datetime) -> int:
    session.flush()
    return account_state(session, balance.user_id, balance.account_id, moment).total - \
        balance.debt


def _usable_account(account: Account, *, action: str) -> None:
    if account.status != "active":
        raise RefusedError(f"account {account.name!r} is inactive; it allows no {action}")


# --- issue ---------------------------------------------------------------------------------

def issue(session: Session, *, user: str, points: int, source: str, account: str | None = None,
          clamp: bool = False, options: WriteOptions, entry_type: str = "issue",
          reference_type: str | None = None, note: str | None = None) -> dict[str, Any]:
    """Issue points from a source into a user's account (also the add side of ``adjust``):
    a chunk of one request for the issuing engine (``pointctl.services.issuing``)."""
    from pointctl.services.issuing import IssueRequest

    return _issue_one(session, IssueRequest(
        user=user, points=points, source=source, account=account, clamp=clamp, options=options,
        entry_type=entry_type, reference_type=reference_type, note=note))


def _issue_one(session: Session, request: Any) -> dict[str, Any]:
    from pointctl.services.issuing import issue_many

    (outcome,) = issue_many(session, [request])
    if isinstance(outcome, Exception):
        raise outcome
    return {**outcome, "replay": outcome.get("replay", False)}


# --- spend ---------------------------------------------------------------------------------

def _spend_accounts(session: Session, names: Sequence[str]) -> list[Account]:
    if not names:
        accounts = list(session.exec(
            select(Account).where(col(Account.is_default).is_(True), Account.status == "active",
                                  col(Account.qualifying).is_(False))
            .order_by(col(Account.id))).scalars().all())
        if not accounts:
            raise RefusedError("there is no active default account to spend from; "
                               "name one with --account")
        return accounts
    accounts = [account_by_name(session, name) for name in dedupe_names(names)]
    for account in accounts:
        if account.qualifying:
            raise RefusedError(f"account {account.name!r} is tier qualifying; its points can "
                               "never be spent")
        _usable_account(account, action="spends")
    return accounts


def spend(session: Session, *, user: str, points: int, accounts: Sequence[str] = (),
          options: WriteOptions) -> dict[str, Any]:
    """Spend FIFO across the accounts in play; a shortfall becomes debt on the first account
    that allows a negative balance, or the spend is refused."""
    user = clean_user(user)
    check_points(points, what="points")
    request = {"user": user, "points": points,
               "accounts": [name.casefold() for name in accounts], **options.request()}

    def work() -> dict[str, Any]:
        in_play = _spend_accounts(session, accounts)
        moment = options.moment
        balances = lock_balances(session, [(user, a.id) for a in in_play], moment)
        caps = {a.id: account_state(session, user, a.id, moment)
                .spendable(balances[(user, a.id)].debt) for a in in_play}
        plan = _plan_fifo(_open_lots(session, user, list(caps), moment), points, caps)
        shortfall = points - sum(take for _, take in plan)
        debt_account = next((a for a in in_play if a.allow_negative), None)
        if shortfall and debt_account is None:
            names = ", ".join(repr(a.name) for a in in_play)
            raise RefusedError(f"insufficient points: {user} has {points - shortfall} available "
                               f"in {names}; {points} needed, and no account in play allows a "
                               "negative balance")
        by_account: dict[int, list[tuple[Lot, int]]] = {}
        for lot, take in plan:
            by_account.setdefault(lot.account_id, []).append((lot, take))
        results = []
        for account in in_play:
            account_plan = by_account.get(account.id, [])
            debt = shortfall if debt_account is not None and account.id == debt_account.id else 0
            taken = sum(take for _, take in account_plan)
            if not taken and not debt:
                continue
            sources = {lot.source_id for lot, _ in account_plan}
            entry = _new_entry(session, options, type="spend", points=-(taken + debt),
                               user_id=user, account_id=account.id,
                               source_id=sources.pop() if len(sources) == 1 else None,
                               reference_type=DEFAULT_REFERENCE_TYPES["spend"])
            _apply_draws(session, entry, account_plan, "spend")
            balance = balances[(user, account.id)]
            if debt:
                balance.debt += debt
                session.add_all([balance, Draw(entry_id=entry.id, lot_id=None, kind="debt",
                                               points=debt)])
            results.append({"entry": entry.id, "account": account.name, "points": taken + debt,
                            "debt_created": debt,
                            "balance": _balance_after(session, balance, moment)})
        return {"user": user, "points": points, "entries": results,
                "debt_created": shortfall}

    return run_idempotent(session, key=options.idempotency_key, operation="spend",
                          request=request, work=work)


# --- reverse -------------------------------------------------------------------------------

def _reversal_targets(session: Session, entry_id: int | None, reference_id: str | None,
                      reference_type: str | None) -> list[Entry]:
    if (entry_id is None) == (reference_id is None):
        raise InvalidInputError("give exactly one of --entry ID or --reference-id R")
    if entry_id is not None:
        entry = session.get(Entry, entry_id)
        if entry is None:
            raise NotFoundError(f"no entry {entry_id}")
        if entry.type not in ("issue", "spend"):
            raise RefusedError(f"entry {entry_id} is a {entry.type}; only issues and spends can "
                               "be reversed")
        return [entry]
    query = select(Entry).where(Entry.reference_id == reference_id,
                                col(Entry.type).in_(("issue", "spend")))
    if reference_type is not None:
        query = query.where(Entry.reference_type == reference_type)
    entries = list(session.exec(query.order_by(col(Entry.id))).scalars().all())
    if not entries:
        raise NotFoundError(f"no issue or spend with reference id {reference_id!r}")
    return entries


def _issue_left(session: Session, entry: Entry) -> int:
    reversed_so_far = session.exec(
        select(func.coalesce(func.sum(Entry.written_off - Entry.points), 0))
        .where(Entry.related_entry_id == entry.id, Entry.type == "reversal")
    ).scalar_one()
    return entry.points - int(reversed_so_far)


def _restored_per_draw() -> Any:
    """How much of each draw later restore draws gave back: (reverses_draw_id, points)."""
    return (select(Draw.reverses_draw_id, func.sum(Draw.points).label("points"))
            .where(Draw.kind == "restore").group_by(Draw.reverses_draw_id).subquery())


def _spend_draws_left(session: Session, entry: Entry) -> list[tuple[Draw, int]]:
    """The spend's draws, last drawn first, each with what is still unrestored."""
    restored = _restored_per_draw()
    rows = session.exec(
        select(Draw, func.coalesce(restored.c.points, 0))
        .outerjoin(restored, restored.c.reverses_draw_id == Draw.id)
        .where(Draw.entry_id == entry.id, col(Draw.kind).in_(("spend", "debt")))
        .order_by(col(Draw.id).desc())
    ).all()
    return [(draw, draw.points - int(done)) for draw, done in rows if draw.points > done]


def _restore_repaid_debt(session: Session, entry: Entry, user_id: str, account_id: int,
                         points: int) -> int:
    """Debt already repaid by later credits: give those repayments back, newest first."""
    restored = _restored_per_draw()
    rows = session.exec(
        select(Draw, Lot, func.coalesce(restored.c.points, 0))
        .join(Lot, Lot.id == Draw.lot_id)
        .outerjoin(restored, restored.c.reverses_draw_id == Draw.id)
        .where(Draw.kind == "repay", Lot.user_id == user_id, Lot.account_id == account_id)
        .order_by(col(Draw.id).desc())
    ).all()
    left = points
    for draw, lot, done in rows:
        give = min(left, draw.points - int(done))
        if give <= 0:
            continue
        lot.spent -= give
        lot.remaining += give
        session.add_all([lot, Draw(entry_id=entry.id, lot_id=lot.id, kind="restore",
                                   points=give, reverses_draw_id=draw.id)])
        left -= give
        if left == 0:
            break
    return points - left


def reverse(session: Session, *, entry_id: int | None = None, reference_id: str | None = None,
            reference_type: str | None = None, points: int | None = None,
            options: WriteOptions) -> dict[str, Any]:
    """Undo issues or spends, whole or in part (the latest target first)."""
    if points is not None:
        check_points(points, what="points")
    request = {"entry": entry_id, "reference_id": reference_id,
               "reference_type": reference_type, "points": points, **options.request()}

    def work() -> dict[str, Any]:
        targets = _reversal_targets(session, entry_id, reference_id, reference_type)
        moment = options.moment
        keys = [(t.user_id, t.account_id) for t in targets if t.user_id and t.account_id]
        balances = lock_balances(session, keys, moment)
        lefts = {t.id: (_issue_left(session, t) if t.type == "issue"
                        else sum(left for _, left in _spend_draws_left(session, t)))
                 for t in targets}
        total_left = sum(lefts.values())
        wanted = total_left if points is None else points
        if total_left == 0:
            raise RefusedError("nothing is left to reverse: already fully reversed")
        if wanted > total_left:
            raise RefusedError(f"only {total_left} points are left to reverse; asked for {wanted}")
        results = []
        for target in reversed(targets):
            part = min(wanted, lefts[target.id])
            if part == 0:
                continue
            balance = balances[(target.user_id, target.account_id)]
            if target.type == "issue":
                results.append(_reverse_issue(session, target, part, balance, options))
            else:
                results.append(_reverse_spend(session, target, part, balance, options))
            wanted -= part
            if wanted == 0:
                break
        return {"reversals": results, "points": sum(r["points"] for r in results)}

    return run_idempotent(session, key=options.idempotency_key, operation="reverse",
                          request=request, work=work)


def _reverse_issue(session: Session, target: Entry, points: int, balance: Balance,
                   options: WriteOptions) -> dict[str, Any]:
    account = session.get(Account, target.account_id)
    assert account is not None
    lot = session.exec(select(Lot).where(Lot.entry_id == target.id)
                       .execution_options(populate_existing=True)).scalars().one()
    source = lock_source(session, session.get(Source, lot.source_id))
    take = min(points, lot.remaining)
    rest = points - take
    debt = rest if account.allow_negative else 0
    written_off = rest - debt
    entry = _new_entry(session, options, type="reversal", points=-(take + debt),
                       user_id=target.user_id, account_id=target.account_id,
                       source_id=target.source_id, related_entry_id=target.id,
                       reference_type=DEFAULT_REFERENCE_TYPES["reversal"],
                       written_off=written_off, reference_id=target.reference_id)
    _apply_draws(session, entry, [(lot, take)] if take else [], "reverse")
    if debt:
        balance.debt += debt
        session.add_all([balance, Draw(entry_id=entry.id, lot_id=None, kind="debt",
                                       points=debt)])
    if source.inventory is not None and take:
        source.inventory += take
        source.updated_at = clock.now()
        session.add(source)
    session.flush()
    return {"entry": entry.id, "reverses": target.id, "type": "issue", "points": points,
            "returned_to_source": take, "debt_created": debt, "written_off": written_off,
            "balance": _balance_after(session, balance, options.moment)}


def _reverse_spend(session: Session, target: Entry, points: int, balance: Balance,
                   options: WriteOptions) -> dict[str, Any]:
    entry = _new_entry(session, options, type="reversal", points=points,
                       user_id=target.user_id, account_id=target.account_id,
                       source_id=target.source_id, related_entry_id=target.id,
                       reference_type=DEFAULT_REFERENCE_TYPES["reversal"],
                       reference_id=target.reference_id)
    left = points
    for draw, unrestored in _spend_draws_left(session, target):
        give = min(left, unrestored)
        if draw.lot_id is None:  # the shortfall that became debt: cancel it
            cancel = min(give, balance.debt)
            balance.debt -= cancel
            session.add(balance)
            if give > cancel:
                _restore_repaid_debt(session, entry, balance.user_id, balance.account_id,
                                     give - cancel)
        else:
            lot = session.get(Lot, draw.lot_id, populate_existing=True)
            assert lot is not None
            lot.spent -= give
            lot.remaining += give
            session.add(lot)
        session.add(Draw(entry_id=entry.id, lot_id=draw.lot_id, kind="restore", points=give,
                         reverses_draw_id=draw.id))
        left -= give
        if left == 0:
            break
    session.flush()
    return {"entry": entry.id, "reverses": target.id, "type": "spend", "points": points,
            "balance": _balance_after(session, balance, options.moment)}


# --- adjust and transfer -------------------------------------------------------------------

def adjust_add_request(*, user: str, points: int, account: str, reason: str,
                       source: str | None, options: WriteOptions) -> Any:
    """adjust +N is an issue from a source (an "adjustment" entry, not limited by
    restrictions)."""
    from pointctl.services.issuing import IssueRequest

    if source is None:
        raise InvalidInputError("adding points needs --source: points always come from a "
                                "source")
    return IssueRequest(user=user, points=points, source=source, account=account,
                        options=options, entry_type="adjustment", note=reason,
                        reference_type=DEFAULT_REFERENCE_TYPES["adjust_add"])


def adjust(session: Session, *, user: str, points: int, account: str, reason: str,
           source: str | None = None, options: WriteOptions) -> dict[str, Any]:
    """A manual correction: +N from a source (like an issue), or -N drawn FIFO from the
    account (pending points included; debt where negative balances are allowed)."""
    if not isinstance(points, int) or points == 0:
        raise InvalidInputError("points must be a non-zero whole number (+N adds, -N removes)")
    check_points(abs(points), what="points")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInputError("--reason is required: say why the balance is corrected")
    if points > 0:
        return _issue_one(session, adjust_add_request(
            user=user, points=points, account=account, reason=reason, source=source,
            options=options))
    user = clean_user(user)
    request = {"user": user, "points": points, "account": account.casefold(), "reason": reason,
               **options.request()}

    def work() -> dict[str, Any]:
        target = account_by_name(session, account)
        _usable_account(target, action="changes")
        moment = options.moment
        balance = lock_balances(session, [(user, target.id)], moment)[(user, target.id)]
        wanted = -points
        plan = _plan_fifo(_open_lots(session, user, [target.id], None), wanted,
                          {target.id: MAX_POINTS})
        shortfall = wanted - sum(take for _, take in plan)
        if shortfall and not target.allow_negative:
            raise RefusedError(f"cannot remove {wanted} points: {user} has "
                               f"{wanted - shortfall} in {target.name!r}, which does not allow "
                               "a negative balance")
        sources = {lot.source_id for lot, _ in plan}
        entry = _new_entry(session, options, type="adjustment", points=points, user_id=user,
                           account_id=target.id,
                           source_id=sources.pop() if len(sources) == 1 else None,
                           reference_type=DEFAULT_REFERENCE_TYPES["adjust_subtract"],
                           note=reason)
        _apply_draws(session, entry, plan, "adjust")
        if shortfall:
            balance.debt += shortfall
            session.add_all([balance, Draw(entry_id=entry.id, lot_id=None, kind="debt",
                                           points=shortfall)])
        return {"entry": entry.id, "type": "adjustment", "user": user, "account": target.name,
                "points": points, "debt_created": shortfall,
                "balance": _balance_after(session, balance, moment)}

    return run_idempotent(session, key=options.idempotency_key, operation="adjust",
                          request=request, work=work)


def transfer(session: Session, *, user: str, points: int, from_account: str, to_account: str,
             to_user: str | None = None, options: WriteOptions) -> dict[str, Any]:
    """Move available points FIFO to another account of the user or to another user; the new
    lots keep their sources; never creates debt; the receiving max balance holds."""
    user = clean_user(user)
    receiver = clean_user(to_user, what="--to-user") if to_user is not None else user
    check_points(points, what="points")
    request = {"user": user, "points": points, "from": from_account.casefold(),
               "to": to_account.casefold(), "to_user": receiver, **options.request()}

    def work() -> dict[str, Any]:
        giver_account = account_by_name(session, from_account)
        taker_account = account_by_name(session, to_account)
        if receiver == user and giver_account.id == taker_account.id:
            raise InvalidInputError("a transfer needs a different account or --to-user")
        if giver_account.qualifying:
            raise RefusedError(f"account {giver_account.name!r} is tier qualifying; its points "
                               "cannot be moved")
        _usable_account(giver_account, action="transfers out")
        _usable_account(taker_account, action="new points")
        moment = options.moment
        balances = lock_balances(session, [(user, giver_account.id),
                                           (receiver, taker_account.id)], moment)
        giver = balances[(user, giver_account.id)]
        taker = balances[(receiver, taker_account.id)]
        spendable = account_state(session, user, giver_account.id, moment).spendable(giver.debt)
        if spendable < points:
            raise RefusedError(f"insufficient points: {user} has {spendable} available in "
                               f"{giver_account.name!r}; {points} needed (a transfer never "
                               "creates debt)")
        if taker_account.max_balance is not None:
            current = account_state(session, receiver, taker_account.id, moment).total - \
                taker.debt
            if current + points > taker_account.max_balance:
                raise RefusedError(
                    f"transfer would take {receiver} to {current + points} in "
                    f"{taker_account.name!r}, above its max balance {taker_account.max_balance}"
                )
        plan = _plan_fifo(_open_lots(session, user, [giver_account.id], moment), points,
                          {giver_account.id: spendable})
        sources = {lot.source_id for lot, _ in plan}
        single_source = sources.pop() if len(sources) == 1 else None
        out = _new_entry(session, options, type="transfer", points=-points, user_id=user,
                         account_id=giver_account.id, source_id=single_source,
                         reference_type=DEFAULT_REFERENCE_TYPES["transfer"])
        _apply_draws(session, out, plan, "transfer")
        into = _new_entry(session, options, type="transfer", points=points, user_id=receiver,
                          account_id=taker_account.id, source_id=single_source,
                          related_entry_id=out.id,
                          reference_type=DEFAULT_REFERENCE_TYPES["transfer"])
        repaid = 0
        for lot, take in plan:
            _, paid = _credit(session, balance=taker, account=taker_account,
                              source_id=lot.source_id, points=take, entry=into, moment=moment,
                              origin=lot)
            repaid += paid
        return {"entries": [out.id, into.id], "user": user, "to_user": receiver,
                "from": giver_account.name, "to": taker_account.name, "points": points,
                "debt_repaid": repaid, "balance_from": _balance_after(session, giver, moment),
                "balance_to": _balance_after(session, taker, moment)}

    return run_idempotent(session, key=options.idempotency_key, operation="transfer",
                          request=request, work=work)


# --- activity and balance ------------------------------------------------------------------

def record_activity(session: Session, *, user: str, event: str, options: WriteOptions
                    ) -> dict[str, Any]:
    user = clean_user(user)
    event = clean_event(event)
    request = {"user": user, "event": event, **options.request()}

    def work() -> dict[str, Any]:
        activity = Activity(user_id=user, event=event, actor=options.actor,
                            occurred_at=options.moment)
        session.add(activity)
        session.flush()
        return {"activity": activity.id, "user": user, "event": event,
                "at": clock.format_time(activity.occurred_at)}

    return run_idempotent(session, key=options.idempotency_key, operation="activity",
                          request=request, work=work)


def balance(session: Session, *, user: str, at: datetime | None = None) -> dict[str, Any]:
    """Per account: balance, available, pending, debt, group; and a total per group label."""
    user = clean_user(user)
    moment = at or clock.now()
    lots = (select(Lot.account_id,
                   func.sum(Lot.remaining).label("total"),
                   func.sum(case((Lot.available_at <= moment, Lot.remaining), else_=0))
                   .label("available"))
            .where(Lot.user_id == user, Lot.remaining > 0).group_by(Lot.account_id).subquery())
    rows = session.execute(
        select(Account, Balance.debt, func.coalesce(lots.c.total, 0),
               func.coalesce(lots.c.available, 0))
        .join(Balance, and_(Balance.account_id == Account.id, Balance.user_id == user))
        .outerjoin(lots, lots.c.account_id == Account.id)
        .order_by(col(Account.id))
    ).all()
    if not rows:
        raise NotFoundError(f"no entries for user {user!r}")
    accounts: list[dict[str, Any]] = []
    groups: dict[str, dict[str, Any]] = {}
    for account, debt, total, available in rows:
        state = AccountState(int(total), int(available))
        row = {"account": account.name, "group": account.group_label, "status": account.status,
               "qualifying": account.qualifying, "balance": state.total - debt,
               "available": state.spendable(debt), "pending": state.total - state.available,
               "debt": debt}
        accounts.append(row)
        if account.group_label:
            group = groups.setdefault(account.group_label, {
                "group": account.group_label, "balance": 0, "available": 0, "pending": 0,
                "debt": 0})
            for key in ("balance", "available", "pending", "debt"):
                group[key] += row[key]
    return {"user": user, "at": clock.format_time(moment), "accounts": accounts,
            "groups": list(groups.values())}
