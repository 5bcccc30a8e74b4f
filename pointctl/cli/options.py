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
