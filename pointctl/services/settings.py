"""Program settings (``config set KEY VALUE``): the program time zone."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from pointctl.core import clock
from pointctl.core.errors import InvalidInputError
from pointctl.db.models import Setting

SETTINGS = {"timezone": "the program time zone: schedules, calendar durations and times "
                        "given without an offset (IANA name, default UTC)"}


def get(session: Session, key: str) -> str | None:
    row = session.get(Setting, key)
    return row.value if row else None


def program_zone(session: Session) -> ZoneInfo:
    """The program time zone, read in this transaction (and made the process's zone)."""
    return clock.set_zone(get(session, "timezone"))


def _check(key: str, value: str) -> str:
    if key not in SETTINGS:
        raise InvalidInputError(f"unknown setting {key!r}; settings: {', '.join(SETTINGS)}")
    if key == "timezone":
        return clock.load_zone(value.strip()).key
    return value


def set_value(session: Session, *, key: str, value: str, actor: str) -> dict[str, Any]:
    key = (key or "").strip().lower()
    value = _check(key, value or "")
    row = session.get(Setting, key)
    old = row.value if row else None
    if row is None:
        row = Setting(key=key, value=value, updated_at=clock.now())
    elif row.value != value:
        row.value, row.updated_at = value, clock.now()
    session.add(row)
    session.flush()
    if old != value:
        from pointctl.services.changes import record_change

        record_change(session, kind="setting", key=key, actor=actor, action="set")
    if key == "timezone" and old != value:  # schedules are wall-clock times of the zone
        from pointctl.services.expiry import refresh_next_due

        refresh_next_due(session)  # the tiers' next evaluation is worked out when shown
    return {"key": key, "value": value, "previous": old, "changed": old != value}


def show(session: Session) -> list[dict[str, Any]]:
    return [{"key": key, "value": get(session, key) or ("UTC" if key == "timezone" else None),
             "meaning": meaning} for key, meaning in SETTINGS.items()]
