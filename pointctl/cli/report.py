"""``pointctl report audit|liability|debt|sources|breakage|partner|tiers`` and ``pointctl
verify``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pointctl.cli import state
from pointctl.cli.complete import source_names
from pointctl.cli.numbers import whole
from pointctl.cli.options import (
    AccountsOption,
    FormatOption,
    FromOption,
    LastMonthOption,
    LastOption,
    SourcesOption,
    ThisMonthOption,
    ToOption,
)
from pointctl.cli.render import OutputFormat, csv_cell, emit_record, emit_rows, message

if TYPE_CHECKING:
    from pointctl.core.periods import Period

# top-level commands (`pointctl verify`): the root finds them here by name
commands = typer.Typer()

app = typer.Typer(help="Reports: the audit log, point liability and debt, the point-source "
                  "report, partner statements and tiers.",
                  no_args_is_help=True)

AUDIT_COLUMNS = [
    ("id", "id"), ("user", "user"), ("account", "account"), ("source", "source"),
    ("type", "type"), ("reference_id", "reference id"), ("reference_type", "reference type"),
    ("modification", "modification"), ("amount_spent", "amount spent"),
    ("amount_expired", "amount expired"), ("amount_remaining", "remaining"), ("actor", "actor"),
    ("time", "time (UTC)"),
]
# CSV: every figure of what became of a credit's points, which add up to its modification
AUDIT_CSV_COLUMNS = [
    *AUDIT_COLUMNS[:10], ("amount_transferred", "amount transferred"),
    ("amount_reversed", "amount reversed"), ("amount_adjusted", "amount adjusted"),
    *AUDIT_COLUMNS[10:], ("written_off", "written off"), ("related_entry", "related entry"),
    ("note", "note"),
]
LIABILITY_COLUMNS = [("source", "source"), ("issued", "issued"), ("reversed", "reversed"),
                     ("spent", "spent"), ("adjusted", "adjusted"), ("expired", "expired"),
                     ("liability", "liability"), ("written_off", "written off"),
                     ("liability_value", "value")]
# CSV and JSON: the value per point and the currency in columns of their own
LIABILITY_CSV_COLUMNS = [*LIABILITY_COLUMNS, ("point_value", "value per point"),
                         ("currency", "currency")]
DAILY_COLUMNS = [("day", "day"), ("source", "source"), ("opening", "opening"),
                 ("issued", "issued"), ("redeemed", "redeemed"), ("adjusted", "adjusted"),
                 ("expired", "expired"), ("reversed", "reversed"), ("closing", "closing")]
SOURCE_COLUMNS = [("day", "day"), ("source", "source"), ("issued", "issued"),
                  ("redeemed", "redeemed"), ("adjusted", "adjusted"), ("expired", "expired"),
                  ("cumulative_issued", "cum. issued"),
                  ("cumulative_redeemed", "cum. redeemed"),
                  ("cumulative_adjusted", "cum. adjusted"),
                  ("cumulative_expired", "cum. expired")]
VIOLATION_COLUMNS = [("rule", "rule"), ("check", "check"), ("subject", "subject"),
                     ("detail", "detail")]
EXPORT_TYPES = {".csv": ("text", "csv"), ".json": ("application", "json")}


class ChartView(str, Enum):
    daily = "daily"
    cumulative = "cumulative"


def period(last: str | None, this_month: bool, last_month: bool, start: str | None,
           end: str | None) -> Period:
    """The report period of the shared date options; today is the program time zone's."""
    from pointctl.core import clock, periods

    return periods.resolve(today=clock.to_local(clock.now()).date(), last=last,
                           this_month=this_month, last_month=last_month, start=start, end=end)


