"""Reports over the ledger. ``audit``: the audit log, newest first, with what became of each
credit (amount spent / amount expired)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from pointctl.core import clock
from pointctl.core.errors import InvalidInputError
from pointctl.db.models import Account, Entry, Lot, Source
from pointctl.services.lookup import account_by_name, source_by_name

ENTRY_TYPES = ("issue", "spend", "reversal", "adjustment", "transfer", "expiration", "rollover",
               "reactivation", "inventory", "restriction")
CREDIT_TYPES = ("issue", "adjustment", "transfer", "rollover", "reactivation")  # make lots
MAX_LIMIT = 100_000


def day_range(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """Inclusive days -> [start 00:00, day after end 00:00) in UTC."""
    if start and end and start > end:
        raise InvalidInputError(f"--from {start} is after --to {end}")
    low = datetime.combine(start, datetime.min.time()) if start else None
    high = datetime.combine(end + timedelta(days=1), datetime.min.time()) if end else None
    return low, high


def audit(session: Session, *, user: str | None = None, account: str | None = None,
          source: str | None = None, types: Sequence[str] = (),
          reference_id: str | None = None, start: date | None = None,
          end: date | None = None, limit: int = 100) -> list[dict[str, Any]]:
    unknown = sorted(set(types) - set(ENTRY_TYPES))
    if unknown:
        raise InvalidInputError(f"unknown entry type {', '.join(unknown)}; choose from "
                                f"{', '.join(ENTRY_TYPES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"--limit must be between 1 and {MAX_LIMIT}")
    credit = aliased(Lot)
    spent = (select(func.sum(credit.spent)).where(credit.entry_id == Entry.id)
             .correlate(Entry).scalar_subquery())
    expired = (select(func.sum(credit.expired)).where(credit.entry_id == Entry.id)
               .correlate(Entry).scalar_subquery())
    query = (select(Entry, Account.name, Source.name, spent, expired)
             .outerjoin(Account, Account.id == Entry.account_id)
             .outerjoin(Source, Source.id == Entry.source_id))
    if user is not None:
        query = query.where(Entry.user_id == user)
    if account is not None:
        query = query.where(Entry.account_id == account_by_name(session, account).id)
    if source is not None:
        query = query.where(Entry.source_id == source_by_name(session, source).id)
    if types:
        query = query.where(col(Entry.type).in_(list(types)))
    if reference_id is not None:
        query = query.where(Entry.reference_id == reference_id)
    low, high = day_range(start, end)
    if low is not None:
        query = query.where(Entry.occurred_at >= low)
    if high is not None:
        query = query.where(Entry.occurred_at < high)
    query = query.order_by(col(Entry.occurred_at).desc(), col(Entry.id).desc()).limit(limit)
    rows = []
    for entry, account_name, source_name, spent_points, expired_points in session.execute(query):
        is_credit = entry.points > 0 and entry.type in CREDIT_TYPES
        rows.append({
            "id": entry.id, "user": entry.user_id, "account": account_name,
            "source": source_name, "type": entry.type, "reference_id": entry.reference_id,
            "reference_type": entry.reference_type, "modification": entry.points,
            "amount_spent": int(spent_points or 0) if is_credit else None,
            "amount_expired": int(expired_points or 0) if is_credit else None,
            "written_off": entry.written_off or None, "related_entry": entry.related_entry_id,
            "note": entry.note, "actor": entry.actor,
            "time": clock.format_time(entry.occurred_at),
        })
    return rows
