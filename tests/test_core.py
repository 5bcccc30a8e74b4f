"""Pure rules: durations, times and point amounts."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pointctl.core.clock import parse_time
from pointctl.core.durations import Duration, parse_duration
from pointctl.core.errors import InvalidInputError
from pointctl.core.validation import MAX_POINTS, check_points, clean_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30min", "30min"), ("12h", "12h"), ("90d", "90d"), ("4w", "4w"), ("6mo", "6mo"),
     ("2q", "2q"), ("1y", "1y"), ("90 days", "90d"), ("1 month", "1mo"), ("2 Years", "2y"),
     ("15 minutes", "15min")],
)
def test_durations(text: str, expected: str) -> None:
    assert str(parse_duration(text)) == expected


@pytest.mark.parametrize("text", ["5m", "-1d", "0d", "d", "", "1.5d", "3 fortnights", "1e3d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_duration(text)


def test_calendar_months_clamp_to_the_month_end() -> None:
    assert Duration(1, "mo").add_to(datetime(2026, 1, 31)) == datetime(2026, 2, 28)
    assert Duration(1, "q").add_to(datetime(2026, 11, 30, 5)) == datetime(2027, 2, 28, 5)
    assert Duration(1, "y").subtract_from(datetime(2028, 2, 29)) == datetime(2027, 2, 28)


@given(st.integers(min_value=1, max_value=1000), st.sampled_from(["min", "h", "d", "w"]))
def test_fixed_units_round_trip(amount: int, unit: str) -> None:
    duration = parse_duration(f"{amount}{unit}")
    start = datetime(2026, 1, 1)
    assert duration.subtract_from(duration.add_to(start)) == start


def test_times_are_naive_utc() -> None:
    assert parse_time("2026-03-01T12:00:00+02:00") == datetime(2026, 3, 1, 10)
    assert parse_time("2026-03-01") == datetime(2026, 3, 1)
    with pytest.raises(InvalidInputError):
        parse_time("March 1st")


@given(st.integers())
def test_point_amounts_are_64_bit_and_positive(value: int) -> None:
    if 1 <= value <= MAX_POINTS:
        assert check_points(value, what="points") == value
    else:
        with pytest.raises(InvalidInputError):
            check_points(value, what="points")


def test_names() -> None:
    assert clean_name("  Spendable  ", what="account") == "Spendable"
    for bad in ("", "  ", "a\tb", "x" * 101):
        with pytest.raises(InvalidInputError):
            clean_name(bad, what="account")
