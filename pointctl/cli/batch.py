"""``pointctl batch FILE|-``: bulk ledger operations from JSON Lines or CSV.

Two passes over the file, both streaming: the first checks every line (a malformed file
applies nothing, exit 2); the second applies the operations in chunks, one transaction each.
Refused operations go to the rejects file with their line numbers and do not stop the run.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from enum import Enum
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from pointctl.cli import state
from pointctl.cli.options import FormatOption
from pointctl.cli.render import OutputFormat, disposing, emit_result, progress
from pointctl.core.errors import InvalidInputError, PointctlError

MAX_CHUNK = 100_000
SHOWN_ERRORS = 3
SUMMARY = [("lines", "operations"), ("applied", "applied"), ("replayed", "of which replayed"),
           ("refused", "refused"), ("rejects", "rejects file"), ("seconds", "seconds"),
           ("ops_per_second", "operations/s"), ("dry_run", "dry run")]


class InputFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


class _DryRun(Exception):
    """Raised at the end of a dry run so that its one transaction rolls back."""


def register(app: typer.Typer) -> None:
    app.command()(batch)


@state.writes
def batch(
    file: Annotated[str, typer.Argument(metavar="FILE|-", help="JSON Lines or CSV file; - for "
                                        "standard input (then give --input-format).")],
    input_format: Annotated[InputFormat | None, typer.Option(
        "--input-format", case_sensitive=False,
        help="jsonl or csv (default: from the file's extension).")] = None,
    chunk_size: Annotated[int, typer.Option(
        "--chunk-size", min=1, max=MAX_CHUNK, help="Operations per transaction.")] = 1000,
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

    if file == "-" and input_format is None:
        raise InvalidInputError("reading standard input needs --input-format jsonl or csv")
    fmt_name = input_format.value if input_format else service.input_format(file)
    rejects_path = rejects or Path("stdin.rejects.jsonl" if file == "-"
                                   else f"{file}.rejects.jsonl")
    started = time.perf_counter()
    with ExitStack() as stack:
        path = stack.enter_context(_seekable(file))
        writer = _Rejects(rejects_path)
        stack.callback(writer.close)
        lines = _check_all(path, fmt_name, writer)
        applied, replayed, refused = _apply_all(path, fmt_name, chunk_size, lines, writer,
                                                dry_run)
    seconds = time.perf_counter() - started
    summary = {
        "lines": lines, "applied": applied, "replayed": replayed, "refused": refused,
        "rejects": str(rejects_path) if refused else None, "seconds": round(seconds, 3),
        "ops_per_second": round(lines / seconds) if seconds else None, "dry_run": dry_run,
    }
    verb = "Would apply" if dry_run else "Applied"
    refusals = f"; {refused:,} refused, see {rejects_path}" if refused else ""
    note = (f"{verb} {applied:,} of {lines:,} operations ({replayed:,} replayed){refusals} in "
            f"{seconds:.2f} s ({summary['ops_per_second'] or 0:,} operations/s)"
            f"{'; nothing was changed (dry run)' if dry_run else ''}")
    emit_result(summary, fmt, SUMMARY, note)
    if refused:
        raise typer.Exit(1)


@contextmanager
def _seekable(file: str) -> Iterator[str]:
    """A path to read twice: the file itself, or standard input spooled to a temporary file."""
    if file != "-":
        if not os.path.isfile(file):
            raise InvalidInputError(f"cannot read {file!r}: no such file")
        yield file
        return
    with tempfile.TemporaryDirectory(prefix="pointctl-batch-") as folder:
        spool = os.path.join(folder, "stdin")
        with open(spool, "w", encoding="utf-8", newline="") as out:
            try:
                shutil.copyfileobj(sys.stdin, out)
            except UnicodeDecodeError as error:
                raise InvalidInputError(f"standard input is not UTF-8 text: {error.reason} at "
                                        f"byte {error.start}") from None
        yield spool


def _open(path: str) -> IO[str]:
    return open(path, encoding="utf-8", newline="")


class _Rejects:
    """The rejects file: one JSON object per refused or malformed line; removed when empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.stream: IO[str] | None = None
        self.path.unlink(missing_ok=True)  # a rejects file describes the latest run only

    def write(self, line: int, error: str, code: int, op: Any) -> None:
        if self.stream is None:
            self.stream = open(self.path, "w", encoding="utf-8")
        self.count += 1
        self.stream.write(json.dumps({"line": line, "error": error, "exit_code": code,
                                      "op": op}, default=str) + "\n")

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def _check_all(path: str, fmt: str, rejects: _Rejects) -> int:
    """Pass 1: every line checked; any malformed line ends the run with exit 2."""
    from pointctl.services import batch as service

    lines, shown = 0, list[str]()
    try:
        with _open(path) as stream:
            for number, raw in service.read(stream, fmt):
                lines += 1
                try:
                    service.check(number, raw, fmt)
                except service.LineError as error:
                    rejects.write(error.line, error.reason, 2, error.raw)
                    if len(shown) < SHOWN_ERRORS:
                        shown.append(str(error))
    except service.LineError as error:  # structure of a CSV row
        rejects.write(error.line, error.reason, 2, error.raw)
        shown.append(str(error))
    except UnicodeDecodeError as error:
        raise InvalidInputError(f"{path!r} is not UTF-8 text: {error.reason} at byte "
                                f"{error.start}") from None
    except OSError as error:
        raise InvalidInputError(f"cannot read {path!r}: {error.strerror}") from None
    if rejects.count:
        more = f" (and {rejects.count - len(shown)} more)" if rejects.count > len(shown) else ""
        raise InvalidInputError(
            f"{rejects.count} malformed line{'s' if rejects.count > 1 else ''}, nothing applied: "
            f"{'; '.join(shown)}{more}; all listed in {rejects.path}")
    return lines


def _chunks(path: str, fmt: str, size: int) -> Iterator[list[Any]]:
    from pointctl.services import batch as service

    chunk: list[Any] = []
    with _open(path) as stream:
        for number, raw in service.read(stream, fmt):
            chunk.append(service.check(number, raw, fmt))
            if len(chunk) == size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _apply_all(path: str, fmt: str, size: int, lines: int, rejects: _Rejects,
               dry_run: bool) -> tuple[int, int, int]:
    """Pass 2: chunk by chunk, one transaction each (a dry run: one transaction, rolled back)."""
    from pointctl.db.session import make_engine, run_in_transaction, transaction
    from pointctl.services import batch as service

    actor, url = state.current.actor, state.current.db_url
    # one connection for every chunk
    engine = make_engine(url, write=True, keep=True, read_only=state.current.read_only)
    counts = [0, 0]  # applied, replayed

    def tally(chunk: list[Any], outcomes: list[Any]) -> None:
        for op, outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, PointctlError):
                rejects.write(op.line, str(outcome), outcome.exit_code, op.fields)
            else:
                counts[0] += 1
                counts[1] += bool(outcome.get("replay"))

    with progress(lines, "batch") as advance, disposing(engine):
        if dry_run:
            try:
                with transaction(url, write=True, engine=engine) as session:
                    for chunk in _chunks(path, fmt, size):
                        tally(chunk, service.apply_chunk(session, chunk, actor=actor))
                        advance(len(chunk))
                    raise _DryRun
            except _DryRun:
                pass
        else:
            for chunk in _chunks(path, fmt, size):
                def work(session: Any, chunk: list[Any] = chunk) -> list[Any]:
                    return service.apply_chunk(session, chunk, actor=actor)

                tally(chunk, run_in_transaction(url, work, write=True, engine=engine))
                advance(len(chunk))
    return counts[0], counts[1], rejects.count
