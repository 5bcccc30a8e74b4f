"""Tiers: levels (Silver, Gold, ...) that members reach with the qualifying points they earned
over a window, assessed on a schedule by ``expire run``.

The points that count at an evaluation time T are the member's entries in the tiers'
qualifying account of type issue, adjustment and reversal that occurred in the window ending
at T: ``(window start, T]``, where the start is T less a duration (a rolling window such as
``12mo``) or the latest start of a calendar year of the program time zone before T (so that
an evaluation at midnight on January 1 still counts the year that just ended). Qualifying
points are never spent, so spending never lowers a tier; reversing a qualifying issue does.
Expirations and rollovers of the qualifying account do not count either way.

An evaluation at T moves every member at once, in a handful of set-based statements
(``perform``): the level a member's points reach is taken at once when it is higher (kept
until T plus the keep), the same level again extends the keep, and a lower one (or none) only
once the keep has passed (``kept_until <= T``). Each move is an audit entry of type ``tier``
(0 points) naming the new level as its reference id. The program row is locked first, the
evaluation is skipped when it was performed already, and ``tier_run`` records it under its
time as primary key: each evaluation happens exactly once, also when runs overlap.
Evaluations take no other row lock: they read the append-only entries and write only the
tier tables and their own entries.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, text
from sqlmodel import Session, col

from pointctl.core import clock
from pointctl.core.durations import Duration, parse_duration
from pointctl.core.errors import InvalidInputError, NotFoundError, RefusedError
from pointctl.core.expiry import before
from pointctl.core.periods import Period, local_midnight
from pointctl.core.schedules import parse_schedule
from pointctl.core.validation import MAX_POINTS, clean_name, name_key
from pointctl.db.models import Account, MemberTier, TierLevel, TierProgram, TierRun
from pointctl.db.rawsql import RawSql
from pointctl.services.lookup import account_by_name
from pointctl.services.settings import program_zone

CALENDAR_YEAR = "calendar-year"
EARNING_TYPES = ("issue", "adjustment", "reversal")  # what counts toward a tier
ENTRY_TYPE = "tier"
MAX_LEVELS = 50
NOT_SET = "no tiers are set; define them with 'pointctl tiers set'"


# --- the definition -------------------------------------------------------------------------

def parse_level(text_value: str) -> tuple[str, int]:
    """``NAME=POINTS`` (``--level Gold=5000``) -> (name, threshold)."""
    name, sep, points = (text_value or "").rpartition("=")
    if not sep:
        raise InvalidInputError(f"invalid --level {text_value!r}: expected NAME=POINTS, such as "
                                "Gold=5000")
    try:
        threshold = int(points.strip().replace("_", "").replace(",", ""))
    except ValueError:
        raise InvalidInputError(f"invalid --level {text_value!r}: {points.strip()!r} is not a "
                                "whole number of points") from None
    return name, threshold


def check_levels(levels: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """Names and thresholds -> lowest first; refuses empty or duplicate names, thresholds
    below 1 and two levels with one threshold."""
    if not levels:
        raise InvalidInputError("tiers need at least one level, such as --level Silver=1000")
    if len(levels) > MAX_LEVELS:
        raise InvalidInputError(f"{len(levels)} levels given; at most {MAX_LEVELS} are allowed")
    cleaned: list[tuple[str, int]] = []
    for name, threshold in levels:
        name = clean_name(name, what="tier level")
        if isinstance(threshold, bool) or not isinstance(threshold, int) \
                or not 1 <= threshold <= MAX_POINTS:
            raise InvalidInputError(f"tier level {name!r}: the threshold must be a whole "
                                    f"number of points from 1 to {MAX_POINTS}, not {threshold}")
        if name_key(name) == "none":
            raise InvalidInputError("a tier level cannot be named 'none': it stands for no "
                                    "level in the tier entries and reports")
        if any(name_key(name) == name_key(other) for other, _ in cleaned):
            raise InvalidInputError(f"tier level {name!r} is named twice")
        same = [other for other, points in cleaned if points == threshold]
        if same:
            raise InvalidInputError(f"tier levels {same[0]!r} and {name!r} both need "
                                    f"{threshold} points; each level needs more than the one "
                                    "below it")
        cleaned.append((name, threshold))
    return sorted(cleaned, key=lambda level: level[1])


def check_window(value: str | None) -> str:
    """A rolling window (a duration of days or longer) or ``calendar-year``."""
    raw = (value or "").strip()
    if raw.lower().replace(" ", "-") == CALENDAR_YEAR:
        return CALENDAR_YEAR
    try:
        window = parse_duration(raw, what="--window")
    except InvalidInputError as error:
        raise InvalidInputError(f"{error.message}, or calendar-year") from None
    if window.unit in ("min", "h"):
        raise InvalidInputError(f"invalid --window {value!r}: a tier window is days or longer "
                                "(such as 90d or 12mo), or calendar-year")
    if before(datetime(2000, 1, 1), window, ZoneInfo("UTC")) < datetime(1990, 1, 1):
        raise InvalidInputError(f"invalid --window {value!r}: a tier window is at most 10 "
                                "years")
    return str(window)


def check_keep(value: str | None) -> str | None:
    return None if value is None else str(parse_duration(value, what="--keep duration"))


def windows(window: str, at: datetime, previous: datetime, zone: ZoneInfo
            ) -> list[tuple[datetime, datetime]]:
    """The windows ``(start, end]`` an evaluation at ``at`` counts (``previous``: the
    evaluation before it, ``previous_evaluation``); a member's qualifying points are the
    largest sum over them.

    Rolling: one, ``at`` less the duration up to ``at``. Calendar year: the year so far (from
    local January 1, 00:00 of ``at``'s year), and each year that ended since the previous
    evaluation, whole: the points of a year's last days (after its last evaluation) are
    assessed at the first evaluation after it, whatever the schedule."""
    if window == CALENDAR_YEAR:
        year = clock.to_local(at, zone).year
        start = local_midnight(date(year, 1, 1), zone)
        found = [(start, at)]
        while previous < start:
            year -= 1
            earlier = local_midnight(date(year, 1, 1), zone)
            found.append((earlier, start))
            start = earlier
        return found
    return [(before(at, parse_duration(window), zone), at)]


def kept_until(keep: str | None, at: datetime, zone: ZoneInfo) -> datetime:
    """Until when a level reached (or reached again) at ``at`` is kept: ``at`` plus the keep,
    calendar units in the program time zone; without a keep, only while it is reached."""
    if keep is None:
        return at
    duration: Duration = parse_duration(keep)
    if duration.unit in ("min", "h"):
        return duration.add_to(at)
    return clock.to_utc(duration.add_to(clock.to_local(at, zone)), zone)


def _program(session: Session, *, lock: bool = False) -> TierProgram | None:
    query = select(TierProgram).where(col(TierProgram.id) == 1)
    if lock:  # FOR UPDATE: evaluations and tier administration, one at a time
        query = query.with_for_update()
    return session.execute(query.execution_options(populate_existing=True)).scalars().first()


def _levels(session: Session) -> list[TierLevel]:
    return list(session.execute(select(TierLevel).order_by(col(TierLevel.position))
                                .execution_options(populate_existing=True)).scalars())


def _last_run(session: Session) -> datetime | None:
    """The latest tier evaluation performed, under any definition of the tiers."""
    last = session.execute(text("SELECT MAX(evaluated_at) FROM tier_run")).scalar()
    return None if last is None else RawSql.moment(last)


def previous_evaluation(session: Session, program: TierProgram) -> datetime:
    """The tier evaluation before the next one: the latest performed, also under an earlier
    definition of the tiers (its windows still count what ended since), else the start."""
    return program.last_evaluated_at or _last_run(session) or program.starts_at


def next_due(program: TierProgram, zone: ZoneInfo) -> datetime | None:
    """The next evaluation (None: none within 60 years)."""
    return parse_schedule(program.schedule).next_after(
        program.last_evaluated_at or program.starts_at, zone, program.starts_at)


def set_tiers(session: Session, *, account: str, levels: Sequence[tuple[str, int]],
              window: str = "12mo", keep: str | None = None, every: str | None = None,
              actor: str) -> dict[str, Any]:
    """Define (or replace) the tiers. Evaluations the old definition still owes are performed
    first, as ``expire run`` would have; the new one is evaluated from now on. Members keep
    their levels until its first evaluation (a level no longer defined is left then)."""
    ordered = check_levels(levels)
    window = check_window(window)
    keep = check_keep(keep)
    schedule = parse_schedule(every or "daily")
    # the account row first (FOR NO KEY UPDATE, as an edit of it takes it): it stays
    # qualifying until this commits
    target = account_by_name(session, account, lock=True)
    require_qualifying(target)
    now = clock.now()
    current = _program(session, lock=True)
    created = False
    if current is None:  # the first definition: of two at once, one inserts, one replaces
        sql = RawSql(session)
        created = sql.run(
            'INSERT INTO tier_program (id, account_id, "window", schedule, starts_at, set_by, '
            "updated_at) VALUES (1, :account, :window, :schedule, :now, :actor, :now) "
            "ON CONFLICT (id) DO NOTHING RETURNING id", account=target.id, window=window,
            schedule=schedule.text, now=sql.time(now), actor=actor).first() is not None
        current = _program(session, lock=True)
    if current is not None and not created:
        same = (current.account_id, current.window, current.keep, current.schedule) == (
            target.id, window, keep, schedule.text) and [
            (level.name, level.threshold) for level in _levels(session)] == ordered
        if same:
            return {**describe(session), "changed": False}
        perform_due(session, until=now, actor=actor)
    last_run = _last_run(session)  # evaluations stay in order across definitions
    starts = max(now, last_run) if last_run is not None else now
    assert current is not None
    program = current
    program.account_id, program.window, program.keep = int(target.id or 0), window, keep
    program.schedule, program.starts_at, program.last_evaluated_at = schedule.text, starts, None
    program.set_by, program.updated_at = actor, now
    session.add(program)
    session.execute(delete(TierLevel))
    session.flush()
    for position, (name, threshold) in enumerate(ordered, start=1):
        session.add(TierLevel(position=position, name=name, name_key=name_key(name),
                              threshold=threshold))
    session.flush()
    # a level renamed only in case stays the members' level
    named = {name_key(name): name for name, _ in ordered}
    for (held,) in session.execute(text("SELECT DISTINCT level FROM member_tier")).all():
        if named.get(name_key(held), held) != held:
            session.execute(text("UPDATE member_tier SET level = :name WHERE level = :held"),
                            {"name": named[name_key(held)], "held": held})
    _record(session, actor=actor)
    return {**describe(session), "changed": True}


def require_qualifying(account: Account) -> None:
    """The tiers count the points of a tier qualifying account."""
    if not account.qualifying:
        raise RefusedError(f"account {account.name!r} is not tier qualifying; tiers count the "
                           "points of a qualifying account (pointctl accounts create NAME "
                           "--qualifying)")


def check_account(session: Session) -> None:
    """After a program file is applied: the tiers' account is still tier qualifying."""
    program = _program(session)
    account = session.get(Account, program.account_id) if program else None
    if account is not None and not account.qualifying:
        raise RefusedError(f"account {account.name!r} counts toward the tiers; it stays tier "
                           "qualifying while they count it (name another qualifying account "
                           "in [tiers], or leave [tiers] out and apply with --prune)")


def clear_tiers(session: Session, *, actor: str) -> dict[str, Any]:
    """Remove the tiers and every member's level: each member's loss of it is a ``Tier
    change`` entry (to ``none``). Evaluations still owed are performed first."""
    current = _program(session, lock=True)
    if current is None:
        return {"tiers": "none", "changed": False}
    now = clock.now()
    perform_due(session, until=now, actor=actor)
    sql = RawSql(session)
    new_id = sql.new_ids("entry", "ROW_NUMBER() OVER (ORDER BY user_id)")
    sql.run("INSERT INTO entry (id, type, user_id, account_id, points, reference_id, "
            "reference_type, note, written_off, actor, occurred_at, recorded_at) "
            f"SELECT {new_id}, '{ENTRY_TYPE}', user_id, :q, 0, 'none', '{MOVES['change']}', "
            "level || ' -> none (the tiers were removed)', 0, :actor, :now, :now "
            "FROM member_tier", q=current.account_id, actor=actor, now=sql.time(now))
    members = session.execute(text("SELECT COUNT(*) FROM member_tier")).scalar_one()
    session.execute(delete(MemberTier))
    session.execute(delete(TierLevel))
    session.execute(delete(TierProgram))
    session.flush()
    _record(session, actor=actor)
    return {"tiers": "none", "changed": True, "members_cleared": int(members)}


def _record(session: Session, *, actor: str) -> None:
    from pointctl.services.changes import record_change

    record_change(session, kind="tiers", key="tiers", actor=actor, action="set")


def describe(session: Session) -> dict[str, Any]:
    """The tiers as they are defined, with the last evaluation and the next one due."""
    program = _program(session)
    if program is None:
        raise RefusedError(NOT_SET)
    zone = program_zone(session)
    account = session.get(Account, program.account_id)
    counts = dict(session.execute(text(
        "SELECT level, COUNT(*) FROM member_tier GROUP BY level")).all())
    return {
        "account": account.name if account else None,
        "window": program.window, "keep": program.keep,
        "schedule": program.schedule, "timezone": zone.key,
        "levels": [{"level": level.name, "points": level.threshold,
                    "members": int(counts.get(level.name, 0))}
                   for level in _levels(session)],
        "since": clock.format_time(program.starts_at),
        "last_evaluation": clock.format_time(program.last_evaluated_at or _last_run(session)),
        "next_due": clock.format_time(next_due(program, zone)), "set_by": program.set_by,
    }


def qualifying_account_id(session: Session) -> int | None:
    """The account the tiers count (None: no tiers)."""
    found = session.execute(text("SELECT account_id FROM tier_program WHERE id = 1")).scalar()
    return None if found is None else int(found)


# --- evaluations ----------------------------------------------------------------------------

def _earning_sql(user: bool = False) -> str:
    """Each qualifying credit of the tiers' account (``:q``) known at ``:at`` and counted
    after ``:low``: the time it counts at (a reversal at the time of the entry it reverses:
    those points were never earned then) and the points it counts (a reversal's written-off
    part included: it was taken back too). ``user``: of ``:user`` alone."""
    earning = ", ".join(f"'{kind}'" for kind in EARNING_TYPES)
    return ("SELECT e.user_id, CASE WHEN e.type = 'reversal' THEN (SELECT o.occurred_at "
            "FROM entry o WHERE o.id = e.related_entry_id) ELSE e.occurred_at END AS counted_at, "
            "e.occurred_at, e.points - e.written_off AS points FROM entry e "
            f"WHERE e.account_id = :q AND e.type IN ({earning}) AND e.user_id IS NOT NULL "
            "AND e.occurred_at > :low AND e.occurred_at <= :at"
            + (" AND e.user_id = :user" if user else ""))



def due_times(session: Session, *, until: datetime) -> list[datetime]:
    """The tier evaluations due at or before ``until``, oldest first."""
    from pointctl.services.expiry import MAX_EVALUATIONS, evaluation_times

    program = _program(session)
    if program is None:
        return []
    try:
        return evaluation_times(parse_schedule(program.schedule),
                                program.last_evaluated_at or program.starts_at, until,
                                program_zone(session), program.starts_at)
    except RefusedError:
        raise RefusedError(f"more than {MAX_EVALUATIONS:,} tier evaluations are due; perform "
                           "them in steps with 'pointctl expire run --as-of TIME', an earlier "
                           "time first") from None


@dataclass
class TierOutcome:
    at: datetime
    performed: bool  # False: another run performed it first
    members: int = 0  # members with a level after it
    up: int = 0
    down: int = 0
    changed: int = 0  # moved because their level is no longer defined


def perform_due(session: Session, *, until: datetime, actor: str, lock: bool = True
                ) -> list[TierOutcome]:
    """Every evaluation due at or before ``until``, in this transaction."""
    return [perform(session, at=moment, actor=actor, lock=lock)
            for moment in due_times(session, until=until)]


# The move rule, as one SQL expression over a member's current position (``old_pos``: NULL
# without a level, or when their level is no longer defined: then they take the level their
# points reach, at once, a "change" of level), the position their points reach
# (``reached``: NULL below the lowest threshold) and their keep: higher at once, the same
# again, lower only once the keep has passed. ``decide`` is the same rule for one member.
_TARGET = ("CASE WHEN old_level IS NULL OR old_pos IS NULL THEN reached "
           "WHEN reached >= old_pos THEN reached "
           "WHEN kept_until <= :at THEN reached ELSE old_pos END")
_MOVE = ("CASE WHEN target IS NULL AND old_level IS NULL THEN NULL "
         "WHEN old_level IS NULL THEN 'up' WHEN old_pos IS NULL THEN 'change' "
         "WHEN target IS NULL THEN 'down' WHEN target > old_pos THEN 'up' "
         "WHEN target < old_pos THEN 'down' WHEN reached = old_pos THEN 'again' END")
# the reference type of each move's entry: a member whose level is no longer defined moves
# neither up nor down
MOVES = {"up": "Tier up", "down": "Tier down", "change": "Tier change"}


def decide(old_pos: int | None, reached: int | None, kept: datetime | None, at: datetime
           ) -> int | None:
    """One member's position after the evaluation at ``at`` (``_TARGET`` for one row)."""
    if old_pos is None:
        return reached
    if reached is not None and reached >= old_pos:
        return reached
    if kept is not None and kept <= at:
        return reached
    return old_pos


def perform(session: Session, *, at: datetime, actor: str, lock: bool = True) -> TierOutcome:
    """The tier evaluation at ``at`` unless it was performed already. ``lock=False`` (a dry
    run, rolled back) takes no row lock."""
    program = _program(session, lock=lock)
    if program is None or (program.last_evaluated_at is not None
                           and program.last_evaluated_at >= at) or at <= program.starts_at:
        return TierOutcome(at, performed=False)
    zone, now = program_zone(session), clock.now()
    sql = RawSql(session)
    spans = windows(program.window, at, previous_evaluation(session, program), zone)
    params = {"q": program.account_id, "at": sql.time(at), "now": sql.time(now),
              "low": sql.time(min(start for start, _ in spans)),
              "kept": sql.time(kept_until(program.keep, at, zone)), "actor": actor}
    sums = []
    for n, (start, end) in enumerate(spans):
        params[f"s{n}"], params[f"e{n}"] = sql.time(start), sql.time(end)
        sums.append(f"SUM(CASE WHEN counted_at > :s{n} AND counted_at <= :e{n} THEN points "
                    f"ELSE 0 END) AS w{n}")
    columns = ", ".join(f"w{n}" for n in range(len(spans)))
    earned = "w0" if len(spans) == 1 else \
        f"{'GREATEST' if sql.postgres else 'MAX'}({columns})"  # SQLite's MAX of a row
    tables = ("pointctl_tier_earned", "pointctl_tier", "pointctl_tier_move")
    sql.drop(*tables)
    sql.run(f"CREATE TEMP TABLE pointctl_tier_earned AS SELECT user_id, {earned} AS earned "
            f"FROM (SELECT user_id, {', '.join(sums)} FROM ({_earning_sql()}) c "
            "WHERE counted_at > :low GROUP BY user_id) w", **params)
    if sql.postgres:  # the planner's figures for the joins that follow
        sql.run("ANALYZE pointctl_tier_earned")
    members = ("SELECT u.user_id, m.level AS old_level, o.position AS old_pos, m.kept_until, "
               "COALESCE(e.earned, 0) AS earned, (SELECT MAX(l.position) FROM tier_level l "
               "WHERE l.threshold <= COALESCE(e.earned, 0)) AS reached "
               "FROM (SELECT user_id FROM pointctl_tier_earned UNION "
               "SELECT user_id FROM member_tier) u "
               "LEFT JOIN pointctl_tier_earned e ON e.user_id = u.user_id "
               "LEFT JOIN member_tier m ON m.user_id = u.user_id "
               "LEFT JOIN tier_level o ON o.name = m.level")
    sql.run(f"CREATE TEMP TABLE pointctl_tier AS SELECT d.*, {_MOVE} AS move FROM ("
            f"SELECT c.*, {_TARGET} AS target FROM ({members}) c) d", **params)
    new_id = sql.new_ids("entry", "ROW_NUMBER() OVER (ORDER BY t.user_id)")
    sql.run(f"CREATE TEMP TABLE pointctl_tier_move AS SELECT t.*, l.name AS new_level, "
            f"{new_id} AS entry_id FROM pointctl_tier t "
            "LEFT JOIN tier_level l ON l.position = t.target "
            "WHERE t.move IN ('up', 'down', 'change')")
    sql.run("INSERT INTO entry (id, type, user_id, account_id, points, reference_id, "
            "reference_type, note, written_off, actor, occurred_at, recorded_at) "
            f"SELECT entry_id, '{ENTRY_TYPE}', user_id, :q, 0, COALESCE(new_level, 'none'), "
            "CASE move " + " ".join(f"WHEN '{move}' THEN '{kind}'" for move, kind in MOVES.items())
            + " END, "
            "COALESCE(old_level, 'none') || ' -> ' || COALESCE(new_level, 'none') || ' (' || "
            "CAST(earned AS VARCHAR(40)) || ' qualifying points in the window)', 0, :actor, "
            ":at, :now FROM pointctl_tier_move ORDER BY entry_id", **params)
    sql.run("DELETE FROM member_tier WHERE user_id IN (SELECT user_id FROM pointctl_tier_move "
            "WHERE new_level IS NULL)")
    sql.run("UPDATE member_tier SET level = v.new_level, reached_at = :at, kept_until = :kept "
            "FROM pointctl_tier_move v WHERE member_tier.user_id = v.user_id "
            "AND v.new_level IS NOT NULL", **params)
    sql.run("INSERT INTO member_tier (user_id, level, reached_at, kept_until) "
            "SELECT user_id, new_level, :at, :kept FROM pointctl_tier_move "
            "WHERE old_level IS NULL AND new_level IS NOT NULL", **params)
    sql.run("UPDATE member_tier SET kept_until = :kept WHERE kept_until < :kept AND user_id IN "
            "(SELECT user_id FROM pointctl_tier WHERE move = 'again')", **params)
    up, down, changed = (int(n or 0) for n in sql.run(
        "SELECT SUM(CASE WHEN move = 'up' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN move = 'down' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN move = 'change' THEN 1 ELSE 0 END) FROM pointctl_tier_move").one())
    sql.drop(*tables)
    count = int(sql.run("SELECT COUNT(*) FROM member_tier").scalar_one())
    session.add(TierRun(evaluated_at=at, members=count, up=up, down=down, changed=changed,
                        actor=actor, performed_at=now))
    program.last_evaluated_at = at
    session.add(program)
    session.flush()
    return TierOutcome(at, performed=True, members=count, up=up, down=down, changed=changed)


# --- one member -----------------------------------------------------------------------------

FORECAST_YEARS = 100  # how far ahead a lapse is looked for
FORECAST_EVALUATIONS = 20_000  # and over how many evaluations at most


@dataclass(frozen=True)
class _Credit:
    counted_at: datetime  # when it counts (a reversal: when what it reverses occurred)
    occurred_at: datetime  # when it became known
    points: int


def _earned_at(credits: Sequence[_Credit], spans: Sequence[tuple[datetime, datetime]],
               at: datetime) -> int:
    """``perform``'s qualifying points of one member at ``at``, over their credits."""
    return max(sum(c.points for c in credits if start < c.counted_at <= end
                   and c.occurred_at <= at) for start, end in spans)


def member(session: Session, *, user: str) -> dict[str, Any]:
    """A member's level (as the latest evaluation left it), the qualifying points as an
    evaluation now would count them, what the next level needs, and when the level would
    lapse if no more points were earned: the first evaluation that would move them down."""
    program = _program(session)
    if program is None:
        raise RefusedError(NOT_SET)
    zone, now = program_zone(session), clock.now()
    sql = RawSql(session)
    row = session.get(MemberTier, user)
    known = row is not None or session.execute(text(
        "SELECT 1 FROM balance WHERE user_id = :u LIMIT 1"), {"u": user}).first() is not None
    if not known:
        raise NotFoundError(f"no balances for user {user!r}")
    levels = _levels(session)
    previous = previous_evaluation(session, program)
    spans = windows(program.window, now, previous, zone)
    # every credit an evaluation still to come can count (the next one may be overdue)
    low = min(start for start, _ in windows(program.window, previous, previous, zone))
    credits = [_Credit(sql.moment(counted), sql.moment(occurred), int(points))
               for _, counted, occurred, points in sql.run(
                   f"SELECT * FROM ({_earning_sql(user=True)}) c WHERE counted_at > :low "
                   "ORDER BY counted_at", q=program.account_id, user=user,
                   low=sql.time(low), at=sql.time(now))]
    sums = [_earned_at(credits, [span], now) for span in spans]
    earned = max(sums)
    position = next((level.position for level in levels if row and level.name == row.level),
                    None)
    reached = [level for level in levels if level.threshold <= earned]
    # the next level above both the one held and the one the points reach now
    base = max(position or 0, reached[-1].position if reached else 0)
    above = [level for level in levels if level.position > base]
    account = session.get(Account, program.account_id)
    found = {
        "user": user, "account": account.name if account else None,
        "level": row.level if row else None,
        "reached_at": clock.format_time(row.reached_at) if row else None,
        "kept_until": clock.format_time(row.kept_until) if row else None,
        "qualifying_points": earned,
        "window": _window_words(program.window, spans[sums.index(earned)], zone),
        "next_level": above[0].name if above else None,
        "points_to_next": max(0, above[0].threshold - earned) if above else None,
        "level_now": reached[-1].name if reached else None,
        "next_evaluation": clock.format_time(next_due(program, zone)),
        "lapses_at": None,
    }
    if row is not None:
        lapse = _lapse(program, levels, position, row.kept_until, credits, zone, now,
                       previous)
        found["lapses_at"] = clock.format_time(lapse)
    return found


def _window_words(window: str, span: tuple[datetime, datetime], zone: ZoneInfo) -> str:
    if window == CALENDAR_YEAR:
        return f"calendar year {clock.to_local(span[1] - timedelta(microseconds=1), zone).year}"
    return f"the last {window}"


def _lapse(program: TierProgram, levels: Sequence[TierLevel], position: int | None,
           kept: datetime, credits: Sequence[_Credit], zone: ZoneInfo,
           now: datetime, previous: datetime) -> datetime | None:
    """The first evaluation still to come that would move the member below ``position`` (or
    out of a level no longer defined) if they earned nothing more: ``decide`` at each one, in
    order, as ``perform`` would; None within a century (or the forecast's evaluations)."""
    thresholds = [level.threshold for level in levels]
    schedule = parse_schedule(program.schedule)
    horizon = now + timedelta(days=366 * FORECAST_YEARS)
    last = max((c.counted_at for c in credits), default=None)
    current = position
    for count, moment in enumerate(schedule.times(
            program.last_evaluated_at or program.starts_at, horizon, zone, program.starts_at)):
        if count >= FORECAST_EVALUATIONS:
            return None
        spans = windows(program.window, moment, previous, zone)
        reached = bisect.bisect_right(thresholds, _earned_at(credits, spans, moment)) or None
        moved = decide(current, reached, kept, moment)
        if current is None or moved is None or moved < current:
            return moment  # down, or out of a level no longer defined
        if moved > current:  # up: kept afresh
            current, kept = moved, kept_until(program.keep, moment, zone)
        elif reached == current:  # reached again: the keep extended
            kept = max(kept, kept_until(program.keep, moment, zone))
        previous = moment
        if last is None or min(start for start, _ in spans) >= last:
            # nothing counts any more: the first evaluation once the keep has passed
            return next(schedule.times(max(moment, kept - timedelta(microseconds=1)), horizon,
                                       zone, program.starts_at), None)
    return None


# --- the report -----------------------------------------------------------------------------

def report(session: Session, *, period: Period = Period()) -> dict[str, Any]:
    """Per level (lowest first, then 'none'): the members at it now, and how many moved up
    into it, down into it, and into it out of a level no longer defined (``changed``; into
    'none' also when the tiers were removed) in ``period`` (local days)."""
    program = _program(session)
    if program is None:
        raise RefusedError(NOT_SET)
    sql = RawSql(session)
    zone = program_zone(session)
    params: dict[str, Any] = {}
    where = f"type = '{ENTRY_TYPE}'" + sql.within("occurred_at", *period.bounds(zone), params)
    moves: dict[tuple[str, str], int] = {}
    for level, kind, count in sql.run(
            f"SELECT reference_id, reference_type, COUNT(*) FROM entry WHERE {where} "
            "GROUP BY reference_id, reference_type", **params):
        pair = (str(level).casefold(), str(kind))
        moves[pair] = moves.get(pair, 0) + int(count)
    members: dict[str, int] = {}
    for level, count in sql.run("SELECT level, COUNT(*) FROM member_tier GROUP BY level"):
        members[str(level).casefold()] = members.get(str(level).casefold(), 0) + int(count)
    rows = []
    for name in [level.name for level in _levels(session)] + ["none"]:
        key = name.casefold()
        rows.append({"level": name, "members": None if name == "none" else members.get(key, 0),
                     "moved_up": moves.get((key, MOVES["up"]), 0),
                     "moved_down": moves.get((key, MOVES["down"]), 0),
                     "changed": moves.get((key, MOVES["change"]), 0)})
    return {"period": period.describe(), "timezone": zone.key, "rows": rows,
            "members": sum(members.values()),
            "moves_up": sum(row["moved_up"] for row in rows),
            "moves_down": sum(row["moved_down"] for row in rows)}
