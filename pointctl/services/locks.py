"""Every row lock a writer takes, in the one order that keeps writers from deadlocking.

The order (a writer takes what it needs of each step, never going back to an earlier step):

1. the expiration policy row of the account being evaluated (``lock_policy``), or FOR SHARE
   the policies whose late evaluations a write catches up (``share_policies``);
2. balance rows, by (user, account) with users compared by code point (``COLLATE "C"``, the
   order of Python's ``sorted``), created first when missing (``lock_balances``);
3. source rows, by id: FOR UPDATE where the writer changes the inventory or a system
   restriction counts every issue, FOR SHARE otherwise (``lock_sources``);
4. per-customer advisory locks of restricted sources, by (source id, user)
   (``lock_customers``).

Administration (editing an account, a source, a restriction, links, a policy) locks the
account or source row it changes, FOR NO KEY UPDATE, through ``lookup.by_name(lock=True)`` or
``lock_program_row``: that excludes other administrators of the row and the ledger's FOR SHARE
and FOR UPDATE of a source row, but not the key-share lock that inserting a row referring to
it takes (an entry, a lot, a balance, a link: PostgreSQL's foreign-key check), so a ledger
writer holding balance or source rows never waits for an administrator on an account row.
Administration takes no balance rows of its own accord (changing or removing a policy first
performs the evaluations it owes, as ``expire run`` would: steps 1 and 2, then the account).
To record the change (``changes.record_change``) it locks, FOR NO KEY UPDATE, the row of
each object whose change it records, in the order recorded: the object it changed first,
then the sources whose links it changed (locked, by id, before the link is written). An
object's latest recorded state is read under its row lock, so two changes of one object are
recorded one after the other.

The tiers (``pointctl.services.tiers``) stand apart: a tier evaluation and tier
administration (``tiers set``, ``tiers clear``) lock the one ``tier_program`` row FOR UPDATE and
take no balance or source row: an evaluation only reads the append-only entries and writes the
tier tables and its own ``tier`` entries, so it neither waits for nor blocks a ledger writer.
``tiers set`` locks the account it names FOR NO KEY UPDATE first, as an edit of that account
does (an edit reads the tiers' row without locking it), so the account stays qualifying until
the tiers over it commit; nothing takes the tiers' row before an account row.

The lots, draws and debts of a user's account are guarded by its balance row: nobody reads a
lot to change it without holding that row. On SQLite ``BEGIN IMMEDIATE`` makes every writer
hold the whole database, so only the rows' creation matters there; the functions still return
what they read.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

Pair = tuple[str, int]  # (user, account id)
IN_GROUP = 400  # pairs per IN (...) list: far below SQLite's limit on bound variables


def groups(items: Sequence[Any], size: int = IN_GROUP) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_policy(session: Session, account_id: int) -> Any:
    """Step 1: the account's expiration policy row, FOR UPDATE (None when there is none)."""
    from sqlmodel import select

    from pointctl.db.models import ExpirationPolicy

    return session.exec(
        select(ExpirationPolicy).where(ExpirationPolicy.account_id == account_id)
        .with_for_update().execution_options(populate_existing=True)).first()


def lock_program_row(session: Session, kind: str, key: int | str) -> None:
    """The row of an account, a source (by id) or a setting (by name), FOR NO KEY UPDATE,
    before its change is recorded (SQLite's writer holds the whole database already)."""
    if _postgres(session):
        table, column = {"account": ("account", "id"), "source": ("source", "id"),
                         "setting": ("setting", "key"), "tiers": ("tier_program", "id")}[kind]
        session.connection().execute(
            text(f"SELECT 1 FROM {table} WHERE {column} = :key FOR NO KEY UPDATE"),
            {"key": 1 if kind == "tiers" else key})


def share_policies(session: Session, account_ids: Sequence[int]) -> None:
    """Step 1 for a write that may catch up late evaluations: the policy rows of those
    accounts FOR SHARE, by account id (``expire run`` takes one FOR UPDATE, so it waits for
    the write, or the write for it)."""
    if _postgres(session) and account_ids:
        session.connection().exec_driver_sql(
            "SELECT account_id FROM expiration_policy WHERE account_id IN ("
            + ", ".join(str(int(a)) for a in sorted(set(account_ids)))
            + ") ORDER BY account_id FOR SHARE")


