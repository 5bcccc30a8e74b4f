"""``pointctl verify``: every ledger rule (non-negative parts, lots that add up, balances that
match their entries, inventories, holds, tier levels, the append-only log), checked set-based
over the whole database.

Violations are collected as data, one row per broken rule and subject.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from pointctl.core import draws
from pointctl.core.validation import name_key
from pointctl.services.reports import CREDIT_TYPES


def _issued(until: str = "") -> str:
    """Points issued from each source (issues and added adjustments)."""
    return f"""(SELECT source_id, SUM(points) AS points FROM entry
           WHERE type IN ('issue', 'adjustment') AND points > 0{until} GROUP BY source_id)"""


def _reversed(until: str = "") -> str:
    """Points of each source's issues taken back to it by reversals."""
    return f"""(SELECT lot.source_id, SUM(draw.points) AS points FROM draw
             JOIN lot ON lot.id = draw.lot_id JOIN entry ON entry.id = draw.entry_id
             WHERE draw.kind = 'reverse'{until} GROUP BY lot.source_id)"""


ISSUED, REVERSED = _issued(), _reversed()


def _inventory(until: str = "") -> str:
    """Each limited source's inventory as its entries give it: initial + adjustments (its
    inventory entries, which include what archiving expired) - issued + returned."""
    return f"""(SELECT s.id AS source_id, COALESCE(v.points, 0) AS entries,
                   COALESCE(i.points, 0) AS issued, COALESCE(r.points, 0) AS returned,
                   COALESCE(v.points, 0) - COALESCE(i.points, 0) + COALESCE(r.points, 0)
                       AS inventory
            FROM source s
            LEFT JOIN (SELECT source_id, SUM(points) AS points FROM entry
                       WHERE type = 'inventory'{until} GROUP BY source_id) v
                   ON v.source_id = s.id
            LEFT JOIN {_issued(until)} i ON i.source_id = s.id
            LEFT JOIN {_reversed(until.replace("recorded_at", "entry.recorded_at"))} r
                   ON r.source_id = s.id
            WHERE s.inventory IS NOT NULL)"""


def ledger_inventories(session: Session, *, until: Any) -> dict[int, int]:
    """Each limited source's inventory as it was once the entries recorded up to ``until``
    (a time as the database stores it) were written."""
    query = f"SELECT source_id, inventory FROM {_inventory(' AND recorded_at <= :until')} li"
    return {int(key): int(points) for key, points in session.execute(text(query),
                                                                    {"until": until})}


CREDITS = ", ".join(f"'{kind}'" for kind in CREDIT_TYPES)
# everything a draw accounts for of its credit's points (every column of the audit row)
ACCOUNTED = " + ".join(draws.accounted_sql(column, kind="d.kind", points="d.points")
                       for column in draws.ACCOUNTED_COLUMNS)

