"""``pointctl customer USER``: everything about one customer at a glance (the support desk).

Table output is a few small tables; JSON is one object; CSV is one table in which every row
says its ``section`` (balance, group, expiring, expiring_summary, entry, restriction, seen) and
fills that section's columns, so a spreadsheet filter on the first column gives each table.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pointctl.cli import state
from pointctl.cli.ledger import BALANCE_COLUMNS, GROUP_COLUMNS, UserArg
from pointctl.cli.numbers import whole
from pointctl.cli.options import AtOption, FormatOption
from pointctl.cli.render import (
    Columns,
    OutputFormat,
    emit_record,
    emit_result,
    emit_rows,
    message,
)

# top-level commands (`pointctl customer, enroll`): the root finds them here by name
commands = typer.Typer()

SEEN_FIELDS = [("user", "user"), ("enrolled", "enrolled (UTC)"), ("enrolled_from", "enrolled from"),
               ("first_entry", "first entry (UTC)"),
               ("last_entry", "last entry (UTC)"), ("last_activity", "last activity (UTC)"),
               ("last_event", "last event"), ("last_event_at", "last event at (UTC)"),
               ("tier", "tier"), ("tier_kept_until", "tier kept until (UTC)")]
SUMMARY_COLUMNS = [("within", "within"), ("until", "until (UTC)"), ("expires", "expires"),
                   ("rolls_over", "rolls over")]
EXPIRING_COLUMNS = [("account", "account"), ("at", "at (UTC)"), ("expires", "expires"),
                    ("rolls_over", "rolls over"), ("into", "into")]
ENTRY_COLUMNS = [
    ("id", "id"), ("time", "time (UTC)"), ("type", "type"), ("account", "account"),
    ("source", "source"), ("modification", "modification"), ("amount_spent", "amount spent"),
    ("amount_expired", "amount expired"), ("reference_id", "reference id"), ("note", "note"),
]
RESTRICTION_COLUMNS = [("id", "id"), ("source", "source"), ("scope", "scope"),
                       ("max_points", "max points"), ("per", "window"), ("used", "used now"),
                       ("left", "left")]
# CSV: (section, rows key or None for the record itself, columns)
SECTIONS: list[tuple[str, str | None, Columns]] = [
    ("seen", None, SEEN_FIELDS), ("balance", "accounts", BALANCE_COLUMNS),
    ("group", "groups", GROUP_COLUMNS), ("expiring_summary", "expiring_summary", SUMMARY_COLUMNS),
    ("expiring", "expiring", EXPIRING_COLUMNS), ("entry", "entries", ENTRY_COLUMNS),
    ("restriction", "restrictions", RESTRICTION_COLUMNS),
]


@commands.command()
@state.writes
def enroll(
    user: UserArg,
    at: AtOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Record when USER joined the program (default now), for example the real date of a
    member migrated from another system. Recorded once: the same date again changes nothing,
    another is refused. Anniversary expiration counts from it (without it: the first entry)."""
    from pointctl.core.clock import parse_time
    from pointctl.services.enrollment import enroll as run_enroll

    result = state.call(run_enroll, write=True, user=user,
                        at=parse_time(at, what="--at") if at is not None else None,
                        actor=state.current.actor)
    note = (f"Enrolled {result['user']} at {result['enrolled']}" if result["changed"] else
            f"{result['user']} is already enrolled at {result['enrolled']}; nothing changed")
    emit_result(result, fmt, [("user", "user"), ("enrolled", "enrolled (UTC)"),
                              ("recorded", "recorded (UTC)"), ("actor", "actor"),
                              ("changed", "changed")], note)


@commands.command()
def customer(
    user: UserArg,
    entries: Annotated[int, typer.Option(
        "--entries", metavar="N", parser=whole("--entries", ranged_by_service=True),
        help="How many of the latest entries to show "
        "(1-1000).")] = 10,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Everything about USER at a glance: balances, points expiring in the next 30/60/90
    days, the latest entries, restriction usage and when they were last active."""
    from pointctl.services.customer import customer as run_customer

    result = state.call_punctual(run_customer, user=user, entries=entries)
    if fmt is OutputFormat.json:
        emit_record(result, fmt, [])
    elif fmt is OutputFormat.csv:
        emit_rows(_csv_rows(result), fmt, _csv_columns())
    else:
        _tables(result)


def _csv_columns() -> list[tuple[str, str]]:
    columns = [("section", "section")]
    for _section, _key, section_columns in SECTIONS:
        columns += [c for c in section_columns if c not in columns]
    return columns


def _csv_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for section, key, columns in SECTIONS:
        for row in [result] if key is None else result[key]:
            rows.append({"section": section, **{name: row.get(name) for name, _ in columns}})
    return rows


def _tables(result: dict[str, Any]) -> None:
    user = result["user"]
    emit_record(result, OutputFormat.table, SEEN_FIELDS, title=f"Customer {user}")
    emit_rows(result["accounts"], OutputFormat.table, BALANCE_COLUMNS, title="Balances")
    if result["groups"]:
        emit_rows(result["groups"], OutputFormat.table, GROUP_COLUMNS, title="Per group label")
    if result["expiring_unavailable"]:
        message(f"Expiring: not worked out: {result['expiring_unavailable']}")
    else:
        emit_rows(result["expiring_summary"], OutputFormat.table, SUMMARY_COLUMNS,
                  title="Expiring if nothing else happens")
        emit_rows(result["expiring"], OutputFormat.table, EXPIRING_COLUMNS,
                  title="Coming evaluations", empty="Nothing expires or rolls over in 90 days.")
    shown, total = len(result["entries"]), result["entries_total"]
    emit_rows(result["entries"], OutputFormat.table, ENTRY_COLUMNS,
              title=f"Latest entries ({shown} of {total})" if total > shown else
              "Latest entries")
    emit_rows(result["restrictions"], OutputFormat.table, RESTRICTION_COLUMNS,
              title="Restrictions (used now: per customer by this customer, system by all)",
              empty="No restrictions apply.")
    if total > shown:
        message(f"Showing the latest {shown} of {total} entries; see 'pointctl report audit "
                f"--user {user}' for the rest")
