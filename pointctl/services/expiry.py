"""Expiration: account policies, the evaluations ``expire run`` performs, their record,
status and preview.

An evaluation is a handful of set-based statements, whatever the number of
lots: the candidate lots and what each loses go into a temporary table, from which one
INSERT ... SELECT writes the entries, one the draws, one UPDATE ... FROM the lots (and, for a
rollover, one INSERT ... SELECT the new lots). Each (account, evaluation time) is performed
once: the policy row is locked first (SQLite: the write lock of BEGIN IMMEDIATE), the
evaluation is skipped when ``last_evaluated_at`` already reached it, and ``expiration_run``
records it under a primary key. On PostgreSQL the balance rows of the users concerned are then
locked in (user, account) order, like every other writer, so a spend never interleaves with an
evaluation of the same balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlmodel import Session, col

from pointctl.core import clock, draws
from pointctl.core.durations import Duration, parse_duration
from pointctl.core.errors import InvalidInputError, NotFoundError, PointctlError, RefusedError
from pointctl.core.expiry import (
    SNAP_TO,
    anniversary_cutoffs,
    before,
    check_fixed_date,
    fixed_date_cutoff,
    local_days,
    snapped_cutoff,
)
from pointctl.core.schedules import Schedule, parse_schedule
from pointctl.db import bulk
from pointctl.db.models import Account, ExpirationPolicy, ExpirationRun
from pointctl.db.rawsql import RawSql
from pointctl.services import locks
from pointctl.services.enrollment import enrolled_sql
from pointctl.services.lookup import account_by_name, accounts_by_names
from pointctl.services.settings import program_zone
from pointctl.services.writes import DEFAULT_REFERENCE_TYPES, WriteOptions, clean_event

ROLLOVER_CHUNK = 1000  # rolled-over lots per call of the ledger engine

KINDS = ("rolling", "fixed-date", "inactivity")
DEFAULT_ACTIVITY = ("issue", "spend")
ENTRY_EVENTS = {"issue": "issue", "spend": "spend"}  # activity events that are ledger entries
MAX_EVALUATIONS = 100_000


# --- policies -------------------------------------------------------------------------------

def _duration(value: str | None, what: str) -> str | None:
    return None if value is None else str(parse_duration(value, what=what))


# other names of the built-in events: "accrual" is earning points (an issue), "redemption"
# spending them
EVENT_ALIASES = {"accrual": "issue", "redemption": "spend"}


MAX_ACTIVITY_LENGTH = 500  # expiration_policy.activity


def events(values: Sequence[str]) -> str:
    """Activity event names (repeated or comma-separated) -> their stored form; ``accrual``
    and ``redemption`` are the built-in ``issue`` and ``spend`` events."""
    events: list[str] = []
    for raw in values:
        for part in raw.split(","):
            if not part.strip():
                continue
            event = clean_event(part, what="activity event")
            event = EVENT_ALIASES.get(event, event)
            if event not in events:
                events.append(event)
    if not events:
        raise InvalidInputError("--activity needs at least one event, such as issue,spend")
    stored = ",".join(events)
    if len(stored) > MAX_ACTIVITY_LENGTH:  # as the policy stores them, on every database
        raise InvalidInputError(f"--activity names {len(stored):,} characters of events; at "
                                f"most {MAX_ACTIVITY_LENGTH} are allowed")
    return stored


def set_policy(session: Session, *, account: str, kind: str, every: str | None = None,
               older_than: str | None = None, rollover_to: str | None = None,
               snap_to: str | None = None, fixed_date: str | None = None,
               min_age: str | None = None, inactive_for: str | None = None,
               percent: int | None = None, activity: Sequence[str] = (),
               actor: str) -> dict[str, Any]:
    """Give ``account`` its one expiration policy (replacing any other)."""
    if kind not in KINDS:
        raise InvalidInputError(f"unknown policy {kind!r}; choose from {', '.join(KINDS)}")
    allowed = {"rolling": {"older_than", "rollover_to", "snap_to"},
               "fixed-date": {"fixed_date", "min_age"},
               "inactivity": {"inactive_for", "percent", "activity"}}[kind]
    given = {"older_than": older_than, "rollover_to": rollover_to, "snap_to": snap_to,
             "fixed_date": fixed_date, "min_age": min_age, "inactive_for": inactive_for,
             "percent": percent, "activity": activity or None}
    stray = [name for name, value in given.items() if value is not None and name not in allowed]
    if stray:
        options = ", ".join("--" + name.replace("_", "-") for name in stray)
        raise InvalidInputError(f"{options} does not apply to a {kind} policy")
    schedule = parse_schedule(every or "daily")
    for value, what in ((older_than, "--older-than"), (min_age, "--min-age"),
                        (inactive_for, "--inactive-for")):
        if value is not None:  # at most 1000 years: it stays within the calendar
            parse_duration(value, what=f"{what} duration")
    policy = ExpirationPolicy(account_id=0, kind=kind, schedule=schedule.text,
                              starts_at=clock.now(), set_by=actor, updated_at=clock.now())
    if kind == "rolling":
        if older_than is None:
            raise InvalidInputError("a rolling policy needs --older-than DURATION")
        policy.older_than = _duration(older_than, "--older-than duration")
        if snap_to is not None:
            if snap_to.strip().lower() not in SNAP_TO:
                raise InvalidInputError(f"invalid --snap-to {snap_to!r}; choose from "
                                        f"{', '.join(SNAP_TO)}")
            policy.snap_to = snap_to.strip().lower()
    elif kind == "fixed-date":
        problem = check_fixed_date((fixed_date or "").strip())
        if problem:
            raise InvalidInputError(f"invalid --fixed-date {fixed_date!r}: {problem}")
        policy.fixed_date = (fixed_date or "").strip()
        policy.min_age = _duration(min_age, "--min-age duration")
    else:
        if inactive_for is None:
            raise InvalidInputError("an inactivity policy needs --inactive-for DURATION")
        policy.inactive_for = _duration(inactive_for, "--inactive-for duration")
        policy.percent = 100 if percent is None else percent
        if not 1 <= policy.percent <= 100:
            raise InvalidInputError(f"--percent must be between 1 and 100, not {percent}")
        policy.activity = events(activity) if activity else ",".join(DEFAULT_ACTIVITY)
    target = account_by_name(session, account)
    if rollover_to is not None:
        into = account_by_name(session, rollover_to)
        if into.id == target.id:
            raise InvalidInputError("--rollover-to must be another account")
        if into.qualifying != target.qualifying:
            raise RefusedError(f"cannot roll {'qualifying' if target.qualifying else 'spendable'}"
                               f" points into {'qualifying' if into.qualifying else 'spendable'}"
                               f" account {into.name!r}")
        policy.rollover_to_id = into.id
    current = locks.lock_policy(session, target.id)
    if current is not None:
        _perform_due(session, current, actor=actor)
        same = all(getattr(current, name) == getattr(policy, name) for name in (
            "kind", "schedule", "older_than", "rollover_to_id", "snap_to", "fixed_date",
            "min_age", "inactive_for", "percent", "activity"))
        if same:
            return {**describe_policy(session, current), "changed": False}
        # evaluations stay in order: the new policy starts after the last one performed
        last = current.last_evaluated_at
        policy.starts_at = max(policy.starts_at, last) if last else policy.starts_at
        session.delete(current)
        session.flush()
    policy.account_id = int(target.id or 0)
    _set_next_due(policy, program_zone(session))
    session.add(policy)
    session.flush()
    _forget_catch_ups(session, policy.account_id)
    _record(session, policy.account_id, actor=actor)
    return {**describe_policy(session, policy), "changed": True}


def _record(session: Session, account_id: int, *, actor: str) -> None:
    from pointctl.services.changes import record_change

    record_change(session, kind="account", key=account_id, actor=actor, action="expiration")


def clear_policy(session: Session, *, account: str, actor: str) -> dict[str, Any]:
    target = account_by_name(session, account)
    current = locks.lock_policy(session, target.id)
    if current is not None:
        _perform_due(session, current, actor=actor)
        session.delete(current)
        session.flush()
        _forget_catch_ups(session, int(target.id or 0))
        _record(session, int(target.id or 0), actor=actor)
    return {"account": target.name, "policy": "none", "changed": current is not None}


def _perform_due(session: Session, policy: ExpirationPolicy, *, actor: str) -> None:
    """Before a policy is replaced or removed: the evaluations it still owes, as cron would
    have performed them by now (some users may have had them already, by a write's
    catch-up); the next policy starts where it ends."""
    zone = program_zone(session)
    after = policy.last_evaluated_at or policy.starts_at
    for moment in evaluation_times(parse_schedule(policy.schedule), after, clock.now(), zone,
                                   policy.starts_at):
        perform(session, account_id=policy.account_id, at=moment, actor=actor)


def _set_next_due(policy: ExpirationPolicy, zone: ZoneInfo) -> None:
    policy.next_due_at = parse_schedule(policy.schedule).next_after(
        policy.last_evaluated_at or policy.starts_at, zone, policy.starts_at)


def refresh_next_due(session: Session) -> None:
    """Every policy's next evaluation, again (the program time zone changed)."""
    zone = program_zone(session)
    for policy in session.exec(select(ExpirationPolicy)).scalars():
        _set_next_due(policy, zone)
        session.add(policy)
    session.flush()