# (rule, what it says, query returning (subject, detail) rows that break it)
CHECKS: list[tuple[int, str, str]] = [
    (1, "amounts are non-negative",
     """SELECT 'lot ' || id, 'negative part: spent ' || spent || ', expired ' || expired
               || ', moved ' || moved || ', remaining ' || remaining
        FROM lot WHERE spent < 0 OR expired < 0 OR moved < 0 OR remaining < 0 OR original <= 0
        UNION ALL
        SELECT 'balance ' || user_id || '/' || account_id, 'negative debt ' || debt
        FROM balance WHERE debt < 0
        UNION ALL
        SELECT 'source ' || name, 'negative inventory ' || inventory
        FROM source WHERE inventory < 0"""),
    (2, "original = spent + expired + moved + remaining",
     """SELECT 'lot ' || id, 'original ' || original || ' but spent ' || spent || ' + expired '
               || expired || ' + moved ' || moved || ' + remaining ' || remaining
        FROM lot WHERE original <> spent + expired + moved + remaining"""),
    (2, "a lot's spent/moved/expired equal its draws",
     """SELECT 'lot ' || l.id,
               'spent ' || l.spent || ' vs draws ' || COALESCE(d.spent, 0)
               || ', moved ' || l.moved || ' vs ' || COALESCE(d.moved, 0)
               || ', expired ' || l.expired || ' vs ' || COALESCE(d.expired, 0)
        FROM lot l LEFT JOIN (
            SELECT lot_id,
                   SUM(""" + draws.bucket_sql("spent") + """) AS spent,
                   SUM(""" + draws.bucket_sql("moved") + """) AS moved,
                   SUM(""" + draws.bucket_sql("expired") + """) AS expired
            FROM draw WHERE lot_id IS NOT NULL GROUP BY lot_id) d ON d.lot_id = l.id
        WHERE l.spent <> COALESCE(d.spent, 0) OR l.moved <> COALESCE(d.moved, 0)
           OR l.expired <> COALESCE(d.expired, 0)"""),
    (3, "balance = lots' remaining - debt = sum of its entries",
     """SELECT 'balance ' || b.user_id || ' in ' || a.name,
               'entries sum to ' || COALESCE(e.points, 0) || ' but lots hold '
               || COALESCE(l.remaining, 0) || ' with debt ' || b.debt
        FROM balance b JOIN account a ON a.id = b.account_id
        LEFT JOIN (SELECT user_id, account_id, SUM(points) AS points FROM entry
                   WHERE user_id IS NOT NULL GROUP BY user_id, account_id) e
               ON e.user_id = b.user_id AND e.account_id = b.account_id
        LEFT JOIN (SELECT user_id, account_id, SUM(remaining) AS remaining FROM lot
                   GROUP BY user_id, account_id) l
               ON l.user_id = b.user_id AND l.account_id = b.account_id
        WHERE COALESCE(e.points, 0) <> COALESCE(l.remaining, 0) - b.debt"""),
    (3, "debt only where negative balances are allowed",
     """SELECT 'balance ' || b.user_id || ' in ' || a.name, 'debt ' || b.debt
               || ' in an account that does not allow a negative balance'
        FROM balance b JOIN account a ON a.id = b.account_id
        WHERE b.debt > 0 AND NOT a.allow_negative"""),
    (4, "issued - reversed = remaining + spent + expired, per source",
     """SELECT 'source ' || s.name,
               'issued ' || COALESCE(i.points, 0) || ' - reversed ' || COALESCE(r.points, 0)
               || ' but lots hold ' || COALESCE(l.points, 0)
        FROM source s
        LEFT JOIN """ + ISSUED + """ i
               ON i.source_id = s.id
        LEFT JOIN """ + REVERSED + """ r ON r.source_id = s.id
        LEFT JOIN (SELECT source_id, SUM(remaining + spent + expired) AS points FROM lot
                   GROUP BY source_id) l ON l.source_id = s.id
        WHERE COALESCE(i.points, 0) - COALESCE(r.points, 0) <> COALESCE(l.points, 0)"""),
    (5, "initial + adjustments - issued + returned - expired at archive = inventory",
     """SELECT 'source ' || s.name,
               'inventory entries ' || li.entries || ' - issued ' || li.issued
               || ' + returned ' || li.returned || ' but inventory is ' || s.inventory
        FROM source s JOIN """ + _inventory() + """ li ON li.source_id = s.id
        WHERE li.inventory <> s.inventory"""),
    (7, "a credit's modification = spent + expired + transferred + reversed + adjusted + "
        "remaining",
     """SELECT 'entry ' || e.id, 'modification ' || e.points || ' but its lots account for '
               || (COALESCE(r.points, 0) + COALESCE(a.points, 0))
        FROM entry e
        LEFT JOIN (SELECT entry_id, SUM(remaining) AS points FROM lot GROUP BY entry_id) r
               ON r.entry_id = e.id
        LEFT JOIN (SELECT l.entry_id, SUM(""" + ACCOUNTED + """) AS points
                   FROM draw d JOIN lot l ON l.id = d.lot_id GROUP BY l.entry_id) a
               ON a.entry_id = e.id
        WHERE e.points > 0 AND e.type IN (""" + CREDITS + """)
          AND e.points <> COALESCE(r.points, 0) + COALESCE(a.points, 0)"""),
    (8, "a lot's held points = its hold draws - its release draws, within its remaining",
     """SELECT 'lot ' || l.id, 'held ' || l.held || ' but its hold draws keep '
               || COALESCE(h.points, 0) || ' (remaining ' || l.remaining || ')'
        FROM lot l
        LEFT JOIN (SELECT lot_id, SUM(CASE WHEN kind = 'hold' THEN points ELSE -points END)
                          AS points
                   FROM draw WHERE kind IN ('hold', 'release') GROUP BY lot_id) h
               ON h.lot_id = l.id
        WHERE l.held <> COALESCE(h.points, 0) OR l.held < 0 OR l.held > l.remaining"""),
    (9, "an open hold earmarks all its points; a closed one none",
     """SELECT 'hold ' || h.reference_id, h.status || ' with ' || COALESCE(x.points, 0)
               || ' of its ' || h.points || ' points earmarked'
        FROM hold h
        LEFT JOIN (SELECT e.reference_id,
                          SUM(CASE WHEN d.kind = 'hold' THEN d.points ELSE -d.points END)
                          AS points
                   FROM draw d JOIN entry e ON e.id = d.entry_id
                   WHERE d.kind IN ('hold', 'release') GROUP BY e.reference_id) x
               ON x.reference_id = h.reference_id
        WHERE COALESCE(x.points, 0) <> CASE WHEN h.status = 'open' THEN h.points ELSE 0 END
        UNION ALL
        SELECT 'hold ' || e.reference_id, 'earmarks '
               || SUM(CASE WHEN d.kind = 'hold' THEN d.points ELSE -d.points END)
               || ' points but there is no such hold'
        FROM draw d JOIN entry e ON e.id = d.entry_id
        LEFT JOIN hold h ON h.reference_id = e.reference_id
        WHERE d.kind IN ('hold', 'release') AND h.id IS NULL
        GROUP BY e.reference_id"""),
]

