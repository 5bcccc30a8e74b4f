"""What each kind of draw does to a lot: the one table the engine, expiration and the checks
read. A ``hold`` draw earmarks points of a lot for a checkout hold and a ``release`` frees
them: they change the lot's ``held`` only, and what a debit may take from a lot is
``free(remaining, held)``.

A draw takes points out of a lot's ``remaining`` into one of its buckets (``spent``,
``expired``, ``moved``), or gives points back: a ``restore`` returns spent points to
``remaining``; a ``reactivate`` turns expired points into moved ones (they live on in a new
lot). A ``debt`` draw has no lot: it is the part of a debit that became debt.
"""

from __future__ import annotations

from collections.abc import Iterable

# kind -> (bucket the points leave remaining for, or None), with what it means
TAKES = {
    "spend": "spent",  # a redemption
    "adjust": "spent",  # a manual subtraction
    "repay": "spent",  # a new lot's points repaying the account's debt
    "transfer": "moved",  # moved to another account or user (a new lot there)
    "reverse": "moved",  # an issue taken back to its source
    "expire": "expired",  # expired by an expiration policy
    "rollover": "moved",  # expired into the rollover account (a new lot there)
}
RESTORES = {"restore": "spent"}  # points back from the bucket into remaining
SHIFTS = {"reactivate": ("expired", "moved")}  # remaining unchanged
NO_LOT = frozenset({"debt"})  # a debit's shortfall that became debt
# a hold earmarks points of a lot (``held``), a release frees them; remaining unchanged
HOLDS = {"hold": 1, "release": -1}
KINDS = frozenset(TAKES) | frozenset(RESTORES) | frozenset(SHIFTS) | NO_LOT | frozenset(HOLDS)


# What an audit row (a credit, which made lots) says became of its points: each kind of draw
# on its lots counts in one of these columns, so that modification = spent + expired +
# transferred + reversed + adjusted + remaining. A rollover counts as expired (the points
# expired into another account); a reactivation counts nowhere (the points did expire; the
# reactivation is a credit row of its own). A restore gives back to "spent": only spends (and
# the debt repaid by a credit) are ever restored, by the reversal of a spend.
ACCOUNTED = {
    "spend": "spent",
    "repay": "spent",
    "adjust": "adjusted",  # a manual subtraction: never a redemption
    "transfer": "transferred",
    "reverse": "reversed",
    "expire": "expired",
    "rollover": "expired",
}
ACCOUNTED_COLUMNS = ("spent", "expired", "transferred", "reversed", "adjusted")


def accounted_sql(column: str, *, kind: str = "kind", points: str = "points") -> str:
    """SQL for what a draw adds to an audit row's ``column`` (``ACCOUNTED_COLUMNS``); the
    audit report, the sources and liability reports and ``verify`` read it."""
    plus = [k for k, c in ACCOUNTED.items() if c == column]
    minus = [k for k, bucket in RESTORES.items() if bucket == column]
    return _case(plus, minus, kind, points)


def _case(plus: list[str], minus: list[str], kind: str, points: str) -> str:
    def listed(kinds: list[str]) -> str:
        return ", ".join(f"'{k}'" for k in sorted(kinds))

    parts = [f"WHEN {kind} IN ({listed(plus)}) THEN {points}"] if plus else []
    if minus:
        parts.append(f"WHEN {kind} IN ({listed(minus)}) THEN -{points}")
    return f"CASE {' '.join(parts)} ELSE 0 END"


def bucket_sql(bucket: str, *, kind: str = "kind", points: str = "points") -> str:
    """SQL for what a draw adds to its lot's ``bucket`` (spent, expired or moved), from the
    table above: the reports, ``verify`` and ``history`` read the effects through it."""
    plus = [k for k, b in TAKES.items() if b == bucket] + \
        [k for k, (_, to) in SHIFTS.items() if to == bucket]
    minus = [k for k, b in RESTORES.items() if b == bucket] + \
        [k for k, (away, _) in SHIFTS.items() if away == bucket]
    return _case(plus, minus, kind, points)


def taken_sql(*, kind: str = "kind", points: str = "points") -> str:
    """SQL for what a draw takes out of its lot's remaining points (negative: gives back)."""
    return _case(list(TAKES), list(RESTORES), kind, points)


def spendable(available: int, total: int, debt: int) -> int:
    """What a debit may draw from one account: its available (not pending) points, but never
    the points owed as debt (``total``: all its points, pending included). ``balance`` and
    ``customer`` show it as "available"."""
    return max(0, min(available, total - debt))


def group_spendable(parts: Iterable[tuple[int, int]]) -> int:
    """What a group label's accounts offer a spend, from (available points, debt) of each
    usable account (active, not qualifying; available: not pending): those points less the
    debt, never below zero, so that one account's debt is not hidden by another's points."""
    listed = list(parts)
    return max(0, sum(points for points, _ in listed) - sum(debt for _, debt in listed))


def free(remaining: int, held: int) -> int:
    """What a debit may take from a lot: its remaining points not earmarked by open holds."""
    return remaining - held


def free_sql(lot: str = "l") -> str:
    """The same, in SQL, for a lot aliased ``lot``."""
    return f"({lot}.remaining - {lot}.held)"
