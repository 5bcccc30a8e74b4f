"""``pointctl batch FILE|-``: bulk ledger operations from JSON Lines or CSV.

Parses the options, spools standard input to a temporary file (the run reads its file twice),
calls ``pointctl.services.batch_runner.run_file`` and renders its summary; exit 1 when some
operations were refused.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from pointctl.cli import state
from pointctl.cli.numbers import whole
from pointctl.cli.options import FormatOption
from pointctl.cli.render import OutputFormat, emit_result, message, progress_reporter
from pointctl.core.errors import InvalidInputError

# top-level commands (`pointctl batch`): the root finds them here by name
commands = typer.Typer()

MAX_CHUNK = 100_000
SUMMARY = [("lines", "operations"), ("applied", "applied"), ("replayed", "of which replayed"),
           ("refused", "refused"), ("rejects", "rejects file"), ("seconds", "seconds"),
           ("ops_per_second", "operations/s"), ("dry_run", "dry run")]


class InputFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


@commands.command()
@state.writes
def batch(
    file: Annotated[str, typer.Argument(metavar="FILE|-", help="JSON Lines or CSV file; - for "
                                        "standard input (then give --input-format).")],
    input_format: Annotated[InputFormat | None, typer.Option(
        "--input-format", case_sensitive=False,
        help="jsonl or csv (default: from the file's extension).")] = None,
    chunk_size: Annotated[int, typer.Option(
        "--chunk-size", metavar="N", parser=whole("--chunk-size", maximum=MAX_CHUNK),
        help="Operations per transaction.")] = 1000,
    rejects: Annotated[Path | None, typer.Option(
        "--rejects", metavar="FILE",
        help="Where refused and malformed lines go (default: FILE.rejects.jsonl).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Check everything and report what would be refused; change nothing."
    )] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Apply ledger operations from a file: issue, spend, reverse, adjust, transfer, activity.

    One object (JSONL) or row (CSV) per operation, with the fields op, user, points, source,
    account, to_account, to_user, entry, reference_id, reference_type, idempotency_key, at,
    reason, event, clamp. Exit 0 when all were applied, 1 when some were refused, 2 when the
    file is malformed (then nothing is applied).
    """
    from pointctl.services import batch as service
    from pointctl.services.batch_runner import run_file

    if file == "-" and input_format is None:
        raise InvalidInputError("reading standard input needs --input-format jsonl or csv")
    fmt_name = input_format.value if input_format else service.input_format(file)
    rejects_path = rejects or Path("stdin.rejects.jsonl" if file == "-"
                                   else f"{file}.rejects.jsonl")
    with _seekable(file) as path, progress_reporter("batch") as on_progress:
        result = run_file(path, url=state.current.db_url, actor=state.current.actor,
                          fmt=fmt_name, chunk_size=chunk_size, rejects_path=rejects_path,
                          dry_run=dry_run, on_progress=on_progress,
                          read_only=state.current.read_only)
    lines, applied, replayed, refused = result.lines, result.applied, result.replayed, \
        result.refused
    summary = {
        "lines": lines, "applied": applied, "replayed": replayed, "refused": refused,
        "rejects": str(result.rejects) if result.rejects else None,
        "seconds": round(result.seconds, 3), "ops_per_second": result.ops_per_second,
        "dry_run": dry_run,
    }
    verb = "Would apply" if dry_run else "Applied"
    refusals = f"; {refused:,} refused, see {rejects_path}" if refused else ""
    note = (f"{verb} {applied:,} of {lines:,} operations ({replayed:,} replayed){refusals} in "
            f"{result.seconds:.2f} s ({summary['ops_per_second'] or 0:,} operations/s)"
            f"{'; nothing was changed (dry run)' if dry_run else ''}")
    emit_result(summary, fmt, SUMMARY, note)
    if not lines:
        message(f"Warning: {'standard input' if file == '-' else file} holds no operations")
    if refused:
        raise typer.Exit(1)


@contextmanager
def _seekable(file: str) -> Iterator[str]:
    """A path to read twice: the file itself (the run checks that it exists), or standard
    input spooled to a temporary file."""
    if file != "-":
        yield file
        return
    import tempfile  # only for a batch read from stdin

    with tempfile.TemporaryDirectory(prefix="pointctl-batch-") as folder:
        spool = os.path.join(folder, "stdin")
        with open(spool, "w", encoding="utf-8", newline="") as out:
            try:
                shutil.copyfileobj(sys.stdin, out)
            except UnicodeDecodeError as error:
                raise InvalidInputError(f"standard input is not UTF-8 text: {error.reason} at "
                                        f"byte {error.start}") from None
        yield spool
