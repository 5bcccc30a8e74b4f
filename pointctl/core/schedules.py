"""Expiration schedules: when evaluations happen.

Forms: ``daily``, ``daily at 03:00``, ``weekly on monday``, ``every 4 weeks on monday``,
``monthly on 1`` (or ``on last``), ``every 3 months on 15``, ``yearly on 12-31``, each with an
optional ``at HH:MM``, or a five-field cron expression. Times are wall-clock times in the
program time zone; evaluations without ``at`` happen at 00:00.

Fixed calendar forms become cron expressions that croniter walks over *naive wall-clock*
times, each then converted to UTC: daylight-saving changes move the UTC instant, never the
wall-clock time (a schedule at 00:00 America/New_York is 05:00 UTC in winter, 04:00 UTC in
summer). ``every N weeks`` and ``every N months`` count from the policy's start: the first
evaluation is the first matching time after it, then every N weeks or months.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pointctl.core.clock import to_local, to_utc
from pointctl.core.errors import InvalidInputError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_ALIASES = {name[:3]: index for index, name in enumerate(WEEKDAYS)} | {
    name: index for index, name in enumerate(WEEKDAYS)}
_AT = r"(?:\s+at\s+(?P<at>\d{1,2}:\d{2}))?"
_FORMS = {
    "daily": re.compile(r"^daily" + _AT + "$"),
    "weekly": re.compile(r"^(?:weekly|every\s+(?P<n>\d+)\s+weeks?)\s+on\s+(?P<day>[a-z]+)"
                         + _AT + "$"),
    "monthly": re.compile(r"^(?:monthly|every\s+(?P<n>\d+)\s+months?)\s+on\s+(?P<day>\d{1,2}|"
                          r"last)" + _AT + "$"),
    "yearly": re.compile(r"^yearly\s+on\s+(?P<md>\d{2}-\d{2})" + _AT + "$"),
}
EXAMPLES = ("daily, 'daily at 03:00', 'weekly on monday', 'every 4 weeks on monday', "
            "'monthly on 1', 'every 3 months on 15', 'yearly on 12-31' or a cron expression "
            "such as '0 3 * * *'")
_MAX_INTERVAL = 520


def _invalid(text: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"invalid schedule {text!r}: {why}")


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. ``text`` is the canonical form stored with the policy."""

    text: str
    cron: str | None = None          # a fixed calendar form or a cron expression
    every_weeks: int = 0             # every N weeks on ``weekday`` (counted from the start)
    every_months: int = 0            # every N months on ``day`` (0 = last day)
    weekday: int = 0
    day: int = 1
    at: time = time(0, 0)

    def __str__(self) -> str:
        return self.text

    def times(self, after: datetime, until: datetime, zone: ZoneInfo,
              start: datetime) -> Iterator[datetime]:
        """Evaluation times (naive UTC) strictly after ``after`` and at most ``until``, in
        order; ``start`` (naive UTC) anchors the every-N forms."""
        last = after
        for local in self._local_times(to_local(after, zone), zone, to_local(start, zone)):
            moment = to_utc(local, zone)
            if moment > until:
                return
            if moment > last:  # a wall-clock time repeated or skipped by DST: once, in order
                last = moment
                yield moment

    def next_after(self, after: datetime, zone: ZoneInfo, start: datetime) -> datetime | None:
        horizon = after + timedelta(days=366 * 60)
        return next(self.times(after, horizon, zone, start), None)

    def _local_times(self, after: datetime, zone: ZoneInfo, start: datetime
                     ) -> Iterator[datetime]:
        if self.cron is not None:
            from croniter import CroniterBadDateError, croniter

            # a little before ``after``: a DST change can move wall-clock times by an hour
            walker = croniter(self.cron, after - timedelta(hours=3))
            while True:
                try:
                    yield walker.get_next(datetime)
                except CroniterBadDateError:  # a date that never comes (0 0 31 2 *)
                    return
        elif self.every_weeks:
            yield from self._every_weeks(after, start)
        else:
            yield from self._every_months(after, start)

    def _every_weeks(self, after: datetime, start: datetime) -> Iterator[datetime]:
        first = start.date() + timedelta(days=(self.weekday - start.weekday()) % 7)
        if datetime.combine(first, self.at) <= start:
            first += timedelta(weeks=1)
        step = timedelta(weeks=self.every_weeks)
        # jump close to ``after`` (less one step for DST slack), then walk
        skipped = max(0, (after.date() - first).days // step.days - 1)
        current = first + skipped * step
        while True:
            yield datetime.combine(current, self.at)
            current += step

    def _on_day(self, year: int, month: int) -> datetime:
        last_day = calendar.monthrange(year, month)[1]
        day = last_day if self.day == 0 else min(self.day, last_day)
        return datetime.combine(date(year, month, day), self.at)

    def _every_months(self, after: datetime, start: datetime) -> Iterator[datetime]:
        index = start.year * 12 + start.month - 1
        if self._on_day(index // 12, index % 12 + 1) <= start:
            index += 1
        step = self.every_months
        target = after.year * 12 + after.month - 1
        skipped = max(0, (target - index) // step - 1)
        index += skipped * step
        while True:
            yield self._on_day(index // 12, index % 12 + 1)
            index += step


def _clock(text: str, at: str | None) -> time:
    if at is None:
        return time(0, 0)
    hours, minutes = (int(part) for part in at.split(":"))
    if hours > 23 or minutes > 59:
        raise _invalid(text, f"{at} is not a time of day (use 00:00 to 23:59)")
    return time(hours, minutes)


def _interval(text: str, n: str | None) -> int:
    count = int(n) if n else 1
    if not 1 <= count <= _MAX_INTERVAL:
        raise _invalid(text, f"the interval must be between 1 and {_MAX_INTERVAL}")
    return count


def _at_text(at: time) -> str:
    return "" if at == time(0, 0) else f" at {at:%H:%M}"


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule; invalid ones raise InvalidInputError (exit 2) naming the forms."""
    raw = text
    text = " ".join((text or "").lower().split())
    if not text:
        raise _invalid(raw, f"empty; use {EXAMPLES}")
    match = _FORMS["daily"].match(text)
    if match:
        at = _clock(raw, match["at"])
        return Schedule(f"daily{_at_text(at)}", cron=f"{at.minute} {at.hour} * * *", at=at)
    match = _FORMS["weekly"].match(text)
    if match:
        weekday = _DAY_ALIASES.get(match["day"])
        if weekday is None:
            raise _invalid(raw, f"unknown day {match['day']!r} (use monday ... sunday)")
        at, n = _clock(raw, match["at"]), _interval(raw, match["n"])
        name = WEEKDAYS[weekday]
        if n == 1:
            return Schedule(f"weekly on {name}{_at_text(at)}",
                            cron=f"{at.minute} {at.hour} * * {(weekday + 1) % 7}", at=at)
        return Schedule(f"every {n} weeks on {name}{_at_text(at)}", every_weeks=n,
                        weekday=weekday, at=at)
    match = _FORMS["monthly"].match(text)
    if match:
        at, n = _clock(raw, match["at"]), _interval(raw, match["n"])
        day = 0 if match["day"] == "last" else int(match["day"])
        if match["day"] != "last" and not 1 <= day <= 31:
            raise _invalid(raw, "the day must be 1 to 31 or 'last'")
        day_text = "last" if day == 0 else str(day)
        if n == 1:
            if day > 28:
                raise _invalid(raw, f"not every month has a day {day}; use 'monthly on last' "
                               "or a day from 1 to 28")
            return Schedule(f"monthly on {day_text}{_at_text(at)}", day=day, at=at,
                            cron=f"{at.minute} {at.hour} {'L' if day == 0 else day} * *")
        return Schedule(f"every {n} months on {day_text}{_at_text(at)}", every_months=n,
                        day=day, at=at)
    match = _FORMS["yearly"].match(text)
    if match:
        at = _clock(raw, match["at"])
        month, day = (int(part) for part in match["md"].split("-"))
        if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(2025, month)[1]:
            why = ("02-29 happens only in leap years; use 02-28 or 03-01" if (month, day) ==
                   (2, 29) else f"{match['md']} is not a day of the year (MM-DD)")
            raise _invalid(raw, why)
        return Schedule(f"yearly on {match['md']}{_at_text(at)}",
                        cron=f"{at.minute} {at.hour} {day} {month} *", at=at)
    cron = " ".join(raw.split())  # as written: croniter's L and W are upper case
    if len(cron.split()) == 5 and re.fullmatch(r"[0-9a-zA-Z*/,\-#?]+", cron.replace(" ", "")):
        from croniter import croniter

        if croniter.is_valid(cron):
            schedule = Schedule(cron, cron=cron)
            moment = datetime(2000, 1, 1)
            if schedule.next_after(moment, ZoneInfo("UTC"), moment) is None:
                raise _invalid(raw, "that time never comes")
            return schedule
    raise _invalid(raw, f"use {EXAMPLES}")
