"""Reports over the ledger. ``audit``: the audit log, newest first, with what became of each
credit (amount spent / amount expired)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlmodel import Session, col

from pointctl.core import clock, draws, money, periods
from pointctl.core.errors import InvalidInputError
from pointctl.core.periods import Period
from pointctl.core.validation import did_you_mean
from pointctl.db.models import Account, Entry, Source
from pointctl.db.rawsql import RawSql
from pointctl.services.lookup import accounts_by_names, sources_by_names
from pointctl.services.settings import program_zone

ENTRY_TYPES = ("issue", "spend", "reversal", "adjustment", "transfer", "expiration", "rollover",
               "reactivation", "inventory", "restriction", "change", "hold", "release", "tier")
CREDIT_TYPES = ("issue", "adjustment", "transfer", "rollover", "reactivation")  # make lots
MAX_LIMIT = 100_000
MAX_DAYS = 3_660  # ten years of days in one daily report
COUNT_CAP = 100_000  # a cut audit list counts at most this many matches


def audit(session: Session, *, user: str | None = None, accounts: Sequence[str] = (),
          sources: Sequence[str] = (), types: Sequence[str] = (),
          reference_id: str | None = None, search: str | None = None,
          period: Period = Period(), limit: int = 100) -> dict[str, Any]:
    """The matching entries, newest first, at most ``limit``; ``matched`` counts them all
    (counted only when the limit cut the list, and only up to ``COUNT_CAP``: ``more_than``
    says the count stopped there)."""
    unknown = sorted(set(types) - set(ENTRY_TYPES))
    if unknown:
        raise InvalidInputError(f"unknown entry type {', '.join(unknown)}"
                                f"{did_you_mean(unknown[0], ENTRY_TYPES)}; choose from "
                                f"{', '.join(ENTRY_TYPES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"--limit must be between 1 and {MAX_LIMIT}")
    query = (select(Entry, Account.name, Source.name)
             .outerjoin(Account, Account.id == Entry.account_id)
             .outerjoin(Source, Source.id == Entry.source_id))
    if user is not None:
        query = query.where(Entry.user_id == user)
    if accounts:  # any of these
        query = query.where(col(Entry.account_id).in_(
            [a.id for a in accounts_by_names(session, accounts)]))
    if sources:
        query = query.where(col(Entry.source_id).in_(
            [s.id for s in sources_by_names(session, sources)]))
    if types:
        query = query.where(col(Entry.type).in_(list(types)))
    if reference_id is not None:
        query = query.where(Entry.reference_id == reference_id)
    if search is not None:
        if not search.strip():
            raise InvalidInputError("--search needs some text")
        # plain text: icontains escapes LIKE's wildcards (% and _) and binds the value
        query = query.where(or_(*(
            func.coalesce(column, "").icontains(search, autoescape=True)
            for column in (Entry.user_id, Entry.reference_id, Entry.reference_type,
                           Entry.type, Entry.note, Account.name, Source.name))))
    low, high = period.bounds(program_zone(session))
    if low is not None:
        query = query.where(Entry.occurred_at >= low)
    if high is not None:
        query = query.where(Entry.occurred_at < high)
    ordered = query.order_by(col(Entry.occurred_at).desc(), col(Entry.id).desc()).limit(limit)
    rows = []
    found = list(session.execute(ordered))
    credits = accounting(session, [entry.id for entry, _, _ in found
                                   if entry.points > 0 and entry.type in CREDIT_TYPES])
    for entry, account_name, source_name in found:
        became = credits.get(entry.id or 0)
        rows.append({
            "id": entry.id, "user": entry.user_id, "account": account_name,
            "source": source_name, "type": entry.type, "reference_id": entry.reference_id,
            "reference_type": entry.reference_type, "modification": entry.points,
            **{f"amount_{column}": None if became is None else became[column]
               for column in (*draws.ACCOUNTED_COLUMNS, "remaining")},
            "written_off": entry.written_off or None, "related_entry": entry.related_entry_id,
            "note": entry.note, "actor": entry.actor,
            "time": clock.format_time(entry.occurred_at),
            **_change_fields(entry.detail),
        })
    matched = len(rows)
    if matched == limit:  # counted up to a cap: a broad filter on a big ledger stays quick
        matched = session.execute(select(func.count()).select_from(
            query.with_only_columns(Entry.id).limit(COUNT_CAP + 1).subquery())).scalar_one()
    return {"rows": rows, "matched": min(int(matched), COUNT_CAP),
            "more_than": int(matched) > COUNT_CAP}


def _change_fields(detail: str | None) -> dict[str, Any]:
    """A change entry's fields: what changed (old -> new) and the object's state after it."""
    if detail is None:
        return {"changes": None, "state": None}
    import json

    found = json.loads(detail)
    return {"changes": found["changes"], "state": found["state"]}


def accounting(session: Session, entry_ids: Sequence[int | None]) -> dict[int, dict[str, int]]:
    """What became of the points of each credit entry (an entry that made lots): spent,
    expired, transferred, reversed, adjusted (``draws.ACCOUNTED``) and remaining, which add up
    to its modification."""
    from pointctl.services.locks import groups

    found: dict[int, dict[str, int]] = {}
    columns = ", ".join(f"SUM({draws.accounted_sql(c, kind='d.kind', points='d.points')})"
                        for c in draws.ACCOUNTED_COLUMNS)
    for group in groups(sorted({int(i) for i in entry_ids if i is not None})):
        ids = ", ".join(str(i) for i in group)
        for entry_id, remaining in session.execute(text(
                f"SELECT entry_id, SUM(remaining) FROM lot WHERE entry_id IN ({ids}) "
                "GROUP BY entry_id")):
            found[int(entry_id)] = {**dict.fromkeys(draws.ACCOUNTED_COLUMNS, 0),
                                    "remaining": int(remaining)}
        for entry_id, *sums in session.execute(text(
                f"SELECT l.entry_id, {columns} FROM lot l JOIN draw d ON d.lot_id = l.id "
                f"WHERE l.entry_id IN ({ids}) GROUP BY l.entry_id")):
            found[int(entry_id)].update(
                zip(draws.ACCOUNTED_COLUMNS, (int(n) for n in sums), strict=True))
    return found


# --- liability and source reports -----------------------------------------------------------

# what a draw does to the points its lot's source still owes: redeemed (spent, debt repaid; a
# spend reversal gives back), adjusted (manual subtractions, never redemptions), expired (a
# reactivation gives back), reversed (an issue taken back). Transfers and rollovers move
# points between lots of the same source in one moment: no change to what the source owes.
_DRAW_EFFECTS = f"""
    {draws.accounted_sql("spent", kind="d.kind", points="d.points")} AS redeemed,
    {draws.accounted_sql("adjusted", kind="d.kind", points="d.points")} AS adjusted,
    {draws.bucket_sql("expired", kind="d.kind", points="d.points")} AS expired,
    CASE WHEN d.kind = 'reverse' THEN d.points ELSE 0 END AS reversed"""
FLOWS = ("issued", "redeemed", "adjusted", "expired", "reversed")


def _sources(session: Session, names: Sequence[str]) -> list[Source]:
    """The named sources (all of them when none are named), in creation order."""
    if names:
        return sources_by_names(session, names)
    return list(session.execute(select(Source).order_by(col(Source.id))).scalars())


def _ids(sources: Sequence[Source]) -> str:
    return ", ".join(str(int(source.id or 0)) for source in sources) or "NULL"


def liability(session: Session, *, sources: Sequence[str] = (), period: Period = Period()
              ) -> list[dict[str, Any]]:
    """Per source, the points issued in the period and what has become of them since:
    issued = reversed + spent + adjusted + expired + liability (what customers still hold;
    adjusted: manual subtractions). Points moved by transfers, rollovers and reactivations are
    followed to their new lots (``lot.origin_lot_id``). ``written_off``: points of these
    issues returned after their points had left the issued lot (spent, expired or moved),
    which the program absorbed (not in the sum); and,
    where the source has a value per point, the liability in money."""
    chosen = _sources(session, sources)
    sql = RawSql(session)
    low, high = period.bounds(program_zone(session))
    params: dict[str, Any] = {}
    window = sql.within("r.created_at", low, high, params)
    # the issued lots of the period (ix_lot_issued_source_time), then every lot their points
    # moved to; reversals (only an issued lot is ever reversed) counted on the issued lots
    roots = (f"SELECT r.id, r.entry_id, r.source_id, r.original, r.spent, r.expired, "
             f"r.remaining "
             f"FROM lot r WHERE r.origin_lot_id IS NULL AND r.source_id IN ({_ids(chosen)})"
             f"{window}")
    family = (f"SELECT source_id, original AS issued, spent, expired, remaining FROM ({roots}) r "
              f"UNION ALL SELECT r.source_id, 0, l.spent, l.expired, l.remaining "
              f"FROM ({roots}) r JOIN lot l ON l.origin_lot_id = r.id")
    figures: dict[int, dict[str, int]] = {}
    for source_id, *sums in sql.run(
            f"SELECT source_id, SUM(issued), SUM(spent), SUM(expired), SUM(remaining) "
            f"FROM ({family}) f GROUP BY source_id", **params):
        figures[source_id] = dict(zip(("issued", "spent", "expired", "liability"),
                                      (int(n) for n in sums), strict=True))
    for source_id, points in sql.run(
            f"SELECT r.source_id, SUM(d.points) FROM ({roots}) r "
            f"JOIN draw d ON d.lot_id = r.id AND d.kind = 'reverse' GROUP BY r.source_id",
            **params):
        figures.setdefault(source_id, {})["reversed"] = int(points)
    # a lot's spent points include manual subtractions: told apart by their draws
    lots = (f"SELECT r.id, r.source_id FROM ({roots}) r UNION ALL "
            f"SELECT l.id, r.source_id FROM ({roots}) r JOIN lot l ON l.origin_lot_id = r.id")
    adjusted = draws.accounted_sql("adjusted", kind="d.kind", points="d.points")
    for source_id, points in sql.run(
            f"SELECT f.source_id, SUM({adjusted}) FROM ({lots}) f "
            f"JOIN draw d ON d.lot_id = f.id GROUP BY f.source_id", **params):
        found = figures.setdefault(source_id, {})
        found["adjusted"] = int(points)
        found["spent"] = found.get("spent", 0) - int(points)
    # returns of these issues after their points had left the lot: what the program absorbed
    for source_id, points in sql.run(
            f"SELECT r.source_id, SUM(e.written_off) FROM entry e JOIN (SELECT DISTINCT "
            f"entry_id, source_id FROM ({roots}) x) r ON e.related_entry_id = r.entry_id "
            f"WHERE e.type = 'reversal' AND e.written_off > 0 GROUP BY r.source_id", **params):
        figures.setdefault(source_id, {})["written_off"] = int(points)
    rows = []
    for source in chosen:
        found = figures.get(source.id or 0, {})
        rows.append({"source": source.name, "issued": found.get("issued", 0),
                     "reversed": found.get("reversed", 0), "spent": found.get("spent", 0),
                     "adjusted": found.get("adjusted", 0), "expired": found.get("expired", 0),
                     "liability": found.get("liability", 0),
                     "written_off": found.get("written_off", 0),
                     **_valued(source, found.get("liability", 0), "liability_value")})
    return rows


def _valued(source: Source, points: int, key: str) -> dict[str, Any]:
    """The source's value per point and currency, and ``points`` in money under ``key``
    (rounded half to even to the currency's minor unit; None where no value is set)."""
    if source.value_micros is None or source.currency is None:
        return {"point_value": None, "currency": None, key: None}
    return {"point_value": money.value_text(source.value_micros), "currency": source.currency,
            key: money.money_text(money.exact(points, source.value_micros), source.currency)}


def currency_totals(rows: Sequence[dict[str, Any]], points_key: str) -> dict[str, str]:
    """Per currency, the money of ``points_key`` over ``rows`` (as ``_valued`` describes them):
    the exact sum, rounded once."""
    exact: dict[str, Decimal] = {}
    for row in rows:
        if row.get("currency") is not None:
            amount = money.exact(row[points_key], money.parse_value(row["point_value"]))
            exact[row["currency"]] = exact.get(row["currency"], Decimal(0)) + amount
    return {code: money.money_text(amount, code) for code, amount in sorted(exact.items())}


def _day_sql(sql: RawSql, column: str, stretches: Sequence[tuple[datetime | None, int]],
             params: dict[str, Any]) -> str:
    """SQL giving the program-time-zone day of the UTC time ``column`` (see
    ``periods.day_offsets``)."""
    def shifted(offset: int) -> str:
        if sql.postgres:
            return f"CAST({column} + INTERVAL '{int(offset)} seconds' AS DATE)"
        return f"date({column}, '{int(offset):+d} seconds')"

    branches = []
    for n, (until, offset) in enumerate(stretches):
        if until is None:
            branches.append(f"ELSE {shifted(offset)}")
        else:
            params[f"until{n}"] = sql.time(until)
            branches.append(f"WHEN {column} < :until{n} THEN {shifted(offset)}")
    return branches[0].removeprefix("ELSE ") if len(branches) == 1 else \
        f"CASE {' '.join(branches)} END"


def _first_day(sql: RawSql, ids: str, zone: Any) -> date | None:
    first = sql.run(f"SELECT MIN(created_at) FROM lot WHERE source_id IN ({ids})").scalar()
    if first is None:
        return None
    if isinstance(first, str):
        first = datetime.fromisoformat(first)
    return clock.to_local(first, zone).date()


def daily(session: Session, *, sources: Sequence[str] = (), period: Period = Period()
          ) -> dict[str, Any]:
    """Per day of the period (program time zone) and source: opening outstanding, issued,
    redeemed, adjusted, expired, reversed, closing outstanding; closing = opening + issued -
    redeemed - adjusted - expired - reversed = the points of that source's lots at the end of
    the day."""
    chosen = _sources(session, sources)
    sql = RawSql(session)
    zone = program_zone(session)
    ids = _ids(chosen)
    today = clock.to_local(clock.now(), zone).date()
    first = period.first or _first_day(sql, ids, zone) or today
    last = period.last or today
    if last < first:  # nothing before --to, or --from in the future: one day
        first, last = (last, last) if period.first is None else (first, first)
    if (last - first).days >= MAX_DAYS:
        raise InvalidInputError(f"{first} to {last} is {(last - first).days + 1:,} days; a daily "
                                f"report covers at most {MAX_DAYS:,}: narrow the period")
    low, high = Period(first, last).bounds(zone)
    assert low is not None and high is not None
    params: dict[str, Any] = {"low": sql.time(low), "high": sql.time(high)}
    # CROSS JOIN: SQLite takes the tables in this order, from the entries of the period
    # (ix_entry_occurred_at) to their draws; PostgreSQL plans as it likes
    events = f"""
        SELECT l.source_id, l.created_at AS at, l.original AS issued, 0 AS redeemed,
               0 AS adjusted, 0 AS expired, 0 AS reversed
          FROM lot l WHERE l.origin_lot_id IS NULL AND l.source_id IN ({ids}) {{lots}}
        UNION ALL
        SELECT l.source_id, e.occurred_at AS at, 0 AS issued, {_DRAW_EFFECTS}
          FROM entry e CROSS JOIN draw d CROSS JOIN lot l
         WHERE d.entry_id = e.id AND l.id = d.lot_id AND d.kind NOT IN ('transfer', 'rollover')
           AND l.source_id IN ({ids}) {{draws}}"""
    within = events.format(lots="AND l.created_at >= :low AND l.created_at < :high",
                           draws="AND e.occurred_at >= :low AND e.occurred_at < :high")
    # opening = what the lots hold now less every change since the period began: a read of
    # the open lots and of the period onwards, not of the whole history before it
    opening = {source_id: int(points) for source_id, points in sql.run(
        f"SELECT source_id, SUM(remaining) FROM lot WHERE remaining > 0 "
        f"AND source_id IN ({ids}) GROUP BY source_id")}
    since = events.format(lots="AND l.created_at >= :low", draws="AND e.occurred_at >= :low")
    for source_id, points in sql.run(
            f"SELECT source_id, SUM(issued - redeemed - adjusted - expired - reversed) "
            f"FROM ({since}) v "
            "GROUP BY source_id", **params):
        opening[source_id] = opening.get(source_id, 0) - int(points)
    day = _day_sql(sql, "v.at", periods.day_offsets(zone, low, high), params)
    flows: dict[tuple[int, date], tuple[int, ...]] = {}
    for source_id, on, *sums in sql.run(
            f"SELECT v.source_id, {day} AS day, SUM(v.issued), SUM(v.redeemed), "
            f"SUM(v.adjusted), SUM(v.expired), SUM(v.reversed) FROM ({within}) v "
            f"GROUP BY v.source_id, {day}",
            **params):
        on = on if isinstance(on, date) else date.fromisoformat(on)
        flows[(source_id, on)] = tuple(int(n) for n in sums)
    rows = []
    for source in chosen:
        outstanding = opening.get(source.id or 0, 0)
        totals = dict.fromkeys(FLOWS, 0)
        for on in periods.days(first, last):
            issued, redeemed, adjusted, expired, reversed_ = flows.get(
                (source.id or 0, on), (0, 0, 0, 0, 0))
            closing = outstanding + issued - redeemed - adjusted - expired - reversed_
            for name, points in zip(FLOWS, (issued, redeemed, adjusted, expired, reversed_),
                                    strict=True):
                totals[name] += points
            rows.append({"day": on.isoformat(), "source": source.name, "opening": outstanding,
                         "issued": issued, "redeemed": redeemed, "adjusted": adjusted,
                         "expired": expired, "reversed": reversed_, "closing": closing,
                         **{f"cumulative_{name}": totals[name] for name in FLOWS}})
            outstanding = closing
    return {"first": first.isoformat(), "last": last.isoformat(), "zone": zone.key,
            "rows": rows}


# --- debt -----------------------------------------------------------------------------------

DEBT_SORTS = ("largest", "newest", "oldest")


def debt(session: Session, *, accounts: Sequence[str] = (), sort: str = "largest",
         limit: int = 100) -> dict[str, Any]:
    """The customers who owe points, per account: the debt, and since when it is owed. A
    credit repays the oldest debt first, so what is owed now is the newest debt created (by
    spends, manual subtractions and reversals beyond the balance): ``since`` is the time of the
    oldest of those debits still unpaid. Totals per account cover every debt, also those
    beyond ``limit``; ``debtors`` counts customers (one owing in two accounts counts once)."""
    if sort not in DEBT_SORTS:
        raise InvalidInputError(f"unknown sort {sort!r}{did_you_mean(sort, DEBT_SORTS)}; choose "
                                f"from {', '.join(DEBT_SORTS)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"--limit must be between 1 and {MAX_LIMIT}")
    chosen = accounts_by_names(session, accounts) if accounts else []
    where = f" AND b.account_id IN ({', '.join(str(int(a.id or 0)) for a in chosen)})" \
        if chosen else ""
    sql = RawSql(session)
    names = {int(i): n for i, n in sql.run("SELECT id, name FROM account")}
    owed: dict[tuple[str, int], int] = {}
    for user, account, points in sql.run(
            f"SELECT b.user_id, b.account_id, b.debt FROM balance b WHERE b.debt > 0{where}"):
        owed[(user, int(account))] = int(points)
    # the debits that made debt (less what reversals of spends cancelled of it), newest
    # first: they add up to what is owed at the oldest one still unpaid
    started: dict[tuple[str, int], tuple[Any, str, int]] = {}
    covered: dict[tuple[str, int], int] = {}
    for user, account, at, kind, entry_id, points in sql.run(
            "SELECT e.user_id, e.account_id, e.occurred_at, e.type, e.id, d.points - "
            "(SELECT coalesce(sum(r.points), 0) FROM draw r WHERE r.kind = 'restore' "
            "AND r.lot_id IS NULL AND r.reverses_draw_id = d.id) "
            "FROM balance b JOIN entry e ON e.user_id = b.user_id AND e.account_id = "
            "b.account_id JOIN draw d ON d.entry_id = e.id AND d.kind = 'debt' "
            f"WHERE b.debt > 0{where} ORDER BY e.occurred_at DESC, e.id DESC"):
        pair = (user, int(account))
        if points <= 0 or covered.get(pair, 0) >= owed[pair]:
            continue
        covered[pair] = covered.get(pair, 0) + int(points)
        started[pair] = (at, kind, int(entry_id))
    now = clock.now()
    rows = []
    for (user, account), points in owed.items():
        at, kind, entry_id = started.get((user, account), (None, None, None))
        since = at if at is None or isinstance(at, datetime) else datetime.fromisoformat(at)
        rows.append({"user": user, "account": names[account], "debt": points,
                     "since": clock.format_time(since) if since else None,
                     "age_days": (now - since).days if since else None,
                     "created_by": kind, "entry": entry_id})
    # a debt whose debits are not in the ledger counts as the oldest
    keys = {"largest": lambda r: (-r["debt"], r["since"] or "", r["user"]),
            "newest": lambda r: (r["since"] or "", r["user"]),
            "oldest": lambda r: (r["since"] or "", r["user"])}
    rows.sort(key=keys[sort], reverse=sort == "newest")
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        total = totals.setdefault(row["account"], {"debtors": 0, "debt": 0})
        total["debtors"] += 1
        total["debt"] += row["debt"]
    return {"rows": rows[:limit], "debtors": len({row["user"] for row in rows}),
            "debt": sum(row["debt"] for row in rows),
            "accounts": [{"account": name, **figures} for name, figures in sorted(totals.items())]}


# --- partner statements ---------------------------------------------------------------------

def partner(session: Session, *, source: str, period: Period = Period()) -> dict[str, Any]:
    """What a partner's source issued per day of the period (program time zone) and in total:
    issued, reversed (returns of its issues, on the day of the return), net = issued -
    reversed, and the net in money where the source has a value per point (each day's figure
    and the total rounded once from the exact amount)."""
    (chosen,) = sources_by_names(session, [source])
    found = daily(session, sources=[chosen.name], period=period)
    rows = []
    for row in found["rows"]:
        net = row["issued"] - row["reversed"]
        rows.append({"day": row["day"], "issued": row["issued"], "reversed": row["reversed"],
                     "net": net, **_valued(chosen, net, "value")})
    total_net = sum(row["net"] for row in rows)
    valued = _valued(chosen, total_net, "value")
    return {"source": chosen.name, "source_id": chosen.id, "first": found["first"],
            "last": found["last"], "zone": found["zone"],
            "point_value": valued["point_value"], "currency": valued["currency"],
            "rows": [{key: value for key, value in row.items()
                      if key not in ("point_value",)} for row in rows],
            "total": {"issued": sum(row["issued"] for row in rows),
                      "reversed": sum(row["reversed"] for row in rows), "net": total_net,
                      "value": valued["value"]}}


# --- breakage -------------------------------------------------------------------------------

COHORTS = ("month", "quarter")
MAX_COHORTS = 600


def _cohorts(first: date, last: date, kind: str) -> list[tuple[str, Period]]:
    """The months (or quarters) from ``first`` to ``last``, each cut to those days."""
    step = 1 if kind == "month" else 3
    start = date(first.year, (first.month - 1) // step * step + 1, 1)
    found = []
    while start <= last:
        month = start.month - 1 + step
        after = date(start.year + month // 12, month % 12 + 1, 1)
        label = f"{start:%Y-%m}" if kind == "month" else \
            f"{start.year}-Q{(start.month - 1) // 3 + 1}"
        found.append((label, Period(max(start, first), min(after - timedelta(days=1), last))))
        if len(found) > MAX_COHORTS:
            raise InvalidInputError(f"more than {MAX_COHORTS} cohorts: narrow the period or "
                                    "use --cohort quarter")
        start = after
    return found


def breakage(session: Session, *, cohort: str = "month", sources: Sequence[str] = (),
             period: Period = Period(), closed_after: str = "12mo") -> dict[str, Any]:
    """Per source and issue cohort (the month or quarter, in the program's time zone, in which
    the points were issued): issued, reversed, redeemed, adjusted, expired and outstanding, as
    ``liability`` counts them. A cohort is closed when nothing of it is outstanding or it ended
    at least ``closed_after`` ago; its observed breakage rate is expired / (issued -
    reversed). Per source, the rate of all its closed cohorts together (their expired points
    over their issued less reversed points) estimates how much of the points still outstanding
    in its open cohorts will never be redeemed, in points and in money; estimates are exact
    fractions rounded half to even once, to whole points and to the currency's minor unit."""
    from fractions import Fraction

    from pointctl.core.durations import parse_duration

    if cohort not in COHORTS:
        raise InvalidInputError(f"unknown cohort {cohort!r}{did_you_mean(cohort, COHORTS)}; "
                                f"choose from {', '.join(COHORTS)}")
    age = parse_duration(closed_after, what="--closed-after")
    chosen = _sources(session, sources)
    zone = program_zone(session)
    now = clock.now()
    today = clock.to_local(now, zone).date()
    first = period.first or _first_day(RawSql(session), _ids(chosen), zone) or today
    last = min(period.last or today, today)
    cutoff = age.subtract_from(now)
    rows: list[dict[str, Any]] = []
    for label, part in _cohorts(first, last, cohort) if first <= last else []:
        ended = part.bounds(zone)[1]
        for found in liability(session, sources=[s.name for s in chosen], period=part):
            if not found["issued"]:
                continue
            net = found["issued"] - found["reversed"]
            closed = found["liability"] == 0 or (ended is not None and ended <= cutoff)
            rows.append({"source": found["source"], "cohort": label,
                         "issued": found["issued"], "reversed": found["reversed"],
                         "redeemed": found["spent"], "adjusted": found["adjusted"],
                         "expired": found["expired"], "outstanding": found["liability"],
                         "closed": closed,
                         "breakage_rate": _percent(Fraction(found["expired"], net))
                         if closed and net > 0 else None})
    summaries = []
    for source in chosen:
        mine = [row for row in rows if row["source"] == source.name]
        closed_net = sum(r["issued"] - r["reversed"] for r in mine if r["closed"])
        closed_expired = sum(r["expired"] for r in mine if r["closed"])
        rate = Fraction(closed_expired, closed_net) if closed_net > 0 else None
        open_points = sum(r["outstanding"] for r in mine if not r["closed"])
        for row in mine:
            if not row["closed"] and rate is not None:
                row["estimated_breakage"] = round(row["outstanding"] * rate)
        estimate = None if rate is None else open_points * rate
        valued = source.value_micros is not None and source.currency is not None \
            and estimate is not None
        summaries.append({
            "source": source.name, "closed_cohorts": sum(r["closed"] for r in mine),
            "open_cohorts": sum(not r["closed"] for r in mine),
            "closed_issued": closed_net, "closed_expired": closed_expired,
            "breakage_rate": None if rate is None else _percent(rate),
            "outstanding": open_points,
            "estimated_breakage": None if estimate is None else round(estimate),
            "estimated_value": money.fraction_text(
                estimate * Fraction(source.value_micros or 0, money.MICROS),
                source.currency or "") if valued and estimate is not None else None,
            "currency": source.currency if valued else None})
    for row in rows:
        row.setdefault("estimated_breakage", None)
    return {"cohort": cohort, "closed_after": closed_after, "zone": zone.key,
            "first": first.isoformat(), "last": last.isoformat(), "rows": rows,
            "sources": summaries}


def _percent(rate: Any) -> str:
    """A rate as a percentage with two decimals, rounded half to even: 1/8 -> "12.50%"."""
    hundredths = round(rate * 10_000)
    return f"{hundredths // 100}.{hundredths % 100:02d}%"
