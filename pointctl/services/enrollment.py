"""When a member joined the program.

A member's enrollment is the date recorded with ``pointctl enroll`` (once: a migrated member
keeps the date they really joined), or else their first ledger entry. Anniversary expiration
(snap-to anniversary) and inactivity expiration (a member with no activity counts as active
since enrolling) both count from it: ``enrolled_sql`` is the one definition they read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, func, select

from pointctl.core import clock
from pointctl.core.errors import InvalidInputError, RefusedError
from pointctl.db.models import Enrollment, Entry
from pointctl.db.rawsql import RawSql
from pointctl.services.writes import clean_user


def enrolled_sql(users: str) -> str:
    """SQL of (user_id, enrolled) for the users of the subquery ``users`` that have entries:
    the recorded enrollment, else the first entry."""
    return (f"SELECT e.user_id, COALESCE(MIN(n.enrolled_at), MIN(e.occurred_at)) AS enrolled "
            f"FROM entry e LEFT JOIN enrollment n ON n.user_id = e.user_id "
            f"WHERE e.user_id IN ({users}) GROUP BY e.user_id")


def enrolled_at(session: Session, user: str) -> tuple[datetime | None, str | None]:
    """(the member's enrollment, where it comes from: "recorded" or "first entry"); (None,
    None) for a user with neither."""
    recorded = session.get(Enrollment, user)
    if recorded is not None:
        return recorded.enrolled_at, "recorded"
    first = session.execute(select(func.min(Entry.occurred_at))
                            .where(col(Entry.user_id) == user)).scalar_one()
    return (first, "first entry") if first is not None else (None, None)


def enroll(session: Session, *, user: str, at: datetime | None, actor: str) -> dict[str, Any]:
    """Record USER's enrollment at ``at`` (default now). Once: the same moment again changes
    nothing; another is refused."""
    user = clean_user(user)
    now = clock.now()
    moment = clock.check_write_time(at) if at is not None else now
    if moment > now:
        raise InvalidInputError(f"--at {clock.format_time(moment)} is in the future; an "
                                "enrollment records when a member joined")
    changed = False
    found = session.get(Enrollment, user)
    if found is None:
        sql = RawSql(session)
        # a concurrent enrollment of the same user makes this wait, then insert nothing
        inserted = sql.session.execute(text(
            "INSERT INTO enrollment (user_id, enrolled_at, actor, recorded_at) "
            "VALUES (:user, :at, :actor, :now) ON CONFLICT (user_id) DO NOTHING"),
            {"user": user, "at": sql.time(moment), "actor": actor, "now": sql.time(now)})
        changed = getattr(inserted, "rowcount", 0) == 1
        session.expire_all()
        found = session.get(Enrollment, user)
        assert found is not None
    if found.enrolled_at != moment:
        raise RefusedError(f"{user} is already enrolled at {clock.format_time(found.enrolled_at)}"
                           f" (recorded by {found.actor}); an enrollment is recorded once")
    return {"user": user, "enrolled": clock.format_time(found.enrolled_at),
            "recorded": clock.format_time(found.recorded_at), "actor": found.actor,
            "changed": changed}