def _forget_catch_ups(session: Session, account_id: int) -> None:
    """A new (or no) policy: the evaluations users were caught up through were the old one's."""
    session.execute(text("UPDATE balance SET evaluated_through = NULL WHERE account_id = :a "
                         "AND evaluated_through IS NOT NULL"), {"a": account_id})


def account_names(session: Session) -> dict[int, str]:
    return {int(row[0]): str(row[1]) for row in session.execute(select(Account.id, Account.name))}


def policy_words(policy: ExpirationPolicy, names: dict[int, str]) -> str:
    """The policy as one sentence for people."""
    if policy.kind == "rolling":
        words = f"points older than {policy.older_than} "
        if policy.snap_to:
            snap = ("the user's next enrollment anniversary" if policy.snap_to == "anniversary"
                    else f"the next first day of a {policy.snap_to}")
            words = f"points {policy.older_than} old, at {snap}, "
        if policy.rollover_to_id:
            return words + f"roll over into {names.get(policy.rollover_to_id, '?')}"
        return words + "expire"
    if policy.kind == "fixed-date":
        age = f" once at least {policy.min_age} old" if policy.min_age else ""
        return f"points expire on {policy.fixed_date}{age}"
    return (f"{policy.percent}% of the available points expire for users without "
            f"{' or '.join((policy.activity or '').split(','))} for {policy.inactive_for}")


