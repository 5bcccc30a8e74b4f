"""Input rules shared by every command: names and 64-bit point amounts."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from pointctl.core.errors import InvalidInputError

MAX_POINTS = 2**63 - 1  # points are 64-bit integers
MAX_NAME_LENGTH = 100
MAX_ACTOR_LENGTH = 200  # who acted, as every audit entry records it


def has_control(text: str) -> bool:
    """Whether a text holds a control character (Unicode category C: tabs, line breaks, NUL,
    format and unassigned characters), which no name, id or text of pointctl may hold."""
    # str.isprintable() is false for every character of category C (and for some others,
    # such as a no-break space): only then is each character looked at
    return not text.isprintable() and any(unicodedata.category(ch).startswith("C")
                                          for ch in text)


def clean_name(name: str | None, *, what: str) -> str:
    """Trim a display name and refuse empty, over-long or control-character names."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise InvalidInputError(f"{what} name must not be empty")
    check_text(cleaned, what=f"{what} name", max_length=MAX_NAME_LENGTH)
    return cleaned


def name_key(name: str) -> str:
    """The case-insensitive identity of a name: 'Spendable' and 'SPENDABLE' are one account."""
    return name.strip().casefold()


MAX_WEIGHT = 2**31 - 1


def check_weight(value: int, *, what: str) -> int:
    """A promotion weight: a whole number from 0 to 2,147,483,647."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WEIGHT:
        raise InvalidInputError(f"{what} must be a whole number from 0 to {MAX_WEIGHT:,}, "
                                f"got {value!r}")
    return value


def check_points(value: int, *, what: str, minimum: int = 1, maximum: int = MAX_POINTS) -> int:
    """A whole number of points (or any count) from ``minimum`` to ``maximum`` (64 bits)."""
    if minimum == 1:
        kind = "a positive whole number"
    else:
        kind = f"a whole number of at least {minimum:,}"
    if maximum != MAX_POINTS:
        kind += f" up to {maximum:,}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{what} must be {kind}, got {value!r}")
    if value < minimum:
        raise InvalidInputError(f"{what} must be {kind}, got '{value}'")
    if value > maximum:
        if maximum == MAX_POINTS:
            raise InvalidInputError(f"{what} {value} is too large: at most {MAX_POINTS} (64-bit)")
        raise InvalidInputError(f"{what} must be {kind}, got '{value}'")
    return value


def check_text(value: str | None, *, what: str, max_length: int) -> str | None:
    """A free text (reference, reason, actor): at most ``max_length`` characters and no control
    characters, checked the same way on every database before anything is written."""
    if value is None:
        return None
    if len(value) > max_length:
        raise InvalidInputError(f"{what} is {len(value):,} characters; at most "
                                f"{max_length:,} are allowed")
    if has_control(value):
        raise InvalidInputError(f"{what} {value[:40]!r} contains control characters")
    return value


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """" (did you mean 'X'?)" for the choice closest to a mistyped ``value``, or ""."""
    import difflib

    known = list(choices)
    folded = {choice.casefold(): choice for choice in known}
    close = difflib.get_close_matches(value.casefold(), list(folded), n=1, cutoff=0.6)
    return f" (did you mean {folded[close[0]]!r}?)" if close else ""
