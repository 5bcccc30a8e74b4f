"""Restrictions: at most ``max_points`` issued from a source in any rolling window,
to each customer or to all customers together.

What counts: the points of ``issue`` entries from the source whose time (``occurred_at``, the
``--at`` of the issue) lies in the window ``(t - per, t]``. Manual adjustments are operator
corrections and neither count nor are limited; a reversal does not give the allowance back.

Concurrency. Changing a restriction locks its source row FOR UPDATE; an issue holds the source
row at least FOR SHARE, so the set of restrictions cannot change under an issue. An issue from a
source with a system restriction locks the source FOR UPDATE (issues from that source take
turns); with only per-customer restrictions it takes a transaction advisory lock on
(source, customer) on PostgreSQL, so issues to different customers still run in parallel. Sources
without restrictions take no extra lock. SQLite's BEGIN IMMEDIATE serialises all writers.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import Any

from sqlalchemy import case, func, literal_column, select, text
from sqlmodel import Session, col

from pointctl.core import clock
from pointctl.core.durations import Duration, parse_duration
from pointctl.core.errors import (
    InvalidInputError,
    NotFoundError,
    RefusedError,
    RetryableConflict,
)
from pointctl.core.validation import check_points
from pointctl.db.models import Entry, Restriction, Source
from pointctl.services import locks
from pointctl.services.audit import record_entry
from pointctl.services.lookup import source_by_name

ENTRY_TYPE = "restriction"
SCOPES = {True: "per customer", False: "system"}
# a literal so that the partial indexes ix_entry_issue_* serve the window sums on both databases
_IS_ISSUE = col(Entry.type) == literal_column("'issue'")


def _per(text_: str) -> Duration:
    return parse_duration(text_, what="--per window")


def rule_text(restriction: Restriction, source_name: str) -> str:
    scope = "per customer " if restriction.per_customer else "in total "
    return (f"restriction #{restriction.id} (at most {restriction.max_points} points "
            f"{scope}per {restriction.per} from {source_name!r})")


def _scope(restriction: Restriction, source_id: int, user: str | None) -> list[Any]:
    where = [col(Entry.source_id) == source_id, _IS_ISSUE]
    if restriction.per_customer and user is not None:
        where.append(col(Entry.user_id) == user)
    return where


# --- enforcement ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Allowance:
    restriction: Restriction
    used: int  # the most already counted in a window that would contain the new issue
    allowed: int  # what may still be issued

    def reason(self, source_name: str, user: str) -> str:
        whom = f" for {user}" if self.restriction.per_customer else ""
        return (f"{rule_text(self.restriction, source_name)} has {self.used} used, "
                f"{self.allowed} more allowed{whom}")


def source_restrictions(session: Session, source_id: int) -> list[Restriction]:
    return list(session.exec(
        select(Restriction).where(Restriction.source_id == source_id)
        .order_by(col(Restriction.id)).execution_options(populate_existing=True)
    ).scalars().all())


def has_system_restriction(session: Session, source_id: int) -> bool:
    return session.execute(
        select(Restriction.id).where(Restriction.source_id == source_id,
                                     col(Restriction.per_customer).is_(False)).limit(1)
    ).first() is not None


def allowance(session: Session, restriction: Restriction, *, source_id: int, user: str,
              moment: datetime, pending: Sequence[tuple[datetime, int]] = ()) -> Allowance:
    """How much an issue to ``user`` at ``moment`` may still bring under ``restriction``;
    ``pending`` are the (time, points) of issues of the same scope decided earlier in this
    transaction but not written yet.

    The usual case (no counted issue after ``moment``) is one indexed SUM over the window ending
    at ``moment``. A backdated issue must also fit every later window that would contain it, so
    then the busiest of those windows decides."""
    per = _per(restriction.per)
    start, end = per.subtract_from(moment), per.add_to(moment)
    where = _scope(restriction, source_id, user)
    occurred = col(Entry.occurred_at)
    used, later = session.execute(
        select(func.coalesce(func.sum(case((occurred <= moment, Entry.points), else_=0)), 0),
               func.count(case((occurred > moment, 1))))
        .where(*where, occurred > start, occurred < end)
    ).one()
    used = int(used) + sum(points for at, points in pending if start < at <= moment)
    if later or any(moment < at < end for at, _ in pending):
        used = _busiest_window(session, where, per, moment, start, end, pending)
    return Allowance(restriction, used, max(0, restriction.max_points - used))


def _busiest_window(session: Session, where: list[Any], per: Duration, moment: datetime,
                    start: datetime, end: datetime,
                    pending: Sequence[tuple[datetime, int]]) -> int:
    """The largest sum over the windows (s - per, s] that contain ``moment`` (s from ``moment``
    to the last counted issue before ``end``)."""
    occurred = col(Entry.occurred_at)
    rows = session.execute(
        select(occurred, func.sum(Entry.points)).where(*where, occurred > start, occurred < end)
        .group_by(occurred).order_by(occurred)
    ).all()
    merged: dict[datetime, int] = defaultdict(int)
    for at, points in [*rows, *((at, p) for at, p in pending if start < at < end)]:
        merged[at] += int(points)
    times = sorted(merged)
    totals = [0, *accumulate(merged[at] for at in times)]
    busiest = 0
    for stop in [moment, *(t for t in times if t > moment)]:
        first = per.subtract_from(stop)
        if first >= moment:
            break
        lo, hi = bisect_right(times, first), bisect_right(times, stop)
        busiest = max(busiest, totals[hi] - totals[lo])
    return busiest


def lock_for_issues(session: Session, source_id: int, users: Iterable[str], *,
                    exclusive: bool) -> list[Restriction]:
    """The restrictions of a source, locked for issues to ``users``. ``exclusive`` says whether
    the caller holds the source row FOR UPDATE, which a system restriction needs; otherwise each
    customer is locked for the per-customer ones."""
    rules = source_restrictions(session, source_id)
    if rules and not exclusive:
        if any(not r.per_customer for r in rules):
            # added between our look and our lock: start again with the right lock
            raise RetryableConflict("a system restriction was added while issuing; retrying")
        locks.lock_customers(session, ((source_id, user) for user in users))
    return rules


# --- administration ------------------------------------------------------------------------

def _usage(session: Session, restriction: Restriction, moment: datetime, user: str | None
           ) -> tuple[int, str | None]:
    """Points used in the window ending at ``moment``: all customers' for a system
    restriction; for a per-customer one, ``user``'s, or the busiest customer's."""
    start = _per(restriction.per).subtract_from(moment)
    where = [*_scope(restriction, restriction.source_id, user),
             col(Entry.occurred_at) > start, col(Entry.occurred_at) <= moment]
    if not restriction.per_customer or user is not None:
        used = session.execute(select(func.coalesce(func.sum(Entry.points), 0))
                               .where(*where)).scalar_one()
        return int(used), user if restriction.per_customer else None
    busiest = session.execute(
        select(Entry.user_id, func.sum(Entry.points).label("used")).where(*where)
        .group_by(col(Entry.user_id)).order_by(text("used DESC"), col(Entry.user_id)).limit(1)
    ).first()
    return (int(busiest[1]), busiest[0]) if busiest else (0, None)


def describe(session: Session, restriction: Restriction, source_name: str, *,
             moment: datetime | None = None, user: str | None = None) -> dict[str, Any]:
    moment = moment or clock.now()
    used, by = _usage(session, restriction, moment, user)
    return {
        "id": restriction.id,
        "source": source_name,
        "scope": SCOPES[restriction.per_customer],
        "max_points": restriction.max_points,
        "per": restriction.per,
        "used": used,
        "used_by": by,
        "left": max(0, restriction.max_points - used),
        "created_at": clock.format_time(restriction.created_at),
        "updated_at": clock.format_time(restriction.updated_at),
    }


def _locked(session: Session, restriction_id: int) -> tuple[Restriction, Source]:
    """The restriction and its source, the source row locked FOR UPDATE (the lock every change
    of a source's restrictions takes, so that none changes under an issue)."""
    def get() -> Restriction | None:
        return session.exec(select(Restriction).where(Restriction.id == restriction_id)
                            .execution_options(populate_existing=True)).scalars().first()

    found = get()
    if found is not None:
        source = session.exec(select(Source).where(Source.id == found.source_id)
                              .with_for_update(key_share=True)).scalar_one()
        found = get()  # it may have been deleted while we waited
        if found is not None:
            return found, source
    raise NotFoundError(f"no restriction with id {restriction_id} (see 'pointctl restrictions "
                        "list')")


def _twin(session: Session, *, source_id: int, per: str, per_customer: bool,
          except_id: int | None = None) -> Restriction | None:
    for other in source_restrictions(session, source_id):
        if other.id != except_id and other.per == per and other.per_customer == per_customer:
            return other
    return None


def _record(session: Session, restriction: Restriction, source: Source, *, actor: str,
            change: str, note: str) -> None:
    """The restriction entry, then the source's change (its restrictions are part of it);
    called once the restriction is written (or deleted)."""
    from pointctl.services.changes import record_change

    record_entry(session, type=ENTRY_TYPE, points=0, actor=actor, source_id=source.id,
                 reference_id=str(restriction.id), reference_type=f"Restriction {change}",
                 note=note)
    session.flush()
    record_change(session, kind="source", key=int(source.id or 0), actor=actor,
                  action=f"restriction {change.lower()}")


def add_restriction(session: Session, *, source: str, max_points: int, per: str,
                    per_customer: bool, actor: str) -> dict[str, Any]:
    check_points(max_points, what="--max-points")
    window = str(_per(per))
    found = source_by_name(session, source, lock=True)
    if found.status == "archived":
        raise RefusedError(f"source {found.name!r} is archived; it issues nothing to restrict")
    twin = _twin(session, source_id=found.id, per=window, per_customer=per_customer)
    if twin is not None:
        if twin.max_points == max_points:
            return {**describe(session, twin, found.name), "changed": False}
        raise RefusedError(
            f"{rule_text(twin, found.name)} already limits this scope and window; change it "
            f"with 'pointctl restrictions edit {twin.id} --max-points {max_points}'")
    now = clock.now()
    restriction = Restriction(source_id=found.id, max_points=max_points, per=window,
                              per_customer=per_customer, created_at=now, updated_at=now)
    session.add(restriction)
    session.flush()
    _record(session, restriction, found, actor=actor, change="Added",
            note=f"at most {max_points} points {SCOPES[per_customer]} per {window}")
    return {**describe(session, restriction, found.name), "changed": True}


def list_restrictions(session: Session, *, source: str | None = None, user: str | None = None,
                      open_only: bool = False) -> list[dict[str, Any]]:
    """Every restriction (``open_only``: of sources not archived) with its usage now."""
    query = select(Restriction, Source.name).join(Source, Source.id == Restriction.source_id)
    if open_only:
        query = query.where(Source.status != "archived")
    if source is not None:
        query = query.where(Restriction.source_id == source_by_name(session, source).id)
    moment = clock.now()
    return [describe(session, restriction, name, moment=moment, user=user)
            for restriction, name in session.execute(
                query.order_by(col(Source.name_key), col(Restriction.id))).all()]


def edit_restriction(session: Session, *, restriction_id: int, actor: str,
                     max_points: int | None = None, per: str | None = None,
                     per_customer: bool | None = None) -> dict[str, Any]:
    if max_points is None and per is None and per_customer is None:
        raise InvalidInputError("nothing to change: give --max-points, --per, --per-customer "
                                "or --system")
    if max_points is not None:
        check_points(max_points, what="--max-points")
    window = str(_per(per)) if per is not None else None
    restriction, source = _locked(session, restriction_id)
    wanted = {"max_points": max_points, "per": window, "per_customer": per_customer}
    changes = [(field, getattr(restriction, field), value) for field, value in wanted.items()
               if value is not None and getattr(restriction, field) != value]
    if not changes:
        return {**describe(session, restriction, source.name), "changed": False}
    new_per = window or restriction.per
    new_scope = restriction.per_customer if per_customer is None else per_customer
    twin = _twin(session, source_id=source.id, per=new_per, per_customer=new_scope,
                 except_id=restriction.id)
    if twin is not None:
        raise RefusedError(f"{rule_text(twin, source.name)} already limits that scope and "
                           "window; edit or delete that one instead")
    for field, _old, value in changes:
        setattr(restriction, field, value)
    restriction.updated_at = clock.now()
    session.add(restriction)
    session.flush()
    note = "; ".join(f"{field}: {_show(field, old)} -> {_show(field, value)}"
                     for field, old, value in changes)
    _record(session, restriction, source, actor=actor, change="Changed", note=note)
    return {**describe(session, restriction, source.name), "changed": True, "changes": note}


def _show(field: str, value: Any) -> str:
    return SCOPES[value] if field == "per_customer" else str(value)


def delete_restriction(session: Session, *, restriction_id: int, actor: str) -> dict[str, Any]:
    restriction, source = _locked(session, restriction_id)
    gone = describe(session, restriction, source.name)
    session.delete(restriction)
    session.flush()
    _record(session, restriction, source, actor=actor, change="Deleted",
            note=f"was at most {restriction.max_points} points "
                 f"{SCOPES[restriction.per_customer]} per {restriction.per}")
    return gone


def by_source(session: Session, source: Source) -> list[dict[str, Any]]:
    """The restrictions of one source, for ``sources show``."""
    return [describe(session, r, source.name) for r in source_restrictions(session, source.id)]