def describe_policy(session: Session, policy: ExpirationPolicy) -> dict[str, Any]:
    names = account_names(session)
    zone = program_zone(session)
    schedule = parse_schedule(policy.schedule)
    after = policy.last_evaluated_at or policy.starts_at
    due = schedule.next_after(after, zone, policy.starts_at)
    return {
        "account": names.get(policy.account_id), "policy": policy.kind,
        "rule": policy_words(policy, names), "schedule": policy.schedule,
        "timezone": zone.key, "older_than": policy.older_than,
        "rollover_to": names.get(policy.rollover_to_id) if policy.rollover_to_id else None,
        "snap_to": policy.snap_to, "fixed_date": policy.fixed_date, "min_age": policy.min_age,
        "inactive_for": policy.inactive_for, "percent": policy.percent,
        "activity": policy.activity.split(",") if policy.activity else None,
        "since": clock.format_time(policy.starts_at),
        "last_evaluation": clock.format_time(policy.last_evaluated_at),
        "next_due": clock.format_time(due), "set_by": policy.set_by,
    }


def status(session: Session, *, accounts: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per account (any of ``accounts``, default all): the policy in words, the last evaluation
    performed, the next one due, and how many are due now."""
    query = select(Account).order_by(col(Account.id))
    if accounts:
        query = query.where(col(Account.id).in_(
            [a.id for a in accounts_by_names(session, accounts)]))
    policies = {p.account_id: p for p in session.exec(select(ExpirationPolicy)).scalars()}
    names = account_names(session)
    zone, now = program_zone(session), clock.now()
    rows = []
    for acct in session.exec(query).scalars():
        policy = policies.get(acct.id)
        if policy is None:
            rows.append({"account": acct.name, "policy": "none",
                         "rule": "points never expire", "schedule": None,
                         "last_evaluation": None, "next_due": None, "due_now": 0})
            continue
        schedule = parse_schedule(policy.schedule)
        after = policy.last_evaluated_at or policy.starts_at
        due_now = sum(1 for _ in evaluation_times(schedule, after, now, zone, policy.starts_at))
        rows.append({
            "account": acct.name, "policy": policy.kind, "rule": policy_words(policy, names),
            "schedule": f"{policy.schedule} ({zone.key})",
            "last_evaluation": clock.format_time(policy.last_evaluated_at),
            "next_due": clock.format_time(schedule.next_after(after, zone, policy.starts_at)),
            "due_now": due_now,
        })
    return rows


# --- what is due ----------------------------------------------------------------------------

def evaluation_times(schedule: Schedule, after: datetime, until: datetime, zone: ZoneInfo,
           start: datetime) -> list[datetime]:
    times = []
    for moment in schedule.times(after, until, zone, start):
        times.append(moment)
        if len(times) > MAX_EVALUATIONS:
            raise RefusedError(f"more than {MAX_EVALUATIONS} evaluations are due for one "
                               "account; run with an earlier --as-of first")
    return times


@dataclass(frozen=True, order=True)
class Due:
    at: datetime
    account_id: int
    account: str = field(compare=False)


def due_evaluations(session: Session, *, until: datetime, accounts: Sequence[str] = ()
                    ) -> list[Due]:
    """Every evaluation due at or before ``until``, oldest first (then by account), across
    accounts (any of ``accounts``, default all): rolled-over points reach their account before
    its later evaluations. A named account without a policy is refused."""
    query = select(ExpirationPolicy, Account.name).join(
        Account, col(Account.id) == col(ExpirationPolicy.account_id))
    targets = accounts_by_names(session, accounts)
    for target in targets:
        if session.get(ExpirationPolicy, target.id) is None:
            raise RefusedError(f"account {target.name!r} has no expiration policy; set one "
                               "with 'pointctl accounts expiration'")
    if targets:
        query = query.where(col(ExpirationPolicy.account_id).in_([t.id for t in targets]))
    zone = program_zone(session)
    found: list[Due] = []
    for policy, name in session.execute(query):
        after = policy.last_evaluated_at or policy.starts_at
        for moment in evaluation_times(parse_schedule(policy.schedule), after, until, zone,
                             policy.starts_at):
            found.append(Due(moment, policy.account_id, name))
    return sorted(found)


# --- one evaluation -------------------------------------------------------------------------

@dataclass
class Outcome:
    account: str
    at: datetime
    performed: bool  # False: another run performed it first
    users: int = 0
    lots: int = 0
    expired: int = 0
    rolled_over: int = 0
    per_user: list[tuple[str, int, int]] = field(default_factory=list)  # user, expired, rolled


def perform(session: Session, *, account_id: int, at: datetime, actor: str,
            collect_users: bool = False, lock: bool = True,
            users: Sequence[str] | None = None) -> Outcome:
    """Perform the evaluation of ``account_id`` at ``at`` unless it was performed already,
    for every user but those a write has caught up through ``at`` already (their balance
    row's ``evaluated_through``). ``lock=False`` (dry runs and previews, rolled back) takes no
    row locks, so a preview never blocks or deadlocks the writers it runs next to.

    ``users``: a write's catch-up (``catch_up``) of these users alone; the caller holds the
    policy row (FOR SHARE) and their balance rows, and the evaluation stays due for the
    others (no ``expiration_run`` row, ``last_evaluated_at`` unchanged)."""
    if users is not None:
        policy = session.exec(select(ExpirationPolicy).where(
            col(ExpirationPolicy.account_id) == account_id)
            .execution_options(populate_existing=True)).scalars().first()
    else:
        policy = locks.lock_policy(session, account_id) if lock else \
            session.get(ExpirationPolicy, account_id)
    account = session.get(Account, account_id)
    name = account.name if account else str(account_id)
    if policy is None or (policy.last_evaluated_at is not None
                          and policy.last_evaluated_at >= at) or at <= policy.starts_at:
        return Outcome(name, at, performed=False)
    zone, now = program_zone(session), clock.now()
    sql = RawSql(session)
    params: dict[str, Any] = {"account": account_id,
                              "widest": sql.time(candidates_cutoff(policy, at, zone)),
                              "at": sql.time(at)}
    # users with lots old enough to be candidates, but for those caught up through ``at``
    holders = ("SELECT DISTINCT user_id FROM lot WHERE account_id = :account AND remaining > 0"
               " AND created_at <= :widest AND user_id NOT IN (SELECT user_id FROM balance "
               "WHERE account_id = :account AND evaluated_through >= :at)")
    chosen = _bind_list(params, "user", sorted(set(users))) if users is not None else ""
    if users is not None:
        holders += f" AND user_id IN ({chosen})"
    outcome = Outcome(name, at, performed=True)
    # Most evaluations that a write catches up find no such lot: they build no temporary
    # tables. (A lot committed just after this check is as one committed just after the
    # holders are locked below: this evaluation does not see it either way.)
    if sql.run(f"SELECT EXISTS ({holders})", **params).scalar():
        _take(sql, policy, at, zone, holders, params, outcome, now=now, actor=actor,
              lock=lock, collect_users=collect_users)
    if users is not None:
        sql.run(f"UPDATE balance SET evaluated_through = :at WHERE account_id = :account "
                f"AND user_id IN ({chosen})", **params)
        return outcome
    names = account_names(session)
    session.add(ExpirationRun(
        account_id=account_id, evaluated_at=at, policy=policy_words(policy, names)[:300],
        users=outcome.users, lots=outcome.lots, expired=outcome.expired,
        rolled_over=outcome.rolled_over, actor=actor, performed_at=now))
    policy.last_evaluated_at = at
    _set_next_due(policy, zone)
    session.add(policy)
    session.flush()
    return outcome


def _take(sql: RawSql, policy: ExpirationPolicy, at: datetime, zone: ZoneInfo, holders: str,
          params: dict[str, Any], outcome: Outcome, *, now: datetime, actor: str, lock: bool,
          collect_users: bool) -> None:
    """The evaluation's writes for the users ``holders`` selects: lock their balance rows
    (PostgreSQL, in the order every writer uses), find what each lot loses, write it, and
    count it into ``outcome``."""
    session = sql.session
    sql.drop("pointctl_exp", "pointctl_exp_user", "pointctl_anniv", "pointctl_days")
    rollover = policy.rollover_to_id
    targets = [policy.account_id] + ([rollover] if rollover else [])
    sql.run("CREATE TEMP TABLE pointctl_exp_user (user_id VARCHAR(200) PRIMARY KEY)")
    if rollover:
        locks.create_balances_of(session, holders, rollover, params)
    locks.lock_balances_of(session, holders, targets, params, into="pointctl_exp_user",
                           lock=lock)
    candidates = _candidate_sql(sql, policy, at, zone, params)
    row = "ROW_NUMBER() OVER (ORDER BY c.lot_id)"
    # a debit entry per lot here; a rollover's credits in the other account come after them
    columns = f"c.*, {sql.new_ids('entry', row)} AS entry_id"
    sql.run(f"CREATE TEMP TABLE pointctl_exp AS SELECT {columns} FROM ({candidates}) c",
            **params)
    lots, touched, points = sql.run("SELECT COUNT(*), COUNT(DISTINCT user_id), "
                                    "COALESCE(SUM(points), 0) FROM pointctl_exp").one()
    outcome.users, outcome.lots = int(touched), int(lots)
    if lots:
        if sql.postgres:
            sql.run("ANALYZE pointctl_exp")
        kind = "rollover" if rollover else "expiration"
        _write(sql, policy, kind=kind, at=at, now=now, actor=actor, zone=zone, lock=lock)
        if rollover:
            outcome.rolled_over = int(points)
        else:
            outcome.expired = int(points)
        if collect_users:
            outcome.per_user = [
                (user, 0 if rollover else int(total), int(total) if rollover else 0)
                for user, total in sql.run("SELECT user_id, SUM(points) FROM pointctl_exp "
                                           "GROUP BY user_id ORDER BY user_id")]
    sql.drop("pointctl_exp", "pointctl_exp_user", "pointctl_anniv", "pointctl_days")


def resumes_after(policy: ExpirationPolicy, reached: datetime | None = None) -> datetime:
    """The time after which the policy's evaluations are still due: after the last one
    performed (or its start) and, for one user, after the last one a write's catch-up
    applied to them (their balance row's ``evaluated_through``)."""
    after = policy.last_evaluated_at or policy.starts_at
    return reached if reached is not None and reached > after else after


def catch_up(session: Session, due: dict[str, set[int]], *, through: datetime,
             actor: str, lock: bool = True) -> None:
    """A write at ``through`` comes after evaluations that ``expire run`` has not performed
    yet: perform, for each user alone, the evaluations of their accounts in ``due`` that fell
    due at or before it and have not reached them, oldest first (then by account), exactly as
    a punctual run would have; each user's balance row remembers how far it got
    (``evaluated_through``), and ``expire run`` later skips them. The caller holds the policy
    rows (FOR SHARE) and the users' balance rows."""
    from collections import defaultdict

    zone = program_zone(session)
    plan: dict[tuple[datetime, int], list[str]] = defaultdict(list)
    for account_id in sorted({account for accounts in due.values() for account in accounts}):
        policy = session.exec(select(ExpirationPolicy).where(
            col(ExpirationPolicy.account_id) == account_id)
            .execution_options(populate_existing=True)).scalars().first()
        if policy is None:
            continue
        users = sorted(user for user, accounts in due.items() if account_id in accounts)
        params: dict[str, Any] = {"account": account_id}
        reached = {user: moment for user, moment in session.execute(text(
            f"SELECT user_id, evaluated_through FROM balance WHERE account_id = :account "
            f"AND evaluated_through IS NOT NULL "
            f"AND user_id IN ({_bind_list(params, 'user', users)})"), params)}
        schedule = parse_schedule(policy.schedule)
        for user in users:
            mine = reached.get(user)
            if isinstance(mine, str):
                mine = datetime.fromisoformat(mine)
            after = resumes_after(policy, mine)
            try:
                times = evaluation_times(schedule, after, through, zone, policy.starts_at)
            except RefusedError:
                raise RefusedError(
                    f"more than {MAX_EVALUATIONS} evaluations of account "
                    f"{account_names(session).get(account_id, str(account_id))!r} are due "
                    "before this operation; run 'pointctl expire run' first") from None
            for moment in times:
                plan[(moment, account_id)].append(user)
    for (moment, account_id), users in sorted(plan.items()):
        perform(session, account_id=account_id, at=moment, actor=actor, users=users, lock=lock)


def candidates_cutoff(policy: ExpirationPolicy, at: datetime, zone: ZoneInfo) -> datetime:
    """The latest creation time any lot expiring at ``at`` can have."""
    if policy.kind == "rolling":
        return before(at, parse_duration(policy.older_than or ""), zone)
    if policy.kind == "fixed-date":
        return fixed_date_cutoff(at, policy.fixed_date or "", _maybe(policy.min_age), zone)
    return at


def exact_cutoff(policy: ExpirationPolicy, at: datetime, zone: ZoneInfo) -> datetime:
    """The latest creation time of the lots the evaluation at ``at`` expires, for every policy
    but inactivity and snap-to anniversary (whose cut-off depends on the user)."""
    if policy.kind == "rolling" and policy.snap_to:
        return snapped_cutoff(at, parse_duration(policy.older_than or ""), policy.snap_to, zone)
    return candidates_cutoff(policy, at, zone)


def _maybe(value: str | None) -> Duration | None:
    return parse_duration(value) if value else None


FREE = draws.free_sql("l")  # a lot's points not earmarked by open holds


def _candidate_sql(sql: RawSql, policy: ExpirationPolicy, at: datetime, zone: ZoneInfo,
                   params: dict[str, Any]) -> str:
    """A SELECT of (lot_id, user_id, source_id, credit_entry_id, points): what each lot loses."""
    # points earmarked by an open hold do not expire while it is open (draws.free)
    mine = (f"l.account_id = :account AND {FREE} > 0 "
            "AND l.user_id IN (SELECT user_id FROM pointctl_exp_user)")
    take_all = "SELECT l.id AS lot_id, l.user_id, l.source_id, l.entry_id AS credit_entry_id, " \
               f"{FREE} AS points FROM lot l"
    if policy.kind == "fixed-date" or (policy.kind == "rolling" and not policy.snap_to):
        return f"{take_all} WHERE {mine} AND l.created_at <= :widest"
    if policy.kind == "rolling" and policy.snap_to != "anniversary":
        params["cutoff"] = sql.time(exact_cutoff(policy, at, zone))
        return f"{take_all} WHERE {mine} AND l.created_at <= :cutoff"
    if policy.kind == "rolling":
        return _anniversary_sql(sql, policy, at, zone, take_all, mine)
    return _inactivity_sql(sql, policy, at, zone, params)


def _anniversary_sql(sql: RawSql, policy: ExpirationPolicy, at: datetime, zone: ZoneInfo,
                     take_all: str, mine: str) -> str:
    """Per user, the cut-off of the latest anniversary of enrollment (``enrollment``: the
    recorded date, else the first entry, as a wall-clock day) at or before ``at``: two small
    calendar tables and a join."""
    older_than = parse_duration(policy.older_than or "")
    sql.run("CREATE TEMP TABLE pointctl_anniv (mmdd VARCHAR(5) PRIMARY KEY, cutoff TIMESTAMP)")
    sql.run("CREATE TEMP TABLE pointctl_days (day_start TIMESTAMP PRIMARY KEY, mmdd VARCHAR(5))")
    # one statement per table (PostgreSQL: arrays; an executemany was 366 round trips)
    connection = sql.session.connection()
    bulk.insert(connection, "pointctl_anniv", [("mmdd", "varchar"), ("cutoff", "timestamp")],
                [(mmdd, sql.time(cutoff))
                 for mmdd, cutoff in anniversary_cutoffs(at, older_than, zone).items()])
    enrolled = enrolled_sql("SELECT user_id FROM pointctl_exp_user")
    first = sql.run(f"SELECT MIN(enrolled) FROM ({enrolled}) n").scalar_one()
    if first is not None:
        if isinstance(first, str):
            first = datetime.fromisoformat(first)
        bulk.insert(connection, "pointctl_days", [("day_start", "timestamp"),
                                                  ("mmdd", "varchar")],
                    [(sql.time(start), mmdd) for start, mmdd in local_days(first, at, zone)])
    return f"""{take_all}
        JOIN ({enrolled}) u ON u.user_id = l.user_id
        JOIN pointctl_days d ON d.day_start = (SELECT MAX(day_start) FROM pointctl_days
                                               WHERE day_start <= u.enrolled)
        JOIN pointctl_anniv n ON n.mmdd = d.mmdd
        WHERE {mine} AND l.created_at <= n.cutoff"""


def _bind_list(params: dict[str, Any], prefix: str, values: Sequence[str]) -> str:
    """Bind ``values`` as :prefix0, :prefix1, ... and return them for an IN (...) list."""
    for index, value in enumerate(values):
        params[f"{prefix}{index}"] = value
    return ", ".join(f":{prefix}{index}" for index in range(len(values)))


def _inactivity_sql(sql: RawSql, policy: ExpirationPolicy, at: datetime, zone: ZoneInfo,
                    params: dict[str, Any]) -> str:
    """Users whose latest qualifying activity (or, without any, their enrollment) is at or
    before ``at`` - inactive_for lose ``percent`` of their available points, oldest lots first:
    running sums over each user's lots say how much each lot gives."""
    events = (policy.activity or "").split(",")
    entry_types = sorted({ENTRY_EVENTS[e] for e in events if e in ENTRY_EVENTS})
    custom = sorted(e for e in events if e not in ENTRY_EVENTS)
    params["since"] = sql.time(before(at, parse_duration(policy.inactive_for or ""), zone))
    params["at"] = sql.time(at)
    users = "SELECT user_id FROM pointctl_exp_user"
    seen = [f"SELECT user_id, enrolled AS at FROM ({enrolled_sql(users)}) n "
            "WHERE enrolled <= :at"]
    if entry_types:
        seen.append(f"SELECT user_id, MAX(occurred_at) FROM entry WHERE user_id IN ({users}) "
                    f"AND type IN ({_bind_list(params, 'type', entry_types)}) "
                    "AND occurred_at <= :at GROUP BY user_id")
    if custom:
        seen.append(f"SELECT user_id, MAX(occurred_at) FROM activity WHERE user_id IN ({users})"
                    f" AND event IN ({_bind_list(params, 'event', custom)}) "
                    "AND occurred_at <= :at GROUP BY user_id")
    percent = int(policy.percent or 100)
    return f"""SELECT lot_id, user_id, source_id, credit_entry_id,
                      CASE WHEN remaining < share - before THEN remaining
                           ELSE share - before END AS points
        FROM (SELECT l.id AS lot_id, l.user_id, l.source_id, l.entry_id AS credit_entry_id,
                     {FREE} AS remaining,
                     CAST(SUM({FREE}) OVER (PARTITION BY l.user_id
                                            ORDER BY l.created_at, l.id
                                            ROWS UNBOUNDED PRECEDING) AS BIGINT)
                         - {FREE} AS before,
                     CAST(SUM({FREE}) OVER (PARTITION BY l.user_id) AS BIGINT)
                         * {percent} / 100 AS share
              FROM lot l
              JOIN (SELECT user_id FROM ({' UNION ALL '.join(seen)}) s
                    GROUP BY user_id HAVING MAX(at) <= :since) i ON i.user_id = l.user_id
              WHERE l.account_id = :account AND {FREE} > 0 AND l.created_at <= :at
                AND l.available_at <= :at) r
        WHERE share > before"""


def _write(sql: RawSql, policy: ExpirationPolicy, *, kind: str, at: datetime, now: datetime,
           actor: str, zone: ZoneInfo, lock: bool) -> None:
    """Entries, draws and lot updates for every row of pointctl_exp."""
    local = clock.to_local(at, zone)
    note = f"{policy.kind} evaluation of {local:%Y-%m-%d %H:%M} {zone.key}"
    params = {"account": policy.account_id, "kind": kind, "actor": actor, "at": sql.time(at),
              "now": sql.time(now), "note": note, "rtype": DEFAULT_REFERENCE_TYPES[kind]}
    entry_columns = ("id, type, user_id, account_id, source_id, points, reference_type, note, "
                     "related_entry_id, written_off, actor, occurred_at, recorded_at")
    sql.run(f"INSERT INTO entry ({entry_columns}) SELECT entry_id, :kind, user_id, :account, "
            "source_id, -points, :rtype, :note, credit_entry_id, 0, :actor, :at, :now "
            "FROM pointctl_exp", **params)
    draw_kind = "rollover" if kind == "rollover" else "expire"
    sql.run("INSERT INTO draw (entry_id, lot_id, kind, points) "
            f"SELECT entry_id, lot_id, '{draw_kind}', points FROM pointctl_exp")
    bucket = draws.TAKES[draw_kind]
    sql.run(f"UPDATE lot SET remaining = lot.remaining - e.points, "
            f"{bucket} = lot.{bucket} + e.points FROM pointctl_exp e WHERE lot.id = e.lot_id")
    if kind == "rollover":
        _roll_over(sql, policy, at=at, actor=actor, note=note, lock=lock)


def _roll_over(sql: RawSql, policy: ExpirationPolicy, *, at: datetime, actor: str, note: str,
               lock: bool) -> None:
    """The credits of a rollover, through the ledger engine's credit rule (pending delay,
    debt repaid first), a chunk at a time. A rollover ignores the receiving account's max
    balance: the points have left the expired lot already and must land somewhere."""
    from pointctl.services import engine

    assert policy.rollover_to_id is not None
    options = WriteOptions(actor=actor, at=at)
    rows = sql.run("SELECT e.entry_id, e.user_id, e.source_id, e.points, "
                   "COALESCE(l.origin_lot_id, l.id) FROM pointctl_exp e "
                   "JOIN lot l ON l.id = e.lot_id ORDER BY e.lot_id").all()
    for start in range(0, len(rows), ROLLOVER_CHUNK):
        requests: list[engine.Request] = [
            engine.RolloverRequest(user=user, account_id=policy.rollover_to_id,
                                   source_id=int(source), points=int(points),
                                   origin_lot_id=int(origin), debit_entry_id=int(debit),
                                   note=note, options=options, ignore_max_balance=True)
            for debit, user, source, points, origin in rows[start:start + ROLLOVER_CHUNK]]
        for outcome in engine.apply(sql.session, requests, lock=lock, catch_up=False):
            if isinstance(outcome, PointctlError):
                raise outcome


# --- preview --------------------------------------------------------------------------------

def simulate(session: Session, *, until: datetime, accounts: Sequence[str] = (), actor: str,
             collect_users: bool) -> list[Outcome]:
    """Perform every evaluation due until ``until`` in this transaction (the caller rolls it
    back): the dry run and the preview. Holds are left as they are (releasing them here would
    lock rows a checkout needs for as long as the preview runs)."""
    outcomes = []
    for due in due_evaluations(session, until=until, accounts=accounts):
        outcomes.append(perform(session, account_id=due.account_id, at=due.at, actor=actor,
                                collect_users=collect_users, lock=False))
    return outcomes


def release_holds(session: Session, *, until: datetime, actor: str,
                  limit: int | None = None) -> tuple[int, bool]:
    """Release the open holds that ended at or before ``until`` (at most ``limit``, the
    earliest first) through the ledger engine, each as of just before its own end
    (``engine.RELEASE_EARLY``): a write catches up the evaluations due before it, and those
    came while the points were still held. How many were released, and whether more are
    left."""
    from pointctl.db.rawsql import RawSql
    from pointctl.services import engine
    from pointctl.services.writes import WriteOptions

    sql = RawSql(session)
    rows = [(ref, sql.moment(ends)) for ref, ends in sql.run(
        "SELECT reference_id, expires_at FROM hold WHERE status = 'open' "
        "AND expires_at <= :until ORDER BY expires_at, id"
        + (f" LIMIT {int(limit) + 1}" if limit is not None else ""), until=sql.time(until))]
    more = limit is not None and len(rows) > limit
    rows = rows[:limit] if limit is not None else rows
    if not rows:
        return 0, False
    outcomes = engine.apply(session, [
        engine.VoidRequest(reference_id=ref, expired=True,
                           options=WriteOptions(actor=actor, at=ends - engine.RELEASE_EARLY))
        for ref, ends in rows])
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
    session.expire_all()  # the engine wrote with plain SQL
    return sum(1 for o in outcomes if isinstance(o, dict) and o.get("points")), more


def preview(session: Session, *, within: str, user: str | None = None,
            accounts: Sequence[str] = (), actor: str) -> list[dict[str, Any]]:
    """What the schedules will expire (or roll over) within ``within`` from now if nothing else
    happens, per account, user and evaluation; overdue evaluations are included. The caller
    rolls the transaction back."""
    horizon = parse_duration(within, what="--within duration").add_to(clock.now())
    accounts_by_names(session, accounts)  # an unknown name is an error before anything runs
    rows = []
    for outcome in simulate(session, until=horizon, accounts=accounts, actor=actor,
                            collect_users=True):
        for user_id, expired, rolled in outcome.per_user:
            if user is None or user_id == user:
                rows.append({"account": outcome.account, "user": user_id,
                             "at": clock.format_time(outcome.at), "expires": expired,
                             "rolls_over": rolled})
    if user is not None and not rows:
        # an unknown user is worth saying; a known one simply has nothing expiring
        from pointctl.db.models import Balance

        known = session.exec(select(Balance.user_id).where(col(Balance.user_id) == user)
                             .limit(1)).first()
        if known is None:
            raise NotFoundError(f"no balances for user {user!r}")
    return rows
