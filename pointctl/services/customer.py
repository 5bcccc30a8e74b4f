"""Everything about one customer at a glance, for the support desk (``pointctl customer``).

Read-only: balances, the expirations of the next 90 days, the latest audit entries, the
restrictions that limit what the customer can still receive, and when they were first and
last seen.

The coming expirations are worked out without writing anything (so they work on a read-only
database, where ``expire preview``'s rolled-back run cannot): the customer's open lots are
walked in memory through every evaluation due until the horizon, in the order ``expire run``
performs them, with the rules of ``expiry._candidate_sql`` (rolling with or without
snap-to, fixed date, inactivity with its percent; a rollover moves the points into a new lot
of the target account, which that account's policy may expire later). One customer holds
few lots, so this is a short loop, and the test suite checks it against ``expire preview``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import Session, col

from pointctl.core import clock, draws
from pointctl.core.durations import parse_duration
from pointctl.core.errors import InvalidInputError, RefusedError
from pointctl.core.expiry import anniversary_cutoff, before
from pointctl.core.schedules import parse_schedule
from pointctl.db.models import Account, Activity, Balance, Entry, ExpirationPolicy, Lot
from pointctl.services import expiry
from pointctl.services.enrollment import enrolled_at
from pointctl.services.ledger import balance
from pointctl.services.punctual import as_punctual, late_note
from pointctl.services.reports import audit
from pointctl.services.restrictions import list_restrictions
from pointctl.services.settings import program_zone
from pointctl.services.writes import clean_user

HORIZONS = (30, 60, 90)  # days ahead: the expiring summary
MAX_ENTRIES = 1000
ACTIVITY_TYPES = tuple(expiry.ENTRY_EVENTS)  # ledger entries that count as customer activity


def customer(session: Session, *, user: str, entries: int = 10) -> dict[str, Any]:
    user = clean_user(user)
    if not 1 <= entries <= MAX_ENTRIES:
        raise InvalidInputError(f"--entries must be between 1 and {MAX_ENTRIES}")
    now = clock.now()
    # balances and what will expire as after a punctual expire run; the trail as written
    with as_punctual(session, user, now) as applied:
        balances = balance(session, user=user)  # "no entries for user ..." (exit 3)
        enrolled, enrolled_from = enrolled_at(session, user)
        expiring, summary, unavailable = _expiring(session, user, now, enrolled)
    first, last = session.execute(select(func.min(Entry.occurred_at),
                                         func.max(Entry.occurred_at))
                                  .where(Entry.user_id == user)).one()
    trail = audit(session, user=user, limit=entries)
    restrictions = list_restrictions(session, user=user, open_only=True)
    for row in restrictions:
        row.pop("used_by", None)
    return {
        "user": user, "at": clock.format_time(now), "enrolled": clock.format_time(enrolled),
        "enrolled_from": enrolled_from, **seen(session, user, first, last),
        **tier_of(session, user),
        "accounts": balances["accounts"], "groups": balances["groups"],
        "expiring_summary": summary, "expiring_unavailable": unavailable,
        "expiring": [{k: v for k, v in row.items() if k != "moment"} for row in expiring],
        "entries": trail["rows"], "entries_total": trail["matched"],
        "restrictions": restrictions, **late_note(applied),
    }


def tier_of(session: Session, user: str) -> dict[str, Any]:
    """The member's tier level as the latest evaluation left it (None: none, or no tiers)."""
    from pointctl.db.models import MemberTier

    row = session.get(MemberTier, user)
    return {"tier": row.level if row else None,
            "tier_kept_until": clock.format_time(row.kept_until) if row else None}