@app.command()
def audit(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user.")] = None,
    accounts: AccountsOption = None,
    sources: SourcesOption = None,
    entry_type: Annotated[list[str] | None, typer.Option(
        "--type", "-t", help="Only these entry types (repeatable): issue, spend, reversal, "
        "adjustment, transfer, expiration, rollover, reactivation, inventory, restriction, "
        "change (a change to an account, a source or a setting), hold, release (checkout "
        "holds)."
    )] = None,
    reference_id: Annotated[str | None, typer.Option(
        "--reference-id", help="Only entries with exactly this reference id (an order, a "
        "ride, a ticket).")] = None,
    search: Annotated[str | None, typer.Option(
        "--search", metavar="TEXT", help="Plain text to find (any case) in the user, "
        "reference id and type, entry type, note, account or source name.")] = None,
    last: LastOption = None, this_month: ThisMonthOption = False,
    last_month: LastMonthOption = False, start: FromOption = None, end: ToOption = None,
    limit: Annotated[int, typer.Option(
        "--limit", "-n", metavar="N", parser=whole("--limit", ranged_by_service=True),
        help="At most this many rows.")] = 100,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """The audit log, newest first: every entry with what became of each credit."""
    from pointctl.services.reports import audit as run_audit

    chosen = period(last, this_month, last_month, start, end)
    found = state.call(run_audit, write=False, user=user, accounts=accounts or [],
                       sources=sources or [],
                       types=entry_type or [], reference_id=reference_id, search=search,
                       period=chosen, limit=limit)
    rows = found["rows"]
    emit_rows(rows, fmt, AUDIT_CSV_COLUMNS if fmt is OutputFormat.csv else AUDIT_COLUMNS,
              title="Audit log", empty="No entries.")
    more = found["matched"] - len(rows)
    if found["more_than"]:
        message(f"Showing the newest {len(rows):,} of more than {found['matched']:,} matching "
                f"entries; more than {more:,} more matched (raise --limit or narrow the "
                "filters)")
    elif more > 0:
        message(f"Showing the newest {len(rows):,} of {found['matched']:,} matching entries; "
                f"{more:,} more matched (raise --limit or narrow the filters)")


@app.command()
def liability(
    sources: SourcesOption = None,
    last: LastOption = None, this_month: ThisMonthOption = False,
    last_month: LastMonthOption = False, start: FromOption = None, end: ToOption = None,
    daily: Annotated[bool, typer.Option(
        "--daily", help="Per day and source: opening outstanding, issued, redeemed, expired, "
        "reversed, closing outstanding.")] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Point liability per source: the points issued in the period and what became of them
    (liability = issued - reversed - spent - adjusted - expired: what customers still hold),
    the points of those issues written off by returns, and the liability in money where the
    source has a value per point (with a total per currency)."""
    from pointctl.services import reports

    chosen = period(last, this_month, last_month, start, end)
    if daily:
        found = state.call(reports.daily, write=False, sources=sources or [], period=chosen)
        if fmt is OutputFormat.json:
            emit_record(found, fmt, [])
            return
        emit_rows(found["rows"], fmt, DAILY_COLUMNS,
                  title=f"Outstanding points per day, {found['first']} to {found['last']} "
                  f"({found['zone']})", empty="No sources.")
        return
    rows = state.call(reports.liability, write=False, sources=sources or [], period=chosen)
    if fmt is not OutputFormat.table:
        emit_rows(rows, fmt, LIABILITY_CSV_COLUMNS,
                  title=f"Point liability: points issued {chosen.describe()}",
                  empty="No sources.")
        return
    shown = [{**row, "liability_value": "" if row["liability_value"] is None else
              f"{row['liability_value']} {row['currency']}"} for row in rows]
    if len(rows) > 1:
        shown.append({"source": "Total", "liability_value": "",
                      **{key: sum(r[key] for r in rows) for key, _ in LIABILITY_COLUMNS[1:-1]}})
    # money is added up per currency, from the exact figures, and rounded once
    for code, total in reports.currency_totals(rows, "liability").items():
        shown.append({"source": f"Total {code}", "liability_value": f"{total} {code}",
                      **{key: None for key, _ in LIABILITY_COLUMNS[1:-1]}})
    emit_rows(shown, fmt, LIABILITY_COLUMNS,
              title=f"Point liability: points issued {chosen.describe()}", empty="No sources.")


DEBT_COLUMNS = [("user", "user"), ("account", "account"), ("debt", "debt"),
                ("since", "owed since (UTC)"), ("age_days", "age (days)"),
                ("created_by", "created by"), ("entry", "entry")]


class DebtSort(str, Enum):
    largest = "largest"
    newest = "newest"
    oldest = "oldest"


@app.command()
def debt(
    accounts: AccountsOption = None,
    sort: Annotated[DebtSort, typer.Option(
        "--sort", case_sensitive=False, help="largest debt first, or the newest or oldest "
        "debt first.")] = DebtSort.largest,
    limit: Annotated[int, typer.Option(
        "--limit", "-n", metavar="N", parser=whole("--limit", ranged_by_service=True),
        help="At most this many customers (the totals count them all).")] = 100,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Customers who owe points: per account, the debt and since when it is owed (the spend,
    subtraction or return that created the oldest part still unpaid)."""
    from pointctl.services.reports import debt as run_debt

    found = state.call(run_debt, write=False, accounts=accounts or [], sort=sort.value,
                       limit=limit)
    if fmt is OutputFormat.json:
        emit_record(found, fmt, [])
        return
    emit_rows(found["rows"], fmt, DEBT_COLUMNS, title="Points owed by customers",
              empty="No customer owes points.")
    if fmt is OutputFormat.table and found["debtors"]:
        per = "; ".join(f"{t['account']}: {t['debt']:,} points by {t['debtors']:,}"
                        for t in found["accounts"])
        message(f"{found['debtors']:,} customers owe {found['debt']:,} points ({per})")


ExportOption = Annotated[Path | None, typer.Option(
    "--export", metavar="FILE.csv|FILE.json", dir_okay=False,
    help="Write the raw data to this file.")]
EmailOption = Annotated[str | None, typer.Option(
    "--email", metavar="a@x,b@y", help="Mail the data (the --export file, or a CSV) through "
    "the SMTP server of POINTCTL_SMTP_URL.")]


@app.command("sources")
def sources_report(
    sources: SourcesOption = None,
    last: LastOption = None, this_month: ThisMonthOption = False,
    last_month: LastMonthOption = False, start: FromOption = None, end: ToOption = None,
    view: Annotated[ChartView, typer.Option(
        "--view", case_sensitive=False, help="What the chart shows: daily or cumulative "
        "figures.")] = ChartView.daily,
    no_chart: Annotated[bool, typer.Option("--no-chart", help="The table only.")] = False,
    export: ExportOption = None,
    email: EmailOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Per day and source: points issued, redeemed and expired, with cumulative columns and a
    chart under the table."""
    from pointctl.services import reports

    to = _check_delivery(export, email)
    chosen = period(last, this_month, last_month, start, end)
    found = state.call(reports.daily, write=False, sources=sources or [], period=chosen)
    rows = [{key: row[key] for key, _ in SOURCE_COLUMNS} for row in found["rows"]]
    found = {**found, "rows": rows}
    if fmt is OutputFormat.json:
        emit_record(found, fmt, [])
    else:
        emit_rows(rows, fmt, SOURCE_COLUMNS, title=f"Point sources, {found['first']} to "
                  f"{found['last']} ({found['zone']})", empty="No sources.")
        if fmt is OutputFormat.table and rows and not no_chart:
            from pointctl.cli.chart import render
            from pointctl.cli.render import stdout_console

            console = stdout_console()
            console.print(render(rows, view=view.value, width=min(console.width, 120)))
    _deliver(found, SOURCE_COLUMNS, export, to, stem="pointctl-sources",
             what="point-source report")


def _check_delivery(export: Path | None, email: str | None) -> list[str] | None:
    """Before anything runs: the --export file name and the --email recipients (and the
    sender a mail would have), as ``report sources`` and ``report partner`` take them."""
    from pointctl.core.errors import InvalidInputError
    from pointctl.services import mail

    if export is not None and export.suffix.lower() not in EXPORT_TYPES:
        raise InvalidInputError(f"--export {export}: the file name must end in .csv or .json")
    to = mail.recipients(email) if email is not None else None
    if to is not None:
        mail.sender()  # a bad POINTCTL_SMTP_FROM is bad input: nothing runs
    return to


def _deliver(found: dict[str, Any], columns: list[tuple[str, str]], export: Path | None,
             to: list[str] | None, *, stem: str, what: str) -> None:
    """Write the report's rows to --export (CSV of ``columns``, or the whole JSON document)
    and mail that file, or a CSV, to --email."""
    from pointctl.core.errors import InvalidInputError
    from pointctl.services import mail

    rows = found["rows"]
    suffix = export.suffix.lower() if export is not None else ".csv"
    data = _export_bytes(found, suffix, columns)
    if export is not None:
        try:
            export.write_bytes(data)
        except OSError as error:
            raise InvalidInputError(f"cannot write {export}: {error.strerror or error}"
                                    ) from None
        message(f"Wrote {len(rows):,} rows to {export}")
    if to is not None:
        server = mail.server_from_env()
        name = export.name if export is not None else \
            f"{stem}-{found['first']}-to-{found['last']}.csv"
        mail.send(server, to=to, subject=f"pointctl {what} {found['first']} to "
                  f"{found['last']}", body=f"The {what}, {found['first']} to "
                  f"{found['last']} ({found['zone']}), is attached: {len(rows)} rows.\n",
                  filename=name, data=data, mime=EXPORT_TYPES[suffix])
        message(f"Mailed {name} to {', '.join(to)} through {server}")


def _export_bytes(found: dict[str, Any], suffix: str, columns: list[tuple[str, str]]) -> bytes:
    import csv
    import io
    import json

    if suffix == ".json":
        return (json.dumps(found, indent=2) + "\n").encode()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([key for key, _ in columns])
    for row in found["rows"]:
        writer.writerow([csv_cell(row[key]) for key, _ in columns])
    return out.getvalue().encode()


BREAKAGE_COLUMNS = [("source", "source"), ("cohort", "cohort"), ("issued", "issued"),
                    ("reversed", "reversed"), ("redeemed", "redeemed"),
                    ("adjusted", "adjusted"), ("expired", "expired"),
                    ("outstanding", "outstanding"), ("closed", "closed"),
                    ("breakage_rate", "breakage rate"),
                    ("estimated_breakage", "est. breakage")]
BREAKAGE_SUMMARY = [("source", "source"), ("closed_cohorts", "closed cohorts"),
                    ("breakage_rate", "breakage rate"), ("outstanding", "open outstanding"),
                    ("estimated_breakage", "est. breakage"),
                    ("estimated_value", "est. value")]


class Cohort(str, Enum):
    month = "month"
    quarter = "quarter"


@app.command()
def breakage(
    cohort: Annotated[Cohort, typer.Option(
        "--cohort", case_sensitive=False, help="Group the issued points by the month or "
        "quarter they were issued in.")] = Cohort.month,
    sources: SourcesOption = None,
    last: LastOption = None, this_month: ThisMonthOption = False,
    last_month: LastMonthOption = False, start: FromOption = None, end: ToOption = None,
    closed_after: Annotated[str, typer.Option(
        "--closed-after", metavar="AGE", help="A cohort this long past its end counts as "
        "closed even with points outstanding (e.g. 12mo, 2y).")] = "12mo",
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Breakage: per source and issue cohort, what became of the points; the breakage rate of
    the closed cohorts (expired / (issued - reversed)) and, at that rate, how much of what is
    still outstanding is expected never to be redeemed, in points and money."""
    from pointctl.services import reports

    chosen = period(last, this_month, last_month, start, end)
    found = state.call(reports.breakage, write=False, cohort=cohort.value,
                       sources=sources or [], period=chosen, closed_after=closed_after)
    if fmt is OutputFormat.json:
        emit_record(found, fmt, [])
        return
    title = (f"Breakage by {found['cohort']} of issue, {found['first']} to {found['last']} "
             f"({found['zone']}; closed: nothing outstanding, or ended {found['closed_after']} "
             "ago)")
    shown = found["rows"] if fmt is OutputFormat.csv else [
        {**row, "closed": "yes" if row["closed"] else "no"} for row in found["rows"]]
    emit_rows(shown, fmt, BREAKAGE_COLUMNS, title=title, empty="No points issued.")
    if fmt is OutputFormat.table and found["rows"]:
        emit_rows([{**s, "estimated_value": _money(s["estimated_value"], s["currency"])}
                   for s in found["sources"]], fmt, BREAKAGE_SUMMARY,
                  title="Estimated breakage of the points outstanding in open cohorts")


PARTNER_COLUMNS = [("day", "day"), ("issued", "issued"), ("reversed", "reversed"),
                   ("net", "net"), ("value", "value")]
PARTNER_CSV_COLUMNS = [*PARTNER_COLUMNS, ("currency", "currency")]


@app.command()
def partner(
    source: Annotated[str, typer.Argument(
        metavar="SOURCE", help="The partner's source (case-insensitive).",
        autocompletion=source_names)],
    last: LastOption = None, this_month: ThisMonthOption = False,
    last_month: LastMonthOption = False, start: FromOption = None, end: ToOption = None,
    export: ExportOption = None,
    email: EmailOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """A partner's statement: per day and in total the points its source issued, reversed,
    the net and its value (what the partner is billed)."""
    from pointctl.services import reports

    to = _check_delivery(export, email)
    chosen = period(last, this_month, last_month, start, end)
    found = state.call(reports.partner, write=False, source=source, period=chosen)
    if fmt is OutputFormat.json:
        emit_record(found, fmt, [])
    else:
        rows = found["rows"]
        shown = rows
        if fmt is OutputFormat.table:
            shown = [*({**row, "value": _money(row["value"], found["currency"])} for row in rows),
                     {"day": "Total", **{k: found["total"][k] for k in ("issued", "reversed",
                                                                       "net")},
                      "value": _money(found["total"]["value"], found["currency"])}]
        value = f"{found['point_value']} {found['currency']} per point" \
            if found["point_value"] else "no value per point set"
        emit_rows(shown, fmt, PARTNER_CSV_COLUMNS if fmt is OutputFormat.csv else PARTNER_COLUMNS,
                  title=f"Partner statement: {found['source']}, {found['first']} to "
                  f"{found['last']} ({found['zone']}; {value})", empty="No days.")
    _deliver(found, PARTNER_CSV_COLUMNS, export, to,
             stem=f"pointctl-partner-{found['source_id']}", what="partner statement")


TIER_COLUMNS = [("level", "level"), ("members", "members now"),
                ("moved_up", "moved up into it"), ("moved_down", "moved down into it"),
                ("changed", "into it from a level removed")]


@app.command()
def tiers(
    last: LastOption = None, this_month: ThisMonthOption = False,
    last_month: LastMonthOption = False, start: FromOption = None, end: ToOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Members per tier level now, and how many moved up and down into each level in the
    period (default: all time; and into it out of a level since removed); 'none' counts
    those who lost their level."""
    from pointctl.services import tiers as tier_service

    chosen = period(last, this_month, last_month, start, end)
    found = state.call(tier_service.report, write=False, period=chosen)
    if fmt is OutputFormat.json:
        emit_record(found, fmt, [])
        return
    emit_rows(found["rows"], fmt, TIER_COLUMNS,
              title=f"Tiers: members now, moves {found['period']} ({found['timezone']})")
    if fmt is OutputFormat.table:
        message(f"{found['members']:,} members hold a level; {found['moves_up']:,} moves up "
                f"and {found['moves_down']:,} down in the period")


def _money(amount: str | None, currency: str | None) -> str | None:
    return None if amount is None else f"{amount} {currency}"


@commands.command()
def verify(fmt: FormatOption = OutputFormat.table) -> None:
    """Check every ledger rule; exit 1 listing each violation."""
    from pointctl.services.verify import verify as run_verify

    result = state.call(run_verify, write=False)
    counts = ", ".join(f"{n} {table} rows" for table, n in result["checked"].items())
    if fmt is OutputFormat.json:
        emit_record(result, fmt, [])
    elif result["violations"] or fmt is OutputFormat.csv:  # CSV: a header even when clean
        emit_rows(result["violations"], fmt, VIOLATION_COLUMNS, title="Ledger violations")
    if result["ok"]:
        message(f"Ledger verified: every rule holds ({counts})")
        return
    message(f"Ledger verification failed: {len(result['violations'])} violations ({counts})")
    raise typer.Exit(1)
