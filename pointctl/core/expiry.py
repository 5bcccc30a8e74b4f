"""Expiry arithmetic without a database: the cut-off instants of an evaluation.

An evaluation at E expires the lots created at or before a cut-off:

- rolling: E - older_than;
- rolling with snap-to month/quarter/year: a lot expires at the first evaluation at or after
  the first day of the next month/quarter/year following created + older_than, i.e. when
  created + older_than <= the latest first-of-period at or before E: the cut-off is that
  first-of-period - older_than;
- rolling with snap-to anniversary: the same with the user's latest enrollment anniversary at
  or before E (one cut-off per month-day of enrollment);
- fixed date MM-DD: a lot expires at the first MM-DD 00:00 at or after created + min_age: the
  cut-off is the latest MM-DD 00:00 at or before E, less min_age.

Calendar arithmetic happens on wall-clock times in the program time zone: days, weeks,
months, quarters and years are calendar units there (30 days before 00:00 is 00:00 even across
a daylight-saving change); minutes and hours are exact durations.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pointctl.core.clock import to_local, to_utc
from pointctl.core.durations import Duration, add_months

SNAP_TO = ("month", "quarter", "year", "anniversary")
_EXACT = {"min": timedelta(minutes=1), "h": timedelta(hours=1)}
_MONTHS = {"mo": 1, "q": 3, "y": 12}
_DAYS = {"d": 1, "w": 7}


def local_minus(local: datetime, duration: Duration) -> datetime:
    """A wall-clock time less a calendar duration (d, w, mo, q, y)."""
    if duration.unit in _DAYS:
        return local - timedelta(days=duration.amount * _DAYS[duration.unit])
    return add_months(local, -duration.amount * _MONTHS[duration.unit])


def before(moment: datetime, duration: Duration | None, zone: ZoneInfo) -> datetime:
    """``moment`` (naive UTC) less ``duration``, calendar units in the program time zone."""
    if duration is None:
        return moment
    if duration.unit in _EXACT:
        return moment - duration.amount * _EXACT[duration.unit]
    return to_utc(local_minus(to_local(moment, zone), duration), zone)


def _minus_local(local: datetime, duration: Duration | None, zone: ZoneInfo) -> datetime:
    """A wall-clock instant less a duration, as naive UTC."""
    if duration is None:
        return to_utc(local, zone)
    if duration.unit in _EXACT:
        return to_utc(local, zone) - duration.amount * _EXACT[duration.unit]
    return to_utc(local_minus(local, duration), zone)


def period_start(local: datetime, snap_to: str) -> datetime:
    """The latest first-of-month / quarter / year at or before a wall-clock time."""
    month = {"month": local.month, "quarter": (local.month - 1) // 3 * 3 + 1,
             "year": 1}[snap_to]
    return datetime(local.year, month, 1)


def snapped_cutoff(moment: datetime, older_than: Duration, snap_to: str,
                   zone: ZoneInfo) -> datetime:
    return _minus_local(period_start(to_local(moment, zone), snap_to), older_than, zone)


def _on(year: int, month: int, day: int) -> datetime:
    """MM-DD 00:00 of ``year``; 02-29 is 02-28 outside leap years."""
    return datetime(year, month, min(day, calendar.monthrange(year, month)[1]))


def latest_yearly(local: datetime, month: int, day: int) -> datetime:
    """The latest MM-DD 00:00 (wall clock) at or before ``local``."""
    this_year = _on(local.year, month, day)
    return this_year if this_year <= local else _on(local.year - 1, month, day)


def fixed_date_cutoff(moment: datetime, fixed_date: str, min_age: Duration | None,
                      zone: ZoneInfo) -> datetime:
    month, day = (int(part) for part in fixed_date.split("-"))
    return _minus_local(latest_yearly(to_local(moment, zone), month, day), min_age, zone)


def anniversary_cutoff(moment: datetime, older_than: Duration, month: int, day: int,
                       zone: ZoneInfo) -> datetime:
    """The cut-off at ``moment`` for users enrolled on month-day (month, day)."""
    return _minus_local(latest_yearly(to_local(moment, zone), month, day), older_than, zone)


def anniversary_cutoffs(moment: datetime, older_than: Duration, zone: ZoneInfo
                        ) -> dict[str, datetime]:
    """Per enrollment month-day (``MM-DD``, all 366): the cut-off at ``moment``."""
    cutoffs = {}
    day = date(2024, 1, 1)  # a leap year: every month-day once
    while day.year == 2024:
        cutoffs[f"{day:%m-%d}"] = anniversary_cutoff(moment, older_than, day.month, day.day,
                                                     zone)
        day += timedelta(days=1)
    return cutoffs


def local_days(first: datetime, last: datetime, zone: ZoneInfo) -> list[tuple[datetime, str]]:
    """(start of the day as naive UTC, MM-DD) for every wall-clock day from the day of
    ``first`` to the day of ``last`` (both naive UTC)."""
    day, end = to_local(first, zone).date(), to_local(last, zone).date()
    days = []
    while day <= end:
        days.append((to_utc(datetime.combine(day, datetime.min.time()), zone), f"{day:%m-%d}"))
        day += timedelta(days=1)
    return days


def check_fixed_date(text: str) -> str | None:
    """None when ``text`` is a valid MM-DD, else the reason."""
    parts = text.split("-")
    if len(parts) != 2 or not all(part.isdigit() and len(part) == 2 for part in parts):
        return "expected MM-DD such as 12-31"
    month, day = int(parts[0]), int(parts[1])
    if (month, day) == (2, 29):
        return "02-29 happens only in leap years; use 02-28 or 03-01"
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(2025, month)[1]:
        return f"{text} is not a day of the year"
    return None
