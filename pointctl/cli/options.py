"""Options shared by many commands, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

from pointctl.cli import complete
from pointctl.cli.render import OutputFormat

FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format", "-f", envvar="POINTCTL_FORMAT", case_sensitive=False,
        help="Output format: table for people, json (one document) or csv for scripts.",
    ),
]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print no confirmation line (with --format json or csv the record "
    "still goes to stdout).")]
DescOption = Annotated[bool, typer.Option("--desc", help="Sort in descending order.")]
SearchOption = Annotated[
    str | None, typer.Option(
        "--search", metavar="TEXT", help="Case-insensitive substring to match.")
]
ReferenceIdOption = Annotated[str | None, typer.Option(
    "--reference-id", help="Your reference for this operation (order id, ride id, ticket).")]
ReferenceTypeOption = Annotated[str | None, typer.Option(
    "--reference-type", help="Summary of the operation, e.g. 'Purchase' (a default per "
    "operation).")]
IdempotencyKeyOption = Annotated[str | None, typer.Option(
    "--idempotency-key", help="Retry-safe key: the same key and request returns the first "
    "result; a different request with it is refused.")]
AtOption = Annotated[str | None, typer.Option(
    "--at", metavar="TIME", help="When it happened (ISO-8601; default now).")]

# the date filters every report shares; resolved by cli.report.period()
LastOption = Annotated[str | None, typer.Option(
    "--last", metavar="DAYS", help="The last N days up to today, today included: 7d, 30d, 4w, "
    "3mo.", rich_help_panel="Period (program time zone, whole days)")]
ThisMonthOption = Annotated[bool, typer.Option(
    "--this-month", help="From the 1st of this month to today.",
    rich_help_panel="Period (program time zone, whole days)")]
LastMonthOption = Annotated[bool, typer.Option(
    "--last-month", help="The whole previous month.",
    rich_help_panel="Period (program time zone, whole days)")]
FromOption = Annotated[str | None, typer.Option(
    "--from", metavar="DATE", help="From this day (inclusive), e.g. 2026-03-01.",
    rich_help_panel="Period (program time zone, whole days)")]
ToOption = Annotated[str | None, typer.Option(
    "--to", metavar="DATE", help="To this day (inclusive; default today).",
    rich_help_panel="Period (program time zone, whole days)")]
AccountsOption = Annotated[list[str] | None, typer.Option(
    "--account", "-a", metavar="ACCOUNT", help="Only this account (repeatable: any of them; "
    "default every "
    "account).", autocompletion=complete.account_names)]
SourcesOption = Annotated[list[str] | None, typer.Option(
    "--source", "-s", metavar="SOURCE",
    help="Only this source (repeatable: any of them; default every source).",
    autocompletion=complete.source_names)]
