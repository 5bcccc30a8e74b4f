"""Rows and records -> a Rich table, one JSON document, or CSV on stdout; messages on stderr.

Defined once and shared by every data command. Each output imports what it needs when it is
asked for (Rich, json, csv): every command's help and start-up import this module.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from enum import Enum
from typing import Any

Columns = Sequence[tuple[str, str]]  # (key in the row, header)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(item) for item in value)
    return str(value)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell that a spreadsheet shows as it is: a text that begins like a
    formula (``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading ``'``, so
    that a user id such as ``=cmd|' /C calc'!A0`` is never run; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        value = ";".join(str(item) for item in value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value





def stdout_console() -> Any:
    import os

    from rich.console import Console

    # names, ids and notes are shown as they are: no Rich markup ("[b]", "[/x]") or emoji
    # codes (":smile:") read in them
    console = Console(file=sys.stdout, soft_wrap=False, markup=False, emoji=False)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
        # piped or captured: print tables at their natural width instead of folding at 80
        # (COLUMNS, when set, is the width to fit)
        console = Console(file=sys.stdout, soft_wrap=False, markup=False, emoji=False,
                          width=500)
    return console


def message(text: str) -> None:
    """A human message on stderr (never mixed into data on stdout)."""
    print(text, file=sys.stderr)


def emit_rows(rows: Sequence[dict[str, Any]], fmt: OutputFormat, columns: Columns,
              *, title: str | None = None, empty: str = "nothing to show") -> None:
    if fmt is OutputFormat.json:
        import json

        json.dump(list(rows), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif fmt is OutputFormat.csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([key for key, _ in columns])
        for row in rows:
            writer.writerow([csv_cell(row.get(key)) for key, _ in columns])
    else:
        if not rows:
            message(empty)
            return
        from rich.table import Table

        console = stdout_console()
        cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
        numeric = [all(isinstance(r.get(key), int) and not isinstance(r.get(key), bool)
                       for r in rows if r.get(key) is not None) for key, _ in columns]
        # a number is never split: its column is at least as wide as its widest figure, and
        # text columns fold (down to a few characters) to make room
        widths = [max(len(line[n]) for line in cells) for n in range(len(columns))]
        table = Table(title=title, show_lines=False)
        for n, (_key, header) in enumerate(columns):
            if numeric[n]:  # as wide as its widest figure; the header may wrap
                table.add_column(header, justify="right", min_width=widths[n],
                                 overflow="fold")
            else:
                table.add_column(header, justify="left", overflow="fold")
        for line in cells:
            table.add_row(*line)
        # Rich folds columns down to their longest word (a header's too); when even that does
        # not fit, it would cut cells (numbers too) or whole columns: one block per row instead
        words = [max(len(word) for text in [header, *(line[n] for line in cells)]
                     for word in text.split() or [""]) for n, (_, header) in enumerate(columns)]
        needed = 1 + sum(3 + (max(widths[n], words[n]) if numeric[n] else words[n])
                         for n in range(len(columns)))
        if needed > console.width:
            _blocks(console, columns, cells, title)
            return
        console.print(table)


def _blocks(console: Any, columns: Columns, cells: list[list[str]], title: str | None
            ) -> None:
    """Rows too wide for the terminal as a table: one block of "field value" lines per row,
    every value whole."""
    from rich.table import Table

    message(f"{len(columns)} columns do not fit in {console.width}; one block per row "
            "(--format csv or json gives the table)")
    if title:
        console.print(title, style="bold")
    for index, line in enumerate(cells):
        block = Table(show_header=False, box=None, pad_edge=False)
        block.add_column("field", style="bold", no_wrap=True)
        block.add_column("value", overflow="fold")
        for (_key, header), value in zip(columns, line, strict=True):
            block.add_row(header, value)
        if index:
            console.print()
        console.print(block)


def emit_record(record: dict[str, Any], fmt: OutputFormat, fields: Columns,
                *, title: str | None = None) -> None:
    """One object: a two-column table, a JSON object (every key), or a one-row CSV."""
    if fmt is OutputFormat.json:
        import json

        json.dump(record, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif fmt is OutputFormat.csv:
        emit_rows([record], fmt, fields)
    else:
        from rich.table import Table

        table = Table(title=title, show_header=False, box=None, pad_edge=False)
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for key, header in fields:
            table.add_row(header, _cell(record.get(key)))
        stdout_console().print(table)


def confirm(note: str) -> None:
    """A write command's confirmation line on stderr; none with --quiet."""
    from pointctl.cli import state

    if not state.current.quiet:
        message(note)


def emit_result(record: dict[str, Any], fmt: OutputFormat, fields: Columns, note: str) -> None:
    """What a write command prints: a confirmation on stderr (none with --quiet), and the
    resulting record on stdout when a machine format (json, csv) was asked for."""
    confirm(note)
    if fmt is not OutputFormat.table:
        emit_record(record, fmt, fields)


@contextmanager
def progress(total: int, label: str) -> Iterator[Any]:
    """A Rich progress bar on a terminal (stderr); nothing when stderr is not one. Yields a
    function that advances it."""
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.advance(task, done)


@contextmanager
def progress_reporter(label: str) -> Iterator[Callable[[int, int], None]]:
    """An ``on_progress(done, total)`` callback for a service: the progress bar of
    ``progress``, opened at the first report (when the total is known), closed on exit."""
    with ExitStack() as stack:
        advance: Callable[[int], None] | None = None
        shown = 0

        def report(done: int, total: int) -> None:
            nonlocal advance, shown
            if advance is None:
                advance = stack.enter_context(progress(total, label))
            advance(done - shown)
            shown = done

        yield report
