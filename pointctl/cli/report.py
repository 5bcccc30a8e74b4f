"""``pointctl report ...`` and ``pointctl verify``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from pointctl.cli import state
from pointctl.cli.options import FormatOption
from pointctl.cli.render import OutputFormat, emit_record, emit_rows, message

app = typer.Typer(help="Reports: the audit log (liability and source reports come later).",
                  no_args_is_help=True)

AUDIT_COLUMNS = [
    ("id", "id"), ("user", "user"), ("account", "account"), ("source", "source"),
    ("type", "type"), ("reference_id", "reference id"), ("reference_type", "reference type"),
    ("modification", "modification"), ("amount_spent", "amount spent"),
    ("amount_expired", "amount expired"), ("actor", "actor"), ("time", "time (UTC)"),
]
VIOLATION_COLUMNS = [("rule", "rule"), ("check", "check"), ("subject", "subject"),
                     ("detail", "detail")]


def register(root: typer.Typer) -> None:
    root.command()(verify)


@app.command()
def audit(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user.")] = None,
    account: Annotated[str | None, typer.Option("--account", help="Only this account.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only this source.")] = None,
    entry_type: Annotated[list[str] | None, typer.Option(
        "--type", "-t", help="Only these entry types (repeatable): issue, spend, reversal, "
        "adjustment, transfer, expiration, rollover, reactivation, inventory, restriction."
    )] = None,
    reference_id: Annotated[str | None, typer.Option("--reference-id")] = None,
    start: Annotated[datetime | None, typer.Option(
        "--from", formats=["%Y-%m-%d"], help="From this day (inclusive, UTC).")] = None,
    end: Annotated[datetime | None, typer.Option(
        "--to", formats=["%Y-%m-%d"], help="To this day (inclusive, UTC).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many rows.")] = 100,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """The audit log, newest first: every entry with what became of each credit."""
    from pointctl.services.reports import audit as run_audit

    rows = state.call(run_audit, write=False, user=user, account=account, source=source,
                      types=entry_type or [], reference_id=reference_id,
                      start=start.date() if start else None, end=end.date() if end else None,
                      limit=limit)
    emit_rows(rows, fmt, AUDIT_COLUMNS, title="Audit log", empty="No entries.")


def verify(fmt: FormatOption = OutputFormat.table) -> None:
    """Check every ledger rule (SPEC §2); exit 1 listing each violation."""
    from pointctl.services.verify import verify as run_verify

    result = state.call(run_verify, write=False)
    counts = ", ".join(f"{n} {table} rows" for table, n in result["checked"].items())
    if fmt is OutputFormat.json:
        emit_record(result, fmt, [])
    elif result["violations"]:
        emit_rows(result["violations"], fmt, VIOLATION_COLUMNS, title="Ledger violations")
    if result["ok"]:
        message(f"Ledger verified: every rule holds ({counts})")
        return
    message(f"Ledger verification failed: {len(result['violations'])} violations ({counts})")
    raise typer.Exit(1)
