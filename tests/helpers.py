"""Helpers for tests: run pointctl like a user, and snapshot a database."""

from __future__ import annotations

import functools
import json
import os
import pickle
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import typer
import typer.main
import typer.testing
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from pointctl.cli import app
from pointctl.db.session import parse_url


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str:
        return self.stderr.strip()


@functools.cache
def _command() -> Any:
    """pointctl's Click command, built once."""
    return typer.main.get_command(app)


# Typer's CliRunner rebuilds the whole command tree from the function signatures on every
# invoke (measured: three quarters of a CLI test's time); pointctl's tree never changes, so the
# tests build it once. (typer.testing looks the builder up as a module global.)
typer.testing._get_command = (  # type: ignore[attr-defined]
    lambda typer_app: _command() if typer_app is app else typer.main.get_command(typer_app))


def _run(url: str, args: list[str], env: dict[str, str] | None, input: str | None = None
         ) -> Result:
    runner = CliRunner()
    result = runner.invoke(app, ["--db", url, *args], env=env, input=input,
                           catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


class Cli:
    """Runs pointctl in-process against one database, as a user would type it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 input: str | None = None) -> Result:
        return _run(self.url, list(args), env, input)

    def ok(self, *args: str, env: dict[str, str] | None = None) -> Result:
        result = self(*args, env=env)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> object:
        return json.loads(self.ok(*args, "--format", "json").stdout)


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, to prove that a refused command changed nothing."""
    engine = create_engine(parse_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            # the catalog read directly: SQLAlchemy's inspector takes tens of milliseconds
            if connection.dialect.name == "sqlite":
                names = "SELECT name FROM sqlite_master WHERE type = 'table' " \
                        "AND name NOT LIKE 'sqlite_%'"
            else:
                names = "SELECT tablename FROM pg_catalog.pg_tables " \
                        "WHERE schemaname = current_schema()"
            tables = sorted(name for (name,) in connection.execute(text(names)))
            return {
                table: sorted(
                    (tuple(row) for row in connection.execute(text(f'SELECT * FROM "{table}"'))),
                    key=repr,
                )
                for table in tables
            }
    finally:
        engine.dispose()




def start_together(argvs: list[list[str]], env: dict[str, str], timeout: float = 300
                   ) -> list[subprocess.CompletedProcess[str]]:
    """Runs processes that each write "ready" on stderr once started and then wait for a line
    on stdin: all are told to go at once, so that they overlap instead of following one
    another by their start-up times. Their outcomes, in order (stderr after "ready")."""
    processes = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env) for argv in argvs]
    try:
        for process in processes:
            assert process.stderr is not None
            ready = process.stderr.readline()
            assert ready == "ready\n", ready + process.stderr.read()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return [subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            for process, (stdout, stderr) in zip(processes, outputs, strict=True)]


@dataclass
class _Failed:
    text: str  # a forked job's traceback


class Forked:
    """A job (usually a pointctl command, run as ``Cli`` runs it) in a process of its own,
    forked from the test's: a real process with its own connections and transactions (the
    parent's are never used in a child, see ``pointctl.db.session``), that starts with
    pointctl already imported instead of paying an interpreter's start-up (about half a second
    to two seconds here). Used where processes running side by side are the point and a new
    interpreter is not; ``poll``, ``wait``, ``communicate`` and ``kill`` as subprocess.Popen
    has them. ``go=False``: the child waits until ``go()``, so that several start together."""

    def __init__(self, job: Callable[[], Any], *, go: bool = True) -> None:
        go_read, self._go = os.pipe()
        out_read, out_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the test
            code = 99
            try:
                os.close(self._go)
                os.close(out_read)
                if os.read(go_read, 1) != b"g":  # the test went away before saying go
                    os._exit(98)
                try:
                    result = job()
                    code = result.exit_code if isinstance(result, Result) else 0
                    payload = pickle.dumps(result)
                except BaseException:  # noqa: BLE001 - handed to the test, which fails
                    payload = pickle.dumps(_Failed(traceback.format_exc()))
                with os.fdopen(out_write, "wb") as out:
                    out.write(payload)
            finally:
                os._exit(code)
        os.close(go_read)
        os.close(out_write)
        self.pid = pid
        self.returncode: int | None = None
        self._data = b""
        self._reader = threading.Thread(target=self._read, args=(out_read,), daemon=True)
        self._reader.start()  # drained as it comes: a child never blocks on a full pipe
        if go:
            self.go()

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as out:
            self._data = out.read()

    def go(self) -> None:
        if self._go >= 0:
            os.write(self._go, b"g")
            os.close(self._go)
            self._go = -1

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"forked pid {self.pid}", timeout)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.wait(timeout=30)

    def result(self, timeout: float = 300) -> Any:
        """The job's outcome; a job that raised fails the test with the child's traceback."""
        try:
            self.wait(timeout)
        finally:
            self.kill()
        self._reader.join()
        outcome = pickle.loads(self._data) if self._data else \
            _Failed(f"the child ended with {self.returncode} and no result")
        assert not isinstance(outcome, _Failed), outcome.text
        return outcome

    def communicate(self, timeout: float = 300) -> tuple[str, str]:
        outcome = self.result(timeout)
        assert isinstance(outcome, Result), outcome
        return outcome.stdout, outcome.stderr


def fork_cli(url: str, *args: str, env: dict[str, str] | None = None, go: bool = True
             ) -> Forked:
    """``pointctl --db URL ARGS`` in a forked process (``Forked``)."""
    return Forked(lambda: Cli(url)(*args, env=env), go=go)


def forked_together(jobs: Sequence[Callable[[], Any]], timeout: float = 300) -> list[Any]:
    """Each job in a forked process, all let go at once after the last is forked, so that they
    overlap; their outcomes, in order."""
    children: list[Forked] = []
    try:
        for job in jobs:
            children.append(Forked(job, go=False))
        for child in children:
            child.go()
        return [child.result(timeout) for child in children]
    finally:
        for child in children:
            child.kill()

