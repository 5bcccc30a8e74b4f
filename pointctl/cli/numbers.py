"""Whole numbers on the command line, read one way by every command.

A number argument or option accepts plain decimal digits (an optional sign where it may be
negative); its range is the rule of ``core.validation.check_points``, the one the services
apply. Anything else is one line in pointctl's words, exit 2: "POINTS must be a positive whole
number, got '-5'". A negative number typed where a positive argument is expected (``issue u1
-5``) gets the same answer instead of "no such option" (``cli.PointctlGroup``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pointctl.core.errors import InvalidInputError
from pointctl.core.validation import MAX_POINTS, check_points

_DIGITS = re.compile(r"[+-]?[0-9]+")


def whole(name: str, *, minimum: int = 1, maximum: int = MAX_POINTS, signed: bool = False,
          rule: Callable[..., int] | None = None, ranged_by_service: bool = False
          ) -> Callable[[object], int]:
    """The parser of a whole-number parameter named ``name`` (``POINTS``, ``--limit``):
    ``minimum``..``maximum``, or with ``signed`` a non-zero number within ±``maximum``, or
    whatever ``rule`` (a checker such as ``check_weight``) allows; with ``ranged_by_service``
    any 64-bit number, whose range the service called checks."""

    def parse(value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
            digits = value.strip().lstrip("+-").lstrip("0")
            # beyond 64 bits whatever the digits (Python refuses to read over 4,300 of them)
            number = int(value.strip()) if len(digits) <= 20 else \
                (MAX_POINTS + 1) * (-1 if value.strip().startswith("-") else 1)
        else:
            kind = "a non-zero whole number (+N adds, -N removes)" if signed else \
                "a whole number"
            raise InvalidInputError(f"{name} must be {kind}, got {value!r}")
        if signed:
            if number == 0:
                raise InvalidInputError(f"{name} must be a non-zero whole number (+N adds, -N "
                                        "removes), got '0'")
            check_points(abs(number), what=name, maximum=maximum)
            return number
        if rule is not None:
            return rule(number, what=name)
        if ranged_by_service and -MAX_POINTS <= number <= MAX_POINTS:
            return number
        return check_points(number, what=name, minimum=minimum, maximum=maximum)

    parse.pointctl_number = name  # type: ignore[attr-defined]  # found by the usage handler
    return parse