# (rule, what it says, query returning (subject, level held, latest tier entry's level) rows
# that may break it): a level renamed only in case keeps its members without an entry, so the
# names are compared without case, in Python (SQLite's LOWER folds ASCII letters only)
LATEST_TIER = """(SELECT e.user_id, e.reference_id FROM entry e
                  JOIN (SELECT user_id, MAX(id) AS id FROM entry WHERE type = 'tier'
                        GROUP BY user_id) x ON x.id = e.id)"""
TIER_CHECK = (
    10, "a member's level is the one their latest tier entry names",
    """SELECT 'member ' || m.user_id, m.level, t.reference_id
       FROM member_tier m LEFT JOIN """ + LATEST_TIER + """ t ON t.user_id = m.user_id
       WHERE t.reference_id IS NULL OR LOWER(t.reference_id) <> LOWER(m.level)
       UNION ALL
       SELECT 'member ' || t.user_id, NULL, t.reference_id
       FROM """ + LATEST_TIER + """ t LEFT JOIN member_tier m ON m.user_id = t.user_id
       WHERE m.user_id IS NULL AND t.reference_id <> 'none'""")

TRIGGERS = {
    "sqlite": "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'entry'",
    "postgresql": "SELECT COUNT(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                  "WHERE c.relname = 'entry' AND c.relnamespace = ANY("
                  "SELECT oid FROM pg_namespace WHERE nspname = ANY(current_schemas(false))) "
                  "AND NOT t.tgisinternal",
}


def verify(session: Session) -> dict[str, Any]:
    violations: list[dict[str, Any]] = []
    for rule, statement, query in CHECKS:
        for subject, detail in session.execute(text(query)).all():
            violations.append({"rule": rule, "check": statement, "subject": subject,
                               "detail": detail})
    rule, statement, query = TIER_CHECK
    for subject, level, latest in session.execute(text(query)).all():
        if level is not None and latest is not None and name_key(level) == name_key(latest):
            continue
        violations.append({"rule": rule, "check": statement, "subject": subject,
                           "detail": f"level {level or 'none'} but the latest tier entry says "
                                     f"{latest or 'nothing'}"})
    dialect = session.get_bind().dialect.name
    if not session.execute(text(TRIGGERS[dialect])).scalar_one():
        violations.append({"rule": 6, "check": "the audit log is append-only",
                           "subject": "table entry",
                           "detail": "the triggers that refuse UPDATE and DELETE are missing"})
    counts = {table: session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
              for table in ("entry", "lot", "draw", "balance", "source")}
    return {"ok": not violations, "violations": violations, "checked": counts}
