"""``pointctl expire run|status|preview``: the expiration engine for cron.

``expire run`` parses its options, calls ``pointctl.services.expire_runner.run_due`` (each due
evaluation in its own transaction; ``--dry-run``: all in one transaction rolled back) and
renders a summary per account. ``preview`` performs the evaluations in one transaction that
is rolled back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from pointctl.cli import state
from pointctl.cli.options import AccountsOption, FormatOption
from pointctl.cli.render import OutputFormat, confirm, emit_rows, progress_reporter
from pointctl.core.errors import InvalidInputError

app = typer.Typer(help="Expire points and assess tiers on schedule (run from cron), see what "
                       "is due and what will expire.", no_args_is_help=True)

SUMMARY_COLUMNS = [
    ("account", "account"), ("evaluations", "evaluations"), ("skipped", "done by another run"),
    ("first", "first (UTC)"), ("last", "last (UTC)"), ("users", "users"),
    ("lots", "lots"), ("expired", "points expired"), ("rolled_over", "points rolled over"),
]
STATUS_COLUMNS = [
    ("account", "account"), ("policy", "policy"), ("rule", "rule"), ("schedule", "schedule"),
    ("last_evaluation", "last evaluation (UTC)"), ("next_due", "next due (UTC)"),
    ("due_now", "due now"),
]
PREVIEW_COLUMNS = [("account", "account"), ("user", "user"), ("at", "at (UTC)"),
                   ("expires", "expires"), ("rolls_over", "rolls over")]


def _summary(outcomes: list[Any]) -> list[dict[str, Any]]:
    from pointctl.core.clock import format_time

    rows: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        row = rows.setdefault(outcome.account, {
            "account": outcome.account, "evaluations": 0, "skipped": 0, "first": None,
            "last": None, "users": 0, "lots": 0, "expired": 0, "rolled_over": 0})
        if not outcome.performed:
            row["skipped"] += 1
            continue
        row["evaluations"] += 1
        row["first"] = row["first"] or format_time(outcome.at)
        row["last"] = format_time(outcome.at)
        row["lots"] += outcome.lots
        row["expired"] += outcome.expired
        row["rolled_over"] += outcome.rolled_over
        row["users"] += outcome.users
    return list(rows.values())


def _until(as_of: str | None) -> datetime:
    from pointctl.core import clock

    now = clock.now()
    if as_of is None:
        return now
    until = clock.parse_time(as_of, what="--as-of")
    if until > now:
        raise InvalidInputError(f"--as-of {clock.format_time(until)} is in the future; "
                                "evaluations happen only once their time has come")
    return until


@app.command()
@state.writes
def run(
    accounts: AccountsOption = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", metavar="TIME", help="Perform the evaluations due up to this past time "
        "(default: now).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would expire; change nothing.")] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Perform every due evaluation, oldest first, each as of its scheduled time: the
    expirations, then the tier assessments."""
    from pointctl.services.expire_runner import run_due

    until = _until(as_of)
    holds = not dry_run  # ended holds are released whichever accounts are named
    released: list[int] = []
    tiers: list[Any] = []
    with progress_reporter("expire") as on_progress:
        outcomes = run_due(state.current.db_url, until=until, accounts=accounts or [],
                           actor=state.current.actor, dry_run=dry_run, on_progress=on_progress,
                           read_only=state.current.read_only,
                           release_holds=released if holds else None, tier_outcomes=tiers)
    rows = _summary(outcomes)
    emit_rows(rows, fmt, SUMMARY_COLUMNS,
              title="Expiration" + (" (dry run: nothing changed)" if dry_run else ""),
              empty="No evaluations were due.")
    performed = sum(row["evaluations"] for row in rows)
    expired = sum(row["expired"] for row in rows)
    rolled = sum(row["rolled_over"] for row in rows)
    verb = "Would perform" if dry_run else "Performed"
    confirm(f"{verb} {performed} evaluations: {expired} points expired, {rolled} rolled over"
            + (" (dry run, nothing changed)" if dry_run else ""))
    done = [outcome for outcome in tiers if outcome.performed]
    if tiers:
        skipped = len(tiers) - len(done)
        confirm(f"{verb} {len(done)} tier evaluation{'s' if len(done) != 1 else ''}: "
                f"{sum(o.up for o in done)} members moved up, {sum(o.down for o in done)} "
                f"down" + (f", {sum(o.changed for o in done)} out of a level no longer "
                           "defined" if any(o.changed for o in done) else "")
                + (f", {done[-1].members} hold a level" if done else "")
                + (f"; {skipped} done by another run" if skipped else "")
                + (" (dry run, nothing changed)" if dry_run else ""))
    if holds:  # holds past their time (the rest): released, each once
        from pointctl.services.expire_runner import release_expired_holds

        released.append(release_expired_holds(state.current.db_url, until=until,
                                              actor=state.current.actor,
                                              read_only=state.current.read_only))
        if sum(released):
            confirm(f"Released {sum(released)} expired hold{'s' if sum(released) != 1 else ''}")


@app.command()
def status(
    accounts: AccountsOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Per account: the policy in words, the last evaluation performed, the next one due."""
    from pointctl.services.expiry import status as run_status

    emit_rows(state.call(run_status, write=False, accounts=accounts or []), fmt, STATUS_COLUMNS,
              title="Expiration status", empty="No accounts.")


@app.command()
def preview(
    within: Annotated[str, typer.Option(
        "--within", metavar="DURATION", help="How far ahead to look, e.g. 30d.")],
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user.")] = None,
    accounts: AccountsOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """What the schedules will expire within DURATION if nothing else happens, per account,
    user and evaluation (overdue evaluations included)."""
    from pointctl.services.expiry import preview as run_preview

    state.refuse_writes(state.ROLLED_BACK)

    rows = state.call_rolled_back(run_preview, within=within, user=user,
                                  accounts=accounts or [],
                                  actor=state.current.actor)
    emit_rows(rows, fmt, PREVIEW_COLUMNS, title=f"Expiring within {within}",
              empty="Nothing expires in that time.")
