"""Options shared by many commands, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

from pointctl.cli.render import OutputFormat

FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format", "-f", envvar="POINTCTL_FORMAT", case_sensitive=False,
        help="Output format: table for people, json (one document) or csv for scripts.",
    ),
]
DescOption = Annotated[bool, typer.Option("--desc", help="Sort in descending order.")]
SearchOption = Annotated[
    str | None, typer.Option("--search", "-s", help="Case-insensitive substring to match.")
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