def _expiring(session: Session, user: str, now: datetime, enrolled: datetime | None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """The evaluations that will take the user's points within 90 days, the 30/60/90-day
    summary, or why they could not be walked."""
    horizons = {days: parse_duration(f"{days}d").add_to(now) for days in HORIZONS}
    try:
        expiring = upcoming(session, user=user, until=horizons[max(HORIZONS)],
                            enrolled=enrolled)
    except RefusedError:  # a schedule too frequent to walk (say, every minute)
        return [], [], (f"more than {expiry.MAX_EVALUATIONS} evaluations of one account are "
                        "due in 90 days; see 'pointctl expire preview --user' instead")
    summary = [
        {"within": f"{days}d", "until": clock.format_time(until),
         "expires": sum(r["expires"] for r in expiring if r["moment"] <= until),
         "rolls_over": sum(r["rolls_over"] for r in expiring if r["moment"] <= until)}
        for days, until in horizons.items()]
    return expiring, summary, None


def seen(session: Session, user: str, first: datetime | None, last: datetime | None
         ) -> dict[str, Any]:
    """First and last entry, the last customer activity (an issue, a spend or a recorded
    event) and the last recorded event."""
    acted = session.execute(select(func.max(Entry.occurred_at)).where(
        Entry.user_id == user, col(Entry.type).in_(ACTIVITY_TYPES))).scalar_one()
    event = session.execute(select(Activity.event, Activity.occurred_at)
                            .where(Activity.user_id == user)
                            .order_by(col(Activity.occurred_at).desc(), col(Activity.id).desc())
                            .limit(1)).first()
    if event is not None and (acted is None or event[1] > acted):
        acted = event[1]
    return {"first_entry": clock.format_time(first), "last_entry": clock.format_time(last),
            "last_activity": clock.format_time(acted),
            "last_event": event[0] if event else None,
            "last_event_at": clock.format_time(event[1]) if event else None}


# --- coming expirations -----------------------------------------------------------------------

@dataclass
class _Lot:
    order: tuple[datetime, int]  # FIFO: created, then id
    account_id: int
    created_at: datetime
    available_at: datetime
    remaining: int


@dataclass
class _Due:
    at: datetime
    policy: ExpirationPolicy


def upcoming(session: Session, *, user: str, until: datetime, enrolled: datetime | None
             ) -> list[dict[str, Any]]:
    """What the schedules will expire or roll over of ``user``'s points until ``until`` if
    nothing else happens: one row per account and evaluation (overdue ones included).
    ``enrolled``: the user's enrollment (recorded, else the first entry)."""
    policies = {p.account_id: p for p in session.execute(select(ExpirationPolicy)).scalars()}
    lots = [_Lot((lot.created_at, int(lot.id or 0)), lot.account_id, lot.created_at,
                 lot.available_at, draws.free(int(lot.remaining), int(lot.held)))
            for lot in session.execute(select(Lot).where(Lot.user_id == user,
                                                         Lot.remaining > Lot.held)
                                       .order_by(col(Lot.created_at), col(Lot.id))).scalars()]
    reach = _reachable({lot.account_id for lot in lots}, policies)
    reached = {int(account): moment for account, moment in session.execute(
        select(Balance.account_id, Balance.evaluated_through).where(
            Balance.user_id == user, col(Balance.evaluated_through).is_not(None)))}
    if not lots or not reach:
        return []
    zone = program_zone(session)
    names: dict[int, str] = {}
    pending_for: dict[int, str | None] = {}
    for account_id, name, wait in session.execute(select(Account.id, Account.name,
                                                         Account.pending_for)):
        names[account_id], pending_for[account_id] = name, wait
    held: dict[int, list[_Lot]] = {}  # per account, FIFO
    for lot in lots:
        held.setdefault(lot.account_id, []).append(lot)
    walk = _Walk(session, user, zone, enrolled)
    rows = []
    next_id = 1 + max(lot.order[1] for lot in lots)
    for due in sorted(_dues(policies, reach, until, zone, reached),
                      key=lambda d: (d.at, d.policy.account_id)):
        policy = due.policy
        mine = held.get(policy.account_id, [])
        taken = walk.take(policy, due.at, mine)
        if not taken:
            continue
        held[policy.account_id] = [lot for lot in mine if lot.remaining > 0]
        points = sum(moved for _lot, moved in taken)
        target = policy.rollover_to_id
        rows.append({"account": names[policy.account_id], "at": clock.format_time(due.at),
                     "moment": due.at, "expires": 0 if target else points,
                     "rolls_over": points if target else 0,
                     "into": names.get(target) if target else None})
        if target:
            # one new lot per lot taken, numbered in the order of the lots' ids (as the
            # evaluation's INSERT ... SELECT numbers them), after every lot there is
            wait = pending_for.get(target)
            available = parse_duration(wait).add_to(due.at) if wait else due.at
            into = held.setdefault(target, [])
            for _lot, moved in sorted(taken, key=lambda pair: pair[0].order[1]):
                into.append(_Lot((due.at, next_id), target, due.at, available, moved))
                next_id += 1
            into.sort(key=lambda lot: lot.order)
    return rows


def _reachable(accounts: set[int], policies: dict[int, ExpirationPolicy]) -> set[int]:
    """Accounts with a policy that the customer's points are in or can roll into."""
    seen_ids: set[int] = set()
    todo = [a for a in accounts if a in policies]
    while todo:
        account = todo.pop()
        if account in seen_ids:
            continue
        seen_ids.add(account)
        target = policies[account].rollover_to_id
        if target is not None and target in policies:
            todo.append(target)
    return seen_ids


def _dues(policies: dict[int, ExpirationPolicy], accounts: set[int], until: datetime,
          zone: ZoneInfo, reached: dict[int, datetime]) -> Iterator[_Due]:
    """The evaluations still due for the customer: after the last one performed, and after
    the last one a write applied to them (``reached``)."""
    for account in accounts:
        policy = policies[account]
        after = expiry.resumes_after(policy, reached.get(account))
        for at in expiry.evaluation_times(parse_schedule(policy.schedule), after, until, zone,
                                policy.starts_at):
            yield _Due(at, policy)


class _Walk:
    """The candidate rules of one evaluation, applied to one customer's lots in memory."""

    def __init__(self, session: Session, user: str, zone: ZoneInfo, enrolled: datetime | None
                 ) -> None:
        self.session, self.user, self.zone, self.enrolled = session, user, zone, enrolled
        self._acts: dict[str, list[datetime]] = {}

    def take(self, policy: ExpirationPolicy, at: datetime, lots: list[_Lot]
             ) -> list[tuple[_Lot, int]]:
        """Take what the evaluation at ``at`` takes from ``lots`` (FIFO order): each lot it
        touched, with the points taken from it."""
        if not lots:
            return []
        if policy.kind == "inactivity":
            return self._inactivity(policy, at, lots)
        cutoff = self._cutoff(policy, at)
        taken: list[tuple[_Lot, int]] = []
        for lot in lots:
            if cutoff is not None and lot.created_at <= cutoff:
                taken.append((lot, lot.remaining))
                lot.remaining = 0
        return taken

    def _cutoff(self, policy: ExpirationPolicy, at: datetime) -> datetime | None:
        if policy.kind == "rolling" and policy.snap_to == "anniversary":
            if self.enrolled is None:
                return None
            local = clock.to_local(self.enrolled, self.zone)
            return anniversary_cutoff(at, parse_duration(policy.older_than or ""),
                                      local.month, local.day, self.zone)
        return expiry.exact_cutoff(policy, at, self.zone)

    def _last_active(self, policy: ExpirationPolicy, at: datetime) -> datetime | None:
        """The latest activity the policy counts at or before ``at`` (or the enrollment)."""
        enrolled = self.enrolled
        times: list[datetime] = [enrolled] if enrolled is not None and enrolled <= at else []
        for event in (policy.activity or "").split(","):
            times.extend(t for t in self._times_of(event) if t <= at)
        return max(times, default=None)

    def _times_of(self, event: str) -> list[datetime]:
        if event not in self._acts:
            if event in expiry.ENTRY_EVENTS:
                query = select(Entry.occurred_at).where(
                    Entry.user_id == self.user, Entry.type == expiry.ENTRY_EVENTS[event])
            else:
                query = select(Activity.occurred_at).where(Activity.user_id == self.user,
                                                           Activity.event == event)
            self._acts[event] = list(self.session.execute(query).scalars())
        return self._acts[event]

    def _inactivity(self, policy: ExpirationPolicy, at: datetime, lots: list[_Lot]
                    ) -> list[tuple[_Lot, int]]:
        last = self._last_active(policy, at)
        since = before(at, parse_duration(policy.inactive_for or ""), self.zone)
        if last is None or last > since:
            return []
        held = [lot for lot in lots if lot.created_at <= at and lot.available_at <= at]
        share = sum(lot.remaining for lot in held) * int(policy.percent or 100) // 100
        taken: list[tuple[_Lot, int]] = []
        for lot in held:
            if share <= 0:
                break
            points = min(lot.remaining, share)
            taken.append((lot, points))
            lot.remaining -= points
            share -= points
        return taken
