"""The one clock: every timestamp pointctl writes comes from ``now()``.

``POINTCTL_NOW`` (ISO-8601) fixes it for simulations, replays and tests. Times are kept as
naive UTC datetimes in the database; input without an offset is read in the program time zone
(setting ``timezone``, default UTC), which the command line loads from the database only when
it is needed (``set_zone_loader``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pointctl.core.errors import InvalidInputError

DEFAULT_ZONE = "UTC"
# a write may be dated a little ahead of this machine's clock (the caller's clock runs ahead),
# never further, and never before 1970
CLOCK_SKEW = timedelta(minutes=1)
EARLIEST = datetime(1970, 1, 1)
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
    try:
        if moment.tzinfo is not None:
            return moment.astimezone(UTC).replace(tzinfo=None)
        where = zone()
        return moment if where.key == "UTC" else to_utc(moment, where)
    except (OverflowError, ValueError):  # year 1 or 9999 shifted out of the calendar
        raise InvalidInputError(f"invalid {what} {text!r}: outside the years 1 to 9999 once "
                                "converted to UTC") from None


def check_write_time(moment: datetime, *, what: str = "--at") -> datetime:
    """The time of a write: from 1970 up to a minute ahead of now (clock skew); a write dated
    further ahead, or before 1970, is a mistake (exit 2)."""
    now_ = now()
    if moment > now_ + CLOCK_SKEW:
        raise InvalidInputError(f"{what} {format_time(moment)} is in the future (now is "
                                f"{format_time(now_)}); a write may be dated at most "
                                "1 minute ahead")
    if moment < EARLIEST:
        raise InvalidInputError(f"{what} {format_time(moment)} is before 1970; the ledger "
                                "starts in 1970")
    return moment


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
