"""Helpers for tests: run pointctl like a user, and snapshot a database."""

from __future__ import annotations

import functools
import json
import subprocess
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
