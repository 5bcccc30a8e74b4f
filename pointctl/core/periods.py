"""The date filters every report shares: ``--last 7d``, ``--this-month``,
``--last-month``, ``--from DATE --to DATE``. A period is whole days, inclusive, in the program
time zone; ``bounds`` turns it into the UTC instants the database compares with.

``day_offsets`` lets SQL put a UTC time on its local day without time-zone support in the
database (SQLite has none): the zone's UTC offset is constant between daylight-saving changes,
so a CASE over those few changes and a fixed offset per stretch gives the local date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pointctl.core.durations import parse_duration
from pointctl.core.errors import InvalidInputError

WHOLE_DAY_UNITS = ("d", "w", "mo", "q", "y")
EARLIEST, LATEST = date(1900, 1, 1), date(9000, 12, 31)  # what a report period may reach


@dataclass(frozen=True)
class Period:
    """Local days ``first``..``last`` inclusive; None is open-ended."""

    first: date | None = None
    last: date | None = None

    def bounds(self, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        """[start of first, start of the day after last) as naive UTC."""
        return (None if self.first is None else local_midnight(self.first, zone),
                None if self.last is None else local_midnight(self.last + timedelta(days=1),
                                                              zone))

    def describe(self) -> str:
        if self.first is None and self.last is None:
            return "all time"
        return f"{self.first or 'the beginning'} to {self.last or 'now'}"


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local day starts (a day that starts in a daylight-saving gap starts
    when the clock jumps)."""
    naive = datetime(day.year, day.month, day.day)
    moment = naive.replace(tzinfo=zone).astimezone(UTC)
    if moment.astimezone(zone).replace(tzinfo=None) < naive:  # midnight skipped: 01:00 is it
        moment = (naive + timedelta(hours=1)).replace(tzinfo=zone).astimezone(UTC)
    return moment.replace(tzinfo=None)


def parse_day(text: str, *, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidInputError(f"invalid {what} {text!r}: expected a day such as "
                                "2026-03-01") from None


def resolve(*, today: date, last: str | None = None, this_month: bool = False,
            last_month: bool = False, start: str | None = None, end: str | None = None
            ) -> Period:
    """The period the options name, ``today`` being the program time zone's today.

    --last N{d,w,mo,q,y}: the N days (weeks, ...) ending today, today included;
    --this-month: the 1st of this month to today; --last-month: the whole previous month;
    --from/--to: those days (either may be left out: from the beginning / up to today)."""
    chosen = [name for name, given in (("--last", last is not None),
                                       ("--this-month", this_month),
                                       ("--last-month", last_month),
                                       ("--from/--to", start is not None or end is not None))
              if given]
    if len(chosen) > 1:
        raise InvalidInputError(f"choose one period: {' and '.join(chosen)} were both given")
    if last is not None:
        span = parse_duration(last, what="--last")
        if span.unit not in WHOLE_DAY_UNITS or span.amount <= 0:
            raise InvalidInputError(f"invalid --last {last!r}: a positive number of whole days, "
                                    "weeks, months, quarters or years, such as 7d or 30d")
        midnight = datetime(today.year, today.month, today.day)
        try:
            first = span.subtract_from(midnight + timedelta(days=1)).date()
        except (ValueError, OverflowError):
            first = date.min
        return _within(Period(first, today), f"--last {last}")
    if this_month:
        return Period(today.replace(day=1), today)
    if last_month:
        end_of_last = today.replace(day=1) - timedelta(days=1)
        return Period(end_of_last.replace(day=1), end_of_last)
    since = parse_day(start, what="--from") if start is not None else None
    until = parse_day(end, what="--to") if end is not None else None
    if since and until and since > until:
        raise InvalidInputError(f"--from {since} is after --to {until}")
    return _within(Period(since, until), "--from/--to")


def _within(period: Period, what: str) -> Period:
    for day in (period.first, period.last):
        if day is not None and not EARLIEST <= day <= LATEST:
            raise InvalidInputError(f"{what} reaches {day}, out of range: reports cover "
                                    f"{EARLIEST} to {LATEST}")
    return period


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _offset(moment: datetime, zone: ZoneInfo) -> int:
    offset = moment.replace(tzinfo=UTC).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def day_offsets(zone: ZoneInfo, low: datetime, high: datetime) -> list[tuple[datetime | None,
                                                                              int]]:
    """[(until, offset seconds)] covering [low, high): the zone's UTC offset is ``offset`` for
    times before ``until`` (and after the previous stretch); the last ``until`` is None."""
    stretches: list[tuple[datetime | None, int]] = []
    current = _offset(low, zone)
    step = timedelta(days=1)
    moment = low
    while moment < high:
        following = min(moment + step, high)
        if _offset(following, zone) != current:  # a change within (moment, following]
            early, late = moment, following
            while late - early > timedelta(seconds=1):
                middle = early + (late - early) / 2
                if _offset(middle, zone) == current:
                    early = middle
                else:
                    late = middle
            late = late.replace(microsecond=0)
            stretches.append((late, current))
            current = _offset(late, zone)
        moment = following
    stretches.append((None, current))
    return stretches
