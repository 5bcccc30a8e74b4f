"""The one clock: every timestamp pointctl writes comes from ``now()``.

``POINTCTL_NOW`` (ISO-8601) fixes it for simulations, replays and tests. Times are kept as
naive UTC datetimes in the database; input without an offset is read in the program time zone
(UTC until the settings issue makes it configurable).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from pointctl.core.errors import InvalidInputError


def parse_time(text: str, *, what: str = "time") -> datetime:
    """An ISO-8601 date or date-time, returned as naive UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidInputError(
            f"invalid {what} {text!r}: expected an ISO-8601 date or date-time such as "
            "2026-03-01 or 2026-03-01T12:00:00+01:00"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
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
