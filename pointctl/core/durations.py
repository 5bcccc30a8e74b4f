"""Durations such as ``30min``, ``12h``, ``90d``, ``4w``, ``6mo``, ``2q``, ``1y`` or ``90 days``.

Months, quarters and years are calendar units: adding ``1mo`` to January 31 gives the last day
of February. A bare ``m`` is refused because it could mean minutes or months.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pointctl.core.errors import InvalidInputError

# canonical unit -> accepted spellings
_UNITS: dict[str, tuple[str, ...]] = {
    "min": ("min", "mins", "minute", "minutes"),
    "h": ("h", "hr", "hrs", "hour", "hours"),
    "d": ("d", "day", "days"),
    "w": ("w", "wk", "wks", "week", "weeks"),
    "mo": ("mo", "mos", "month", "months"),
    "q": ("q", "quarter", "quarters"),
    "y": ("y", "yr", "yrs", "year", "years"),
}
_SPELLING = {spelling: unit for unit, spellings in _UNITS.items() for spelling in spellings}
_PATTERN = re.compile(r"^\s*([+-]?\d+)\s*([a-zA-Z]+)\s*$")
_FIXED = {"min": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
          "w": timedelta(weeks=1)}
_MONTHS_PER = {"mo": 1, "q": 3, "y": 12}
_MAX_AMOUNT = 100_000
_MAX_YEARS = 1000  # any longer is a typo, and would leave the calendar when subtracted


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def add_to(self, moment: datetime) -> datetime:
        """The moment this duration after ``moment`` (calendar arithmetic for mo/q/y)."""
        if self.unit in _FIXED:
            return moment + self.amount * _FIXED[self.unit]
        return add_months(moment, self.amount * _MONTHS_PER[self.unit])

    def subtract_from(self, moment: datetime) -> datetime:
        if self.unit in _FIXED:
            return moment - self.amount * _FIXED[self.unit]
        return add_months(moment, -self.amount * _MONTHS_PER[self.unit])


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + (moment.month - 1) + months
    year, month0 = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def parse_duration(text: str, *, what: str = "duration") -> Duration:
    """Parse a positive duration; raise InvalidInputError (exit 2) with a clear reason."""
    match = _PATTERN.match(text or "")
    if not match:
        raise InvalidInputError(
            f"invalid {what} {text!r}: expected a number and a unit, such as 30min, 12h, 90d, "
            "4w, 6mo, 2q or 1y"
        )
    amount, spelling = int(match.group(1)), match.group(2).lower()
    if spelling == "m":
        raise InvalidInputError(
            f"invalid {what} {text!r}: 'm' is ambiguous; write 'min' for minutes or 'mo' for months"
        )
    unit = _SPELLING.get(spelling)
    if unit is None:
        raise InvalidInputError(
            f"invalid {what} {text!r}: unknown unit {match.group(2)!r} "
            "(use min, h, d, w, mo, q or y)"
        )
    if amount <= 0:
        raise InvalidInputError(f"invalid {what} {text!r}: must be greater than zero")
    if amount > _MAX_AMOUNT:
        raise InvalidInputError(f"invalid {what} {text!r}: at most {_MAX_AMOUNT} units")
    too_long = amount * _FIXED[unit] > timedelta(days=366 * _MAX_YEARS) if unit in _FIXED \
        else amount * _MONTHS_PER[unit] > 12 * _MAX_YEARS
    if too_long:
        raise InvalidInputError(f"invalid {what} {text!r}: at most {_MAX_YEARS} years")
    return Duration(amount, unit)
