"""The one clock: every timestamp pointctl writes comes from ``now()``.

``POINTCTL_NOW`` (ISO-8601) fixes it for simulations, replays and tests. Times are kept as
naive UTC datetimes in the database; input without an offset is read in the program time zone
(setting ``timezone``, default UTC), which the command line loads from the database only when
it is needed (``set_zone_loader``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pointctl.core.errors import InvalidInputError

DEFAULT_ZONE = "UTC"
_zone: ZoneInfo | None = None
_loader: Callable[[], str | None] | None = None


def load_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (such as Europe/Berlin); exit 2 when there is none."""
    try:
        if not name or name != name.strip() or name.startswith(("/", ".")):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        from zoneinfo import available_timezones

        from pointctl.core.validation import did_you_mean

        raise InvalidInputError(
            f"unknown time zone {name!r}{did_you_mean(name, available_timezones())}: use an "
            "IANA name such as UTC, Europe/Berlin or America/New_York") from None


def set_zone(name: str | None) -> ZoneInfo:
    """Make ``name`` (None: UTC) the program time zone of this process."""
    global _zone
    _zone = load_zone(name or DEFAULT_ZONE)
    return _zone


def set_zone_loader(loader: Callable[[], str | None] | None) -> None:
    """How to find the program time zone the first time it is needed (the command line reads
    the ``timezone`` setting); forgets the zone loaded so far."""
    global _loader, _zone
    _loader, _zone = loader, None


def zone() -> ZoneInfo:
    if _zone is None:
        return set_zone(_loader() if _loader else None)
    return _zone


def to_local(moment: datetime, where: ZoneInfo | None = None) -> datetime:
    """Naive UTC -> naive wall-clock time in the program time zone."""
    return moment.replace(tzinfo=UTC).astimezone(where or zone()).replace(tzinfo=None)


def to_utc(local: datetime, where: ZoneInfo | None = None) -> datetime:
    """Naive wall-clock time in the program time zone -> naive UTC. A wall-clock time that a
    daylight-saving change skips is read with the offset before the change (02:30 on a spring-
    forward night is 03:30 after it); a repeated one means its first occurrence."""
    return local.replace(tzinfo=where or zone()).astimezone(UTC).replace(tzinfo=None)


def parse_time(text: str, *, what: str = "time") -> datetime:
    """An ISO-8601 date or date-time, returned as naive UTC; without an offset it is read in
    the program time zone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidInputError(
            f"invalid {what} {text!r}: expected an ISO-8601 date or date-time such as "
            "2026-03-01 or 2026-03-01T12:00:00+01:00"
        ) from None
    if moment.tzinfo is not None:
        return moment.astimezone(UTC).replace(tzinfo=None)
    where = zone()
    return moment if where.key == "UTC" else to_utc(moment, where)


def now() -> datetime:
    """Current time as naive UTC, or the fixed time of POINTCTL_NOW."""
    fixed = os.environ.get("POINTCTL_NOW")
    if fixed:
        return parse_time(fixed, what="POINTCTL_NOW")
    return datetime.now(UTC).replace(tzinfo=None)


def format_time(moment: datetime | None) -> str | None:
    """UTC display form used by every output: 2026-03-01T12:00:00Z."""
    if moment is None:
        return None
    return moment.replace(microsecond=0).isoformat() + "Z"