def create_balances(session: Session, pairs: Iterable[Pair], moment: datetime) -> set[Pair]:
    """Insert the balance rows (debt 0) that do not exist yet, in sorted order; the pairs this
    transaction created (a row another transaction creates at the same time is not ours)."""
    ordered = sorted(set(pairs))
    postgres = _postgres(session)
    mark = "%s" if postgres else "?"
    stamp: Any = moment if postgres else moment.isoformat(" ", "microseconds")
    connection = session.connection()
    created: set[Pair] = set()
    for group in groups(ordered):
        rows = connection.exec_driver_sql(
            "INSERT INTO balance (user_id, account_id, debt, created_at) VALUES "
            + ", ".join([f"({mark}, {mark}, 0, {mark})"] * len(group))
            + " ON CONFLICT DO NOTHING RETURNING user_id, account_id",
            tuple(value for user, account in group for value in (user, account, stamp)))
        created.update((user, int(account)) for user, account in rows)
    return created


def drop_unused_balances(session: Session, pairs: Iterable[Pair]) -> None:
    """Delete balance rows this transaction created for requests that were all refused: a
    refused request leaves no trace."""
    ordered = sorted(set(pairs))
    if ordered:
        mark = "%s" if _postgres(session) else "?"
        session.connection().exec_driver_sql(
            f"DELETE FROM balance WHERE user_id = {mark} AND account_id = {mark}", ordered)


def drop_empty_balances(session: Session, pairs: Iterable[Pair]) -> None:
    """Delete those balance rows that hold nothing (no lot, no debt): rows created for a
    catch-up or for requests that were refused in the end."""
    ordered = sorted(set(pairs))
    if ordered:
        mark = "%s" if _postgres(session) else "?"
        session.connection().exec_driver_sql(
            f"DELETE FROM balance WHERE user_id = {mark} AND account_id = {mark} AND debt = 0 "
            "AND NOT EXISTS (SELECT 1 FROM lot WHERE lot.user_id = balance.user_id "
            "AND lot.account_id = balance.account_id)",
            [(user, account) for user, account in ordered])


def create_balances_of(session: Session, holders: str, account_id: int,
                       params: dict[str, Any]) -> None:
    """Set-based step 2 for many users: the missing balance rows of the users that the query
    ``holders`` (bound with ``params``, ``:at`` being the creation time) selects, in account
    ``account_id``, inserted in the order of ``lock_balances``."""
    collate = ' COLLATE "C"' if _postgres(session) else ""  # SQLite compares bytes already
    session.execute(text(
        f"INSERT INTO balance (user_id, account_id, debt, created_at) "
        f"SELECT user_id, {int(account_id)}, 0, :at FROM ({holders}) h "
        f"WHERE true ORDER BY user_id{collate} ON CONFLICT DO NOTHING"), params)


def lock_balances_of(session: Session, holders: str, account_ids: Sequence[int],
                     params: dict[str, Any], *, into: str, lock: bool = True) -> None:
    """Set-based step 2 for many users: lock the balance rows in ``account_ids`` of the users
    ``holders`` selects, in (user, account) order, and put those users into the table
    ``into``. ``lock=False`` (a rolled-back preview) only fills the table."""
    if _postgres(session) and lock:
        accounts = ", ".join(str(int(a)) for a in account_ids)
        session.execute(text(
            f"""WITH locked AS (
                  SELECT user_id FROM balance WHERE account_id IN ({accounts})
                    AND user_id IN ({holders})
                  ORDER BY user_id COLLATE "C", account_id FOR UPDATE)
                INSERT INTO {into} SELECT DISTINCT user_id FROM locked"""), params)
    else:
        session.execute(text(f"INSERT INTO {into} {holders}"), params)


