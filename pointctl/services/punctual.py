"""Reads as after a punctual ``expire run``: ``balance``, ``history`` and ``customer`` show a
user's ledger with the expiration evaluations already due applied, even when no run has
performed them yet.

Only the check of whether any is due runs on every read (one query); the expiration service
is imported when one is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import text
from sqlmodel import Session

from pointctl.core import clock
from pointctl.db.rawsql import RawSql


@contextmanager
def as_punctual(session: Session, user: str, through: datetime) -> Iterator[bool | None]:
    """For a read: inside, the user's ledger is as a punctual ``expire run`` would have left
    it at ``through``: the evaluations due by then that have not reached the user are
    performed in a savepoint that is rolled back afterwards. Nothing is kept but the ids
    PostgreSQL's sequences handed out; the user's balance rows are locked first, in the one
    order, as every writer does, until the savepoint is gone. Yields None when none was due,
    True when they were applied, False when the transaction cannot write even what it rolls
    back (read-only): the ledger as written."""
    accounts = {int(account) for account, in session.execute(text(
        "SELECT b.account_id FROM balance b JOIN expiration_policy p "
        "ON p.account_id = b.account_id WHERE b.user_id = :user AND p.next_due_at <= :through"
    ), {"user": user, "through": RawSql(session).time(through)})}
    if not accounts:
        yield None
        return
    from sqlalchemy.exc import DBAPIError

    from pointctl.db.session import _refused
    from pointctl.services import locks
    from pointctl.services.expiry import catch_up

    nested = session.begin_nested()
    try:
        try:
            pairs = sorted((user, account) for account in accounts)
            locks.lock_balances(session, pairs, clock.now())  # present: no row is created
            catch_up(session, {user: accounts}, through=through, actor="pointctl")
            applied = True
        except DBAPIError as error:
            if not _refused(error):
                raise
            nested.rollback()
            nested, applied = session.begin_nested(), False
        yield applied
    finally:
        nested.rollback()
        session.expire_all()


def late_note(applied: bool | None) -> dict[str, str]:
    """What a read says of the late evaluations it found (nothing when none was due)."""
    if applied is None:
        return {}
    return {"late_evaluations": "applied" if applied else "not applied"}
