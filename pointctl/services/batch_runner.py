"""Running a batch file against a database: what ``pointctl batch`` does, without Typer.

This module owns the run around ``pointctl.services.batch`` (which reads, checks and applies
one chunk): the two streaming passes over the file, the rejects file, the chunks and their
transactions, and the summary. The first pass checks every line; a malformed file lists every
malformed line in the rejects file and applies nothing (``InvalidInputError``, exit 2). The
second applies the operations in chunks, one transaction each (retried when it loses a race),
through one pooled connection; refused operations go to the rejects file with their line
numbers and do not stop the run. A dry run applies every chunk in one transaction that is
rolled back. The first pass spools what it checked to a temporary file, which the second reads
back a chunk at a time.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pointctl.core.errors import InvalidInputError, PointctlError

SHOWN_ERRORS = 3  # malformed lines quoted in the error message (all are in the rejects file)


@dataclass(frozen=True)
class BatchSummary:
    """What a run did. ``rejects`` is the rejects file when some operations were refused."""

    lines: int
    applied: int
    replayed: int
    refused: int
    rejects: Path | None
    seconds: float
    dry_run: bool

    @property
    def ops_per_second(self) -> int | None:
        return round(self.lines / self.seconds) if self.seconds else None


class _DryRun(Exception):
    """Raised at the end of a dry run so that its one transaction rolls back."""


def run_file(path: str | os.PathLike[str], *, url: str, actor: str, fmt: str | None = None,
             chunk_size: int = 1000, rejects_path: str | os.PathLike[str] | None = None,
             dry_run: bool = False, on_progress: Callable[[int, int], None] | None = None,
             read_only: bool = False) -> BatchSummary:
    """Apply the operations of a JSON Lines or CSV file to the database at ``url``.

    ``fmt`` is ``jsonl`` or ``csv`` (default: from the file's extension); ``rejects_path``
    defaults to ``PATH.rejects.jsonl`` and is replaced on every run (removed when nothing was
    refused). ``on_progress(done, total)`` is called with ``done=0`` once every line is
    checked, then after each chunk. ``path`` must be a real file (not a pipe).
    """
    from pointctl.services import batch as service

    name = os.fspath(path)
    if chunk_size < 1:
        raise InvalidInputError(f"chunk size must be at least 1, not {chunk_size}")
    fmt = fmt or service.input_format(name)
    rejects_file = Path(rejects_path if rejects_path is not None else f"{name}.rejects.jsonl")
    started = time.perf_counter()
    if not os.path.isfile(name):
        raise InvalidInputError(f"cannot read {name!r}: no such file")
    writer = _Rejects(rejects_file)
    try:
        with tempfile.TemporaryFile(prefix="pointctl-batch-") as spool:
            lines = _check_all(name, fmt, writer, spool, chunk_size)
            spool.seek(0)
            applied, replayed = _apply_all(spool, chunk_size, lines, writer, dry_run=dry_run,
                                           url=url, actor=actor, read_only=read_only,
                                           on_progress=on_progress)
    finally:
        writer.close()
    refused = writer.count
    return BatchSummary(lines=lines, applied=applied, replayed=replayed, refused=refused,
                        rejects=rejects_file if refused else None,
                        seconds=time.perf_counter() - started, dry_run=dry_run)


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


def _check_all(path: str, fmt: str, rejects: _Rejects, spool: IO[bytes], size: int) -> int:
    """Pass 1: every line checked; any malformed line ends the run with exit 2. The checked
    operations are spooled to ``spool`` a chunk at a time, so the applying pass neither reads
    nor checks the file again and memory stays flat."""
    from pointctl.services import batch as service

    lines, shown = 0, list[str]()
    chunk: list[Any] = []
    try:
        with _open(path) as stream:
            for number, raw in service.read(stream, fmt):
                lines += 1
                try:
                    chunk.append(service.check(number, raw, fmt))
                    if len(chunk) == size:
                        _spool(spool, chunk)
                        chunk = []
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
    if chunk:
        _spool(spool, chunk)
    if rejects.count:
        more = f" (and {rejects.count - len(shown)} more)" if rejects.count > len(shown) else ""
        raise InvalidInputError(
            f"{rejects.count} malformed line{'s' if rejects.count > 1 else ''}, nothing applied: "
            f"{'; '.join(shown)}{more}; all listed in {rejects.path}")
    return lines


def _spool(spool: IO[bytes], chunk: list[Any]) -> None:
    # plain tuples: they pickle several times faster than the dataclasses
    pickle.dump([(op.line, op.op, op.fields, op.at) for op in chunk], spool,
                protocol=pickle.HIGHEST_PROTOCOL)


def _chunks(spool: IO[bytes]) -> Iterator[list[Any]]:
    """The chunks of checked operations the first pass spooled (our own file: pickle is safe
    here)."""
    from pointctl.services.batch import Op

    while True:
        try:
            rows = pickle.load(spool)
        except EOFError:
            return
        yield [Op(*row) for row in rows]


def _apply_all(spool: IO[bytes], size: int, lines: int, rejects: _Rejects, *,
               dry_run: bool, url: str, actor: str, read_only: bool,
               on_progress: Callable[[int, int], None] | None) -> tuple[int, int]:
    """Pass 2: chunk by chunk, one transaction each (a dry run: one transaction, rolled back).
    Returns (applied, replayed); refusals are counted by the rejects file."""
    from pointctl.db.session import make_engine, run_in_transaction, transaction
    from pointctl.services import batch as service

    # one connection for every chunk
    engine = make_engine(url, write=True, keep=True, read_only=read_only)
    counts = [0, 0, 0]  # applied, replayed, done

    def tally(chunk: list[Any], outcomes: list[Any]) -> None:
        for op, outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, PointctlError):
                rejects.write(op.line, str(outcome), outcome.exit_code, op.fields)
            else:
                counts[0] += 1
                counts[1] += bool(outcome.get("replay"))
        counts[2] += len(chunk)
        if on_progress is not None:
            on_progress(counts[2], lines)

    if on_progress is not None:
        on_progress(0, lines)
    try:
        if dry_run:
            try:
                with transaction(url, write=True, engine=engine) as session:
                    for chunk in _chunks(spool):
                        tally(chunk, service.apply_chunk(session, chunk, actor=actor))
                    raise _DryRun
            except _DryRun:
                pass
        else:
            for chunk in _chunks(spool):
                def work(session: Any, chunk: list[Any] = chunk) -> list[Any]:
                    return service.apply_chunk(session, chunk, actor=actor)

                tally(chunk, run_in_transaction(url, work, write=True, engine=engine))
    finally:
        engine.dispose()
    return counts[0], counts[1]