def fetch(session: Session, sql: str, params: Sequence[Any]) -> list[Any]:
    """All rows of ``sql`` (the driver's parameter style) as the driver gives them: the
    session's own connection and transaction, without SQLAlchemy's per-row processing."""
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(sql, tuple(params))
        return list(cursor.fetchall())
    finally:
        cursor.close()


def pairs_query(session: Session, query: str, pairs: Sequence[Pair],
                key: tuple[int, int] = (0, 1)) -> list[Any]:
    """Rows of ``query`` whose condition ``{pairs}`` selects the (user, account) pairs, a few
    hundred at a time, in the order given; ``key``: the row's user and account columns.

    PostgreSQL looks each pair up through the primary key or index; SQLite would scan for a
    list of row values, so there the condition is users IN (...) AND accounts IN (...) on the
    index that leads with the user, and rows of other pairs are dropped here."""
    postgres = _postgres(session)
    mark = "%s" if postgres else "?"
    rows: list[Any] = []
    for group in groups(list(pairs)):
        if postgres:
            condition = "(user_id, account_id) IN (VALUES " + \
                ", ".join([f"({mark}, {mark})"] * len(group)) + ")"
            rows += fetch(session, query.format(pairs=condition),
                          [v for pair in group for v in pair])
            continue
        wanted = set(group)
        users = sorted({user for user, _ in group})
        accounts = sorted({account for _, account in group})
        condition = (f"user_id IN ({', '.join([mark] * len(users))}) AND account_id IN "
                     f"({', '.join([mark] * len(accounts))})")
        u, a = key
        rows += [row for row in fetch(session, query.format(pairs=condition), [*users, *accounts])
                 if (row[u], row[a]) in wanted]
    return rows


def lock_balances(session: Session, pairs: Iterable[Pair], moment: datetime, *,
                  lock: bool = True) -> tuple[dict[Pair, int], set[Pair]]:
    """Step 2: create the missing balance rows, lock them all in (user, account) order; their
    debts, and the pairs whose rows were created here. ``lock=False`` (work that is rolled
    back) reads the debts without locking."""
    ordered = sorted(set(pairs))
    created = create_balances(session, ordered, moment)
    debts: dict[Pair, int] = dict.fromkeys(ordered, 0)
    query = ("SELECT user_id, account_id, debt FROM balance WHERE {pairs} "
             "ORDER BY user_id COLLATE \"C\", account_id" + (" FOR UPDATE" if lock else "")
             if _postgres(session) else
             "SELECT user_id, account_id, debt FROM balance WHERE debt > 0 AND {pairs}")
    for user, account, debt in pairs_query(session, query, ordered):
        debts[(user, int(account))] = int(debt)
    return debts, created


def lock_sources(session: Session, shared: Iterable[int], exclusive: Iterable[int]
                 ) -> dict[int, tuple[str, str, int | None]]:
    """Step 3: source rows by id, FOR UPDATE those in ``exclusive``, FOR SHARE the others;
    (name, status, inventory) of each as locked."""
    strong = set(exclusive)
    ids = sorted(set(shared) | strong)
    found: dict[int, tuple[str, str, int | None]] = {}
    postgres = _postgres(session)
    connection = session.connection()
    for source_id in ids:
        mode = (" FOR UPDATE" if source_id in strong else " FOR SHARE") if postgres else ""
        mark = "%s" if postgres else "?"
        row = connection.exec_driver_sql(
            f"SELECT name, status, inventory FROM source WHERE id = {mark}{mode}",
            (source_id,)).one()
        found[source_id] = (row[0], row[1], None if row[2] is None else int(row[2]))
    return found


def lock_customers(session: Session, keys: Iterable[tuple[int, str]]) -> None:
    """Step 4: serialise issues from one restricted source to one customer (PostgreSQL;
    SQLite writers are serialised already). Two 32-bit keys: a space apart from pointctl's
    other advisory lock."""
    if not _postgres(session):
        return
    for source_id, user in sorted(set(keys)):
        session.execute(text("SELECT pg_advisory_xact_lock(:source, :user)"),
                        {"source": source_id % 2**31,
                         "user": zlib.crc32(user.encode()) - 2**31})
