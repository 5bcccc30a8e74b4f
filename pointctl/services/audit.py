"""Writing to and reading from the append-only audit log (table ``entry``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from pointctl.core import clock
from pointctl.db.models import Entry


def record_entry(
    session: Session,
    *,
    type: str,
    points: int,
    actor: str,
    user_id: str | None = None,
    account_id: int | None = None,
    source_id: int | None = None,
    reference_id: str | None = None,
    reference_type: str | None = None,
    note: str | None = None,
    related_entry_id: int | None = None,
    written_off: int = 0,
    occurred_at: datetime | None = None,
    detail: str | None = None,
) -> Entry:
    """Append one entry; ``occurred_at`` (the --at time) defaults to now, ``recorded_at`` is
    always now."""
    moment = clock.now()
    entry = Entry(
        type=type, points=points, actor=actor, user_id=user_id, account_id=account_id,
        source_id=source_id, reference_id=reference_id, reference_type=reference_type,
        note=note, related_entry_id=related_entry_id, written_off=written_off,
        occurred_at=occurred_at or moment, recorded_at=moment, detail=detail,
    )
    session.add(entry)
    session.flush()
    return entry


def inventory_history(session: Session, *, source_id: int) -> list[dict[str, Any]]:
    """The inventory entries of one source, oldest first."""
    query = (select(Entry).where(Entry.source_id == source_id, Entry.type == "inventory")
             .order_by(col(Entry.id)))
    return [
        {
            "entry": entry.id,
            "change": entry.points,
            "reference_type": entry.reference_type,
            "note": entry.note,
            "actor": entry.actor,
            "time": clock.format_time(entry.occurred_at),
        }
        for entry in session.exec(query).all()
    ]
